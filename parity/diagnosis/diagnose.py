"""Name the bug, not only the place: replay the diverging step under each known bug and name the ones that
reproduce the port's own numbers.

When `parity check` or `parity run` finds its first divergence at step k, the replay starts from the state the
port was in before that step (its weights, Adam's moments and step count, its document) and runs the step in
pure (the plain engine, float64) once as the seed does it and once per bug of parity.diagnosis.bugs whose phase is the
diverging one, each injected for that replay only. A bug is named only when its replay reproduces the port's own
numbers of that phase (and of the phases before it), every element within the tolerance the verdict used, where
the seed's replay does not. Several bugs that reproduce it equally well are one finding, named together (a tie);
one is named alone only when it fits clearly better (CLEARLY_BETTER). Tracing slips are tested on the numbers
themselves (gradients read after they were zeroed, weights read before the update, the parameters in another order
read from what each matrix's gradient shows, matrices written column by column, too few digits), and a learning
rate that differs is fitted. When nothing reproduces, the diagnosis says so, and names the nearest bug only when it
explains most of the error (CLOSEST_EXPLAINS), as not a match: no name is better than a wrong one.
"""

import math
import time
from dataclasses import replace

import numpy as np

from parity.judge.report import format_used

from .bugs import LR_FIX, catalogue
from .hypotheses import lr_fit, trials_of_bugs, trials_of_slips
from .layouts import trials_of_layouts
from .step_replay import (
    PHASE_ORDER,
    adam_replay,
    compared_names,
    fit,
    forward_backward,
    max_abs_diff,
    port_grads,
    rss_miss,
)

# Two bugs that both reproduce the port are told apart only when one fits clearly better: when the next uses more
# than CLEARLY_BETTER times the best's share of the allowance and more than ROUNDING_SHARE of it. Below
# ROUNDING_SHARE both are the port's numbers to within rounding (an exact reproduction uses ~1e-3 of the
# allowance, which is ~100x the measured noise: parity.judge.tolerances), and within a factor of 10 the two differ by
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
WHAT = {"forward": "loss", "backward": "gradients", "optimizer": "updated weights"}


# ---- the diagnosis -------------------------------------------------------------------------------------------

def ties(best, ratio):
    """Whether a fit of `ratio` reproduces the port as well as the best fit (`best`): not clearly worse, or within
    rounding of the port's numbers (CLEARLY_BETTER, ROUNDING_SHARE)."""
    return ratio <= max(best * CLEARLY_BETTER, ROUNDING_SHARE)


def one_finding(entries):
    """Entries that reproduce the port equally well, best first, as one finding: the first, with the others named
    beside it (ambiguous, candidates: all of them, alternatives: the rest)."""
    first = dict(entries[0])
    first["ambiguous"] = len(entries) > 1
    first["candidates"] = list(entries) if len(entries) > 1 else []
    first["alternatives"] = list(entries[1:])
    return first


def _evidence(trial, state, ref_miss):
    note = f" ({trial.note})" if trial.note else ""
    return (f"reproduces the port's {WHAT[state.phase]} at step {state.step}{note} to {format_used(trial.ratio)} of "
            f"the allowance, where the seed's replay misses by {ref_miss:.1e}")


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
    names = compared_names(state, phases if state.phase != "optimizer" else ("optimizer",))
    fwd = forward_backward(state, backward=state.phase != "forward") if state.phase != "optimizer" else None
    grads = port_grads(state)
    opt = adam_replay(state, grads) if state.phase == "optimizer" and grads is not None else None
    seed = fwd if state.phase != "optimizer" else opt
    if seed is None or fit(seed, state, names) <= 1.0:
        return None  # the seed's replay reproduces the port (or cannot run): nothing to name
    reference = {"fwd": fwd, "opt": opt, "grads": grads}
    ref_miss = max_abs_diff(seed, state, names)
    ref_rss = rss_miss(seed, state, names)
    # a deviation of the model can first show in the backward (the gist's earlier revision starts mlp_fc2 and attn_wo
    # at zero, so relu^2 changes no loss at step 1, only gradients): those are tried there too
    candidates = [b for b in bugs if b.kind != "slip" and (b.phase == state.phase or (
        b.variant and b.kind == "model" and state.phase == "backward"))]
    slips = [b for b in bugs if b.kind == "slip"]
    trials = trials_of_bugs(state, candidates, reference) + trials_of_slips(state, slips, reference)
    trials += trials_of_layouts(state, slips)
    # best fit first; among equal fits (the same numbers: a bug and a slip that both zero every gradient), what the
    # free run says decides: a port whose training agrees is right, so its trace is the suspect

    def rank(t):
        slip = t.bug.kind == "slip"
        return (round(t.ratio, 6), (not slip) if state.free_agrees else slip)

    matches = sorted((t for t in trials if t.reproduces), key=rank)

    def fitted():  # the one lr that explains the update, in words; fitted only where it is said
        lr = lr_fit(state, opt) if state.phase == "optimizer" else None
        return f"the port's lr at step {state.step} is {lr[0]:.6g}, the seed's {lr[1]:.6g}" if lr else None

    n_bugs, n_forms = len({t.bug.id for t in trials}), len(trials)
    replayed = (f"{n_bugs} of the {len(bugs)} known bugs replayed at step {state.step}"
                + (f" in {n_forms} forms" if n_forms != n_bugs else ""))
    if matches:
        tied = _tied(matches, state)
        first = one_finding([_entry(t, state, ref_miss) for t in tied])
        first["evidence"] += f"; {replayed}"
        if len(tied) > 1:
            worst = max(t.ratio for t in tied)
            first["evidence"] = (f"each reproduces the port's {WHAT[state.phase]} at step {state.step} to at most "
                                 f"{format_used(worst)} of the allowance, where the seed's replay misses by "
                                 f"{ref_miss:.1e}; {replayed}")
        lr_words = fitted() if tied[0].bug.id.startswith("lr-") else None
        if lr_words:
            first["evidence"] += f"; {lr_words}"
        first["seconds"] = round(time.perf_counter() - t0, 3)
        return first
    lr_words = fitted()
    if lr_words:
        return {"id": "lr-value", "summary": f"the learning rate differs: {lr_words}", "fix": LR_FIX,
                "kind": "optimizer", "phase": state.phase, "step": state.step, "ambiguous": False,
                "evidence": f"one learning rate explains every updated weight at step {state.step}",
                "alternatives": [], "seconds": round(time.perf_counter() - t0, 3)}
    best = min(trials, key=lambda t: t.miss, default=None)
    if best is not None and best.sampled:  # the nearest's miss, from a full replay
        patches = best.bug.patches(state.config) if best.bug.patches else ()
        best = replace(best, miss=rss_miss(adam_replay(state, grads, patches, best.bug.adam), state, best.names))
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
        if ties(best, t.ratio) and t.bug.id not in seen:
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
