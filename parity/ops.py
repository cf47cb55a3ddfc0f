"""`parity ops`: every rule of a Value class, checked one operation at a time.

For each operation of the protocol (add, sub, mul, div, neg, pow with five
exponents, exp, log, relu, the forms with a number on either side, a node
reused by several ops) and each composite the model is made of (softmax,
rmsnorm, linear, one attention head, cross-entropy), and for each input of its
table (edge cases included):

1. build the computation with the class under test, the composites through
   pure's own model functions (`pure.model.softmax`, `rmsnorm`, `linear`,
   `vsum`), so a user's class runs the same code the model runs;
2. weight the outputs with random, non-uniform upstream gradients:
   L = sum_i w_i * out_i, built with the protocol's own `*` and `+` (with the
   weights as Values), then `L.backward()` and read each input's `.grad`.
   (A uniform upstream gradient, as backprop from `.sum()` gives, hides
   softmax's rule: sum_j dp_j/dx_i = 0, so a wrong softmax backward passes.)
3. do the same in torch float64 (`torch.autograd.grad`) and compare forward
   values and input gradients;
4. compare both gradients with central finite differences of torch's L, which
   also validates the reference itself.

Errors are "mixed": |got - expected| / max(1, the case's largest |expected|),
relative for large values and absolute for small ones, per case. The weights
of step 2 are `Value * Value` and `Value + Value`, so ops are listed with
those building blocks first: the first failing op in table order is the one
to look at.
"""

import math
import random
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Optional

import pure.model as model
from pure.engine import Value

# ---- Tolerances (on the mixed error above). Measured on pure.Value and on the independently written correct
# engines of tests/engines (closures and sets; direct sub/div rules, libm pow, Kahn's order; a third style), over
# upstream-gradient seeds 0..9: the largest errors are in the comments. The smallest error of any wrong rule of
# tests/engines/wrong_rules.py, on the op it breaks, is 0.51, over 1e7x above FD_TOL.
FWD_TOL = 1e-12  # forward values vs torch: measured max 1.6e-16 (ops), 2.1e-16 (composites); margin ~5000x
GRAD_TOL = 1e-12  # input gradients vs torch.autograd: measured max 3.2e-16 (ops), 2.6e-15 (composites); ~400x
# Central differences of torch's L with step h = FD_STEP (FD_STEP * |x| for ops singular at 0 such as log and
# x**-0.5, so that the step stays clear of the singularity): truncation error is O(h^2); the rounding error,
# eps * sum_j |w_j out_j| / h per input, is allowed FD_ROUNDING_ULPS times on top of FD_TOL.
FD_STEP = 1e-6
FD_TOL = 1e-8  # gradients vs finite differences, beyond rounding: measured max 1.9e-12 (ops), 1.3e-10 (composites,
# truncation in cross-entropy and attention), for torch's gradients and every correct engine's alike; margin ~75x
FD_ROUNDING_ULPS = 16.0  # measured rounding error of the differences <= 0.9 of eps * sum_j |w_j out_j| / h; ~18x

EPS = sys.float_info.epsilon
DEEP_CHAIN = 5000  # nodes in the deep-chain case: 5x Python's default recursion limit (1000)
VERDICT_DETAILED = 4  # failing ops described in the verdict line; the rest are named only
CHECKS = ("torch", "finite-difference")


@dataclass
class Case:
    inputs: dict  # name -> float, list of floats or list of lists: the differentiated inputs
    const: dict = field(default_factory=dict)  # name -> number passed as is (no gradient)
    kink: bool = False  # a point where the function is not differentiable: no finite differences
    fd_step: Optional[float] = None  # finite-difference step, where the default (FD_STEP) is too coarse
    note: str = ""


@dataclass
class OpSpec:
    name: str
    build: Callable  # (**inputs as Values, **const) -> list of Values
    ref: Callable  # (**inputs as float64 tensors, **const) -> 1-D tensor of outputs
    cases: list
    kind: str = "op"  # "op" or "composite"
    singular_at_0: bool = False  # finite-difference steps scale with |x| (log, x**-1, ...), not with max(|x|, 1)
    uses: tuple = ()  # the class's methods the computation calls (besides the weighting's * and +)
    extra: bool = False  # not part of the model (tanh, sigmoid, Value ** Value): checked when the class has it
    probe: Optional[Callable] = None  # (cls) -> anything; raising means the class does not support the op


