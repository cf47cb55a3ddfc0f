"""The table of `parity ops`: each operation of the Value protocol and each composite of the model, with the
computation written once with the class under test (protocol operators only; the composites through pure's own
model functions, so a user's class runs the code the model runs) and once in torch, and its inputs (edge cases
included). A case is one line: `binary("mul", lambda a, b: a * b, ...)` reads as tinygrad's helper_test_op does.

Optional rows (`extra`: n/a when the class lacks what they call, never required): the common extras `tanh`,
`sigmoid` and `Value ** Value`, and the MLP activations of microgpt's declared variants (issue 28) as methods:
`erf` (torch.erf), `gelu` (GELU's erf form x Phi(x), torch's F.gelu), `gelu_tanh` (its tanh approximation,
F.gelu(approximate="tanh")) and `silu` (x sigmoid(x), F.silu); then the same activations as composites of the
class's own ops, as pure.variants.activate builds them for a variant model: `relu2`, `gelu(erf composite)`,
`gelu_tanh(composite)`, `silu(composite)`.

Nothing here imports torch until a reference is computed: the class-under-test side of the table runs without it.
"""

import math
import random
from dataclasses import dataclass, field
from typing import Callable, Optional

import pure.model as model
from pure.variants import activate

DEEP_CHAIN = 5000  # nodes in the deep-chain case: 5x Python's default recursion limit (1000)


class _LazyTorch:
    """`torch`, imported on first use (the references below), so that the class-under-test side never loads it."""

    def __getattr__(self, name):
        import torch as real

        return getattr(real, name)


torch = _LazyTorch()


@dataclass
class Case:
    inputs: dict  # name -> float, list of floats or list of lists: the differentiated inputs
    const: dict = field(default_factory=dict)  # name -> number passed as is (no gradient)
    kink: bool = False  # a point where the function is not differentiable: no finite differences
    fd_step: Optional[float] = None  # finite-difference step, where the default (OPS_FD_STEP) is too coarse
    note: str = ""


@dataclass
class OpSpec:
    name: str
    build: Callable  # (**inputs as Values, **const) -> list of Values
    ref: Callable  # (**inputs as float64 tensors, **const) -> 1-D tensor of outputs
    cases: list
    kind: str = "op"  # "op" or "composite"
    singular_at_0: bool = False  # finite-difference steps scale with |x| (log, x**-1, ...), not with max(|x|, 1)
    uses: tuple = ()  # the class's methods the computation calls
    extra: bool = False  # not part of the model (tanh, sigmoid, Value ** Value): checked when the class has it
    probe: Optional[Callable] = None  # (cls) -> anything; raising means the class does not support the op
    # (what, ref): a function often mistaken for this one (GELU's two forms); when the op fails and every forward
    # value of the class matches ref's, the row says so
    lookalike: Optional[tuple] = None
    # the one rule the row checks: a method of the protocol ("__mul__"), or WALK (backward's graph walk); None for a
    # composite, which checks how rules combine. A row calling the rule of an earlier row that is wrong is "not
    # checked": it is built on that rule.
    rule: Optional[str] = None
    repeat: int = 1  # how many times each case runs, each on a fresh graph (other node ids, other set orders)
    walk: bool = False  # the row's graph shares nodes: a wrong walk or accumulation (the reuse row) shows here too
    # (label, what a wrong gradient of that output means: "accumulate" or "order", the rule it checks) per output
    outputs: tuple = ()


WALK = "backward's graph walk"  # the rule of the rows that check the order backward visits the graph in
# How the table names each method's rule (the rows checking it), in words a learner reads.
RULE_NAMES = {"__add__": "add", "__radd__": "number + Value", "__sub__": "sub", "__rsub__": "number - Value",
              "__mul__": "mul", "__rmul__": "number * Value", "__truediv__": "div", "__rtruediv__": "number / Value",
              "__pow__": "pow", "__neg__": "neg", WALK: WALK}

