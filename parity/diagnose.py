"""Name the bug, not only the place: replay the diverging step under each known bug and name the ones that
reproduce the port's own numbers.

When `parity check` or `parity run` finds its first divergence at step k, the replay starts from the state the
port was in before that step (its weights, Adam's moments and step count, its document) and runs the step in
pure (the plain engine, float64) once as the seed does it and once per bug of parity.bugs whose phase is the
diverging one, each injected for that replay only. A bug is named only when its replay reproduces the port's own
numbers of that phase (and of the phases before it), every element within the tolerance the verdict used, where
the seed's replay does not. Several bugs that reproduce it equally well are one finding, named together (a tie);
one is named alone only when it fits clearly better (CLEARLY_BETTER). Tracing slips are tested on the numbers
themselves (gradients read after they were zeroed, weights read before the update, the parameters in another order
read from what each matrix's gradient shows, matrices written column by column, too few digits), and a learning
rate that differs is fitted. When nothing reproduces, the diagnosis says so, and names the nearest bug only when it
explains most of the error (CLOSEST_EXPLAINS), as not a match: no name is better than a wrong one.
"""

import itertools
import math
import time
import types
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

import pure.model
import pure.train
from pure.engine import Value, gc_paused
from pure.model import param_shapes, split_flat
from pure.optim import Adam, AdamConfig

from .bugs import LR_FIX, catalogue, injected
from .precision import precision
from .quantities import port_quantities
from .report import format_used
from .tolerances import tolerance

# Two bugs that both reproduce the port are told apart only when one fits clearly better: when the next uses more
# than CLEARLY_BETTER times the best's share of the allowance and more than ROUNDING_SHARE of it. Below
# ROUNDING_SHARE both are the port's numbers to within rounding (an exact reproduction uses ~1e-3 of the
# allowance, which is ~100x the measured noise: parity.tolerances), and within a factor of 10 the two differ by
# no more than the tolerances' own margin; such bugs are one finding, named together.
CLEARLY_BETTER = 10.0
ROUNDING_SHARE = 0.1
# When nothing reproduces, the nearest bug is shown only when it explains at least this share of the error (1 - its
# root-sum-square miss over the seed's): below half, it leaves more of the error unexplained than it explains and
# points away from the cause as often as to it.
CLOSEST_EXPLAINS = 0.5
# ... and only when measured on at least this many of the port's numbers: on a few (the loss alone, where the trace
# has no logits) any bug that moves the loss by as much comes as near, by coincidence
CLOSEST_MIN_NUMBERS = 100
# Slips of the trace's precision, not of its layout or timing: the port's free run diverges too (it is judged with
# the same tolerances), so free mode says nothing about them
PRECISION_SLIPS = ("slip-too-few-digits", "slip-float32-judged-as-float64")
HISTORY_STEPS = 200  # gradients kept per step to rebuild Adam's moments under each hypothesis; past that, torch's
LR_FIT_SPREAD = {"float64": 1e-9, "float32": 1e-4}  # the relative spread of the lr implied by every weight, for a fit
PHASE_ORDER = ("forward", "backward", "optimizer")
WHAT = {"forward": "loss", "backward": "gradients", "optimizer": "updated weights"}


@dataclass
class StepState:
    """Everything a replay of one step needs: the state before it and the port's numbers of it."""

    config: object  # pure.GPTConfig
    step: int  # 1-based: the step that diverged
    tokens: list
    weights: list  # every parameter before the step, flat in the seed's order
    adam: AdamConfig
    total_steps: int  # the lr decay's length
    port: dict  # the port's numbers of the step: "loss", "logits", "grad:<name>", "param:<name>" (float64 arrays)
    phase: str  # where the first divergence is
    dtype: str = "float64"  # the tolerances the verdict used
    reference: str = "port"
    m: Optional[list] = None  # Adam's moments before the step, when known exactly (`run`); else rebuilt
    v: Optional[list] = None
    grad_history: Optional[list] = None  # the port's gradients of steps 1..k-1 (None: too many, or not traced)
    torch_moments: Optional[tuple] = None  # (m, v) of torch's lockstep Adam before the step: the fallback
    prev_grads: Optional[list] = None  # the port's gradients of the step before, flat (None: step 1, or untraced)
    free_agrees: Optional[bool] = None  # whether free mode agreed over the whole run (None: unknown)
    loss_reduction: str = "token_mean"  # a variant's, over a step of several documents (tokens: a list of lists)