@dataclass
class OpResult:
    op: str
    ok: bool
    max_fwd_error: float  # vs torch float64, mixed error (see module docstring)
    max_grad_error: float  # vs torch.autograd
    max_fd_error: float  # vs central finite differences, beyond their rounding allowance
    ref_fd_error: float  # torch's own gradient vs finite differences (validates the reference)
    checks: list  # what the op was judged against: "torch", "finite-difference"
    failed_checks: list  # which of "forward", "gradient", "finite-difference", "reference", "exception" failed
    input: Optional[dict]  # the first input (in table order) that broke it, as plain floats
    detail: str  # what broke there, in words
    cases: int
    kind: str = "op"
    # "ok"; "wrong" (a rule, a value or an exception); "missing" (the class has no such method, or does not support
    # the op: not checked, not wrong); "limit" (deep chain only: a RecursionError, a limitation of the engine)
    status: str = "ok"
    required: bool = True  # the model needs the op: a missing one means `parity run` cannot use the class

    def to_json(self):
        d = dict(self.__dict__)
        for k in ("max_fwd_error", "max_grad_error", "max_fd_error", "ref_fd_error"):
            d[k] = d[k] if math.isfinite(d[k]) else None  # inf/nan (an exception, a nan) -> null; see detail
        return d


@dataclass
class OpsReport:
    ops: list
    value_class: str = "pure.engine:Value"
    seed: int = 0

    @property
    def verdict(self):
        """"diverge" when an op the class has is wrong; "partial" when every op it has is right but one the
        model needs is missing; "agree" otherwise (missing optional ops and limitations are listed, not judged)."""
        if self.failing:
            return "diverge"
        return "partial" if any(r.status == "missing" and r.required for r in self.ops) else "agree"

    @property
    def failing(self):
        return [r for r in self.ops if r.status == "wrong"]

    @property
    def checked(self):
        return [r for r in self.ops if r.status != "missing"]

    def _tail(self):
        """'; absent: exp, log (...); n/a: tanh; limitation: ...' for what was not judged."""
        missing = [r for r in self.ops if r.status == "missing" and r.required]
        optional = [r for r in self.ops if r.status == "missing" and not r.required]
        limits = [r for r in self.ops if r.status == "limit"]
        tail = ""
        if missing:
            methods = list(dict.fromkeys(m for r in missing for m in r.detail.removeprefix("lacks ").split(", ")))
            tail += (f"; absent: {', '.join(methods)} (the model needs them; not checked: "
                     f"{', '.join(r.op for r in missing)})")
        if optional:
            tail += f"; n/a: {', '.join(r.op for r in optional)}"
        if limits:
            tail += (f"; limitation: a recursive backward fails on a graph {DEEP_CHAIN} nodes deep (RecursionError, "
                     f"recursion limit {sys.getrecursionlimit()})")
        return tail

    def verdict_line(self):
        bad = self.failing
        n = len(self.checked)
        if not bad:
            inputs = sum(r.cases for r in self.checked)
            return (f"ops: all {n} checked agree with torch float64 and finite differences "
                    f"({inputs} inputs, random upstream gradients){self._tail()}")
        parts = []
        for r in bad[:VERDICT_DETAILED]:
            if "exception" in r.failed_checks:
                what = r.detail
            elif "forward" in r.failed_checks:
                what = f"max fwd error {r.max_fwd_error:.1e}"
            elif "gradient" in r.failed_checks:
                what = f"max grad error {r.max_grad_error:.1e}"
            else:
                what = f"max finite-difference error {r.max_fd_error:.1e}"
            parts.append(f"{r.op} ({what} at {format_input(r.input, 80)})")
        more = [r.op for r in bad[VERDICT_DETAILED:]]
        tail = f"; and {len(more)} more: {', '.join(more)}" if more else ""
        return f"ops: {len(bad)} of {n} checked wrong: " + ", ".join(parts) + tail + self._tail()

    def to_json(self):
        return {
            "verdict": self.verdict,
            "verdict_line": self.verdict_line(),
            "value_class": self.value_class,
            "seed": self.seed,
            "tolerances": tolerances(),
            "ops": [r.to_json() for r in self.ops],
        }


def tolerances():
    return {"fwd": FWD_TOL, "grad": GRAD_TOL, "fd": FD_TOL, "fd_step": FD_STEP, "fd_rounding_ulps": FD_ROUNDING_ULPS}


