"""`parity mutants`: deliberate bugs injected into pure at run time, to prove the harness catches them.

Each mutant patches pure in memory (a method of Value or Adam, or a function
of pure.model / pure.train) for the length of one check, then restores it;
no file is edited. For each mutant `parity ops` and a short `parity run` are
run against torch, and the mutant is
- caught when any check fails, and
- localised when the run's first divergence is at the quantity the bug is in
  (and, for a rule of the engine, `ops` names the broken op first).
Harmless controls (a mathematically equivalent change) must agree instead:
they show the catalogue has no false positives.
"""

import contextlib
import math
import types
from dataclasses import dataclass, field
from typing import Callable, Optional

import pure.model
import pure.train
from pure.engine import Value
from pure.optim import Adam

from .formats import Case, ReportForms
from .ops import run_ops
from .side_by_side import RunConfig, run_parity

# The short run each mutant is judged by: 3 steps (so bugs that only act from step 2 show), a small model.
# The bugs are injected into the plain teaching engine (pure.engine.Value, pure.model), so the run uses it.
MUTANT_RUN = RunConfig(steps=3, n_layer=1, n_embd=8, n_head=2, block_size=8, samples=3, engine="plain")


@dataclass
class Mutant:
    name: str
    bug: str  # what is wrong, in words
    patches: Callable  # () -> list of (object, attribute, replacement)
    expect: tuple  # quantities the first divergence may be localised to (prefix match); () for controls
    expect_op: Optional[str] = None  # the op `parity ops` must name first, for rules of the engine
    harmless: bool = False  # a control: mathematically the same, must agree


@contextlib.contextmanager
def injected(mutant):
    saved = []
    try:
        for obj, attr, new in mutant.patches():
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, new)
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def _wrap(v):
    return v if isinstance(v, Value) else Value(v)


# ---- rules of the engine --------------------------------------------------------------------------------------

def _mul_swapped(self, other):
    other = _wrap(other)
    return Value(self.data * other.data, (self, other), (self.data, other.data))  # should be (b, a)


def _pow_off_by_one(self, n):
    from pure.engine import js_pow
    return Value(js_pow(self.data, n), (self,), (n * js_pow(self.data, n),))  # should be n * x^(n-1)


def _log_inverse_square(self):
    return Value(math.log(self.data), (self,), (1 / self.data**2,))  # should be 1/x


def _exp_grad_one(self):
    return Value(math.exp(self.data), (self,), (1,))  # should be e^x


def _relu_leaky_grad(self):
    return Value(max(0.0, self.data), (self,), (1,))  # should be 0 for x <= 0


def _add_drops_second(self, other):
    other = _wrap(other)
    return Value(self.data + other.data, (self, other), (1, 0))  # should be (1, 1)


def _neg_keeps_sign(self):
    return Value(-self.data, (self,), (1,))  # should be -1


def _backward_assigns(self):
    self.grad = 1
    for node in reversed(self.topological_order()):
        for child, local in zip(node._children, node._local_grads):
            child.grad = local * node.grad  # should be +=: a reused node keeps only its last contribution


def _breadth_first_order(self):
    """Each node once, in breadth-first order from the root, reversed: a shared node can be processed
    before every node that uses it has passed its gradient down."""
    order, seen, frontier = [], {id(self)}, [self]
    while frontier:
        order.extend(frontier)
        nxt = []
        for node in frontier:
            for child in node._children:
                if id(child) not in seen:
                    seen.add(id(child))
                    nxt.append(child)
        frontier = nxt
    return order[::-1]


# ---- the model, the loss and the optimizer ---------------------------------------------------------------------

# The replacements take pure.model's `sums=` argument and ignore it: the mutants run the plain engine.

def _rmsnorm_eps_outside_sqrt(x, sums=None):
    ms = pure.model.vsum(xi * xi for xi in x) / len(x)
    scale = (ms**0.5 + pure.model.RMS_EPS) ** -1  # should be (ms + eps) ** -0.5
    return [xi * scale for xi in x]


def _softmax_max_backprops(logits, sums=None):
    # The max is subtracted as a Value, so gradient flows through it. Since softmax is shift-invariant,
    # the gradients through the shift sum to zero: the same function, only rounded differently.
    m = max(logits, key=lambda v: v.data)
    exps = [(v - m).exp() for v in logits]
    total = pure.model.vsum(exps)
    return [e / total for e in exps]


def _reverse_operand_order(self):
    """Another valid topological order (children visited last operand first): the same gradients, summed
    in another order, so they differ from pure's only by rounding."""
    topo, visited = [], {id(self)}
    stack = [(self, iter(self._children[::-1]))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(child._children[::-1])))
                break
        else:
            stack.pop()
            topo.append(node)
    return topo


_gpt = pure.model.gpt