class StateRecorder:
    """Fed by a step loop, keeps what a replay of the first diverging step needs, and nothing after it."""

    def __init__(self, config, adam, total_steps, dtype, reference="port", loss_reduction="token_mean"):
        self.config, self.adam, self.total_steps, self.dtype, self.reference = config, adam, total_steps, dtype, \
            reference
        self.loss_reduction = loss_reduction
        self.history, self.state, self.before_step = [], None, None

    @property
    def done(self):
        return self.state is not None

    def before(self, step, tokens, weights, m=None, v=None, torch_moments=None, prev_grads=None):
        """The state before 1-based `step` (weights None: unknown, so the step cannot be replayed); torch_moments:
        (m, v), or a function returning them."""
        if not self.done:
            self.before_step = (step, tokens, weights, m, v, torch_moments, prev_grads)

    def after(self, grads):
        """The port's gradients of the step just done (flat, or None when the trace has none)."""
        if self.done:
            return
        if self.history is not None and grads is not None and len(self.history) < HISTORY_STEPS:
            self.history.append(grads.tolist() if hasattr(grads, "tolist") else [float(x) for x in grads])
        else:
            self.history = None  # no gradients this step, or too many steps: rebuild no more

    def diverged(self, port_record, phase):
        """The step just compared diverged (first time): keep its state."""
        if self.done or self.before_step is None:
            return
        step, tokens, weights, m, v, torch_moments, prev_grads = self.before_step
        if weights is None:
            return
        if callable(torch_moments):  # made lazily (parity.check): the step diverged, so they are needed now
            torch_moments = torch_moments()
        history = list(self.history) if self.history is not None else None
        if prev_grads is None and history and len(history) == step - 1:
            prev_grads = history[-1]
        self.state = StepState(self.config, step, tokens, [float(x) for x in weights], self.adam, self.total_steps,
                               dict(port_record), phase, self.dtype, self.reference, m, v, history, torch_moments,
                               prev_grads, loss_reduction=self.loss_reduction)


# ---- replaying a step in pure ----------------------------------------------------------------------------------

def _params(weights, config, value_cls=Value):
    return {name: [[value_cls(x) for x in row] for row in rows] for name, rows in split_flat(weights, config).items()}


def forward_backward(state, patches=(), backward=True, params=None):
    """pure's loss, logits and (with backward) gradients of the step from the state's weights, the patches
    injected; None when the patched code raises (a bug that cannot even run this step reproduces nothing). params:
    the weights as Values, shared by forward-only replays (a forward reads them and changes nothing)."""
    config = state.config
    params = _params(state.weights, config) if params is None or backward else params
    logits = {}

    def tap(name, pos, values):
        if name == "logits":
            logits[pos] = values

    try:
        with injected(patches), gc_paused():
            loss = _loss(state.tokens, params, config, tap, None, state.loss_reduction)
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


def _loss(tokens, params, config, tap, sums, reduction):
    """A step's loss in pure: one document's, or several documents' under a variant's reduction."""
    sums = sums or pure.model.PLAIN_SUMS
    if tokens and isinstance(tokens[0], list):
        return pure.train.batch_loss(tokens, params, config, tap, sums, reduction)
    return pure.train.doc_loss(tokens, params, config, tap, sums)


def _adam_replay(state, grads, patches=(), adam_changes=None):
    """pure's Adam at the step, from the state's weights, on `grads` (flat): the updated weights as a record. The
    moments before the step are the port's own when known (`run`), else rebuilt from the port's gradient history
    under the same patches (so that changed betas act on every step), else torch's lockstep moments."""
    cfg = replace(state.adam, **(adam_changes or {}))
    params = [types.SimpleNamespace(data=w, grad=0.0) for w in state.weights]
    opt = Adam(params, state.total_steps, cfg)
    try:
        with injected(patches):
            if state.m is not None:
                opt.m, opt.v = list(state.m), list(state.v)
            elif state.grad_history is not None and len(state.grad_history) == state.step - 1:
                for j, g in enumerate(state.grad_history):
                    for p, x in zip(params, g):
                        p.grad = x
                    opt.step(j)
                for p, w in zip(params, state.weights):
                    p.data = w
            elif state.torch_moments is not None:
                opt.m, opt.v = list(state.torch_moments[0]), list(state.torch_moments[1])
            else:
                return None
            for p, g in zip(params, grads):
                p.grad = g
            opt.step(state.step - 1)
    except (ArithmeticError, ValueError):
        return None
    flat = [p.data for p in params]
    return {"param:" + name: np.array(rows, dtype=np.float64) for name, rows in split_flat(flat, state.config).items()}


# Adam acts element by element (without gradient clipping), so a bug is first replayed on this many of the
# parameters, evenly spaced: one that misses there cannot reproduce them all, and is not replayed in full
ADAM_SAMPLE = 128


