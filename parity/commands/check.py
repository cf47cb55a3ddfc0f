"""`parity check TRACE`: judge a microgpt port in any language from the trace it writes (parity/sources/porttrace/).

torch_ref replays the port's run from the port's own initial weights, over the port's own documents:

- lockstep, at every step that carries tensors: torch starts from the port's weights before the step (the
  previous step's `params`, else `init`, else its own lockstep continuation) and computes the loss, the
  logits and every parameter's gradient; then torch.optim.Adam, its state carried across steps, is fed the
  port's own gradients and its updated weights are compared with the port's `params`. A wrong forward shows
  as the loss or logits, a wrong backward rule as a gradient, a wrong Adam as the updated weights: each at
  the first step where it happens.
- free: torch trains on its own from `init` over the port's documents; the port's losses are compared step
  by step, showing the drift over the run.
"""

from dataclasses import replace
from typing import Callable, Optional, Sequence, Union

import numpy as np

from parity.diagnosis.losses import LossesState
from parity.diagnosis.state import StateRecorder
from parity.errors import InputError, as_parity_errors
from parity.judge.compare import compare_records
from parity.judge.quantities import port_quantities
from parity.judge.report import MODES, Report, first_divergence
from parity.judge.tolerances import tolerance
from parity.sources import forked
from parity.sources.porttrace.meta import ADD_TENSORS, doc_count
from parity.sources.porttrace.precision import precision
from parity.sources.porttrace.reader import PortTrace
from parity.sources.replay import record_torch_step
from pure.model import param_shapes

from .common import PathLike, modes_of, open_details, plan_outputs, write_outputs
from .diagnose import name_the_bug


def _port_record(s, config):
    """The port's numbers at step s, under the quantities' names (only what the trace carries)."""
    rec = {"loss": np.array(s.loss)}
    if s.logits is not None:
        rec["logits"] = np.asarray(s.logits, dtype=np.float64)
    for kind, flat in (("grad:", s.grads), ("param:", s.params)):
        if flat is not None:
            rec.update({kind + name: a for name, a in named_arrays(flat, config).items()})
    return rec


def named_arrays(flat, config):
    """A flat parameter list (or array) in the seed's order -> name -> (rows, cols) float64 array views."""
    flat = np.asarray(flat, dtype=np.float64)
    out, at = {}, 0
    for name, (rows, cols) in param_shapes(config).items():
        out[name] = flat[at:at + rows * cols].reshape(rows, cols)
        at += rows * cols
    return out


def _moments(trainer):
    """torch's Adam moments before the next update, as a function returning them (m, v) flat in the seed's order
    (zeros before the first update): the copies are cheap, the lists are made only for a step that diverged."""
    copies = []
    for p in trainer.params_by_name().values():
        state = trainer.optimizer.state.get(p, {})
        copies.append((p.numel(), *(state[k].detach().clone() if k in state else None
                                    for k in ("exp_avg", "exp_avg_sq"))))

    def flat():
        m, v = [], []
        for numel, *pair in copies:
            for out, t in zip((m, v), pair):
                out += t.double().reshape(-1).tolist() if t is not None else [0.0] * numel
        return m, v
    return flat


def _free_checks(free, steps, quantities, dtype):
    """(step, its checks) of free mode, step by step: torch trains on by itself, and its loss is compared with
    the port's. steps: (step, tokens, loss) of each of the trace's steps."""
    loss = [q for q in quantities if q.name == "loss"]
    for step, tokens, port_loss in steps:
        torch_rec = record_torch_step(free, tokens, intermediates=False, tensors=False)
        yield step, compare_records("free", step, loss, {"loss": np.array(port_loss)}, torch_rec,
                                    lambda q: tolerance(q, dtype, "free"), "port")


def _free_steps(free, trace, quantities, dtype, device, lockstep):
    """The free replay's checks as an iterator: with a lockstep replay to run meanwhile, in a forked process where
    that is safe (the two replays are independent: two cores do them at the same time), else here, step by step."""
    steps = [(s.step, s.tokens, s.loss) for s in trace]  # a few numbers a step: what the child needs of the trace
    if not (lockstep and forked.can_fork(device)):
        return _free_checks(free, steps, quantities, dtype)
    import torch

    return forked.Forked(lambda: _free_checks(free, steps, quantities, dtype),
                         setup=lambda: torch.set_num_threads(1))  # the child's ops are tiny; a pool would only wait