def _gpt_cache_not_extended(token_id, pos_id, kv_keys, kv_vals, params, config, tap=None, sums=None):
    # A fresh cache at every position: each token attends only to itself.
    return _gpt(token_id, pos_id, [[] for _ in kv_keys], [[] for _ in kv_vals], params, config, tap)


def _gpt_position_zero(token_id, pos_id, kv_keys, kv_vals, params, config, tap=None, sums=None):
    # Every token gets the position embedding of position 0 (the cache still grows).
    return _gpt(token_id, 0, kv_keys, kv_vals, params, config, tap)


_lr_at = Adam.lr_at


def catalogue():
    return [
        Mutant("mul_grads_swapped", "mul's local gradients swapped: d(ab)/da = a",
               lambda: [(Value, "__mul__", _mul_swapped)], ("d:logits",), "mul"),
        Mutant("pow_exponent_off_by_one", "pow's gradient n*x^n instead of n*x^(n-1)",
               lambda: [(Value, "__pow__", _pow_off_by_one)], ("d:logits",), "pow(2)"),
        Mutant("log_grad_inverse_square", "log's gradient 1/x^2 instead of 1/x",
               lambda: [(Value, "log", _log_inverse_square)], ("d:logits",), "log"),
        Mutant("exp_grad_one", "exp's gradient 1 instead of e^x",
               lambda: [(Value, "exp", _exp_grad_one)], ("d:logits",), "exp"),
        Mutant("relu_grad_at_negative", "relu's gradient 1 at negative inputs",
               lambda: [(Value, "relu", _relu_leaky_grad)], ("d:layer0.mlp_pre",), "relu"),
        Mutant("add_drops_second_grad", "add passes no gradient to its second operand",
               lambda: [(Value, "__add__", _add_drops_second)], ("d:logits",), "add"),
        Mutant("neg_grad_sign", "neg's gradient +1 instead of -1",
               lambda: [(Value, "__neg__", _neg_keeps_sign)], ("d:logits",), "neg"),
        Mutant("grad_assigned_not_accumulated", "backward assigns child.grad instead of adding to it",
               lambda: [(Value, "backward", _backward_assigns)], ("d:logits",), "reuse"),
        Mutant("topological_order_breadth_first", "backward visits shared nodes before all their users",
               lambda: [(Value, "topological_order", _breadth_first_order)], ("d:",), "softmax"),
        Mutant("attention_unscaled", "attention logits not divided by sqrt(head_dim)",
               lambda: [(pure.model, "math", types.SimpleNamespace(sqrt=lambda d: 1.0))],
               ("layer0.head",)),
        Mutant("rmsnorm_eps_outside_sqrt", "rmsnorm computes 1/(sqrt(ms) + eps) instead of 1/sqrt(ms + eps)",
               lambda: [(pure.model, "rmsnorm", _rmsnorm_eps_outside_sqrt)], ("embed_norm",)),
        Mutant("kv_cache_not_extended", "the KV cache is not extended: each token attends only to itself",
               lambda: [(pure.train, "gpt", _gpt_cache_not_extended)], ("layer0.head",)),
        Mutant("position_embedding_always_zero", "every token gets position 0's embedding",
               lambda: [(pure.train, "gpt", _gpt_position_zero)], ("embed",)),
        Mutant("adam_no_bias_correction", "Adam without bias correction of m and v",
               lambda: [(Adam, "bias_corrections", lambda self, step: (1.0, 1.0))], ("param:",)),
        Mutant("lr_decay_off_by_one", "linear decay uses the next step's learning rate",
               lambda: [(Adam, "lr_at", lambda self, step: _lr_at(self, step + 1))], ("param:",)),
        Mutant("grads_not_zeroed", "gradients are not zeroed after the update, so they pile up across steps",
               lambda: [(Adam, "zero_grad", lambda self: None)], ("grad:",)),
        Mutant("control_softmax_max_backprops", "softmax's max subtraction also back-propagates (harmless)",
               lambda: [(module, "softmax", _softmax_max_backprops) for module in (pure.model, pure.train)],
               (), harmless=True),
        Mutant("control_other_topological_order", "backward in another valid topological order (harmless)",
               lambda: [(Value, "topological_order", _reverse_operand_order)], (), harmless=True),
    ]


@dataclass
class MutantResult:
    name: str
    bug: str
    harmless: bool
    caught: bool  # any check failed (ops or run)
    localized: bool  # the first divergence is where the bug is (controls: None means not applicable)
    ok: bool  # real bug: caught and localised; control: agrees everywhere
    caught_by: list = field(default_factory=list)  # "ops:<op>" and/or "run:<quantity>"
    first_divergence: Optional[dict] = None
    first_failing_op: Optional[str] = None
    verdict_line: str = ""
    expected: str = ""

    def to_json(self):
        return dict(self.__dict__)