def _adam_sample(state, grads, patches, changes, names):
    """(worst share of the allowance, estimated root-sum-square miss) of an Adam bug replayed on ADAM_SAMPLE
    parameters only; None when it cannot be sampled (clipping, or the moments are not to be had)."""
    n = len(state.weights)
    if state.adam.grad_clip is not None or n <= 4 * ADAM_SAMPLE or not names:
        return None
    idx = np.linspace(0, n - 1, ADAM_SAMPLE).astype(int).tolist()
    params = [types.SimpleNamespace(data=state.weights[i], grad=0.0) for i in idx]
    opt = Adam(params, state.total_steps, replace(state.adam, **(changes or {})))
    try:
        with injected(patches):
            if state.m is not None:
                opt.m, opt.v = [state.m[i] for i in idx], [state.v[i] for i in idx]
            elif state.grad_history is not None and len(state.grad_history) == state.step - 1:
                for j, g in enumerate(state.grad_history):
                    for p, i in zip(params, idx):
                        p.grad = g[i]
                    opt.step(j)
                for p, i in zip(params, idx):
                    p.data = state.weights[i]
            elif state.torch_moments is not None:
                opt.m = [state.torch_moments[0][i] for i in idx]
                opt.v = [state.torch_moments[1][i] for i in idx]
            else:
                return None
            for p, i in zip(params, idx):
                p.grad = grads[i]
            opt.step(state.step - 1)
    except (ArithmeticError, ValueError):
        return math.inf, math.inf
    port = np.concatenate([np.asarray(state.port["param:" + name], np.float64).reshape(-1)
                           for name in param_shapes(state.config)])[idx]
    got = np.array([p.data for p in params])
    if not np.isfinite(port).all():
        return None  # non-finite numbers are judged by the full replay (fit)
    if not np.isfinite(got).all():
        return math.inf, math.inf
    t = tolerance(names[0], state.dtype, "lockstep")
    d = np.abs(got - port)
    return float(np.max(d / (t.atol + t.rtol * np.abs(port)))), float(np.sqrt(np.sum(d * d) * n / len(idx)))


def _port_grads(state):
    names = [q.name for q in port_quantities(state.config) if q.name.startswith("grad:")]
    if not all(n in state.port for n in names):
        return None
    by_name = {n.split(":", 1)[1]: state.port[n] for n in names}
    return [x for name in param_shapes(state.config) for x in by_name[name].reshape(-1).tolist()]


# ---- judging a candidate ---------------------------------------------------------------------------------------

def _names(state, phases):
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


def _miss(candidate, state, names):
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


def _max_abs(candidate, state, names):
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


# ---- the hypotheses ----------------------------------------------------------------------------------------------

def _trials_of_bugs(state, bugs, reference):
    trials = []
    phases = PHASE_ORDER[:PHASE_ORDER.index(state.phase) + 1]
    shared = _params(state.weights, state.config) if state.phase == "forward" else None
    for bug in bugs:
        if bug.kind == "optimizer" and bug.phase == "optimizer":
            grads = _port_grads(state)
            if grads is None:
                continue
            names = _names(state, ("optimizer",))
            patches = bug.patches(state.config) if bug.patches else ()
            sample = _adam_sample(state, grads, patches, bug.adam, names)
            if sample is not None and sample[0] > 1.0:  # some elements already miss: no full replay
                trials.append(Trial(bug, sample[0], sample[1], names, sampled=True))
                continue
            cand = _adam_replay(state, grads, patches, bug.adam)
        elif bug.id == "grads-not-zeroed":
            if state.prev_grads is None:
                continue
            names = _names(state, phases)
            cand = dict(reference["fwd"]) if reference["fwd"] else None
            if cand is not None:  # the fresh gradients plus the port's own previous (already piled-up) ones
                prev = split_flat(state.prev_grads, state.config)
                for name, rows in prev.items():
                    cand["grad:" + name] = cand["grad:" + name] + np.array(rows)
        else:
            names = _names(state, phases)
            cand = forward_backward(state, bug.patches(state.config), backward=state.phase != "forward",
                                    params=shared)
        trials.append(Trial(bug, fit(cand, state, names), _miss(cand, state, names), names))
    return trials


def _trial_slips(state, slips, reference):
    """The port right, its trace wrong: gradients after zeroing, weights before the update, too few digits."""
    by_id = {b.id: b for b in slips}
    trials = []
    ref = reference["fwd"] or {}
    if state.phase == "backward" and "slip-grads-after-zeroing" in by_id:
        names = _names(state, ("forward", "backward"))
        cand = dict(ref, **{n: np.zeros_like(state.port[n]) for n in names if n.startswith("grad:")})
        trials.append(Trial(by_id["slip-grads-after-zeroing"], fit(cand, state, names), _miss(cand, state, names),
                            names))
    if state.phase == "optimizer" and "slip-weights-before-update" in by_id:
        names = _names(state, ("optimizer",))
        cand = {"param:" + n: np.array(rows) for n, rows in split_flat(state.weights, state.config).items()}
        trials.append(Trial(by_id["slip-weights-before-update"], fit(cand, state, names), _miss(cand, state, names),
                            names))
    if "slip-too-few-digits" in by_id:
        names = _names(state, (state.phase,))
        target = reference["opt"] if state.phase == "optimizer" else ref
        # the digits the port printed, judged on every number it gave of this step and on its weights before it
        shown = precision(list(state.weights) + [x for n in state.port
                                                 for x in np.asarray(state.port[n]).reshape(-1).tolist()])
        if target and all(n in target for n in names) and shown.kind == "short":
            digits = shown.max_digits

            def half_unit(name, a, digits=digits):
                scale = np.where(a != 0, 10.0 ** (np.floor(np.log10(np.abs(np.where(a != 0, a, 1.0)))) - digits + 1),
                                 10.0 ** -digits)
                return 0.5 * scale * (1 + 1e-9) + tolerance(name, state.dtype, "lockstep").atol

            trials.append(Trial(by_id["slip-too-few-digits"], fit(target, state, names, half_unit),
                                _miss(target, state, names), names, f"{digits} significant digits"))
    if "slip-float32-judged-as-float64" in by_id and state.dtype == "float64":
        names = _names(state, (state.phase,))
        target = reference["opt"] if state.phase == "optimizer" else ref
        numbers = list(state.weights) + [x for n in state.port for x in np.asarray(state.port[n]).reshape(-1).tolist()]
        if target and all(n in target for n in names) and precision(numbers).kind == "float32":
            as32 = replace(state, dtype="float32")
            trials.append(Trial(by_id["slip-float32-judged-as-float64"], fit(target, as32, names),
                                _miss(target, state, names), names, "within float32's tolerances"))
    return trials


