"""The diagnosis of a trace with losses only: the forward and optimizer bugs replayed as whole runs in free mode;
a bug is named only when it reproduces every loss of the trace."""

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from parity.judge.report import format_used
from parity.judge.tolerances import tolerance
from pure.engine import gc_paused
from pure.optim import Adam, AdamConfig

from .bugs import catalogue, injected
from .diagnose import one_finding, ties
from .step_replay import step_loss, value_params

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
    params = value_params(state.weights, config)
    cfg = replace(state.adam, **(bug.adam if bug else {}))
    opt = Adam(flatten(params), state.total_steps, cfg)
    losses = []
    try:
        with injected(bug.patches(config) if bug and bug.patches else ()):
            for k, tokens in enumerate(state.tokens[:upto]):
                with gc_paused():
                    loss = step_loss(tokens, params, config, None, fused.SUMS, state.loss_reduction)
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
    known = catalogue()
    bugs = [b for b in (known if bugs is None else bugs) if b.kind in ("model", "optimizer")
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
        first = one_finding([entry(*m) for m in matches if ties(matches[0][0], m[0])])
    else:
        first = {"id": None, "summary": "no known bug reproduces this", "fix": None, "kind": None, "phase": "free",
                 "step": state.first, "closest": None, "alternatives": [], "ambiguous": False,
                 "evidence": f"{len(bugs)} of the {len(known)} known bugs (those of the forward and the "
                             f"optimizer) replayed as whole runs in free mode; none reproduces every loss"}
    first["seconds"] = round(time.perf_counter() - t0, 3)
    return first
