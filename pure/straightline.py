"""The floor: one training step's arithmetic as straight-line Python, with no graph and no bookkeeping.

`make bench` asks how much of pure's step is the seed's own float arithmetic and how much is the engine around it
(building nodes, sorting the graph, walking it). This module answers by generating, for one document, a Python
function that performs the plain engine's float operations in the plain engine's order, each one a statement on
local variables: the forward (every node's value and local derivative), the backward (every push `child.grad +=
local * grad`, in the seed's topological order), and Adam's update of every parameter. Nothing else runs: no
objects, no lists but the parameters and moments, no loop, no call but math's exp, log, sqrt and pow.

What is left out changes no bit of a finite result: a constant's sub-graph (a number wrapped in a Value by an op,
and `c ** -1` of it) is folded into a literal, pushes into those constants (never read) are not made, a gradient's
first push is assigned instead of added to 0, and `1 * g` is `g`. So the function's losses, weights and moments
are `==` the plain engine's (tests/test_straightline.py); pure's step time over this function's is the multiple
`make bench` reports as what is left to gain. Generating and compiling a document's function takes far longer than
running it (about a second for a long name): a floor to time against, not an engine.
"""

import contextlib
import math

from . import model, train
from .engine import _SQUARING_LIMIT, Value

_created = None  # while a step is generated: every traced node and softmax max, in the order the model made them


class _Traced(Value):
    """A Value that remembers which op made it: the plain op's own numbers, with the op's name."""

    __slots__ = ("op", "exponent")

    @classmethod
    def _of(cls, v, op, exponent=None):
        out = cls(v.data, v._children, v._local_grads)
        out.op, out.exponent = op, exponent
        if _created is not None:
            _created.append(out)
        return out

    def __add__(self, other):
        return _Traced._of(Value.__add__(self, other), "add")

    def __mul__(self, other):
        return _Traced._of(Value.__mul__(self, other), "mul")

    def __pow__(self, exponent):
        return _Traced._of(Value.__pow__(self, exponent), "pow", exponent)

    def exp(self):
        return _Traced._of(Value.exp(self), "exp")

    def log(self):
        return _Traced._of(Value.log(self), "log")

    def relu(self):
        return _Traced._of(Value.relu(self), "relu")


class _Max:
    """softmax's max over its logits: a number the model reads from the values (no gradient flows through it), so
    the generated code computes it, where everything else that is not a weight's descendant is a literal."""

    def __init__(self, logits):
        self.logits = logits
        self.leaves = []  # the Value(max) each `v - max` wraps: pure.engine's __sub__ makes one per logit


@contextlib.contextmanager
def _tracing():
    """Every op recorded in creation order, and each softmax's max marked (pure.model's helpers are looked up as
    module globals at call time: the wrapper calls the model's own softmax, then finds the leaves of its max)."""
    global _created
    original = model.softmax

    def softmax(logits, sums=model.PLAIN_SUMS):
        marker = _Max(logits)
        _created.append(marker)
        probs = original(logits, sums)
        for p in probs:  # e * total ** -1, e = exp(v + m), m = Value(max) * -1
            shift = p._children[0]._children[0]
            marker.leaves.append(shift._children[1]._children[0])
        return probs

    _created = []
    model.softmax, train.softmax = softmax, softmax
    try:
        yield
    finally:
        model.softmax, train.softmax = original, original
        _created = None


def _traced_params(params):
    return {name: [[_Traced._of(Value(p.data), "param") for p in row] for row in rows]
            for name, rows in params.items()}


def _pow_expr(x, e):
    """js_pow(x, e) as an expression on the name x (e a constant)."""
    if e == 0.5:
        return f"sqrt({x})"
    if e == -0.5:
        return f"1 / sqrt({x})"
    if 0 <= e <= _SQUARING_LIMIT and e == int(e):
        raise NotImplementedError("integer exponents (repeated squaring) do not occur in the model")
    return f"pow({x}, {float(e)!r})"