# ---- the parameter order, read from the numbers -------------------------------------------------------------------

# Orders the search hands to the replay (torch_ref, ~5 ms each at a small config) at most: the gradients' rows and
# row spaces leave one order, or a few (matrices of one shape whose gradients are all zero, as attn_wq and attn_wk
# at a document of one position); past this many they do not tell the matrices apart.
MAX_ORDERS = 24
# The search's steps at most: where the row spaces prune nothing (a document as long as n_embd) it stops here, and
# the usual other orders are tried instead (_layouts)
SEARCH_NODES = 2_000
ROW_SPACE_RTOL = 1e-6  # a gradient lies in a row space when what is left of it is below this share of its norm


def _basis(x):
    """An orthonormal basis of the span of x's rows."""
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    return vt[s > s[0] * 1e-10] if s.size and s[0] > 0 else vt[:0]


def _orders_from_numbers(state, grads):
    """The orders of the seed's matrices that the trace's gradients allow, read from the numbers: wte where a
    block's gradient has rows exactly at the document's tokens, wpe where it has rows exactly at the positions used;
    then, layer by layer, a forward in numpy from the trace's own weights, each matrix where its gradient lies in the
    row space of its input (a linear layer's gradient is the sum over positions of its output's gradient times its
    input): attn_wq, attn_wk, attn_wv in that of the normed stream, attn_wo in that of the attention's output (which
    tells q, k and v apart), mlp_fc1 in that of the normed stream, mlp_fc2 in that of the hidden activations,
    lm_head in that of the last stream; the blocks may not overlap. Returns (orders, conclusive): each order a list
    of the seed's names in the trace's order, at most MAX_ORDERS; conclusive False when the gradients could not
    tell (every row space full: a document as long as n_embd) and the search stopped."""
    config, tokens = state.config, state.tokens
    if not tokens or isinstance(tokens[0], list) or config.tie_embeddings:
        return [], False
    shapes = param_shapes(config)
    g, w = np.asarray(grads, np.float64), np.asarray(state.weights, np.float64)
    total = len(g)
    eps = pure.model.RMS_EPS if config.norm_eps is None else config.norm_eps
    n = min(config.block_size, len(tokens) - 1)
    C, hd = config.n_embd, config.head_dim
    causal = np.tril(np.ones((n, n), bool))
    nonzero = g != 0

    def starts(shape, rows):
        r, c = shape
        return [o for o in range(total - r * c + 1) if set(np.flatnonzero(
            nonzero[o:o + r * c].reshape(r, c).any(1)).tolist()) == rows]

    def rms(x):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)

    def attention(x, wq, wk, wv):
        q, k, v = x @ wq.T, x @ wk.T, x @ wv.T
        out = np.empty_like(q)
        for h in range(config.n_head):
            s = slice(h * hd, (h + 1) * hd)
            logits = np.where(causal, q[:, s] @ k[:, s].T / math.sqrt(hd), -np.inf)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            out[:, s] = (p / p.sum(-1, keepdims=True)) @ v[:, s]
        return out

    def mat(off, shape, src=w):
        return src[off:off + shape[0] * shape[1]].reshape(shape)

    # the sums the other blocks can fill: a block starts only where what is before it and after it in its gap
    # between the embeddings can be filled by whole blocks
    sums = 1
    for name, (r, c) in shapes.items():
        if name not in ("wte", "wpe"):
            sums |= sums << (r * c)
    gaps = []

    def fillable(o, size):
        return any(a <= o and o + size <= b and sums >> (o - a) & 1 and sums >> (b - o - size) & 1 for a, b in gaps)

    def fits(shape, x, taken):
        """The offsets whose block of `shape` lies clear of `taken` and whose gradient is in x's row space."""
        b = _basis(x)
        full = b.shape[0] == b.shape[1]
        size = shape[0] * shape[1]
        out = []
        for o in range(total - size + 1):
            if not fillable(o, size) or any(o < e and s < o + size for s, e in taken):
                continue
            gm = mat(o, shape, g)
            norm = np.linalg.norm(gm)
            if full or norm == 0 or np.linalg.norm(gm - (gm @ b.T) @ b) <= ROW_SPACE_RTOL * norm:
                out.append(o)
        return out

    found, nodes, sq, wide = [], [0], (C, C), (4 * C, C)

    def busy():
        nodes[0] += 1
        return len(found) >= MAX_ORDERS or nodes[0] > SEARCH_NODES

    def layer(li, h, taken, chosen):
        if busy():
            return
        if li == config.n_layer:
            r, c = shapes["lm_head"]
            for o in fits((r, c), h, taken):
                found.append(dict(chosen, lm_head=o))
            return
        pre = f"layer{li}."
        x = rms(h)
        qkv = fits(sq, x, taken)
        for oq, ok_, ov in itertools.permutations(qkv, 3):
            spans = [(o, o + C * C) for o in (oq, ok_, ov)]
            if any(a < e and s < b for i, (a, b) in enumerate(spans) for s, e in spans[i + 1:]) or busy():
                if nodes[0] > SEARCH_NODES:
                    return
                continue
            att = attention(x, mat(oq, sq), mat(ok_, sq), mat(ov, sq))
            for oo in fits(sq, att, taken + spans):
                h1 = h + att @ mat(oo, sq).T
                x2 = rms(h1)
                t1 = taken + spans + [(oo, oo + C * C)]
                for o1 in fits(wide, x2, t1):
                    if busy():
                        return
                    hidden = np.maximum(x2 @ mat(o1, wide).T, 0.0)
                    t2 = t1 + [(o1, o1 + 4 * C * C)]
                    for o2 in fits((C, 4 * C), hidden if config.activation == "relu" else np.eye(4 * C), t2):
                        names = ("attn_wq", "attn_wk", "attn_wv", "attn_wo", "mlp_fc1", "mlp_fc2")
                        layer(li + 1, h1 + hidden @ mat(o2, (C, 4 * C)).T, t2 + [(o2, o2 + 4 * C * C)],
                              dict(chosen, **{pre + m: o for m, o in zip(names, (oq, ok_, ov, oo, o1, o2))}))

    for ote in starts(shapes["wte"], set(tokens[:n])):
        for ope in starts(shapes["wpe"], set(range(n))):
            te, pe = (ote, ote + shapes["wte"][0] * C), (ope, ope + shapes["wpe"][0] * C)
            if te[0] < pe[1] and pe[0] < te[1]:
                continue
            cuts = sorted([te, pe])
            gaps[:] = [(a, b) for a, b in ((0, cuts[0][0]), (cuts[0][1], cuts[1][0]), (cuts[1][1], total)) if b > a]
            x0 = rms(mat(ote, shapes["wte"])[tokens[:n]] + mat(ope, shapes["wpe"])[:n])
            layer(0, x0, [te, pe], {"wte": ote, "wpe": ope})
    orders = []
    for offsets in found:
        order = sorted(shapes, key=lambda name: offsets[name])
        if order not in orders:
            orders.append(order)
    return orders, nodes[0] <= SEARCH_NODES