# The local derivative each method needs, named when a class lacks it (what to implement).
RULES = {
    "__add__": "d(a+b)/da = d(a+b)/db = 1", "__radd__": "number + Value: d/dValue = 1",
    "__sub__": "d(a-b)/da = 1, d(a-b)/db = -1", "__rsub__": "number - Value: d/dValue = -1",
    "__mul__": "d(ab)/da = b, d(ab)/db = a", "__rmul__": "number * Value: d/dValue = the number",
    "__truediv__": "d(a/b)/da = 1/b, d(a/b)/db = -a/b^2", "__rtruediv__": "c / Value: d/dValue = -c/Value^2",
    "__pow__": "d(x^n)/dx = n x^(n-1)", "__neg__": "d(-x)/dx = -1", "exp": "d/dx e^x = e^x",
    "log": "d/dx ln x = 1/x", "relu": "d/dx relu(x) = 1 where x > 0, else 0", "tanh": "d/dx tanh x = 1 - tanh^2 x",
    "sigmoid": "d/dx s(x) = s(x) (1 - s(x))", "erf": "d/dx erf x = 2/sqrt(pi) e^(-x^2)",
    "gelu": "gelu(x) = x Phi(x) (the erf form); d/dx = Phi(x) + x phi(x), Phi(x) = (1 + erf(x/sqrt 2))/2, "
            "phi(x) = e^(-x^2/2)/sqrt(2 pi)",
    "gelu_tanh": "gelu_tanh(x) = x/2 (1 + t), t = tanh(k (x + 0.044715 x^3)), k = sqrt(2/pi); "
                 "d/dx = (1 + t)/2 + x/2 (1 - t^2) k (1 + 3 * 0.044715 x^2)",
    "silu": "silu(x) = x s(x); d/dx = s(x) (1 + x (1 - s(x)))",
}


def upstream(seed, op, case_index, n):
    """Random, non-uniform upstream gradients, each in +-[0.5, 2]: fixed per seed, op and case. (A uniform
    upstream gradient, as backprop from `.sum()` gives, hides softmax's rule: sum_j dp_j/dx_i = 0.)"""
    rng = random.Random(f"{seed}:{op}:{case_index}")
    return [rng.choice((-1, 1)) * rng.uniform(0.5, 2.0) for _ in range(n)]


# ---- the computations with the class under test ----------------------------------------------------------------

def _attention(q, k, v):
    """One causal attention head at the last position, as pure.model.gpt computes it."""
    scale = math.sqrt(len(q))
    logits = [model.vsum(a * b for a, b in zip(q, kt)) / scale for kt in k]
    weights = model.softmax(logits)
    return [model.vsum(w * vt[j] for w, vt in zip(weights, v)) for j in range(len(q))]


def _cross_entropy(logits, target):
    return [-(model.softmax(logits)[target].log())]


def _reuse(x, y):
    """Nodes used more than once: one node on both sides of * and of + (each backward must add, +=, to a gradient,
    never assign it), and t = x*y feeding two ops (each of which must have added to t's gradient before t passes it
    on: a reverse topological order), both ways round."""
    t = x * y
    return [x * x, y + y, t * x + t * y, t * y + t * x]


REUSE_OUTPUTS = (("x * x", "accumulate", "__mul__"), ("y + y", "accumulate", "__add__"),
                 ("t*x + t*y, t = x*y", "order", WALK), ("t*y + t*x, t = x*y", "order", WALK))


def _graph_order(x):
    """Diamonds at two depths: t = a*b used by the sum and by m = t + c under it, on either side of the product
    (t*m, m*t): a walk that is not a reverse topological order (breadth-first, a stack walk, a set's order) passes
    t's gradient on before m has added to it."""
    n, total = len(x), None
    for i in range(n):
        t = x[i] * x[(i + 1) % n]
        m = t + x[(i + 2) % n]
        d = t * m if i % 2 == 0 else m * t
        total = d if total is None else total + d
    return [total]


def _deep_chain(x):
    """x + 1 + 1 + ... (DEEP_CHAIN times): a graph DEEP_CHAIN nodes deep."""
    y = x
    for _ in range(DEEP_CHAIN):
        y = y + 1.0
    return [y]


# The MLP activations of microgpt's declared variants (issue 28), built from the class's own ops by pure's own
# `pure.variants.activate`, the code a variant model runs (a number on the left of some operators: 0.5 * x): a class
# without gelu or silu methods runs those variants through these. relu2 is relu(x) ** 2; gelu (the erf form)
# 0.5 x (1 + erf(x / sqrt 2)); gelu_tanh 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); silu x sigmoid(x).

def _activation(name):
    return lambda x: [activate(x, name)]


# ---- the references in torch ---------------------------------------------------------------------------------

def _torch_rmsnorm(x):
    return x * torch.rsqrt((x * x).mean() + model.RMS_EPS)


def _torch_attention(q, k, v):
    return torch.softmax(k @ q / math.sqrt(q.shape[0]), 0) @ v


def _torch_cross_entropy(logits, target):
    return torch.nn.functional.cross_entropy(logits[None], torch.tensor([target])).view(1)


def _torch_gelu(x):
    return torch.nn.functional.gelu(x).reshape(1)