def check_mutant(mutant, docs, run=MUTANT_RUN):
    with injected(mutant):
        ops = run_ops()
        report = run_parity(docs, run)
    fd = report.first_divergence
    failing_ops = [r.op for r in ops.failing]
    caught_by = [f"ops:{op}" for op in failing_ops[:3]] + ([f"run:{fd['quantity']}"] if fd else [])
    caught = bool(failing_ops) or fd is not None
    run_localized = fd is not None and any(fd["quantity"].startswith(e) for e in mutant.expect)
    ops_localized = mutant.expect_op is None or (failing_ops[:1] == [mutant.expect_op])
    localized = run_localized and ops_localized
    expected = " or ".join(mutant.expect) + (f"; ops: {mutant.expect_op}" if mutant.expect_op else "")
    ok = (not caught) if mutant.harmless else (caught and localized)
    return MutantResult(mutant.name, mutant.bug, mutant.harmless, caught, localized, ok, caught_by, fd,
                        failing_ops[0] if failing_ops else None, report.verdict_line,
                        "agree" if mutant.harmless else expected)


def select(names=None):
    """The catalogue, or the mutants named (comma-separated, or a list); ValueError naming unknown ones."""
    mutants = catalogue()
    if not names:
        return mutants
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    wanted = [n for n in wanted if n]
    unknown = sorted(set(wanted) - {m.name for m in mutants})
    if unknown:
        raise ValueError(f"unknown mutants: {', '.join(unknown)}; known: {', '.join(m.name for m in mutants)}")
    return [m for m in mutants if m.name in wanted]


@dataclass
class MutantsReport(ReportForms):
    """What `parity mutants` found: `results` (one MutantResult each), `ok` (every real bug caught and localised,
    every control agreeing), `verdict` ("ok" or "fail"), `verdict_line` (the counts)."""

    results: list
    title = "parity mutants"

    @property
    def ok(self):
        return all(r.ok for r in self.results)

    @property
    def verdict(self):
        return "ok" if self.ok else "fail"

    @property
    def verdict_line(self):
        return self.summary()

    @property
    def checks(self):
        return self.results

    def cases(self):
        out = []
        for r in self.results:
            what = "a harmless control diverged" if r.harmless else ("not caught" if not r.caught else "not localised")
            out.append(Case(r.name, r.ok, "" if r.ok else f"{r.name}: {what}: {r.verdict_line}",
                            f"expected {r.expected}; got {r.verdict_line}"))
        return out

    def failing_rows(self):
        lines = self.table().splitlines()
        bad = {r.name for r in self.results if not r.ok}
        rows = [line for line in lines[2:] if line.split(" ", 1)[0] in bad]
        return lines[:2] + rows if rows else []

    def summary(self):
        real = [r for r in self.results if not r.harmless]
        controls = [r for r in self.results if r.harmless]
        return (f"mutants: {sum(r.caught for r in real)}/{len(real)} caught, "
                f"{sum(r.localized for r in real)}/{len(real)} localised, "
                f"{sum(r.ok for r in controls)}/{len(controls)} harmless controls agree")

    def to_dict(self):
        """The --json document."""
        return {"verdict": self.verdict, "summary": self.summary(), "mutants": [r.to_json() for r in self.results]}

    def table(self, width=100):
        return format_mutants_table(self.results, width)


def run_mutants(docs, mutants=None, on_start=None):
    """Each mutant (default: the whole catalogue) through ops and a short run; on_start(i, n, mutant) before each."""
    mutants = catalogue() if mutants is None else mutants
    results = []
    for i, mutant in enumerate(mutants, 1):
        if on_start:
            on_start(i, len(mutants), mutant)
        results.append(check_mutant(mutant, docs))
    return MutantsReport(results)


def format_mutants_table(results, width=100):
    """One row per mutant, at most `width` columns: caught?, localised?, the first op `ops` names as wrong and
    the run's first divergence (step, mode, quantity); the full verdict lines are in the JSON."""
    name_width = max(len(r.name) for r in results) + 2
    head = (f"{'mutant':<{name_width}}{'caught':<7}{'localised':<10}{'ops':<10}"
            "run's first divergence: step mode quantity")
    lines = [head, "-" * min(width, len(head) + 12)]
    for r in results:
        caught = ("yes" if r.caught else "no") + ("" if r.ok else " !")
        loc = "-" if r.harmless else ("yes" if r.localized else "NO")
        op = r.first_failing_op or "-"
        fd = r.first_divergence
        where = f"{fd['step']} {fd['mode']} {fd['quantity']}" if fd else "agree"
        row = f"{r.name:<{name_width}}{caught:<7}{loc:<10}{op[:9]:<10}{where}"
        lines.append(row if len(row) <= width else row[: width - 3] + "...")
    return "\n".join(lines)