def tolerance_text():
    return f"fwd {FWD_TOL:.0e} grad {GRAD_TOL:.0e} fd {FD_TOL:.0e}"


def format_input(inputs, width=None):
    if inputs is None:
        return "-"

    def fmt(x):
        if isinstance(x, list):
            return "[" + ", ".join(fmt(y) for y in x) + "]"
        return f"{x:.6g}" if isinstance(x, float) else str(x)

    text = ", ".join(f"{k}={fmt(v)}" for k, v in inputs.items())
    if width and len(text) > width:
        text = text[: width - 3] + "..."
    return text


# ---- The computations, once with the class under test (protocol operators only) and once in torch.

def _attention(q, k, v):
    """One causal attention head at the last position, as pure.model.gpt computes it."""
    scale = math.sqrt(len(q))
    logits = [model.vsum(a * b for a, b in zip(q, kt)) / scale for kt in k]
    weights = model.softmax(logits)
    return [model.vsum(w * vt[j] for w, vt in zip(weights, v)) for j in range(len(q))]


def _cross_entropy(logits, target):
    return [-(model.softmax(logits)[target].log())]


def _reuse(x, y):
    """Nodes used more than once: x*x and x+x (one node on both sides), t feeding two ops, y feeding three."""
    t = x * y
    return [x * x + x, (y + y) * x, t ** 2 + t * y]


def _deep_chain(x):
    """x + 1 + 1 + ... (DEEP_CHAIN times): a graph DEEP_CHAIN nodes deep."""
    y = x
    for _ in range(DEEP_CHAIN):
        y = y + 1.0
    return [y]


