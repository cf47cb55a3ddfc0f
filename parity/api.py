"""The harness as a library: each command of `python -m parity` as a function that returns its report.

Every function checks its inputs and output paths before any work, writes the outputs asked for (`json=`,
`plot=`, `junit=`, `markdown=`, `details=`), and raises parity.ParityError (never SystemExit) with the one-line
message the command would print. The commands themselves are these functions plus printing.
"""

import contextlib
import os
from typing import Callable, Optional, Sequence, Union

from .errors import InputError, as_parity_errors

PathLike = Union[str, "os.PathLike[str]"]
MODES = ("lockstep", "free")


def _modes(modes):
    from .report import parse_modes

    return parse_modes(modes if isinstance(modes, str) else ",".join(modes))


def plan_outputs(outputs, inputs=None):
    """Check every output path before the work (pure.outputs.OutputPlan); `--plot` needs matplotlib."""
    from pure.outputs import OutputPlan

    suffixes = {}
    if outputs.get("--plot"):
        try:
            from .plot import plot_formats

            suffixes["--plot"] = plot_formats()
        except ImportError:
            raise InputError("--plot needs matplotlib, which is not installed here: pip install "
                             "'microgpt-parity[plot]' (or pip install matplotlib), or leave --plot out") from None
    return OutputPlan(outputs, inputs=inputs, suffixes=suffixes).check()


def _write(report, json=None, plot=None, junit=None, markdown=None):
    """Write the outputs asked for; returns [(what, path)] written."""
    written = []
    if json:
        report.to_json(json)
        written.append(("report", json))
    if plot:
        from .plot import write_plot

        write_plot(report, plot)
        written.append(("plot", plot))
    if junit:
        report.to_junit(junit)
        written.append(("junit", junit))
    if markdown:
        report.to_markdown(markdown)
        written.append(("markdown", markdown))
    report.written = written
    return report


def _details(path):
    from pure.outputs import AtomicFile

    return AtomicFile(path) if path else contextlib.nullcontext()


def _value(value, for_ops=False, activation="relu"):
    """(class, its name) from a spec "file.py:Class" / "module:Class", a class object, or None (pure's Value);
    activation: a declared variant's, whose methods the class needs too."""
    from .user_value import check_protocol, load_value

    if isinstance(value, type):
        name = f"{value.__module__}:{value.__qualname__}"
        if for_ops:
            from .user_value import OPS_METHODS

            return check_protocol(value, name=name, needs=OPS_METHODS, purpose="be checked op by op"), name
        return check_protocol(value, name=name, activation=activation), name
    if value is not None and not str(value).strip():
        raise InputError("--value was given an empty spec; give path/to/file.py:Class or module:Class, or leave "
                         "--value out")
    return load_value(value, for_ops=for_ops, activation=activation)


def _diagnose(report, log, value_cls=None, value_spec=None, timeout=None, max_memory=None):
    """Name the bug of a diverging report (parity.diagnose): for a user's Value class, the first op `parity ops`
    finds wrong; else the replay of the diverging step under the catalogue of known bugs."""
    if report.verdict != "diverge" or (report.first_divergence or {}).get("quantity") == "engine":
        return
    from pure.engine import Value

    if value_spec is not None or (value_cls is not None and value_cls is not Value):
        log("diagnosing: checking the Value class rule by rule (parity ops) ...")
        ops = (check_ops(value_spec, timeout=timeout, max_memory=max_memory) if value_spec is not None else
               check_ops(value_cls))
        report.diagnosis = _ops_diagnosis(ops, report.first_divergence)
        if report.diagnosis is not None:
            return
    from .diagnose import LossesState, diagnose, diagnose_losses

    state = report.capture
    if isinstance(state, LossesState):
        log("diagnosing: replaying whole runs under the known bugs of the forward and the optimizer ...")
        report.diagnosis = diagnose_losses(state)
    elif state is not None:
        log(f"diagnosing: replaying step {state.step} under the known bugs of the {state.phase} ...")
        report.diagnosis = diagnose(state)


def _ops_diagnosis(ops, fd):
    """The wrong rule(s) `parity ops` finds in the class, as the run's diagnosis (the same text as `parity ops`'
    diagnosis: the rule, the input, what it got and what torch says, the fix); None when every rule is right. The
    rows that fail only because they are built on a wrong rule are counted in the evidence, never offered as other
    causes (no alternatives)."""
    d = ops.diagnosis
    if d is None:
        return None
    return dict(d, phase=fd["phase"], step=fd["step"], alternatives=[])


