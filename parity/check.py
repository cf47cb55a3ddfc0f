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

import time

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR

from pure.model import param_shapes
from torch_ref.model import MicroGPT
from torch_ref.train import CPU_THREADS, DTYPES, resolve_device
from torch_ref.weights import load_pure_params, name_map

from .compare import compare
from .harness import MODES, Report, RunConfig, first_divergence
from .porttrace import ADD_TENSORS, PortTrace
from .quantities import param_names_backward
from .tolerances import tolerance


def port_quantities(config):
    """(quantity, phase) in search order: forward, then backward (lm_head first), then the optimizer."""
    out = [("logits", "forward"), ("loss", "forward")]
    out += [(f"grad:{n}", "backward") for n in param_names_backward(config)]
    out += [(f"param:{n}", "optimizer") for n in param_shapes(config)]
    return out


def _split(flat, config):
    """Flat seed-order floats -> {name: rows}."""
    out, offset = {}, 0
    for name, (rows, cols) in param_shapes(config).items():
        out[name] = [flat[offset + r * cols: offset + (r + 1) * cols] for r in range(rows)]
        offset += rows * cols
    return out


class Replay:
    """torch_ref's model with torch.optim.Adam and the seed's linear lr decay, from a port's weights."""

    def __init__(self, meta, init, dtype, device):
        self.config, self.meta = meta.config, meta
        self.dtype, self.device = DTYPES[dtype], resolve_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(CPU_THREADS)  # tiny tensors: one thread (see torch_ref.train.CPU_THREADS)
        self.model = MicroGPT(self.config).to(device=self.device, dtype=self.dtype)
        self.load(init)
        named = dict(self.model.named_parameters())
        self.params = {name: named[key] for name, key in name_map(self.config.n_layer).items()}  # pure name -> tensor
        a = meta.adam
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps,
                                          foreach=False)
        self.scheduler = LambdaLR(self.optimizer, lr_lambda=lambda s: 1 - s / meta.steps)

    def load(self, flat):
        load_pure_params(self.model, _split(flat, self.config))

    def forward_backward(self, tokens):
        """(loss, logits (n, V)) of the document, with every parameter's gradient in .grad."""
        self.optimizer.zero_grad(set_to_none=True)
        n = min(self.config.block_size, len(tokens) - 1)
        ids = torch.tensor(tokens[:n + 1], device=self.device)  # (n+1,)
        logits = self.model(ids[:-1])  # (n, V)
        loss = F.cross_entropy(logits, ids[1:])
        loss.backward()
        return loss, logits

    def set_grads(self, flat):
        for name, rows in _split(flat, self.config).items():
            p = self.params[name]
            p.grad = torch.tensor(rows, dtype=p.dtype, device=p.device)

    def update(self):
        self.optimizer.step()
        self.scheduler.step()

    def arrays(self, attr):
        return {name: (p.grad if attr == "grad" else p).detach().cpu().double().numpy()
                for name, p in self.params.items()}


def _np(rows):
    import numpy as np

    return np.array(rows, dtype=np.float64)


class CheckReport(Report):
    """parity run's report, with what the trace let us check and what it did not."""

    def __init__(self, run, trace, meta, **kw):
        super().__init__(run, **kw)
        self.trace, self.meta, self.notes = trace, meta, []
        self.reference_name = "port"

    def to_json(self):
        d = super().to_json()
        d.pop("samples")
        d.update({"trace": self.trace, "implementation": self.meta.implementation, "notes": self.notes,
                  "adam": self.meta.adam.__dict__, "lr_steps": self.meta.steps})
        return d


def check_trace(path, *, dtype=None, device="cpu", modes=MODES, on_step=None, keep_checks=True, details=None):
    """Replay a port trace in torch_ref and compare; returns a CheckReport. TraceError for an unusable trace."""
    t0 = time.perf_counter()
    trace = PortTrace(path)
    meta = trace.meta
    dtype = dtype or meta.dtype or "float64"
    run = RunConfig(steps=0, n_layer=meta.config.n_layer, n_embd=meta.config.n_embd, n_head=meta.config.n_head,
                    block_size=meta.config.block_size, lr=meta.adam.lr, samples=0, dtype=dtype, device=device)
    report = CheckReport(run, str(path), meta, model_config=meta.config, keep_checks=keep_checks, details=details)
    quantities = port_quantities(meta.config)
    lock = Replay(meta, trace.init, dtype, device) if "lockstep" in modes else None
    free = Replay(meta, trace.init, dtype, device) if "free" in modes else None
    known = True  # the lockstep model holds the port's exact weights before this step
    have = {"grads": 0, "params": 0, "logits": 0}
    unanchored = []  # steps with tensors whose weights before them the trace does not give (nor can derive)
    for s in trace:
        checks = []
        if lock is not None:
            tensors = s.grads is not None or s.params is not None or s.logits is not None
            loss, logits = lock.forward_backward(s.tokens)
            if tensors and not known:
                unanchored.append(s.step)
            if tensors and known:
                checks.append(compare("lockstep", s.step, "loss", s.loss, loss.item(),
                                      tolerance("loss", dtype, "lockstep")))
                if s.logits is not None:
                    checks.append(compare("lockstep", s.step, "logits", _np(s.logits), logits.detach().double().cpu()
                                          .numpy(), tolerance("logits", dtype, "lockstep"), per_position=True))
                if s.grads is not None:
                    mine = lock.arrays("grad")
                    for name, rows in _split(s.grads, meta.config).items():
                        checks.append(compare("lockstep", s.step, f"grad:{name}", _np(rows), mine[name],
                                              tolerance("grad:", dtype, "lockstep")))
            if s.grads is not None:
                lock.set_grads(s.grads)  # Adam judged on the port's own gradients
            lock.update()
            if s.params is not None:
                if known and s.grads is not None:
                    mine = lock.arrays("data")
                    for name, rows in _split(s.params, meta.config).items():
                        checks.append(compare("lockstep", s.step, f"param:{name}", _np(rows), mine[name],
                                              tolerance("param:", dtype, "lockstep")))
                lock.load(s.params)  # the next step starts from the port's own weights
            known = s.params is not None or (known and s.grads is not None)
        if free is not None:
            loss, _ = free.forward_backward(s.tokens)
            free.update()
            checks.append(compare("free", s.step, "loss", s.loss, loss.item(), tolerance("loss", dtype, "free")))
        for key in have:
            have[key] += getattr(s, key) is not None
        report.add(checks)
        run.steps = s.step
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
    report.first_divergence = first_divergence(report.tally.failing, quantities)
    report.seconds = time.perf_counter() - t0
    return report
