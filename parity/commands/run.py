"""`parity run`: train pure and torch_ref side by side and compare every quantity at every step.

Two modes run together, from one pure trajectory:
- lockstep: before each step torch_ref is reset to pure's weights, Adam moments and schedule position, and its
  Adam updates with pure's gradients (torch's own are compared), so each step's own error is measured fresh;
- free: torch_ref trains on its own from the same seed, showing how the gap grows over the run.
"""

import os
from dataclasses import asdict, replace
from typing import Callable, Optional, Sequence, Union

import numpy as np

from parity.errors import InputError, as_parity_errors
from parity.judge.compare import Check, Tol, compare_records
from parity.judge.quantities import RAISED, SAMPLES, step_quantities
from parity.judge.report import MODES, Report, first_divergence
from parity.judge.tolerances import tolerance
from parity.sources.pure_side import RunConfig, pure_events
from parity.sources.replay import record_torch_step
from pure.engine import Value
from pure.model import param_shapes

from .common import (
    MAX_MEMORY,
    TIMEOUT,
    PathLike,
    check_limits,
    is_isolated,
    modes_of,
    open_details,
    plan_outputs,
    value_class,
    write_outputs,
)
from .diagnose import name_the_bug

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
    (parity.sources.pure_side.pure_events); by default pure runs here, in this process; parity.worker streams it from a
    worker process instead, where code under test cannot touch the judge.
    """
    from parity.diagnosis.state import StateRecorder
    from torch_ref.train import TorchTrainer

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
    if first[0] == "raised":
        report.add([raised_check(m, first[1], first[2]) for m in modes])
        return report.finish()
    initial = first[1]

    def tolerance_of(mode):
        return lambda q: tolerance(q, run.dtype, mode)

    # What a replay of the first diverging step needs (parity.diagnosis): the weights and Adam's moments before it,
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
            # lockstep: torch's Adam is fed pure's own gradients (as `check` feeds a port's), so that the optimizer's
            # check measures the update alone: Adam divides by sqrt(v) + eps, which turns a gradient's last-bit
            # rounding into 1e-13 in a weight whose v is tiny (a correct class then read diverge, now and then)
            grads = _named(pure_rec, "grad:", config) if mode == "lockstep" else None
            torch_rec = record_torch_step(trainer, tokens, grads=grads)
            step_checks += compare_records(mode, step, quantities, pure_rec, torch_rec, tolerance_of(mode), "pure")
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


def run(data: Union[PathLike, Sequence[str], None] = None, *, seed: int = 42, steps: int = 1000, n_layer: int = 1,
        n_embd: int = 16, n_head: int = 4, block_size: int = 16, lr: float = 0.01, samples: int = 20,
        temperature: float = 0.5, dtype: str = "float64", device: str = "cpu",
        modes: Union[str, Sequence[str]] = MODES, engine: Optional[str] = None, value=None,
        json: Optional[PathLike] = None, plot: Optional[PathLike] = None, junit: Optional[PathLike] = None,
        markdown: Optional[PathLike] = None, details: Optional[PathLike] = None, diagnose: bool = True,
        isolate: Optional[bool] = None, timeout: float = TIMEOUT, max_memory: int = MAX_MEMORY,
        progress: Optional[Callable] = None, log: Optional[Callable[[str], None]] = None,
        variant: Union[str, dict, None] = None):
    """`parity run`: train pure and torch_ref side by side and compare every quantity at every step.

    variant: a declared variant of microgpt that both run ("activation=relu2,lr_schedule=cosine", or a dict of
    pure.variants' keys); its lr, when it gives one, is the run's lr.

    data: a names file, a list of documents, or None (the loader's order, else the synthetic corpus, saying so
    through `log`). value: a Value class of your own (a class, or "path/to/file.py:Class" / "module:Class") that
    pure's model runs with instead of pure's. pure runs in a worker process (isolate: parity.worker), with
    `timeout` seconds for the whole job and `max_memory` MB of address space; a class object runs in this process.
    progress(total) may return on_step(step, checks), called after each step (and its .close(), if any, at the
    end). diagnose: name the bug of a divergence (report.diagnosis). Returns a Report.

    >>> import parity
    >>> report = parity.run(steps=20, samples=0)
    >>> report.ok, report.verdict_line  # doctest: +SKIP
    (True, 'verdict: agree (2840 checks over 20 steps, modes lockstep, free)')
    """
    from parity.sources.pure_side import RunConfig
    from parity.sources.user_value import parse_spec, spec_file
    from pure.data import ENV_VAR, load_docs_or_corpus
    from pure.model import GPTConfig
    from torch_ref.train import resolve_device

    log = log or (lambda text: None)
    with as_parity_errors():
        modes = modes_of(modes)
        GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size)  # before any work
        for name, v, least in (("steps", steps, 1), ("samples", samples, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise InputError(f"{name} must be an integer >= {least}, got {v!r}")
        if dtype not in ("float64", "float32"):
            raise InputError(f"dtype must be float64 or float32, got {dtype!r}")
        resolve_device(device)
        check_limits(timeout, max_memory)
        declared, lr = _variant(variant, lr)
        isolated = is_isolated(value, isolate)
        if value is not None and engine == "fused":
            raise InputError("--engine fused runs pure's own Value only; a --value class runs the plain engine "
                             "(drop --engine)")
        if isolated:  # the spec is checked here; the class is imported by the worker alone
            if value is not None:
                parse_spec(value)
            value_cls, value_name = None, value or "pure.engine:Value"
        else:
            value_cls, value_name = value_class(value, activation=declared.get("activation", "relu"))
        data_path = None if (data is None or not isinstance(data, (str, os.PathLike))) else data
        inputs = {"--data": data_path or (os.environ.get(ENV_VAR) if data is None else None),
                  "--value": spec_file(value) if isinstance(value, str) else None}
        outputs = {"--json": json, "--plot": plot, "--junit": junit, "--markdown": markdown, "--details": details}
        with plan_outputs(outputs, inputs):
            if data is None or data_path is not None:
                docs, source = load_docs_or_corpus(data_path, warn=log)
            else:
                docs, source = list(data), f"{len(data)} documents given"
                if not docs or not all(isinstance(d, str) and d for d in docs):
                    raise InputError("data must be a names file or a non-empty list of non-empty strings")
            config = RunConfig(seed=seed, steps=steps, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                               block_size=block_size, lr=lr, samples=samples, temperature=temperature, dtype=dtype,
                               device=device, engine=engine, variant=declared)
            shown_engine = engine or ("plain" if value is not None else "fused")

            def header():  # once the class is known to be usable: an unusable one is one error line, nothing more
                log(f"parity: pure ({shown_engine} engine{', in a worker' if isolated else ''}) vs torch_ref "
                    f"({dtype}, {device}) on {source}: {len(docs)} docs, seed {seed}, {steps} steps, modes "
                    f"{', '.join(modes)}")
                if value is not None:
                    log(f"pure runs with Value class {value_name}")

            with open_details(details) as details_file:
                options = dict(keep_checks=False, details=details_file)
                report = _run_pure_side(docs, config, modes, value, value_cls, isolated, timeout, max_memory,
                                        options, header, progress)
            report.data = source
            report.title = "parity run" + (f" --value {value_name}" if value is not None else "")
            if diagnose:
                name_the_bug(report, log, value_cls, value if isolated else None, timeout, max_memory)
            return write_outputs(report, json, plot, junit, markdown)


def _variant(variant, lr):
    """(the declared deviations without lr, the run's lr) from run()'s variant= and lr=; InputError if unusable."""
    from pure.variants import Variant, VariantError, for_run

    try:
        checked = for_run(variant, None if lr == Variant.lr else lr)  # run()'s default lr is no second lr
    except VariantError as e:
        raise InputError(f"--variant: {e}") from None
    return {k: v for k, v in checked.deviations().items() if k != "lr"}, checked.lr


def _run_pure_side(docs, config, modes, value, value_cls, isolated, timeout, max_memory, options, header, progress):
    """run_parity with pure here (in-process) or in a worker, the judge's files checked around the worker; header()
    once the class is known to be usable, then progress(steps) for the step loop's on_step."""
    import itertools

    from parity.sources.user_value import spec_file
    from parity.worker.events import run_events
    from parity.worker.process import Worker, judge_unchanged
    from pure.model import GPTConfig
    from pure.rng import Rng
    from pure.train import shuffled

    def run(**more):
        header()
        on_step = progress(config.steps) if progress else None
        try:
            return run_parity(docs, config, modes=modes, on_step=on_step, **options, **more)
        finally:
            getattr(on_step, "close", lambda: None)()

    if not isolated:
        return run(value_cls=value_cls)
    order, tokenizer = shuffled(docs, Rng(config.seed))
    variant = config.declared()
    model = GPTConfig(n_layer=config.n_layer, n_embd=config.n_embd, n_head=config.n_head,
                      block_size=config.block_size, vocab_size=tokenizer.vocab_size, **variant.model_fields())
    n = variant.docs_per_step  # a step's record holds its last document's intermediates
    from dataclasses import asdict

    job = {"mode": "run", "spec": value, "run": asdict(config), "cwd": os.getcwd()}
    with judge_unchanged(), Worker(job, timeout=timeout, max_memory=max_memory, docs=docs,
                                   user_file=spec_file(value) if value else None) as worker:
        events = run_events(worker, config, model, lambda k: tokenizer.encode(order[(k * n + n - 1) % len(order)]))
        first = next(events)  # the class imported and checked, or an InputError before anything is said
        report = run(events=itertools.chain([first], events))
    report.worker_output = worker.captured
    return report


def check_value(value, *, steps: int = 20, **options):
    """`parity run --value`: pure's model run with your Value class, compared with torch_ref at every step.

    value: a class, or "path/to/file.py:Class" / "module:Class". The other options are run()'s (steps defaults
    to 20 here, a quick check; samples to 0). Returns a Report.

    >>> report = parity.check_value("tests/engines/micrograd_style.py:Value", steps=3)  # doctest: +SKIP
    >>> report.ok
    True
    """
    options.setdefault("samples", 0)
    return run(steps=steps, value=value, **options)