def _specs():
    import torch

    def pow_spec(e, xs):
        return OpSpec(f"pow({e:g})", lambda x, e=e: [x ** e], lambda x, e=e: torch.pow(x, e).reshape(1),
                      [Case({"x": x}) for x in xs], singular_at_0=e < 1, uses=("__pow__",))

    pairs = [(0.5, -1.2), (3.0, 0.25), (-2.0, -0.75), (0.0, 1.7), (1.3, 1.3), (1e3, -4e-3), (1e-8, 1e8)]

    def torch_rmsnorm(x):
        return x * torch.rsqrt((x * x).mean() + model.RMS_EPS)

    def torch_attention(q, k, v):
        return torch.softmax(k @ q / math.sqrt(q.shape[0]), 0) @ v

    return [
        OpSpec("mul", lambda a, b: [a * b], lambda a, b: (a * b).reshape(1),
               [Case({"a": a, "b": b}) for a, b in pairs], uses=("__mul__",)),
        OpSpec("add", lambda a, b: [a + b], lambda a, b: (a + b).reshape(1),
               [Case({"a": a, "b": b}) for a, b in [(0.5, -1.2), (1e8, 1e-8), (-3.0, 3.0), (0.0, 0.0), (2.5, 2.5)]],
               uses=("__add__",)),
        OpSpec("neg", lambda x: [-x], lambda x: (-x).reshape(1), [Case({"x": x}) for x in (0.5, -1.2, 0.0, 1e6)],
               uses=("__neg__",)),
        OpSpec("sub", lambda a, b: [a - b], lambda a, b: (a - b).reshape(1),
               [Case({"a": a, "b": b}) for a, b in [(0.5, -1.2), (2.0, 2.0), (-1e-6, 3.5), (1e8, 1.0), (0.0, 0.3)]],
               uses=("__sub__",)),
        pow_spec(2, [0.5, -1.2, 0.0, 3.0, 1e-3, 1e4]),
        pow_spec(3, [-1.2, 0.5, 0.0, 2.0, 1e-3, -40.0]),
        pow_spec(0.5, [0.5, 2.0, 1e-4, 1e-8, 1e4, 1.0]),
        pow_spec(-0.5, [0.5, 2.0, 1e-4, 1e-5, 1e4]),
        pow_spec(-1, [0.5, -1.2, 1e-3, -1e-3, 1e3, 4.0]),
        OpSpec("div", lambda a, b: [a / b], lambda a, b: (a / b).reshape(1),
               [Case({"a": a, "b": b}) for a, b in
                [(1.0, 3.0), (-2.5, 0.4), (0.0, 2.0), (1e-3, -1e-4), (7.0, 1e3), (3.0, 3.0), (-0.6, -1.5)]],
               singular_at_0=True, uses=("__truediv__",)),
        OpSpec("exp", lambda x: [x.exp()], lambda x: torch.exp(x).reshape(1),
               [Case({"x": x}) for x in (-20.0, -1.0, 0.0, 0.5, 3.0, 30.0)], uses=("exp",)),
        OpSpec("log", lambda x: [x.log()], lambda x: torch.log(x).reshape(1),
               [Case({"x": x}) for x in (1e-3, 0.5, 1.0, 2.7, 1e4, 1e-8)], singular_at_0=True, uses=("log",)),
        OpSpec("relu", lambda x: [x.relu()], lambda x: torch.relu(x).reshape(1),
               [Case({"x": 1.5}), Case({"x": -0.7}), Case({"x": 0.0}, kink=True, note="gradient 0 at exactly 0"),
                Case({"x": 1e-3}), Case({"x": -1e-3}), Case({"x": 1e6}), Case({"x": -1e6})], uses=("relu",)),
        # A number on either side: x op c and c op y (two separate inputs, so that no node is reused here).
        OpSpec("add(number)", lambda x, y, c: [x + c, c + y], lambda x, y, c: torch.stack([x + c, c + y]),
               [Case({"x": 0.5, "y": -1.2}, {"c": 2.5}), Case({"x": 3.0, "y": 0.0}, {"c": -0.75})],
               uses=("__add__", "__radd__")),
        OpSpec("sub(number)", lambda x, y, c: [x - c, c - y], lambda x, y, c: torch.stack([x - c, c - y]),
               [Case({"x": 0.5, "y": -1.2}, {"c": 2.5}), Case({"x": 3.0, "y": 0.0}, {"c": -0.75})],
               uses=("__sub__", "__rsub__")),
        OpSpec("mul(number)", lambda x, y, c: [x * c, c * y], lambda x, y, c: torch.stack([x * c, c * y]),
               [Case({"x": 0.5, "y": -1.2}, {"c": 2.5}), Case({"x": 3.0, "y": 0.0}, {"c": -0.75}),
                Case({"x": 1.7, "y": -0.4}, {"c": 0})], uses=("__mul__", "__rmul__")),
        OpSpec("div(number)", lambda x, y, c: [x / c, c / y], lambda x, y, c: torch.stack([x / c, c / y]),
               [Case({"x": 0.5, "y": -1.2}, {"c": 2.5}), Case({"x": 3.0, "y": 0.25}, {"c": -0.75})],
               uses=("__truediv__", "__rtruediv__")),
        OpSpec("reuse", _reuse, lambda x, y: torch.stack([x * x + x, (y + y) * x, (x * y) ** 2 + x * y * y]),
               [Case({"x": 0.5, "y": -1.2}), Case({"x": -2.0, "y": 0.3}), Case({"x": 1.5, "y": 1.5})],
               uses=("__pow__",)),
        OpSpec("softmax", lambda logits: model.softmax(logits), lambda logits: torch.softmax(logits, 0),
               [Case({"logits": [1.2, -0.3, 0.5, 2.0, -1.1]}),
                Case({"logits": [12.0, 0.0, -1.0, 0.5]}, note="one dominant logit"),
                Case({"logits": [0.7, 0.7, 0.7, 0.7]}, note="equal logits"),
                Case({"logits": [1000.0, 999.0, 998.5]}, note="large logits"),
                Case({"logits": [-1000.0, -1001.0, -999.0]}, note="large negative logits"),
                Case({"logits": [1e-9, 0.0, -1e-9]}),
                Case({"logits": [0.3]}, note="one logit")],
               kind="composite", uses=("__sub__", "exp", "__truediv__")),
        OpSpec("rmsnorm", lambda x: model.rmsnorm(x), torch_rmsnorm,
               [Case({"x": [0.5, -1.2, 0.3, 2.0, -0.1]}),
                Case({"x": [1e-3, -2e-3, 5e-4, 0.0]}, fd_step=1e-9, note="mean square below the epsilon"),
                Case({"x": [300.0, -150.0, 40.0, 2.0]}),
                Case({"x": [0.0, 0.0, 1.5, 0.0]}),
                Case({"x": [0.7, 0.7, 0.7, 0.7]})],
               kind="composite", uses=("__truediv__", "__pow__")),
        OpSpec("linear", lambda x, w: model.linear(x, w), lambda x, w: w @ x,
               [Case({"x": [0.5, -1.2, 0.3], "w": [[0.1, -0.2, 0.7], [1.5, 0.0, -0.4]]}),
                Case({"x": [0.0, 2.0, -3.0], "w": [[1e3, 1e-3, -0.5], [0.25, 0.25, 0.25], [-1.0, 0.0, 1.0]]}),
                Case({"x": [1.1], "w": [[-0.9]]})],
               kind="composite"),
        OpSpec("attention", _attention, torch_attention,
               [Case({"q": [0.5, -1.2, 0.3], "k": [[0.1, 0.4, -0.5], [-0.3, 0.8, 0.2], [1.0, -0.6, 0.05]],
                      "v": [[0.2, -0.1, 0.9], [-1.3, 0.5, 0.4], [0.6, 0.6, -0.8]]}),
                Case({"q": [3.0, 2.0], "k": [[4.0, 1.0], [-2.0, 0.5], [0.1, -0.3]],
                      "v": [[1.0, -2.0], [0.5, 0.3], [-0.7, 1.2]]}, note="one dominant key"),
                Case({"q": [0.4, -0.9], "k": [[0.6, 0.2]], "v": [[-1.1, 0.8]]}, note="one position"),
                Case({"q": [0.0, 0.0], "k": [[0.3, -0.2], [0.8, 0.1]], "v": [[0.5, 1.5], [-0.5, 2.5]]},
                     note="zero query: equal weights")],
               kind="composite", uses=("__truediv__", "__sub__", "exp")),
        OpSpec("cross-entropy", _cross_entropy,
               lambda logits, target: torch.nn.functional.cross_entropy(logits[None], torch.tensor([target])).view(1),
               [Case({"logits": [1.2, -0.3, 0.5, 2.0, -1.1]}, {"target": 2}),
                Case({"logits": [8.0, 0.0, -1.0, 0.5]}, {"target": 0}, note="confident and right"),
                Case({"logits": [8.0, 0.0, -1.0, 0.5]}, {"target": 2}, note="confident and wrong"),
                Case({"logits": [0.2, 0.2, 0.2]}, {"target": 1}, note="equal logits")],
               kind="composite", uses=("__sub__", "exp", "__truediv__", "log", "__neg__")),
        # Common extras, checked when the class has them (the model does not use them).
        OpSpec("tanh", lambda x: [x.tanh()], lambda x: torch.tanh(x).reshape(1),
               [Case({"x": x}) for x in (-20.0, -1.5, 0.0, 1e-8, 0.3, 2.0, 20.0)], uses=("tanh",), extra=True),
        OpSpec("sigmoid", lambda x: [x.sigmoid()], lambda x: torch.sigmoid(x).reshape(1),
               [Case({"x": x}) for x in (-30.0, -2.0, 0.0, 1e-8, 0.7, 4.0, 30.0)], uses=("sigmoid",), extra=True),
        OpSpec("pow(Value)", lambda a, b: [a ** b], lambda a, b: torch.pow(a, b).reshape(1),
               [Case({"a": a, "b": b}) for a, b in [(2.0, 3.0), (0.5, -1.5), (3.0, 0.5), (1.5, 0.0), (1e-3, 2.0),
                                                    (10.0, -2.0)]],
               uses=("__pow__",), extra=True, probe=lambda cls: cls(2.0) ** cls(3.0)),
        # A graph deeper than Python's recursion limit: a recursive topological sort fails here ("limit").
        OpSpec(f"deep chain ({DEEP_CHAIN} adds)", _deep_chain, lambda x: (x + float(DEEP_CHAIN)).reshape(1),
               [Case({"x": 0.25})], uses=("__add__",)),
    ]


