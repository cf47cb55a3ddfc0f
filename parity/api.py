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


def _value(value, for_ops=False):
    """(class, its name) from a spec "file.py:Class" / "module:Class", a class object, or None (pure's Value)."""
    from .user_value import check_protocol, load_value

    if isinstance(value, type):
        name = f"{value.__module__}:{value.__qualname__}"
        if for_ops:
            from .user_value import OPS_METHODS

            return check_protocol(value, name=name, needs=OPS_METHODS, purpose="be checked op by op"), name
        return check_protocol(value, name=name), name
    if value is not None and not str(value).strip():
        raise InputError("--value was given an empty spec; give path/to/file.py:Class or module:Class, or leave "
                         "--value out")
    return load_value(value, for_ops=for_ops)


def _diagnose(report, log, value_cls=None):
    """Name the bug of a diverging report (parity.diagnose): for a user's Value class, the first op `parity ops`
    finds wrong; else the replay of the diverging step under the catalogue of known bugs."""
    if report.verdict != "diverge" or (report.first_divergence or {}).get("quantity") == "engine":
        return
    from pure.engine import Value

    if value_cls is not None and value_cls is not Value:
        log("diagnosing: checking the Value class rule by rule (parity ops) ...")
        report.diagnosis = _ops_diagnosis(value_cls, report.first_divergence)
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


def _ops_diagnosis(value_cls, fd):
    """The first op of the class that `parity ops` finds wrong, as a diagnosis; None when every op is right."""
    from .ops import run_ops
    from .ops_cases import RULES, specs
    from .ops_report import format_input

    bad = run_ops(value_cls).failing
    if not bad:
        return None
    uses = {s.name: s.uses for s in specs()}

    def entry(r):
        rules = [RULES[m] for m in uses.get(r.op, ()) if m in RULES]
        return {"id": f"ops:{r.op}", "summary": f"the Value class's {r.op} is wrong", "kind": "rule",
                "fix": "; ".join(rules) or "the rules of `parity ops`' table", "phase": fd["phase"], "step": fd["step"],
                "evidence": f"parity ops: {r.op} at {format_input(r.input, 80)}: {r.detail}"}

    first = entry(bad[0])
    first["alternatives"] = [entry(r) for r in bad[1:]]
    return first