def _order_words(order, names):
    """An order in words: a known pattern's name, else the names in the trace's order."""
    if order == sorted(names):
        return "sorted by name"
    if order == names[::-1]:
        return "the seed's order reversed"
    return "the trace's order: " + ", ".join(order)


def _from_order(config, order):
    """The permutation that maps a flat list written in `order` (a list of the seed's names) to the seed's."""
    shapes = param_shapes(config)
    sizes = {n: r * c for n, (r, c) in shapes.items()}
    offsets, at = {}, 0
    for n in order:
        offsets[n] = at
        at += sizes[n]
    return np.concatenate([np.arange(offsets[n], offsets[n] + sizes[n]) for n in shapes])


def _layouts(config, orders=None):
    """(kind, words, permutation) for the parameter layouts a trace may use by mistake: `orders` (the orders the
    numbers allow: _orders_from_numbers), or without gradients to read them from, the seed's blocks in the usual
    other orders (sorted by name, lm_head last, the equal-shaped matrices of a block permuted); and every matrix
    written column by column. A permutation maps the trace's flat list to the seed's."""
    shapes = param_shapes(config)
    names = list(shapes)
    out, seen = [], set()
    if orders is not None:
        for order in orders:
            if order != names:
                out.append(("order", _order_words(order, names), _from_order(config, order)))
    else:
        layer = ["attn_wq", "attn_wk", "attn_wv", "attn_wo"]
        bases = {"the seed's": names, "sorted by name": sorted(names),
                 "lm_head after the layers": [n for n in names if n != "lm_head"] + ["lm_head"] * ("lm_head" in names)}
        for base_words, base in bases.items():
            for perm in itertools.permutations(layer):
                for swap in (False, True):
                    mapping = {f"layer{i}.{a}": f"layer{i}.{b}" for i in range(config.n_layer)
                               for a, b in zip(layer, perm)}
                    if swap and "lm_head" not in names:  # tied embeddings: no lm_head to swap
                        continue
                    if swap:
                        mapping.update({"wte": "lm_head", "lm_head": "wte"})
                    order = [mapping.get(n, n) for n in base]
                    key = tuple(order)
                    if key in seen or order == names:
                        continue
                    seen.add(key)
                    words = f"{base_words} order" + (f", {', '.join(perm)} within each layer" if list(perm) != layer
                                                      else "") + (", wte and lm_head swapped" if swap else "")
                    out.append(("order", words, _from_order(config, order)))
    transposed = []
    at = 0
    for n in names:
        r, c = shapes[n]
        transposed.append(at + np.arange(r * c).reshape(c, r).T.reshape(-1))  # column-major -> row-major
        at += r * c
    out.append(("column-major", "every matrix column by column", np.concatenate(transposed)))
    return out