TIMEOUT, MAX_MEMORY = 3600.0, 4096  # the defaults of a job that runs code under test: seconds, MB


def _limits(timeout, max_memory):
    for name, v in (("timeout", timeout), ("max_memory", max_memory)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise InputError(f"{name} must be a positive number, got {v!r}")


def _isolated(value, isolate):
    """Whether the code runs in a worker (parity.worker): a spec or pure's own Value does, unless isolate=False; a
    class object (a notebook's) runs here, in this process, which has imported it already."""
    if isolate is None:
        return not isinstance(value, type)
    if isolate and isinstance(value, type):
        raise InputError("a class object cannot run in a worker: give its spec, path/to/file.py:Class or "
                         "module:Class, or isolate=False")
    return bool(isolate)


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
    from pure.data import ENV_VAR, load_docs_or_corpus
    from pure.model import GPTConfig
    from torch_ref.train import resolve_device

    from .side_by_side import RunConfig
    from .user_value import parse_spec, spec_file

    log = log or (lambda text: None)
    with as_parity_errors():
        modes = _modes(modes)
        GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size)  # before any work
        for name, v, least in (("steps", steps, 1), ("samples", samples, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise InputError(f"{name} must be an integer >= {least}, got {v!r}")
        if dtype not in ("float64", "float32"):
            raise InputError(f"dtype must be float64 or float32, got {dtype!r}")
        resolve_device(device)
        _limits(timeout, max_memory)
        declared, lr = _variant(variant, lr)
        isolated = _isolated(value, isolate)
        if value is not None and engine == "fused":
            raise InputError("--engine fused runs pure's own Value only; a --value class runs the plain engine "
                             "(drop --engine)")
        if isolated:  # the spec is checked here; the class is imported by the worker alone
            if value is not None:
                parse_spec(value)
            value_cls, value_name = None, value or "pure.engine:Value"
        else:
            value_cls, value_name = _value(value, activation=declared.get("activation", "relu"))
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

            with _details(details) as details_file:
                options = dict(keep_checks=False, details=details_file)
                report = _run_pure_side(docs, config, modes, value, value_cls, isolated, timeout, max_memory,
                                        options, header, progress)
            report.data = source
            report.title = "parity run" + (f" --value {value_name}" if value is not None else "")
            if diagnose:
                _diagnose(report, log, value_cls, value if isolated else None, timeout, max_memory)
            return _write(report, json, plot, junit, markdown)


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

    from pure.model import GPTConfig
    from pure.rng import Rng
    from pure.train import shuffled

    from .side_by_side import run_parity
    from .user_value import spec_file
    from .worker import Worker, judge_unchanged, run_events

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


def check_trace(path: PathLike, *, dtype: Optional[str] = None, device: str = "cpu",
                modes: Union[str, Sequence[str]] = MODES, json: Optional[PathLike] = None,
                plot: Optional[PathLike] = None, junit: Optional[PathLike] = None,
                markdown: Optional[PathLike] = None, details: Optional[PathLike] = None, diagnose: bool = True,
                limits=None, progress: Optional[Callable] = None, log: Optional[Callable[[str], None]] = None,
                strict: bool = False, names: Union[None, PathLike, dict] = None):
    """`parity check`: judge a port in any language from the trace it writes (see the README's port-trace format).

    names: the port's names for its matrices, {port's name: the seed's name} (a dict, or a JSON file holding one:
    `--names FILE`), over the trace's meta.names; a matrix not named goes by the seed's name.

    A port's declared variant (meta.variant) is replayed as declared and agrees "as a variant of microgpt"; a
    deviation it does not declare diverges; strict: any declared variant diverges too (report.variant holds the
    declaration).

    The whole trace is read first (once: it is spooled), so an unusable line is an InputError before any work;
    limits (parity.porttrace.Limits) bound what a trace may ask (line length, size, steps, config). progress(total) may
    return on_step(step, checks), as for run(). diagnose: name the bug of a divergence (report.diagnosis).
    Returns a Report.

    >>> report = parity.check_trace("run.jsonl")  # doctest: +SKIP
    >>> report.verdict, report.first_divergence["phase"]
    ('diverge', 'backward')
    """
    from .porttrace import Limits, PortTrace

    log = log or (lambda text: None)
    with as_parity_errors():
        modes = _modes(modes)
        if dtype not in (None, "float64", "float32"):
            raise InputError(f"dtype must be float64 or float32, got {dtype!r}")
        limits = limits or Limits()
        outputs = {"--json": json, "--plot": plot, "--junit": junit, "--markdown": markdown, "--details": details}
        with plan_outputs(outputs, {"TRACE": path}):
            log("reading the whole trace first, so that an unusable line is found before any work ...")
            # read once, in a process of its own while this one imports torch (about a second); len() waits for
            # it and raises its TraceError naming the line
            trace = PortTrace(path, limits, names).spool(background=True)
            try:
                from torch_ref.train import preload, resolve_device

                from .check import check_trace as replay
                from .check import judged_dtype

                resolve_device(device)
                preload()  # while the reader still reads
                steps = len(trace)
                c = trace.meta.config
                judged, source, _ = judged_dtype(dtype, trace.meta, trace.init)
                log(f"port: {trace.meta.implementation or 'unnamed'}; n_layer {c.n_layer}, n_embd {c.n_embd}, n_head "
                    f"{c.n_head}, block_size {c.block_size}, vocab {c.vocab_size}; {steps} steps; torch_ref in "
                    f"{judged} ({'float64 unless meta says otherwise' if source == 'default' else 'from ' + source})")
                on_step = progress(steps) if progress else None
                with _details(details) as details_file:
                    report = replay(path, dtype=dtype, device=device, modes=modes, on_step=on_step,
                                    keep_checks=False, details=details_file, trace=trace, strict=strict)
            finally:  # the spool, and the reader if it still runs (an error, an interrupt)
                trace.close()
            getattr(on_step, "close", lambda: None)()
            report.title = f"parity check: {path}"
            if diagnose:
                _diagnose(report, log)
            return _write(report, json, plot, junit, markdown)


def check_ops(value=None, *, seed: int = 0, json: Optional[PathLike] = None, junit: Optional[PathLike] = None,
              markdown: Optional[PathLike] = None, isolate: Optional[bool] = None, timeout: float = TIMEOUT,
              max_memory: int = MAX_MEMORY):
    """`parity ops`: every rule of a Value class against torch.autograd (float64) and finite differences.

    value: a class, "path/to/file.py:Class", "module:Class", or None for pure's own Value; a spec runs in a worker
    (parity.worker: `timeout` seconds for the whole job, `max_memory` MB), a class object in this process. Returns
    an OpsReport (verdict "agree", "partial" when every op the class has is right but one the model needs is
    absent, or "diverge").

    >>> report = parity.check_ops("tests/engines/wrong_rules.py:WrongLog")  # doctest: +SKIP
    >>> report.verdict, [r.op for r in report.failing]
    ('diverge', ['log', 'cross-entropy'])
    """
    from .ops import run_ops
    from .ops_cases import specs
    from .user_value import parse_spec, spec_file
    from .worker import Worker, judge_unchanged, ops_events

    with as_parity_errors():
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {seed!r}")
        _limits(timeout, max_memory)
        isolated = value is not None and _isolated(value, isolate)
        if isolated:
            parse_spec(value)
        else:
            value_cls, value_name = _value(value, for_ops=True)
        outputs = {"--json": json, "--junit": junit, "--markdown": markdown}
        with plan_outputs(outputs, {"--value": spec_file(value) if isinstance(value, str) else None}):
            if isolated:
                job = {"mode": "ops", "spec": value, "seed": seed, "cwd": os.getcwd()}
                with judge_unchanged(), Worker(job, timeout=timeout, max_memory=max_memory,
                                               user_file=spec_file(value)) as worker:
                    report = run_ops(None, seed, results=ops_events(worker, specs()), value_name=value)
                report.worker_output = worker.captured
            else:
                report = run_ops(value_cls, seed=seed)
                report.value_class = value_name
            return _write(report, json, None, junit, markdown)


def mutants(*, only: Union[str, Sequence[str], None] = None, data: Optional[PathLike] = None,
            json: Optional[PathLike] = None, junit: Optional[PathLike] = None, markdown: Optional[PathLike] = None,
            on_start: Optional[Callable] = None):
    """`parity mutants`: inject each bug of the catalogue into pure and show the harness catches and localises it.

    Returns a MutantsReport (`ok`: every bug caught and localised, every harmless control agreeing).

    >>> parity.mutants(only="exp_grad_one").ok  # doctest: +SKIP
    True
    """
    from pure.corpus import make_corpus
    from pure.data import load_docs

    from .mutant_check import run_mutants, select

    with as_parity_errors():
        chosen = select(only)
        with plan_outputs({"--json": json, "--junit": junit, "--markdown": markdown}, {"--data": data}):
            docs = load_docs(data) if data else make_corpus()
            return _write(run_mutants(docs, chosen, on_start=on_start), json, None, junit, markdown)