def _torch_gelu_tanh(x):
    return torch.nn.functional.gelu(x, approximate="tanh").reshape(1)


def _torch_silu(x):
    return torch.nn.functional.silu(x).reshape(1)


# ---- one-line cases ------------------------------------------------------------------------------------------

def unary(name, f, ref, xs, uses, **kw):
    """An op of one Value: f(x) with the class under test, ref(x) in torch, at each x."""
    kw.setdefault("rule", uses[0])
    return OpSpec(name, lambda x: [f(x)], lambda x: ref(x).reshape(1), [Case({"x": x}) for x in xs], uses=uses,
                  **kw)


def binary(name, f, xs, uses, **kw):
    """An op of two Values, the same expression on both sides: f(a, b) at each (a, b)."""
    kw.setdefault("rule", uses[0])
    return OpSpec(name, lambda a, b: [f(a, b)], lambda a, b: f(a, b).reshape(1),
                  [Case({"a": a, "b": b}) for a, b in xs], uses=uses, **kw)


def with_number(name, f, cases, uses):
    """x op c and c op y, with c a plain number (two inputs, so that no node is reused here)."""
    return OpSpec(name, lambda x, y, c: [f(x, c), f(c, y)], lambda x, y, c: torch.stack([f(x, c), f(c, y)]),
                  [Case({"x": x, "y": y}, {"c": c}) for x, y, c in cases], uses=uses, rule=uses[-1])


def power(e, xs):
    return unary(f"pow({e:g})", lambda x: x ** e, lambda x: torch.pow(x, e), xs, ("__pow__",), singular_at_0=e < 1)


MUL_PAIRS = [(0.5, -1.2), (3.0, 0.25), (-2.0, -0.75), (0.0, 1.7), (1.3, 1.3), (1e3, -4e-3), (1e-8, 1e8)]
DIV_PAIRS = [(1.0, 3.0), (-2.5, 0.4), (0.0, 2.0), (1e-3, -1e-4), (7.0, 1e3), (3.0, 3.0), (-0.6, -1.5)]
# The activations' inputs: 0, tiny, moderate of both signs, and +-30, where erf and tanh are +-1 to the last bit,
# e^(-x^2) underflows to 0 and sigmoid's e^30 is 1e13.
ACTIVATION_XS = [-30.0, -5.0, -1.5, -0.3, -1e-8, 0.0, 1e-8, 0.7, 2.0, 5.0, 30.0]
ACTIVATION_CASES = [Case({"x": x}) for x in ACTIVATION_XS]
RELU2_CASES = [Case({"x": x}) for x in (-30.0, -1.5, -1e-3, 1e-3, 0.7, 3.0, 30.0)] + [
    Case({"x": 0.0}, fd_step=1e-12, note="relu's kink: relu(x)^2 is smooth there, derivative 0")]
RELU_CASES = [Case({"x": 1.5}), Case({"x": -0.7}), Case({"x": 0.0}, kink=True, note="gradient 0 at exactly 0"),
              Case({"x": 1e-3}), Case({"x": -1e-3}), Case({"x": 1e6}), Case({"x": -1e6})]