def op_names():
    """The names of the ops, in table order."""
    return [s.name for s in _specs()]


# ---- Flattening nested inputs

def _flatten(x):
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in _flatten(item)]
    return [float(x)]


def _rebuild(template, it):
    if isinstance(template, (list, tuple)):
        return [_rebuild(t, it) for t in template]
    return next(it)


def _weights(seed, op, case_index, n):
    """Random, non-uniform upstream gradients, each in +-[0.5, 2]: fixed per seed, op and case."""
    rng = random.Random(f"{seed}:{op}:{case_index}")
    return [rng.choice((-1, 1)) * rng.uniform(0.5, 2.0) for _ in range(n)]


def _user_side(spec, case, value_cls, weights_for):
    """Forward values and input gradients, with the class under test."""
    leaves = [value_cls(x) for x in _flatten(list(case.inputs.values()))]
    it = iter(leaves)
    args = {name: _rebuild(val, it) for name, val in case.inputs.items()}
    outs = list(spec.build(**args, **case.const))
    w = weights_for(len(outs))
    loss = outs[0] * value_cls(w[0])
    for o, wi in zip(outs[1:], w[1:]):
        loss = loss + o * value_cls(wi)
    loss.backward()
    return [float(o.data) for o in outs], [float(v.grad) for v in leaves]


