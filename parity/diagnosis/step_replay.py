"""One step replayed in pure (the plain engine, float64) from the state before it, with a bug's patches injected,
and how well the replay fits the port's own numbers (`fit`: the worst share of the allowance; at most 1
reproduces)."""

import math
import types
from dataclasses import dataclass, replace

import numpy as np

import pure.model
import pure.train
from parity.judge.quantities import port_quantities
from parity.judge.tolerances import tolerance
from pure.engine import Value, gc_paused
from pure.model import param_shapes, split_flat
from pure.optim import Adam

from .bugs import injected

PHASE_ORDER = ("forward", "backward", "optimizer")


# ---- replaying a step in pure ----------------------------------------------------------------------------------

def value_params(weights, config, value_cls=Value):
    return {name: [[value_cls(x) for x in row] for row in rows] for name, rows in split_flat(weights, config).items()}


def forward_backward(state, patches=(), backward=True, params=None):
    """pure's loss, logits and (with backward) gradients of the step from the state's weights, the patches
    injected; None when the patched code raises (a bug that cannot even run this step reproduces nothing). params:
    the weights as Values, shared by forward-only replays (a forward reads them and changes nothing)."""
    config = state.config
    params = value_params(state.weights, config) if params is None or backward else params
    logits = {}

    def tap(name, pos, values):
        if name == "logits":
            logits[pos] = values

    try:
        with injected(patches), gc_paused():
            loss = step_loss(state.tokens, params, config, tap, None, state.loss_reduction)
            if backward:
                loss.backward()
    except (ArithmeticError, ValueError, TypeError, RecursionError):
        return None
    rec = {"loss": np.array(float(loss.data)),
           "logits": np.array([[float(v.data) for v in logits[p]] for p in sorted(logits)])}
    if backward:
        for name, rows in params.items():
            rec["grad:" + name] = np.array([[float(p.grad) for p in row] for row in rows])
    return rec


def step_loss(tokens, params, config, tap, sums, reduction):
    """A step's loss in pure: one document's, or several documents' under a variant's reduction."""
    sums = sums or pure.model.PLAIN_SUMS
    if tokens and isinstance(tokens[0], list):
        return pure.train.batch_loss(tokens, params, config, tap, sums, reduction)
    return pure.train.doc_loss(tokens, params, config, tap, sums)


def _adam_update(state, grads, patches, changes, idx=None):
    """pure's Adam at the step on the parameters at `idx` (all: None), from the state's weights, on `grads` (flat),
    the patches injected: their values after it, or None when the moments before the step are not to be had. They
    are the port's own when known (`run`), else rebuilt from the port's gradient history under the same patches (so
    that changed betas act on every step), else torch's lockstep moments. Raises what the patched code raises."""
    pick = (lambda xs: xs) if idx is None else (lambda xs: [xs[i] for i in idx])
    params = [types.SimpleNamespace(data=w, grad=0.0) for w in pick(state.weights)]
    opt = Adam(params, state.total_steps, replace(state.adam, **(changes or {})))
    with injected(patches):
        if state.m is not None:
            opt.m, opt.v = list(pick(state.m)), list(pick(state.v))
        elif state.grad_history is not None and len(state.grad_history) == state.step - 1:
            for j, g in enumerate(state.grad_history):
                for p, x in zip(params, pick(g)):
                    p.grad = x
                opt.step(j)
            for p, w in zip(params, pick(state.weights)):
                p.data = w
        elif state.torch_moments is not None:
            opt.m, opt.v = list(pick(state.torch_moments[0])), list(pick(state.torch_moments[1]))
        else:
            return None
        for p, g in zip(params, pick(grads)):
            p.grad = g
        opt.step(state.step - 1)
    return [p.data for p in params]


def adam_replay(state, grads, patches=(), adam_changes=None):
    """pure's Adam at the step (_adam_update) on every parameter: the updated weights as a record; None when the
    moments are not to be had or the patched code raises."""
    try:
        flat = _adam_update(state, grads, patches, adam_changes)
    except (ArithmeticError, ValueError):
        return None
    if flat is None:
        return None
    return {"param:" + name: np.array(rows, dtype=np.float64) for name, rows in split_flat(flat, state.config).items()}