def run(data: Union[PathLike, Sequence[str], None] = None, *, seed: int = 42, steps: int = 1000, n_layer: int = 1,
        n_embd: int = 16, n_head: int = 4, block_size: int = 16, lr: float = 0.01, samples: int = 20,
        temperature: float = 0.5, dtype: str = "float64", device: str = "cpu",
        modes: Union[str, Sequence[str]] = MODES, engine: Optional[str] = None, value=None,
        json: Optional[PathLike] = None, plot: Optional[PathLike] = None, junit: Optional[PathLike] = None,
        markdown: Optional[PathLike] = None, details: Optional[PathLike] = None, diagnose: bool = True,
        progress: Optional[Callable] = None, log: Optional[Callable[[str], None]] = None):
    """`parity run`: train pure and torch_ref side by side and compare every quantity at every step.

    data: a names file, a list of documents, or None (the loader's order, else the synthetic corpus, saying so
    through `log`). value: a Value class of your own (a class, or "path/to/file.py:Class" / "module:Class") that
    pure's model runs with instead of pure's. progress(total) may return on_step(step, checks), called after each
    step (and its .close(), if any, at the end). diagnose: name the bug of a divergence (report.diagnosis).
    Returns a Report.

    >>> import parity
    >>> report = parity.run(steps=20, samples=0)
    >>> report.ok, report.verdict_line  # doctest: +SKIP
    (True, 'verdict: agree (2840 checks over 20 steps, modes lockstep, free)')
    """
    from pure.data import ENV_VAR, load_docs_or_corpus
    from pure.model import GPTConfig
    from torch_ref.train import resolve_device

    from .side_by_side import RunConfig, run_parity
    from .user_value import spec_file

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
        value_cls, value_name = _value(value)
        if value is not None and engine == "fused":
            raise InputError("--engine fused runs pure's own Value only; a --value class runs the plain engine "
                             "(drop --engine)")
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
                               device=device, engine=engine)
            from pure.train import default_engine

            log(f"parity: pure ({engine or default_engine(value_cls)} engine) vs torch_ref ({dtype}, {device}) on "
                f"{source}: {len(docs)} docs, seed {seed}, {steps} steps, modes {', '.join(modes)}")
            if value is not None:
                log(f"pure runs with Value class {value_name}")
            on_step = progress(steps) if progress else None
            with _details(details) as details_file:
                report = run_parity(docs, config, modes=modes, on_step=on_step, value_cls=value_cls,
                                    keep_checks=False, details=details_file)
            getattr(on_step, "close", lambda: None)()
            report.data = source
            report.title = "parity run" + (f" --value {value_name}" if value is not None else "")
            if diagnose:
                _diagnose(report, log, value_cls)
            return _write(report, json, plot, junit, markdown)


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
                progress: Optional[Callable] = None, log: Optional[Callable[[str], None]] = None):
    """`parity check`: judge a port in any language from the trace it writes (see the README's port-trace format).

    The whole trace is read first, so an unusable line is an InputError before any work. progress(total) may
    return on_step(step, checks), as for run(). diagnose: name the bug of a divergence (report.diagnosis).
    Returns a Report.

    >>> report = parity.check_trace("run.jsonl")  # doctest: +SKIP
    >>> report.verdict, report.first_divergence["phase"]
    ('diverge', 'backward')
    """
    from torch_ref.train import resolve_device

    from .check import check_trace as replay
    from .check import judged_dtype
    from .porttrace import PortTrace

    log = log or (lambda text: None)
    with as_parity_errors():
        modes = _modes(modes)
        if dtype not in (None, "float64", "float32"):
            raise InputError(f"dtype must be float64 or float32, got {dtype!r}")
        resolve_device(device)
        outputs = {"--json": json, "--plot": plot, "--junit": junit, "--markdown": markdown, "--details": details}
        with plan_outputs(outputs, {"TRACE": path}):
            log("reading the whole trace first, so that an unusable line is found before any work ...")
            trace = PortTrace(path)
            steps = sum(1 for _ in trace)  # raises TraceError naming the line
            c = trace.meta.config
            judged, source, _ = judged_dtype(dtype, trace.meta, trace.init)
            log(f"port: {trace.meta.implementation or 'unnamed'}; n_layer {c.n_layer}, n_embd {c.n_embd}, n_head "
                f"{c.n_head}, block_size {c.block_size}, vocab {c.vocab_size}; {steps} steps; torch_ref in {judged} "
                f"({'float64 unless meta says otherwise' if source == 'default' else 'from ' + source})")
            on_step = progress(steps) if progress else None
            with _details(details) as details_file:
                report = replay(path, dtype=dtype, device=device, modes=modes, on_step=on_step, keep_checks=False,
                                details=details_file)
            getattr(on_step, "close", lambda: None)()
            report.title = f"parity check: {path}"
            if diagnose:
                _diagnose(report, log)
            return _write(report, json, plot, junit, markdown)


def check_ops(value=None, *, seed: int = 0, json: Optional[PathLike] = None, junit: Optional[PathLike] = None,
              markdown: Optional[PathLike] = None):
    """`parity ops`: every rule of a Value class against torch.autograd (float64) and finite differences.

    value: a class, "path/to/file.py:Class", "module:Class", or None for pure's own Value. Returns an OpsReport
    (verdict "agree", "partial" when every op the class has is right but one the model needs is absent, or
    "diverge").

    >>> report = parity.check_ops("tests/engines/wrong_rules.py:WrongLog")  # doctest: +SKIP
    >>> report.verdict, [r.op for r in report.failing]
    ('diverge', ['log', 'cross-entropy'])
    """
    from .ops import run_ops
    from .user_value import spec_file

    with as_parity_errors():
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {seed!r}")
        value_cls, value_name = _value(value, for_ops=True)
        outputs = {"--json": json, "--junit": junit, "--markdown": markdown}
        with plan_outputs(outputs, {"--value": spec_file(value) if isinstance(value, str) else None}):
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