def _torch_side(spec, case, weights_for):
    import torch

    tensors = {name: torch.tensor(val, dtype=torch.float64, requires_grad=True) for name, val in case.inputs.items()}
    out = spec.ref(**tensors, **case.const).reshape(-1)
    w = torch.tensor(weights_for(out.numel()), dtype=torch.float64)
    grads = torch.autograd.grad((w * out).sum(), list(tensors.values()), allow_unused=True)
    grad = []
    for t, g in zip(tensors.values(), grads):
        grad += (torch.zeros_like(t) if g is None else g).reshape(-1).tolist()
    return out.detach().tolist(), grad, w


def _finite_differences(spec, case, w):
    """Central differences of torch's L = sum_j w_j out_j, and each one's rounding-error allowance."""
    import torch

    flat = _flatten(list(case.inputs.values()))
    shapes = {name: torch.tensor(val, dtype=torch.float64).shape for name, val in case.inputs.items()}
    sizes = [math.prod(s) for s in shapes.values()]

    def terms(xs):
        tensors, offset = {}, 0
        for (name, shape), n in zip(shapes.items(), sizes):
            tensors[name] = torch.tensor(xs[offset: offset + n], dtype=torch.float64).reshape(shape)
            offset += n
        with torch.no_grad():
            return w * spec.ref(**tensors, **case.const).reshape(-1)

    base = float(terms(flat).abs().sum())
    fd, noise = [], []
    for i, x in enumerate(flat):
        h = case.fd_step or FD_STEP
        if spec.singular_at_0 and x:
            h *= abs(x)
        xp, xm = list(flat), list(flat)
        xp[i], xm[i] = x + h, x - h
        tp, tm = terms(xp), terms(xm)
        step = xp[i] - xm[i]
        fd.append(float(tp.sum() - tm.sum()) / step)
        noise.append(EPS * (base + float(tp.abs().sum()) + float(tm.abs().sum())) / step)  # one ulp of rounding
    return fd, noise


def _mixed_errors(got, expected):
    """Per element |got - expected| / max(1, max |expected|); non-finite mismatches are inf."""
    scale = max([1.0] + [abs(e) for e in expected if math.isfinite(e)])
    errs = []
    for g, e in zip(got, expected):
        if g == e:
            errs.append(0.0)
        elif not (math.isfinite(g) and math.isfinite(e)):
            errs.append(math.inf)
        else:
            errs.append(abs(g - e) / scale)
    return errs, scale


def _input_names(case):
    names = []
    for name, val in case.inputs.items():
        if isinstance(val, (list, tuple)):
            shape = []
            v = val
            while isinstance(v, (list, tuple)):
                shape.append(len(v))
                v = v[0] if v else None
            for idx in _indices(shape):
                names.append(name + "".join(f"[{i}]" for i in idx))
        else:
            names.append(name)
    return names


def _indices(shape):
    if not shape:
        return [()]
    return [(i,) + rest for i in range(shape[0]) for rest in _indices(shape[1:])]


def _plain_input(case):
    d = {name: (val if isinstance(val, list) else float(val)) for name, val in case.inputs.items()}
    d.update(case.const)
    return d