def _run_facts(path, meta, dtype, dtype_from, device, steps):
    """The JSON's "run" section for a check: the trace's own facts (the terms it was replayed with)."""
    a = meta.adam
    facts = {"trace": str(path), "implementation": meta.implementation, "dtype": dtype, "dtype_from": dtype_from,
             "device": device, "config": meta.config.to_dict(), "lr": a.lr, "beta1": a.beta1, "beta2": a.beta2,
             "eps": a.eps, "lr_steps": meta.steps, "lr_steps_given": meta.steps_given, "steps": steps}
    effective = meta.declaration.effective
    if not effective.is_microgpt:
        facts["replayed_as"] = effective.deviations()
    return facts


def _custom_rates(trace, adam, declaration):
    """A custom schedule's rates, the step lines' own; nan for a step without one (then no update there can pass)."""
    if adam.lr_schedule != "custom":
        return adam
    rates = tuple(float("nan") if s.lr is None else s.lr for s in trace)
    missing = sum(r != r for r in rates)
    if missing:
        declaration.errors.append(f"the variant declares lr_schedule custom, but {missing} step line(s) carry no lr: "
                                  f"write each step's \"lr\" (the rate its update used)")
    return replace(adam, rates=rates)


def judged_dtype(dtype, meta, init):
    """(dtype, where it comes from, notes): --dtype, else meta's dtype, else what the numbers are; a note when the
    numbers say otherwise than meta, or carry too few digits."""
    found = precision(init)
    notes = [f"{found.describe()}"] if found.kind == "short" else []
    if dtype:
        return dtype, "--dtype", notes
    if meta.dtype:
        if meta.dtype == "float32" and found.kind == "float64":
            notes.append(f"meta says float32, but {found.describe()}: judged with float32's tolerances, about 1e8 "
                         f"times looser than float64's; drop \"dtype\" unless the port computes in float32")
        if meta.dtype == "float64" and found.kind == "float32":
            notes.append(f"meta says float64, but {found.describe()}: if the port computes in float32, say \"dtype\": "
                         f"\"float32\" in meta (or pass --dtype float32)")
        return meta.dtype, "meta", notes
    if found.kind == "float32":
        notes.append(f"judged as float32: {found.describe()} and meta gives no dtype (say \"dtype\": \"float32\" "
                     f"in meta to make it explicit)")
        return "float32", "the trace's numbers", notes
    return "float64", "default", notes


