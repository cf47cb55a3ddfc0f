"""`parity check TRACE`: judge a microgpt port in any language from the trace it writes (parity/porttrace.py).

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

import numpy as np

from pure.model import split_flat

from .compare import compare_records
from .porttrace import ADD_TENSORS, PortTrace
from .quantities import port_quantities
from .replay import record_torch_step
from .report import MODES, Report
from .tolerances import tolerance


def _port_record(s, config):
    """The port's numbers at step s, under the quantities' names (only what the trace carries)."""
    rec = {"loss": np.array(s.loss)}
    if s.logits is not None:
        rec["logits"] = np.array(s.logits, dtype=np.float64)
    for kind, flat in (("grad:", s.grads), ("param:", s.params)):
        if flat is not None:
            for name, rows in split_flat(flat, config).items():
                rec[kind + name] = np.array(rows, dtype=np.float64)
    return rec


def _run_facts(meta, dtype, device, steps):
    """The JSON's "run" section for a check (the keys of `parity run`'s)."""
    c = meta.config
    return {"seed": 42, "steps": steps, "n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head,
            "block_size": c.block_size, "lr": meta.adam.lr, "samples": 0, "temperature": 0.5, "dtype": dtype,
            "device": device, "engine": None}


def check_trace(path, *, dtype=None, device="cpu", modes=MODES, on_step=None, keep_checks=True, details=None):
    """Replay a port trace in torch_ref and compare; returns a Report. TraceError for an unusable trace."""
    from torch_ref.train import DTYPES, TorchTrainer

    trace = PortTrace(path)
    meta = trace.meta
    config = meta.config
    dtype = dtype or meta.dtype or "float64"
    quantities = port_quantities(config)
    report = Report("port", quantities, {}, dtype=dtype, model_config=config, keep_checks=keep_checks,
                    details=details)
    trainers = {mode: TorchTrainer.from_params(config, trace.init, steps=meta.steps, adam=meta.adam,
                                               dtype=DTYPES[dtype], device=device) for mode in modes}
    lock, free = trainers.get("lockstep"), trainers.get("free")
    known = True  # the lockstep model holds the port's exact weights before this step
    have = {"grads": 0, "params": 0, "logits": 0}
    unanchored = []  # steps with tensors whose weights before them the trace does not give (nor can derive)
    for s in trace:
        checks = []
        if lock is not None:
            tensors = s.grads is not None or s.params is not None or s.logits is not None
            torch_rec = record_torch_step(lock, s.tokens, intermediates=False, grads=s.grads)
            if tensors and not known:
                unanchored.append(s.step)
            if tensors and known:
                # the loss, then what the trace carries; the updated weights only when Adam ran on the port's
                # own gradients
                wanted = {"loss"} | ({"logits"} if s.logits is not None else set())
                wanted |= {q.name for q in quantities if q.name.startswith("grad:")} if s.grads is not None else set()
                if s.params is not None and s.grads is not None:
                    wanted |= {q.name for q in quantities if q.name.startswith("param:")}
                checks += compare_records("lockstep", s.step, [q for q in quantities if q.name in wanted],
                                          _port_record(s, config), torch_rec,
                                          lambda q: tolerance(q, dtype, "lockstep"), "port")
            if s.params is not None:
                lock.load_params(s.params)  # the next step starts from the port's own weights
            known = s.params is not None or (known and s.grads is not None)
        if free is not None:
            torch_rec = record_torch_step(free, s.tokens, intermediates=False, tensors=False)
            checks += compare_records("free", s.step, [q for q in quantities if q.name == "loss"],
                                      {"loss": np.array(s.loss)}, torch_rec, lambda q: tolerance(q, dtype, "free"),
                                      "port")
        for key in have:
            have[key] += getattr(s, key) is not None
        report.add(checks)
        report.steps = s.step
        if on_step:
            on_step(s.step, checks)
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
    report.run = _run_facts(meta, dtype, device, report.steps)
    report.extra = {"trace": str(path), "implementation": meta.implementation, "notes": report.notes,
                    "adam": meta.adam.__dict__, "lr_steps": meta.steps}
    return report.finish()