def generate(tokens, config):
    """(source, nodes) of a function `step(P, M, V, lr_t, bias1, bias2, b1, b2, ob1, ob2, eps)` that trains one
    step on `tokens` in place (P the flat weights as floats, M and V Adam's moments, in the seed's order) and
    returns the loss: the plain engine's arithmetic on a document of these tokens, straight-line, whatever the
    weights. nodes: the plain graph's node count."""
    from .rng import Rng

    with _tracing():
        params = _traced_params(model.init_params(config, Rng(0)))  # any weights: only the structure is kept
        flat = model.flatten(params)
        loss = train.doc_loss(tokens, params, config)
        created = _created
    topo = loss.topological_order()
    index = {id(p): i for i, p in enumerate(flat)}
    position = {id(node): k for k, node in enumerate(topo)}
    names, const, stop = {}, set(), set()  # id -> name or literal; constants; ids nothing pushes into
    lines = []

    def name_of(node):
        """The node's name, emitting an untraced node (pure.engine's own `Value(max) * -1`) on first use."""
        key = id(node)
        if key not in names:
            args = [name_of(c) for c in node._children]
            if node._children and not all(id(c) in const for c in node._children):
                a, b = args
                if isinstance(node, _Traced) or node._local_grads != (node._children[1].data, node._children[0].data):
                    raise TypeError(f"an untraced op that is not a product: {node!r}")
                names[key] = f"n{len(names)}"
                lines.append(f"{names[key]} = {a} * {b}")
                stop.add(key)
            else:  # a number, or arithmetic on numbers only: its value is a literal
                names[key] = repr(float(node.data))
                const.add(key)
        return names[key]

    for node in created:
        if isinstance(node, _Max):
            m = f"m{len(names)}"
            args = [name_of(v) for v in node.logits]
            lines.append(f"{m} = max({', '.join(args)})" if len(args) > 1 else f"{m} = {args[0]}")
            for leaf in node.leaves:
                names[id(leaf)] = m
                stop.add(id(leaf))
            continue
        k = position.get(id(node), len(position) + len(names))  # nodes outside the loss's graph too (probs)
        if node.op == "param":
            if id(node) in position:
                names[id(node)] = f"d{k}"
                lines.append(f"d{k} = P[{index[id(node)]}]")
            continue
        a = [name_of(c) for c in node._children]
        names[id(node)] = d = f"d{k}"
        op = node.op
        if op == "add":
            lines.append(f"{d} = {a[0]} + {a[1]}")
        elif op == "mul":
            lines.append(f"{d} = {a[0]} * {a[1]}")
        elif op == "pow":
            lines.append(f"{d} = {_pow_expr(a[0], node.exponent)}")
            lines.append(f"l{k} = {float(node.exponent)!r} * {_pow_expr(a[0], node.exponent - 1)}")
        elif op == "exp":
            lines.append(f"{d} = exp({a[0]})")
        elif op == "log":
            lines.append(f"{d} = log({a[0]})")
            lines.append(f"l{k} = 1 / {a[0]}")
        elif op == "relu":
            lines.append(f"{d} = {a[0]} if {a[0]} > 0 else 0.0")
            lines.append(f"l{k} = 1 if {a[0]} > 0 else 0")
        else:
            raise TypeError(f"unknown op {op!r}")
    pushed = {id(topo[-1])}  # ids whose gradient has been assigned
    lines.append(f"g{len(topo) - 1} = 1")
    for node in reversed(topo):
        key = id(node)
        if key in const or key in stop or key in index or key not in pushed:
            continue  # a constant, a max, a weight (a leaf), or a node nothing pushed into
        k = position[key]
        g = f"g{k}"
        for i, child in enumerate(node._children):
            if id(child) in const or id(child) in stop:
                continue
            if node.op == "add":
                term = g  # 1 * g
            elif node.op == "mul":
                term = f"{name_of(node._children[1 - i])} * {g}"  # d(ab)/da = b
            elif node.op == "exp":
                term = f"d{k} * {g}"
            else:
                term = f"l{k} * {g}"
            c = f"g{position[id(child)]}"
            lines.append(f"{c} = {c} + {term}" if id(child) in pushed else f"{c} = {term}")
            pushed.add(id(child))
    for i, p in enumerate(flat):  # Adam, term for term as pure.optim.Adam.step
        g = f"g{position[id(p)]}" if id(p) in pushed else "0"
        lines.append(f"m = b1 * M[{i}] + ob1 * {g}; M[{i}] = m")
        lines.append(f"v = b2 * V[{i}] + ob2 * {g} * {g}; V[{i}] = v")
        lines.append(f"P[{i}] = P[{i}] - lr_t * (m / bias1 / (sqrt(v / bias2) + eps))")
    lines.append(f"return {names[id(topo[-1])]}")
    body = "\n    ".join(lines)
    return f"def step(P, M, V, lr_t, bias1, bias2, b1, b2, ob1, ob2, eps):\n    {body}\n", len(topo)


def compile_step(tokens, config):
    """The generated step for a document of `tokens` as a function (see `generate`)."""
    source, _ = generate(tokens, config)
    scope = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "pow": math.pow}
    exec(compile(source, "<straight-line step>", "exec"), scope)
    return scope["step"]


class StraightLine:
    """A run of straight-line steps from a pure Trainer's state (weights, moments, documents), as floats."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.P = trainer.flat_values()
        self.M, self.V = list(trainer.optimizer.m), list(trainer.optimizer.v)

    def compile(self, step):
        t = self.trainer
        return compile_step(t.tokens_at(step), t.config)

    def run(self, step, fn):
        """One step with the compiled `fn` (from `compile(step)`); returns the loss."""
        opt = self.trainer.optimizer
        c = opt.config
        bias1, bias2 = opt.bias_corrections(step)
        return fn(self.P, self.M, self.V, opt.lr_at(step), bias1, bias2, c.beta1, c.beta2, 1 - c.beta1,
                  1 - c.beta2, c.eps)


__all__ = ["StraightLine", "compile_step", "generate"]