# The local derivative each method needs, named when a class lacks it (what to implement).
RULES = {
    "__add__": "d(a+b)/da = d(a+b)/db = 1", "__radd__": "number + Value: d/dValue = 1",
    "__sub__": "d(a-b)/da = 1, d(a-b)/db = -1", "__rsub__": "number - Value: d/dValue = -1",
    "__mul__": "d(ab)/da = b, d(ab)/db = a", "__rmul__": "number * Value: d/dValue = the number",
    "__truediv__": "d(a/b)/da = 1/b, d(a/b)/db = -a/b^2", "__rtruediv__": "c / Value: d/dValue = -c/Value^2",
    "__pow__": "d(x^n)/dx = n x^(n-1)", "__neg__": "d(-x)/dx = -1", "exp": "d/dx e^x = e^x",
    "log": "d/dx ln x = 1/x", "relu": "d/dx relu(x) = 1 where x > 0, else 0", "tanh": "d/dx tanh x = 1 - tanh^2 x",
    "sigmoid": "d/dx s(x) = s(x) (1 - s(x))",
}


def _not_checked(spec, value_cls, present):
    """Why the op cannot be checked with this class (the text of a "missing" row), or None when it can."""
    lacks = [m for m in spec.uses if m not in present]
    if lacks:
        return f"lacks {', '.join(lacks)}"
    if spec.probe is not None:
        try:
            spec.probe(value_cls)
        except Exception as e:  # noqa: BLE001 - any refusal (TypeError, AssertionError, ...) means unsupported
            return f"Value ** Value raised {type(e).__name__}"
    return None


def _check_op(spec, value_cls, seed, present):
    from .engines import MODEL_METHODS

    required = not spec.extra and all(m in MODEL_METHODS for m in spec.uses)
    why = _not_checked(spec, value_cls, present)
    if why is not None:
        return OpResult(op=spec.name, ok=False, max_fwd_error=math.nan, max_grad_error=math.nan,
                        max_fd_error=math.nan, ref_fd_error=math.nan, checks=[], failed_checks=[], input=None,
                        detail=why, cases=0, kind=spec.kind, status="missing", required=required)
    result = _judge_op(spec, value_cls, seed)
    result.required = required
    if spec.name.startswith("deep chain") and result.detail.startswith("raised RecursionError"):
        # Every rule may be right: the engine's recursive topological sort cannot go this deep.
        result.status, result.ok, result.failed_checks = "limit", False, []
        result.detail = (f"RecursionError: backward sorts the graph recursively, and this chain is {DEEP_CHAIN} "
                         f"nodes deep; Python's recursion limit is {sys.getrecursionlimit()}")
    return result


def _judge_op(spec, value_cls, seed):
    worst = {"fwd": 0.0, "grad": 0.0, "fd": 0.0, "ref": 0.0}
    failed, first_input, detail = [], None, ""
    used_fd = False

    def fail(check, case, text):
        nonlocal first_input, detail
        if check not in failed:
            failed.append(check)
        if first_input is None:
            first_input, detail = _plain_input(case), text + (f" ({case.note})" if case.note else "")

    for ci, case in enumerate(spec.cases):
        def weights_for(n, ci=ci):
            return _weights(seed, spec.name, ci, n)

        t_fwd, t_grad, w = _torch_side(spec, case, weights_for)
        names = _input_names(case)
        try:
            u_fwd, u_grad = _user_side(spec, case, value_cls, weights_for)
        except Exception as e:  # the class under test raised: that op is wrong (or missing)
            worst["fwd"] = worst["grad"] = math.inf
            fail("exception", case, f"raised {type(e).__name__}: {' '.join(str(e).split())}"[:200])
            continue
        if len(u_fwd) != len(t_fwd):
            worst["fwd"] = math.inf
            fail("forward", case, f"{len(u_fwd)} outputs, expected {len(t_fwd)}")
            continue
        errs, _ = _mixed_errors(u_fwd, t_fwd)
        worst["fwd"] = max(worst["fwd"], max(errs))
        bad = [i for i, e in enumerate(errs) if not e <= FWD_TOL]
        if bad:
            i = bad[0]
            out = "output" if len(t_fwd) == 1 else f"output {i}"
            fail("forward", case, f"{out}: got {u_fwd[i]:.17g}, torch says {t_fwd[i]:.17g}")
        errs, _ = _mixed_errors(u_grad, t_grad)
        worst["grad"] = max(worst["grad"], max(errs))
        bad = [i for i, e in enumerate(errs) if not e <= GRAD_TOL]
        if bad:
            i = bad[0]
            fail("gradient", case, f"d/d{names[i]}: got {u_grad[i]:.17g}, torch.autograd says {t_grad[i]:.17g} "
                                   f"(upstream weights {', '.join(f'{x:.3g}' for x in w.tolist())})")
        if case.kink:
            continue
        used_fd = True
        fd, noise = _finite_differences(spec, case, w)
        scale = max([1.0] + [abs(g) for g in t_grad])
        for label, grads in (("ref", t_grad), ("fd", u_grad)):
            for i, (g, f, n) in enumerate(zip(grads, fd, noise)):
                beyond = abs(g - f) - FD_ROUNDING_ULPS * n if math.isfinite(g) else math.inf
                err = max(beyond, 0.0) / scale
                worst[label] = max(worst[label], err)
                if not err <= FD_TOL:
                    who = "torch.autograd" if label == "ref" else "got"
                    fail("reference" if label == "ref" else "finite-difference", case,
                         f"d/d{names[i]}: {who} {g:.17g}, central difference {f:.17g}")
                    break
    return OpResult(op=spec.name, ok=not failed, max_fwd_error=worst["fwd"], max_grad_error=worst["grad"],
                    max_fd_error=worst["fd"], ref_fd_error=worst["ref"],
                    checks=list(CHECKS) if used_fd else ["torch"], failed_checks=failed, input=first_input,
                    detail=detail, cases=len(spec.cases), kind=spec.kind, status="wrong" if failed else "ok")