def _trial_layouts(state, slips):
    """A trace whose every parameter list is laid out wrongly: replayed from the weights put back in the seed's
    layout, does torch_ref reproduce the port's loss (and gradients)? Only where the weights before the step are
    the trace's own."""
    from torch_ref.train import DTYPES, TorchTrainer

    by_id = {b.id: b for b in slips}
    if state.phase != "forward" or not ({"slip-parameter-order", "slip-column-major"} & set(by_id)):
        return []
    names = _names(state, ("forward", "backward"))
    grads = _port_grads(state)
    weights = np.array(state.weights)
    trainer = TorchTrainer.from_params(state.config, state.weights, steps=state.total_steps, adam=state.adam,
                                       dtype=DTYPES[state.dtype])
    trials = []
    orders = None  # without gradients, or where they cannot tell, the usual other orders are tried
    if grads is not None and "slip-parameter-order" in by_id:
        orders, conclusive = _orders_from_numbers(state, grads)
        orders = orders if conclusive or orders else None
    for kind, words, perm in _layouts(state.config, orders):
        bug = by_id.get("slip-parameter-order" if kind == "order" else "slip-column-major")
        if bug is None:
            continue
        trainer.load_params(weights[perm].tolist())
        loss, logits = trainer.forward_backward(state.tokens)
        cand = {"loss": np.array(loss.item()), "logits": logits.detach().double().numpy()}
        port = dict(state.port)
        if grads is not None:  # the port's gradients, put in the seed's layout too
            for name, rows in split_flat(np.array(grads)[perm].tolist(), state.config).items():
                port["grad:" + name] = np.array(rows)
            for name, p in trainer.params_by_name().items():
                cand["grad:" + name] = p.grad.detach().double().numpy()
        view = replace(state, port=port)
        trials.append(Trial(bug, fit(cand, view, names), _miss(cand, view, names), names, words))
    return trials


def _lr_fit(state):
    """The one learning rate that explains the port's update, if one does: (lr, the seed's lr at the step)."""
    grads = _port_grads(state)
    seed = _adam_replay(state, grads) if grads is not None else None
    half = replace(state.adam, lr=state.adam.lr * 0.5)
    probe = _adam_replay(replace(state, adam=half), grads) if grads is not None else None
    if seed is None or probe is None:
        return None
    names = _names(state, ("optimizer",))
    before = {"param:" + n: np.array(rows) for n, rows in split_flat(state.weights, state.config).items()}
    step_seed = np.concatenate([(seed[n] - before[n]).reshape(-1) for n in names])
    step_port = np.concatenate([(state.port[n] - before[n]).reshape(-1) for n in names])
    big = np.abs(step_seed) > 1e-3 * np.abs(step_seed).max()
    if not big.any() or not np.isfinite(step_port).all():
        return None
    lr_seed = Adam([], state.total_steps, state.adam).lr_at(state.step - 1)
    implied = lr_seed * step_port[big] / step_seed[big]
    lr = float(np.median(implied))
    if not lr > 0 or np.max(np.abs(implied - lr)) > LR_FIT_SPREAD.get(state.dtype, 1e-9) * lr + 1e-15:
        return None
    return lr, lr_seed


# ---- a trace with losses only: whole runs in free mode ------------------------------------------------------------

@dataclass
class LossesState:
    """A trace with losses only, diverging in free mode: the port's initial weights, documents and losses."""

    config: object
    weights: list  # init, flat in the seed's order
    tokens: list  # per step
    losses: list  # per step, the port's
    adam: AdamConfig
    total_steps: int
    dtype: str
    first: int  # the first diverging step (1-based)
    loss_reduction: str = "token_mean"  # a variant's, over steps of several documents


PREFILTER_STEPS = 3  # a free-mode hypothesis runs to the first divergence plus these steps before it runs them all


def _free_losses(state, bug, upto):
    """pure's losses over the first `upto` steps, trained from the port's initial weights over its documents with
    `bug` injected (fused engine: the same numbers as the plain one); None when the patched code raises."""
    from pure import fused
    from pure.model import flatten

    config = state.config
    params = _params(state.weights, config)
    cfg = replace(state.adam, **(bug.adam if bug else {}))
    opt = Adam(flatten(params), state.total_steps, cfg)
    losses = []
    try:
        with injected(bug.patches(config) if bug and bug.patches else ()):
            for k, tokens in enumerate(state.tokens[:upto]):
                with gc_paused():
                    loss = _loss(tokens, params, config, None, fused.SUMS, state.loss_reduction)
                    fused.backward(loss)
                    opt.step(k)
                    losses.append(float(loss.data))
                    del loss
    except (ArithmeticError, ValueError, TypeError, RecursionError):
        return None
    return losses