def replay_trace(path, *, dtype=None, device="cpu", modes=MODES, on_step=None, keep_checks=True, details=None,
                trace=None, strict=False):
    """Replay a port trace in torch_ref and compare; returns a Report. TraceError for an unusable trace. trace: the
    trace already read (PortTrace(path).spool()); without it, the trace is spooled here first (the free replay
    reads the steps' documents before the lockstep one starts). The port's declared variant (parity.judge.variants) is
    replayed as declared, and a deviation it does not declare makes the verdict diverge; strict: so does any
    declared one."""
    from torch_ref.train import DTYPES, TorchTrainer

    if trace is None:
        spooled = PortTrace(path).spool()
        try:
            return replay_trace(path, dtype=dtype, device=device, modes=modes, on_step=on_step, keep_checks=keep_checks,
                               details=details, trace=spooled, strict=strict)
        finally:
            spooled.close()
    meta = trace.meta
    config = meta.config
    declaration = meta.declaration.for_check(strict)
    adam = _custom_rates(trace, meta.adam, declaration)
    dtype, dtype_from, dtype_notes = judged_dtype(dtype, meta, trace.init)
    quantities = port_quantities(config)
    report = Report("port", quantities, {}, dtype=dtype, model_config=config, keep_checks=keep_checks,
                    details=details, notes=dtype_notes)
    if dtype_from == "the trace's numbers":
        report.verdict_suffix = "judged as float32: the trace's numbers are float32"
    trainers = {mode: TorchTrainer.from_params(config, trace.init, steps=meta.steps, adam=adam, dtype=DTYPES[dtype],
                                               device=device, variant=declaration.effective) for mode in modes}
    lock, free = trainers.get("lockstep"), trainers.get("free")
    known = True  # the lockstep model holds the port's exact weights before this step
    have = {"grads": 0, "params": 0, "logits": 0}
    unanchored = []  # steps with tensors whose weights before them the trace does not give (nor can derive)
    recorder = StateRecorder(config, adam, meta.steps, dtype,  # for the diagnosis (parity.diagnosis)
                             loss_reduction=declaration.effective.loss_reduction)
    weights = trace.init  # the port's weights before this step, when known
    tokens, losses = [], []  # for a losses-only trace's diagnosis
    free_steps = None if free is None else _free_steps(free, trace, quantities, dtype, device, lock is not None)
    try:
        for s in trace:
            checks = []
            declaration.step_docs(doc_count(s.tokens))
            if adam.lr_schedule != "custom" and s.step <= meta.steps:
                declaration.step_lr(s.step, s.lr, meta.steps)
            if lock is not None:
                tensors = s.grads is not None or s.params is not None or s.logits is not None
                if not recorder.done:
                    moments = _moments(lock) if recorder.history is None else None
                    recorder.before(s.step, s.tokens, weights if known else None, torch_moments=moments)
                torch_rec = record_torch_step(lock, s.tokens, intermediates=False, grads=s.grads,
                                              moments=False)  # a trace has no moments to compare
                if tensors and not known:
                    unanchored.append(s.step)
                if tensors and known:
                    # the loss, then what the trace carries; the updated weights only when Adam ran on the port's
                    # own gradients
                    wanted = {"loss"} | ({"logits"} if s.logits is not None else set())
                    if s.grads is not None:
                        wanted |= {q.name for q in quantities if q.name.startswith("grad:")}
                    if s.params is not None and s.grads is not None:
                        wanted |= {q.name for q in quantities if q.name.startswith("param:")}
                    checks += compare_records("lockstep", s.step, [q for q in quantities if q.name in wanted],
                                              _port_record(s, config), torch_rec,
                                              lambda q: tolerance(q, dtype, "lockstep"), "port")
                failing = [c for c in checks if not c.ok]
                if failing and not recorder.done:
                    recorder.diverged(_port_record(s, config), first_divergence(failing, quantities)["phase"])
                recorder.after(s.grads)
                if s.params is not None:
                    lock.load_params(s.params)  # the next step starts from the port's own weights
                known = s.params is not None or (known and s.grads is not None)
                if not recorder.done:
                    weights = s.params if s.params is not None else (lock.flat_values() if known else None)
            if free_steps is not None:
                step, free_checks = next(free_steps)
                if step != s.step:
                    raise RuntimeError(f"the free replay answered for step {step} at step {s.step}")
                checks += free_checks
            for key in have:
                have[key] += getattr(s, key) is not None
            if not (have["grads"] or have["params"] or have["logits"]):
                tokens.append(s.tokens)
                losses.append(s.loss)
            report.add(checks)
            report.steps = s.step
            if on_step:
                on_step(s.step, checks)
    finally:  # the free replay's process, when it still runs (an error here, an interrupt)
        if free_steps is not None:
            free_steps.close()
    if lock is not None and not (have["grads"] or have["params"] or have["logits"]):
        report.notes.append(f"lockstep: not checked: the trace has losses only, so only the free replay compares "
                            f"them; {ADD_TENSORS}, and optionally \"logits\" (one row per position)")
    elif lock is not None:
        missing = [k for k in ("grads", "params") if not have[k]]
        if missing:
            report.notes.append(f"lockstep: no {' or '.join(missing)} in the trace, so "
                                f"{'the backward' if 'grads' in missing else 'the optimizer'} was not checked; "
                                f"{ADD_TENSORS}")
    if unanchored:
        report.notes.append(f"lockstep: {len(unanchored)} step(s) with tensors (first: step {unanchored[0]}) were not "
                            f"checked in lockstep: the step before gave neither params nor grads, so the port's "
                            f"weights before them are unknown; add \"params\" to the step before")
    if not meta.steps_given:
        report.notes.append(f"meta has no steps: the lr decays over the seed's {meta.steps} steps; if the port "
                            f"trained for another number, add \"steps\" to meta")
    checked = {q.phase for c in report.tally.worst.values() if c.mode == "lockstep"
               for q in quantities if q.name == c.quantity}
    if lock is not None:
        missing = [phase for phase in ("forward", "backward", "optimizer") if phase not in checked]
        if missing:
            report.unchecked = _unchecked(missing, have)
        elif meta.adam.lr == 0:  # the trace's own terms would hide any optimizer: nothing moves
            report.unchecked = ("meta's lr is 0, so the weights never move and no update is checked: trace the run "
                                "with the learning rate it trains with")
    if config.head_dim == 1:
        report.notes.append("head_dim is 1 (n_head = n_embd): sqrt(head_dim) is 1, so a missing attention scale "
                            "cannot show; check a config with wider heads too")
    report.finish()
    fd = report.first_divergence
    free_failed = any(c.mode == "free" and not c.ok for c in report.tally.worst.values())
    report.capture = recorder.state
    if report.capture is not None and free is not None:
        report.capture.free_agrees = not free_failed
    if fd is not None and fd["mode"] == "free" and len(losses) == report.steps:
        report.capture = LossesState(config, list(trace.init), tokens, losses, adam, meta.steps, dtype,
                                     fd["step"], declaration.effective.loss_reduction)
    if fd is not None and fd["mode"] == "lockstep" and free is not None and not free_failed and report.steps > 1:
        report.notes.append(f"free mode agrees over all {report.steps} steps: the port's training looks right, so its "
                            f"trace is the suspect (gradients read after they were zeroed, weights read before the "
                            f"update, parameters in another order than the seed's, too few digits)")
    report.run = _run_facts(path, meta, dtype, dtype_from, device, report.steps)
    report.extra = {"trace": str(path), "implementation": meta.implementation, "notes": report.notes,
                    "adam": {k: v for k, v in adam.__dict__.items() if k != "rates"}, "lr_steps": meta.steps}
    report.variant = declaration.to_json()
    report.declaration_errors = declaration.problems()
    return report