# Adam acts element by element (without gradient clipping), so a bug is first replayed on this many of the
# parameters, evenly spaced: one that misses there cannot reproduce them all, and is not replayed in full
ADAM_SAMPLE = 128


def adam_sample(state, grads, patches, changes, names):
    """(worst share of the allowance, estimated root-sum-square miss) of an Adam bug replayed on ADAM_SAMPLE
    parameters only; None when it cannot be sampled (clipping, or the moments are not to be had)."""
    n = len(state.weights)
    if state.adam.grad_clip is not None or n <= 4 * ADAM_SAMPLE or not names:
        return None
    idx = np.linspace(0, n - 1, ADAM_SAMPLE).astype(int).tolist()
    try:
        after = _adam_update(state, grads, patches, changes, idx)
    except (ArithmeticError, ValueError):
        return math.inf, math.inf
    if after is None:
        return None
    port = np.concatenate([np.asarray(state.port["param:" + name], np.float64).reshape(-1)
                           for name in param_shapes(state.config)])[idx]
    got = np.array(after)
    if not np.isfinite(port).all():
        return None  # non-finite numbers are judged by the full replay (fit)
    if not np.isfinite(got).all():
        return math.inf, math.inf
    t = tolerance(names[0], state.dtype, "lockstep")
    d = np.abs(got - port)
    return float(np.max(d / (t.atol + t.rtol * np.abs(port)))), float(np.sqrt(np.sum(d * d) * n / len(idx)))


def port_grads(state):
    names = [q.name for q in port_quantities(state.config) if q.name.startswith("grad:")]
    if not all(n in state.port for n in names):
        return None
    by_name = {n.split(":", 1)[1]: state.port[n] for n in names}
    return [x for name in param_shapes(state.config) for x in by_name[name].reshape(-1).tolist()]


# ---- judging a candidate ---------------------------------------------------------------------------------------

def compared_names(state, phases):
    return [q.name for q in port_quantities(state.config) if q.phase in phases and q.name in state.port]


def fit(candidate, state, names, tol_of=None):
    """The worst share of its allowance any element of `names` uses, candidate against the port: at most 1
    reproduces. A non-finite number matches only the same non-finite number at the same place."""
    if candidate is None:
        return math.inf
    worst = 0.0
    for name in names:
        a, b = np.asarray(state.port[name], np.float64), np.asarray(candidate.get(name), np.float64)
        if b.shape != a.shape:
            return math.inf
        fa, fb = np.isfinite(a), np.isfinite(b)
        if (fa != fb).any() or (np.isnan(a) != np.isnan(b)).any() or (a[~fa & ~np.isnan(a)] != b[~fa & ~np.isnan(a)]
                                                                      ).any():
            return math.inf
        tol = tol_of(name, a) if tol_of else None
        if tol is None:
            t = tolerance(name, state.dtype, "lockstep")
            allowance = t.atol + t.rtol * np.abs(a[fa])
        else:
            allowance = tol[fa]
        if fa.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                worst = max(worst, float(np.max(np.abs(b[fa] - a[fa]) / allowance)))
    return worst


def rss_miss(candidate, state, names):
    """The root-sum-square of candidate minus port over the elements of `names` (inf when it cannot be had)."""
    if candidate is None:
        return math.inf
    total = 0.0
    for name in names:
        d = np.asarray(candidate[name], np.float64) - state.port[name]
        if not np.isfinite(d).all():
            return math.inf
        total += float(np.sum(d * d))
    return math.sqrt(total)


def max_abs_diff(candidate, state, names):
    if candidate is None:
        return math.inf
    return max(float(np.max(np.abs(np.asarray(candidate[n], np.float64) - state.port[n]))) for n in names)


@dataclass
class Trial:
    bug: object
    ratio: float  # worst share of allowance against the port (<= 1 reproduces)
    miss: float  # root-sum-square difference from the port
    names: list  # the quantities compared
    note: str = ""  # what the candidate was (an order, a fitted lr, a digit count)
    sampled: bool = False  # judged on ADAM_SAMPLE parameters only (it missed there); miss is an estimate

    @property
    def reproduces(self):
        return self.ratio <= 1.0