def _losses_fit(losses, state):
    if losses is None:
        return math.inf
    a, b = np.array(state.losses[:len(losses)]), np.array(losses)
    if (np.isfinite(a) != np.isfinite(b)).any():
        return math.inf
    t = tolerance("loss", state.dtype, "free")
    ok = np.isfinite(a)
    return float(np.max(np.abs(b[ok] - a[ok]) / (t.atol + t.rtol * np.abs(a[ok])))) if ok.any() else 0.0


def diagnose_losses(state, bugs=None):
    """The diagnosis of a losses-only trace: the forward and optimizer bugs replayed as whole runs in free mode; a
    bug is named only when it reproduces every loss of the trace."""
    t0 = time.perf_counter()
    bugs = [b for b in (catalogue() if bugs is None else bugs) if b.kind in ("model", "optimizer")
            and b.phase in ("forward", "optimizer")]
    upto = min(len(state.tokens), state.first + PREFILTER_STEPS)
    seed = _free_losses(state, None, upto)
    if _losses_fit(seed, state) <= 1.0:
        return None
    survivors = [b for b in bugs if _losses_fit(_free_losses(state, b, upto), state) <= 1.0]
    matches = []
    for b in survivors:
        ratio = _losses_fit(_free_losses(state, b, len(state.tokens)), state)
        if ratio <= 1.0:
            matches.append((ratio, b))
    matches.sort(key=lambda m: m[0])
    evidence = (f"replayed as whole runs in free mode, it reproduces every one of the port's {len(state.tokens)} "
                f"losses")

    def entry(ratio, b):
        return {"id": b.id, "summary": b.summary, "fix": b.fix, "kind": b.kind, "phase": "free", "step": state.first,
                "evidence": f"{evidence} (worst {format_used(ratio)} of the allowance)",
                **({"variant": b.variant} if b.variant else {})}

    if matches:
        tied = [m for m in matches if m[0] <= max(matches[0][0] * CLEARLY_BETTER, ROUNDING_SHARE)]
        first = entry(*tied[0])
        first["ambiguous"] = len(tied) > 1
        first["candidates"] = [entry(*m) for m in tied] if len(tied) > 1 else []
        first["alternatives"] = [entry(*m) for m in tied[1:]]
    else:
        first = {"id": None, "summary": "no known bug reproduces this", "fix": None, "kind": None, "phase": "free",
                 "step": state.first, "closest": None, "alternatives": [], "ambiguous": False,
                 "evidence": f"{len(bugs)} of the {len(catalogue())} known bugs (those of the forward and the "
                             f"optimizer) replayed as whole runs in free mode; none reproduces every loss"}
    first["seconds"] = round(time.perf_counter() - t0, 3)
    return first


# ---- the diagnosis -------------------------------------------------------------------------------------------

def _evidence(trial, state, ref_miss):
    what = WHAT[state.phase] if state.phase != "forward" else "loss"
    note = f" ({trial.note})" if trial.note else ""
    return (f"reproduces the port's {what} at step {state.step}{note} to {format_used(trial.ratio)} of the "
            f"allowance, where the seed's replay misses by {ref_miss:.1e}")


def _entry(trial, state, ref_miss):
    b = trial.bug
    return {"id": b.id, "summary": b.summary, "fix": b.fix, "kind": b.kind, "phase": state.phase, "step": state.step,
            "evidence": _evidence(trial, state, ref_miss), **({"detail": trial.note} if trial.note else {}),
            **({"variant": b.variant} if b.variant else {})}


