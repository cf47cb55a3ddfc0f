"""`parity run`: train pure and torch_ref side by side and compare every quantity at every step.

Two modes run together, from one pure trajectory:
- lockstep: before each step torch_ref is reset to pure's weights, Adam moments and schedule position,
  so each step's own error is measured fresh;
- free: torch_ref trains on its own from the same seed, showing how the gap grows over the run.
"""

from dataclasses import asdict, replace

import numpy as np

from pure.engine import Value
from pure.model import param_shapes

from .compare import Check, Tol, compare_records
from .pure_side import RunConfig, pure_events, record_pure_step  # noqa: F401 - RunConfig, record_pure_step: API
from .quantities import RAISED, SAMPLES, step_quantities
from .replay import record_torch_step
from .report import MODES, Report, first_divergence
from .tolerances import tolerance
from .variants import verdict_words

# ---- checks that are not elementwise --------------------------------------------------------------------------

def samples_check(mode, step, pure_samples, torch_samples):
    bad = [i for i, (a, b) in enumerate(zip(pure_samples, torch_samples)) if a != b]
    bad += list(range(min(len(pure_samples), len(torch_samples)), max(len(pure_samples), len(torch_samples))))
    check = Check(mode, step, SAMPLES, float(len(bad)), float(len(bad)) / max(1, len(pure_samples)),
                  Tol(0.0, 0.0), not bad, [bad[0]] if bad else None, mismatched=len(bad), numel=len(pure_samples))
    if bad:
        i = bad[0]
        check.detail = {"first_differing_sample": i + 1, "pure": pure_samples[i] if i < len(pure_samples) else None,
                        "torch": torch_samples[i] if i < len(torch_samples) else None}
    return check


def raised_check(mode, step, failure):
    """A failing check standing for every quantity the step would have produced: the Value class raised (failure:
    ValueClassError.to_json(), {"phase", "exception", "where"})."""
    return Check(mode, step, RAISED, float("inf"), float("inf"), Tol(0.0, 0.0), False, ratio=float("inf"),
                 detail=dict(failure))


def _named(rec, kind, config):
    """A record's matrices of one kind ("param:", "adam_m:", ...) as name -> array, in the seed's order."""
    return {name: rec[kind + name] for name in param_shapes(config)}


def _flat(named):
    """name -> array, as one flat list in the seed's order."""
    return [x for a in named.values() for x in np.asarray(a).reshape(-1).tolist()]


# ---- the run -------------------------------------------------------------------------------------------------

def run_parity(docs, run=None, *, modes=MODES, value_cls=Value, on_step=None, tamper=None, keep_checks=True,
               details=None, events=None):
    """Train both implementations for run.steps steps and compare everything; returns a Report.

    on_step(step, checks) is called after each step (for progress). tamper(torch_trainer) is applied to
    torch_ref's state after every reset (lockstep) and once at the start (free): the tests use it to
    perturb a weight and check that the harness notices. value_cls is the Value class pure's model runs
    with, which is how a user's own class gets in; if it raises, that step fails in every mode with a
    RAISED check naming the exception, and the run stops there. events: pure's side as a stream
    (parity.pure_side.pure_events); by default pure runs here, in this process; parity.worker streams it from a
    worker process instead, where code under test cannot touch the judge.
    """
    from torch_ref.train import TorchTrainer

    from .diagnose import StateRecorder

    run = run or RunConfig()
    variant = run.declared()
    kwargs = dict(seed=run.seed, steps=run.steps, n_layer=run.n_layer, n_embd=run.n_embd, n_head=run.n_head,
                  block_size=run.block_size, variant=variant, dtype=run.dtype, device=run.device)
    torch_sides = {mode: TorchTrainer(docs, **kwargs) for mode in modes}  # lockstep, then free
    if "free" in torch_sides and tamper:
        tamper(torch_sides["free"])
    some = next(iter(torch_sides.values()))
    config = some.config
    quantities = step_quantities(config)
    events = iter(pure_events(docs, run, value_cls) if events is None else events)
    first = next(events)  # ("init", the initial weights, the engine pure runs), or ("raised", ...) at the start
    run = replace(run, engine=first[2] if first[0] == "init" else run.engine)  # the report says which engine ran
    report = Report("pure", quantities, asdict(run), dtype=run.dtype, model_config=config, samples={},
                    keep_checks=keep_checks, details=details, steps=run.steps)
    report.variant = variant.deviations() or None  # both sides run it: declared, so nothing is undeclared
    report.variant_words = verdict_words(variant)
    if first[0] == "raised":
        report.add([raised_check(m, first[1], first[2]) for m in modes])
        return report.finish()
    initial = first[1]

    def tolerance_of(mode):
        return lambda q: tolerance(q, run.dtype, mode)

    # What a replay of the first diverging step needs (parity.diagnose): the weights and Adam's moments before it,
    # which are the previous step's record (the initial weights and zero moments before step 1).
    recorder = StateRecorder(config, variant.adam_config(), run.steps, run.dtype, reference="pure",
                             loss_reduction=variant.loss_reduction)
    zeros = np.zeros(len(initial))
    previous = None  # the record of the step before
    for event in events:
        if event[0] == "raised":
            report.add([raised_check(m, event[1], event[2]) for m in modes])
            return report.finish()
        if event[0] == "samples":
            break
        _, step, pure_rec = event
        weights, m, v = ((initial, zeros, zeros) if previous is None else
                         (_named(previous, "param:", config), _named(previous, "adam_m:", config),
                          _named(previous, "adam_v:", config)))
        if "lockstep" in torch_sides:
            torch_sides["lockstep"].load_state(weights, m, v, step - 1)
            if tamper:
                tamper(torch_sides["lockstep"])
        tokens = some.tokens_at(step - 1) if variant.docs_per_step == 1 else some.docs_at(step - 1)
        step_checks = []
        for mode, trainer in torch_sides.items():
            step_checks += compare_records(mode, step, quantities, pure_rec, record_torch_step(trainer, tokens),
                                           tolerance_of(mode), "pure")
        report.add(step_checks)
        failing = [c for c in step_checks if not c.ok and c.mode == "lockstep"]
        if failing and not recorder.done:
            flat = [(_flat(x) if isinstance(x, dict) else list(x)) for x in (weights, m, v)]
            recorder.before(step, tokens, *flat, None,
                            None if previous is None else _flat(_named(previous, "grad:", config)))
            recorder.diverged(pure_rec, first_divergence(failing, quantities)["phase"])
            report.capture = recorder.state
        previous = pure_rec
        if on_step:
            on_step(step, step_checks)
    else:
        return report.finish()  # the stream ended without samples: nothing more to compare
    if report.capture is not None and "free" in torch_sides:
        report.capture.free_agrees = not any(c.mode == "free" and not c.ok for c in report.tally.failing)
    # Samples: minGPT's escalation ends here, at the decoded strings.
    _, pure_samples, rng_state = event
    for mode, trainer in torch_sides.items():
        if mode == "lockstep":
            trainer.load_state(_named(previous, "param:", config), _named(previous, "adam_m:", config),
                               _named(previous, "adam_v:", config), run.steps)
            trainer.rng.set_state(rng_state)
        torch_samples = trainer.sample(run.samples, run.temperature)
        report.add([samples_check(mode, run.steps, pure_samples, torch_samples)])
        report.samples[mode] = {"pure": pure_samples, "torch": torch_samples}
    return report.finish()
