"""The hypotheses a diverging step is replayed under: each bug of the catalogue whose phase it is, the tracing
slips tested on the numbers themselves (gradients after zeroing, weights before the update, too few digits,
float32), and the one learning rate that would explain the update."""

from dataclasses import replace

import numpy as np

from parity.judge.tolerances import tolerance
from parity.sources.porttrace.precision import precision
from pure.model import split_flat
from pure.optim import Adam

from .step_replay import (
    PHASE_ORDER,
    Trial,
    adam_replay,
    adam_sample,
    compared_names,
    fit,
    forward_backward,
    rss_miss,
    value_params,
)

LR_FIT_SPREAD = {"float64": 1e-9, "float32": 1e-4}  # the relative spread of the lr implied by every weight, for a fit


# ---- the hypotheses ----------------------------------------------------------------------------------------------

def trials_of_bugs(state, bugs, reference):
    trials = []
    phases = PHASE_ORDER[:PHASE_ORDER.index(state.phase) + 1]
    shared = value_params(state.weights, state.config) if state.phase == "forward" else None
    for bug in bugs:
        if bug.kind == "optimizer" and bug.phase == "optimizer":
            grads = reference["grads"]
            if grads is None:
                continue
            names = compared_names(state, ("optimizer",))
            patches = bug.patches(state.config) if bug.patches else ()
            sample = adam_sample(state, grads, patches, bug.adam, names)
            if sample is not None and sample[0] > 1.0:  # some elements already miss: no full replay
                trials.append(Trial(bug, sample[0], sample[1], names, sampled=True))
                continue
            cand = adam_replay(state, grads, patches, bug.adam)
        elif bug.id == "grads-not-zeroed":
            if state.prev_grads is None:
                continue
            names = compared_names(state, phases)
            cand = dict(reference["fwd"]) if reference["fwd"] else None
            if cand is not None:  # the fresh gradients plus the port's own previous (already piled-up) ones
                prev = split_flat(state.prev_grads, state.config)
                for name, rows in prev.items():
                    cand["grad:" + name] = cand["grad:" + name] + np.array(rows)
        else:
            names = compared_names(state, phases)
            cand = forward_backward(state, bug.patches(state.config), backward=state.phase != "forward",
                                    params=shared)
        trials.append(Trial(bug, fit(cand, state, names), rss_miss(cand, state, names), names))
    return trials


def trials_of_slips(state, slips, reference):
    """The port right, its trace wrong: gradients after zeroing, weights before the update, too few digits."""
    by_id = {b.id: b for b in slips}
    trials = []
    ref = reference["fwd"] or {}
    if state.phase == "backward" and "slip-grads-after-zeroing" in by_id:
        names = compared_names(state, ("forward", "backward"))
        cand = dict(ref, **{n: np.zeros_like(state.port[n]) for n in names if n.startswith("grad:")})
        trials.append(Trial(by_id["slip-grads-after-zeroing"], fit(cand, state, names), rss_miss(cand, state, names),
                            names))
    if state.phase == "optimizer" and "slip-weights-before-update" in by_id:
        names = compared_names(state, ("optimizer",))
        cand = {"param:" + n: np.array(rows) for n, rows in split_flat(state.weights, state.config).items()}
        trials.append(Trial(by_id["slip-weights-before-update"], fit(cand, state, names), rss_miss(cand, state, names),
                            names))
    if "slip-too-few-digits" in by_id:
        names = compared_names(state, (state.phase,))
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
                                rss_miss(target, state, names), names, f"{digits} significant digits"))
    if "slip-float32-judged-as-float64" in by_id and state.dtype == "float64":
        names = compared_names(state, (state.phase,))
        target = reference["opt"] if state.phase == "optimizer" else ref
        numbers = list(state.weights) + [x for n in state.port for x in np.asarray(state.port[n]).reshape(-1).tolist()]
        if target and all(n in target for n in names) and precision(numbers).kind == "float32":
            as32 = replace(state, dtype="float32")
            trials.append(Trial(by_id["slip-float32-judged-as-float64"], fit(target, as32, names),
                                rss_miss(target, state, names), names, "within float32's tolerances"))
    return trials


def lr_fit(state, seed):
    """The one learning rate that explains the port's update, if one does: (lr, the seed's lr at the step). seed:
    the seed's replay of the update (adam_replay), None when it cannot be had."""
    if seed is None:
        return None
    names = compared_names(state, ("optimizer",))
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