WHAT = {"forward": "the loss", "backward": "the gradients", "optimizer": "the updated weights"}
ADD = {"forward": '"params" on the step before (or "grads"), so that the weights are known',
       "backward": '"grads" (every parameter\'s .grad after backward, before the update)',
       "optimizer": '"params" (every parameter after the update), with "grads"'}


def _unchecked(missing, have):
    """The part of a partial verdict that says what was not checked in lockstep, and what to add."""
    if not (have["grads"] or have["params"] or have["logits"]):
        return ('gradients and weights are not in the trace: add "grads" and "params" to the step lines '
                '(python -m parity writer LANG writes them)')
    return (f"{' and '.join(WHAT[m] for m in missing)} not checked in lockstep: add "
            f"{'; '.join(ADD[m] for m in missing)}")


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
    limits (parity.sources.porttrace.Limits) bound what a trace may ask (line length, size, steps, config).
    progress(total) may return on_step(step, checks), as for run(). diagnose: name the bug of a divergence
    (report.diagnosis).
    Returns a Report.

    >>> report = parity.check_trace("run.jsonl")  # doctest: +SKIP
    >>> report.verdict, report.first_divergence["phase"]
    ('diverge', 'backward')
    """
    from parity.sources.porttrace.limits import Limits
    from parity.sources.porttrace.reader import PortTrace

    log = log or (lambda text: None)
    with as_parity_errors():
        modes = modes_of(modes)
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

                resolve_device(device)
                preload()  # while the reader still reads
                steps = len(trace)
                c = trace.meta.config
                judged, source, _ = judged_dtype(dtype, trace.meta, trace.init)
                log(f"port: {trace.meta.implementation or 'unnamed'}; n_layer {c.n_layer}, n_embd {c.n_embd}, n_head "
                    f"{c.n_head}, block_size {c.block_size}, vocab {c.vocab_size}; {steps} steps; torch_ref in "
                    f"{judged} ({'float64 unless meta says otherwise' if source == 'default' else 'from ' + source})")
                on_step = progress(steps) if progress else None
                with open_details(details) as details_file:
                    report = replay_trace(path, dtype=dtype, device=device, modes=modes, on_step=on_step,
                                    keep_checks=False, details=details_file, trace=trace, strict=strict)
            finally:  # the spool, and the reader if it still runs (an error, an interrupt)
                trace.close()
            getattr(on_step, "close", lambda: None)()
            report.title = f"parity check: {path}"
            if diagnose:
                name_the_bug(report, log)
            return write_outputs(report, json, plot, junit, markdown)