def diagnose(state, bugs=None):
    """The diagnosis of a diverging step: a dict naming the bug that reproduces the port's numbers (best fit first
    among several, the others as alternatives), or one that says nothing reproduces and names the closest; None
    when the seed's own replay reproduces the port (no bug to name). bugs: the catalogue (default: all)."""
    t0 = time.perf_counter()
    bugs = catalogue() if bugs is None else bugs
    phases = PHASE_ORDER[:PHASE_ORDER.index(state.phase) + 1]
    names = _names(state, phases if state.phase != "optimizer" else ("optimizer",))
    fwd = forward_backward(state, backward=state.phase != "forward") if state.phase != "optimizer" else None
    grads = _port_grads(state)
    opt = _adam_replay(state, grads) if state.phase == "optimizer" and grads is not None else None
    seed = fwd if state.phase != "optimizer" else opt
    if seed is None or fit(seed, state, names) <= 1.0:
        return None  # the seed's replay reproduces the port (or cannot run): nothing to name
    reference = {"fwd": fwd, "opt": opt}
    ref_miss = _max_abs(seed, state, names)
    ref_rss = _miss(seed, state, names)
    # a deviation of the model can first show in the backward (the gist's earlier revision starts mlp_fc2 and attn_wo
    # at zero, so relu^2 changes no loss at step 1, only gradients): those are tried there too
    candidates = [b for b in bugs if b.kind != "slip" and (b.phase == state.phase or (
        b.variant and b.kind == "model" and state.phase == "backward"))]
    slips = [b for b in bugs if b.kind == "slip"]
    trials = _trials_of_bugs(state, candidates, reference) + _trial_slips(state, slips, reference)
    trials += _trial_layouts(state, slips)
    # best fit first; among equal fits (the same numbers: a bug and a slip that both zero every gradient), what the
    # free run says decides: a port whose training agrees is right, so its trace is the suspect
    def rank(t):
        slip = t.bug.kind == "slip"
        return (round(t.ratio, 6), (not slip) if state.free_agrees else slip)

    matches = sorted((t for t in trials if t.reproduces), key=rank)
    lr = _lr_fit(state) if state.phase == "optimizer" else None
    fitted = f"the port's lr at step {state.step} is {lr[0]:.6g}, the seed's {lr[1]:.6g}" if lr else None
    n_bugs, n_forms = len({t.bug.id for t in trials}), len(trials)
    replayed = (f"{n_bugs} of the {len(bugs)} known bugs replayed at step {state.step}"
                + (f" in {n_forms} forms" if n_forms != n_bugs else ""))
    if matches:
        tied = _tied(matches, state)
        first = _entry(tied[0], state, ref_miss)
        first["evidence"] += f"; {replayed}"
        if len(tied) > 1:
            worst = max(t.ratio for t in tied)
            what = WHAT[state.phase] if state.phase != "forward" else "loss"
            first["evidence"] = (f"each reproduces the port's {what} at step {state.step} to at most "
                                 f"{format_used(worst)} of the allowance, where the seed's replay misses by "
                                 f"{ref_miss:.1e}; {replayed}")
        if fitted and tied[0].bug.id.startswith("lr-"):
            first["evidence"] += f"; {fitted}"
        first["ambiguous"] = len(tied) > 1
        first["candidates"] = [_entry(t, state, ref_miss) for t in tied] if len(tied) > 1 else []
        first["alternatives"] = [_entry(t, state, ref_miss) for t in tied[1:]]
        first["seconds"] = round(time.perf_counter() - t0, 3)
        return first
    if fitted:
        return {"id": "lr-value", "summary": f"the learning rate differs: {fitted}", "fix": LR_FIX,
                "kind": "optimizer", "phase": state.phase, "step": state.step, "ambiguous": False,
                "evidence": f"one learning rate explains every updated weight at step {state.step}",
                "alternatives": [], "seconds": round(time.perf_counter() - t0, 3)}
    best = min(trials, key=lambda t: t.miss, default=None)
    if best is not None and best.sampled:  # the nearest's miss, from a full replay
        patches = best.bug.patches(state.config) if best.bug.patches else ()
        best = replace(best, miss=_miss(_adam_replay(state, grads, patches, best.bug.adam), state, best.names))
    closest = None
    if best is not None and math.isfinite(best.miss) and ref_rss > 0:
        explained = max(0.0, 1 - best.miss / ref_rss)
        numbers = sum(np.size(state.port[n]) for n in best.names)
        if explained >= CLOSEST_EXPLAINS and numbers >= CLOSEST_MIN_NUMBERS:
            closest = {"id": best.bug.id, "summary": best.bug.summary, "explained": round(explained, 3)}
    return {"id": None, "summary": "no known bug reproduces this", "fix": None, "kind": None, "phase": state.phase,
            "step": state.step, "ambiguous": False,
            "evidence": f"{replayed}; none reproduces the port's {WHAT[state.phase]}",
            "closest": closest, "alternatives": [], "seconds": round(time.perf_counter() - t0, 3)}


def _tied(matches, state):
    """The bugs that reproduce the port as well as the best (sorted best first): one finding. Among a bug and a
    slip of the trace's layout or timing, free mode decides: a port whose training agrees is right (its trace is
    the suspect), one whose training diverges has a bug. One form per bug (the best)."""
    best = matches[0].ratio
    tied, seen = [], set()
    for t in matches:
        if t.ratio <= max(best * CLEARLY_BETTER, ROUNDING_SHARE) and t.bug.id not in seen:
            seen.add(t.bug.id)
            tied.append(t)
    if state.free_agrees is not None and len(tied) > 1:
        def suspect(t):  # what free mode leaves standing
            if t.bug.kind != "slip":
                return not state.free_agrees
            return state.free_agrees or t.bug.id in PRECISION_SLIPS
        tied = [t for t in tied if suspect(t)] or tied
    return tied


def catalogue_table():
    """`parity diagnoses`: one line per known bug."""
    rows = [(b.id, b.phase, b.kind, b.summary) for b in catalogue()]
    w = max(len(r[0]) for r in rows) + 2
    lines = [f"{'id':<{w}}{'phase':<11}{'kind':<11}summary", "-" * 100]
    lines += [f"{i:<{w}}{p:<11}{k:<11}{s}" for i, p, k, s in rows]
    lines.append(f"{len(rows)} known bugs; `parity check` and `parity run` replay the diverging step under those of "
                 f"its phase and name the ones that reproduce the port's numbers")
    return "\n".join(lines)