def run_ops(value_cls=Value, seed=0, only=None):
    """Check every op and composite of the table with `value_cls`; `only` restricts to some op names."""
    specs = _specs()
    if only is not None:
        unknown = set(only) - {s.name for s in specs}
        if unknown:
            raise ValueError(f"unknown ops: {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in specs)}")
        specs = [s for s in specs if s.name in only]
    from .engines import present_methods

    name = f"{value_cls.__module__}:{value_cls.__qualname__}"
    present = present_methods(value_cls)
    return OpsReport([_check_op(s, value_cls, seed, present) for s in specs], value_class=name, seed=seed)


STATUS_WORDS = {"ok": "ok", "wrong": "FAIL", "missing": "absent", "limit": "limit"}  # an optional absent op: n/a
TABLE_WIDTH = 100


def format_ops_table(report, width=TABLE_WIDTH):
    """One row per op (status, max errors: forward, gradient vs torch, gradient vs finite differences, and a
    note: the input that broke a failing op, the rule an absent one needs), within `width` columns; then, for
    each failing op, what broke in full; then the tolerances."""
    name_w = max(len(r.op) for r in report.ops) + 2
    head = f"{'op':<{name_w}}{'status':<8}{'max fwd':>9}{'max grad':>10}{'max fd':>9}  note"
    lines = [head, "-" * width]
    room = width - (name_w + 8 + 9 + 10 + 9 + 2)

    def err(x, w):
        return f"{'-' if not math.isfinite(x) else f'{x:.1e}':>{w}}"

    def fit(text):
        return text if len(text) <= room else text[: room - 3] + "..."
    details, rules = [], {}
    for r in report.ops:
        if r.status == "missing" and r.required:
            for m in r.detail.removeprefix("lacks ").split(", "):
                rules.setdefault(m, RULES.get(m, ""))
        if r.status == "missing":
            note = r.detail
        elif r.status == "wrong":
            note = format_input(r.input)
            details.append(f"  {r.op}: at {format_input(r.input)}: {r.detail}")
        elif r.status == "limit":
            note = "RecursionError: a recursive backward"
        else:
            note = ""
        judged = r.status in ("ok", "wrong")
        nan = math.nan
        status = "n/a" if r.status == "missing" and not r.required else STATUS_WORDS[r.status]
        lines.append(f"{r.op:<{name_w}}{status:<8}{err(r.max_fwd_error if judged else nan, 9)}"
                     f"{err(r.max_grad_error if judged else nan, 10)}{err(r.max_fd_error if judged else nan, 9)}"
                     f"  {fit(note)}")
    if details:
        lines += ["what broke (the first input, in table order):", *details]
    if rules:
        lines += ["absent, and the model needs them (the rule to implement):",
                  *(f"  {m}: {rule}" for m, rule in rules.items())]
    lines.append(f"tolerances (mixed error): {tolerance_text()}. absent: the class lacks an op the model needs; "
                 f"n/a: an optional op it lacks (neither is checked or wrong); limit: a limitation of the engine")
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ") if line.startswith("tolerances")
                     else line.rstrip() for line in lines)