def specs():
    """The table, in the order ops are judged and listed: each rule before the rows built on it (mul and add, then
    the ops built from them, then the rows where nodes are shared, then the composites)."""
    return [
        binary("mul", lambda a, b: a * b, MUL_PAIRS, ("__mul__",)),
        binary("add", lambda a, b: a + b, [(0.5, -1.2), (1e8, 1e-8), (-3.0, 3.0), (0.0, 0.0), (2.5, 2.5)],
               ("__add__",)),
        unary("neg", lambda x: -x, lambda x: -x, [0.5, -1.2, 0.0, 1e6], ("__neg__",)),
        binary("sub", lambda a, b: a - b, [(0.5, -1.2), (2.0, 2.0), (-1e-6, 3.5), (1e8, 1.0), (0.0, 0.3)],
               ("__sub__",)),
        power(2, [0.5, -1.2, 0.0, 3.0, 1e-3, 1e4]),
        power(3, [-1.2, 0.5, 0.0, 2.0, 1e-3, -40.0]),
        power(0.5, [0.5, 2.0, 1e-4, 1e-8, 1e4, 1.0]),
        power(-0.5, [0.5, 2.0, 1e-4, 1e-5, 1e4]),
        power(-1, [0.5, -1.2, 1e-3, -1e-3, 1e3, 4.0]),
        binary("div", lambda a, b: a / b, DIV_PAIRS, ("__truediv__",), singular_at_0=True),
        unary("exp", lambda x: x.exp(), lambda x: torch.exp(x), [-20.0, -1.0, 0.0, 0.5, 3.0, 30.0], ("exp",)),
        unary("log", lambda x: x.log(), lambda x: torch.log(x), [1e-3, 0.5, 1.0, 2.7, 1e4, 1e-8], ("log",),
              singular_at_0=True),
        OpSpec("relu", lambda x: [x.relu()], lambda x: torch.relu(x).reshape(1), RELU_CASES, uses=("relu",),
               rule="relu"),
        with_number("add(number)", lambda a, b: a + b, [(0.5, -1.2, 2.5), (3.0, 0.0, -0.75)], ("__add__", "__radd__")),
        with_number("sub(number)", lambda a, b: a - b, [(0.5, -1.2, 2.5), (3.0, 0.0, -0.75)], ("__sub__", "__rsub__")),
        with_number("mul(number)", lambda a, b: a * b, [(0.5, -1.2, 2.5), (3.0, 0.0, -0.75), (1.7, -0.4, 0)],
                    ("__mul__", "__rmul__")),
        with_number("div(number)", lambda a, b: a / b, [(0.5, -1.2, 2.5), (3.0, 0.25, -0.75)],
                    ("__truediv__", "__rtruediv__")),
        OpSpec("reuse", _reuse, lambda x, y: torch.stack(_reuse(x, y)),
               [Case({"x": 0.5, "y": -1.2}), Case({"x": -2.0, "y": 0.3}), Case({"x": 1.5, "y": 1.5})],
               repeat=3, outputs=REUSE_OUTPUTS),
        OpSpec("softmax", lambda logits: model.softmax(logits), lambda logits: torch.softmax(logits, 0),
               [Case({"logits": [1.2, -0.3, 0.5, 2.0, -1.1]}),
                Case({"logits": [12.0, 0.0, -1.0, 0.5]}, note="one dominant logit"),
                Case({"logits": [0.7, 0.7, 0.7, 0.7]}, note="equal logits"),
                Case({"logits": [1000.0, 999.0, 998.5]}, note="large logits"),
                Case({"logits": [-1000.0, -1001.0, -999.0]}, note="large negative logits"),
                Case({"logits": [1e-9, 0.0, -1e-9]}),
                Case({"logits": [0.3]}, note="one logit")],
               kind="composite", uses=("__sub__", "exp", "__truediv__"), walk=True, repeat=3),
        # After softmax (the row a breadth-first walk fails first): a walk that passes reuse's one-level sharing.
        OpSpec("graph order", _graph_order, lambda x: torch.stack(_graph_order(x)),
               [Case({"x": [0.5, -1.2, 0.3, 2.0, -0.7, 1.1, -0.4, 0.9]}), Case({"x": [1.5, 0.25, -2.0, 0.6]})],
               repeat=3, rule=WALK),
        OpSpec("rmsnorm", lambda x: model.rmsnorm(x), _torch_rmsnorm,
               [Case({"x": [0.5, -1.2, 0.3, 2.0, -0.1]}),
                Case({"x": [1e-3, -2e-3, 5e-4, 0.0]}, fd_step=1e-9, note="mean square below the epsilon"),
                Case({"x": [300.0, -150.0, 40.0, 2.0]}),
                Case({"x": [0.0, 0.0, 1.5, 0.0]}),
                Case({"x": [0.7, 0.7, 0.7, 0.7]})],
               kind="composite", uses=("__truediv__", "__pow__"), walk=True),
        OpSpec("linear", lambda x, w: model.linear(x, w), lambda x, w: w @ x,
               [Case({"x": [0.5, -1.2, 0.3], "w": [[0.1, -0.2, 0.7], [1.5, 0.0, -0.4]]}),
                Case({"x": [0.0, 2.0, -3.0], "w": [[1e3, 1e-3, -0.5], [0.25, 0.25, 0.25], [-1.0, 0.0, 1.0]]}),
                Case({"x": [1.1], "w": [[-0.9]]})],
               kind="composite"),
        OpSpec("attention", _attention, _torch_attention,
               [Case({"q": [0.5, -1.2, 0.3], "k": [[0.1, 0.4, -0.5], [-0.3, 0.8, 0.2], [1.0, -0.6, 0.05]],
                      "v": [[0.2, -0.1, 0.9], [-1.3, 0.5, 0.4], [0.6, 0.6, -0.8]]}),
                Case({"q": [3.0, 2.0], "k": [[4.0, 1.0], [-2.0, 0.5], [0.1, -0.3]],
                      "v": [[1.0, -2.0], [0.5, 0.3], [-0.7, 1.2]]}, note="one dominant key"),
                Case({"q": [0.4, -0.9], "k": [[0.6, 0.2]], "v": [[-1.1, 0.8]]}, note="one position"),
                Case({"q": [0.0, 0.0], "k": [[0.3, -0.2], [0.8, 0.1]], "v": [[0.5, 1.5], [-0.5, 2.5]]},
                     note="zero query: equal weights")],
               kind="composite", uses=("__truediv__", "__sub__", "exp"), walk=True, repeat=3),
        OpSpec("cross-entropy", _cross_entropy, _torch_cross_entropy,
               [Case({"logits": [1.2, -0.3, 0.5, 2.0, -1.1]}, {"target": 2}),
                Case({"logits": [8.0, 0.0, -1.0, 0.5]}, {"target": 0}, note="confident and right"),
                Case({"logits": [8.0, 0.0, -1.0, 0.5]}, {"target": 2}, note="confident and wrong"),
                Case({"logits": [0.2, 0.2, 0.2]}, {"target": 1}, note="equal logits")],
               kind="composite", uses=("__sub__", "exp", "__truediv__", "log", "__neg__"), walk=True, repeat=3),
        # Common extras, checked when the class has them (the seed's model does not use them).
        unary("tanh", lambda x: x.tanh(), lambda x: torch.tanh(x), [-20.0, -1.5, 0.0, 1e-8, 0.3, 2.0, 20.0],
              ("tanh",), extra=True),
        unary("sigmoid", lambda x: x.sigmoid(), lambda x: torch.sigmoid(x), [-30.0, -2.0, 0.0, 1e-8, 0.7, 4.0, 30.0],
              ("sigmoid",), extra=True),
        unary("erf", lambda x: x.erf(), lambda x: torch.erf(x), ACTIVATION_XS, ("erf",), extra=True),
        # The variants' activations as methods of their own: gelu is the erf form (torch's F.gelu default),
        # gelu_tanh the tanh approximation (F.gelu(approximate="tanh")), silu x sigmoid(x) (F.silu).
        unary("gelu", lambda x: x.gelu(), _torch_gelu, ACTIVATION_XS, ("gelu",), extra=True,
              lookalike=("GELU's tanh approximation (checked as gelu_tanh)", _torch_gelu_tanh)),
        unary("gelu_tanh", lambda x: x.gelu_tanh(), _torch_gelu_tanh, ACTIVATION_XS, ("gelu_tanh",), extra=True,
              lookalike=("GELU's erf form (checked as gelu)", _torch_gelu)),
        unary("silu", lambda x: x.silu(), _torch_silu, ACTIVATION_XS, ("silu",), extra=True),
        OpSpec("pow(Value)", lambda a, b: [a ** b], lambda a, b: torch.pow(a, b).reshape(1),
               [Case({"a": a, "b": b}) for a, b in
                [(2.0, 3.0), (0.5, -1.5), (3.0, 0.5), (1.5, 0.0), (1e-3, 2.0), (10.0, -2.0)]],
               uses=("__pow__",), extra=True, probe=lambda cls: cls(2.0) ** cls(3.0)),
        # The variants' activations built from the class's own ops by pure.variants.activate (what a variant model
        # runs, with or without the methods above).
        OpSpec("relu2", _activation("relu2"), lambda x: (torch.relu(x) ** 2).reshape(1), RELU2_CASES,
               kind="composite", uses=("relu", "__pow__"), extra=True),
        OpSpec("gelu(erf composite)", _activation("gelu"), _torch_gelu, ACTIVATION_CASES, kind="composite",
               uses=("__rmul__", "__radd__", "erf"), extra=True),
        OpSpec("gelu_tanh(composite)", _activation("gelu_tanh"), _torch_gelu_tanh, ACTIVATION_CASES,
               kind="composite", uses=("__rmul__", "__radd__", "__pow__", "tanh"), extra=True),
        OpSpec("silu(composite)", _activation("silu"), _torch_silu, ACTIVATION_CASES, kind="composite",
               uses=("sigmoid",), extra=True),
        # A graph deeper than Python's recursion limit: a recursive topological sort fails here ("limit").
        OpSpec(f"deep chain ({DEEP_CHAIN} adds)", _deep_chain, lambda x: (x + float(DEEP_CHAIN)).reshape(1),
               [Case({"x": 0.25})], uses=("__add__",)),
    ]


def op_names():
    """The names of the ops, in table order."""
    return [s.name for s in specs()]
