"""`parity run`: train pure and torch_ref side by side and compare every quantity at every step.

Two modes run together, from one pure trajectory:
- lockstep: before each step torch_ref is reset to pure's weights, Adam moments and schedule position,
  so each step's own error is measured fresh;
- free: torch_ref trains on its own from the same seed, showing how the gap grows over the run.
"""

import json
import time
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from pure.engine import Value, gc_paused
from pure.optim import AdamConfig
from pure.train import Trainer

from .compare import Check, Tol, compare
from .engines import EngineFailure, graph_depth, run_engine
from .quantities import ENGINE, describe, family, step_quantities
from .record import record_pure_step, record_torch_step
from .report import Tally, json_safe
from .tolerances import tolerance

MODES = ("lockstep", "free")
PHASE_RANK = {"forward": 0, "backward": 1, "optimizer": 2, "samples": 3}


@dataclass
class RunConfig:
    seed: int = 42  # the one Rng seed: shuffle, init, sampling
    steps: int = 1000  # training steps (the lr decays to 0 over them)
    n_layer: int = 1
    n_embd: int = 16
    n_head: int = 4
    block_size: int = 16
    lr: float = 0.01
    samples: int = 20  # names sampled after training, compared as strings
    temperature: float = 0.5
    dtype: str = "float64"  # torch_ref's dtype; pure is always float64
    device: str = "cpu"  # torch_ref's device
    engine: Optional[str] = None  # pure's engine: "fused" or "plain"; None: fused for pure's Value, else plain


@dataclass
class Report:
    run: RunConfig
    checks: list = field(default_factory=list)  # every check, when kept (keep_checks); the tally has the rest
    first_divergence: Optional[dict] = None
    samples: dict = field(default_factory=dict)  # mode -> {"pure": [...], "torch": [...]}
    seconds: float = 0.0
    data: str = ""  # where the documents came from
    model_config: object = None  # the pure.GPTConfig both implementations ran (vocab size from the data)
    keep_checks: bool = True  # False: memory stays flat over a long run (the CLI); only the tally is kept
    details: object = None  # a file-like object: every check is written there as a JSON line (--details)
    tally: Tally = field(default_factory=Tally)

    def add(self, checks):
        self.tally.add(checks)
        if self.keep_checks:
            self.checks += checks
        if self.details is not None:
            for c in checks:
                self.details.write(json.dumps(json_safe(c.to_json()), allow_nan=False) + "\n")

    @property
    def verdict(self):
        return "agree" if self.first_divergence is None else "diverge"

    def verdict_line(self):
        fd = self.first_divergence
        if fd is None:
            return (f"verdict: agree ({self.tally.count} checks over {self.run.steps} steps, "
                    f"modes {', '.join(m for m in MODES if m in self.tally.modes)})")
        if fd["quantity"] == ENGINE:
            where = f" (at {fd['detail']['where']})" if fd["detail"]["where"] else ""
            return (f"first divergence: step {fd['step']} ({fd['mode']}), the Value class raised in "
                    f"{fd['phase']}: {fd['detail']['exception']}{where}")
        at = f"step {fd['step']} ({fd['mode']}, {fd['phase']})"
        where = f", position {fd['position']}" if fd.get("position") is not None else ""
        if fd.get("position") is None and fd.get("index"):
            where = f", index {tuple(fd['index'])}"
        nf = fd.get("nonfinite")
        if nf:
            side = {"ref": "pure", "torch": "torch_ref", "both": "pure and torch_ref"}[nf["side"]]
            value = nf["ref"] if nf["side"] != "torch" else nf["torch"]
            return (f"first divergence: {at}, {fd['description']}{where}: "
                    f"{side} has a non-finite value ({value}; pure {nf['ref']}, torch_ref {nf['torch']})")
        tol = Tol(**fd["tol"])
        return (f"first divergence: {at}, {fd['description']}{where}, "
                f"max abs {fd['max_abs']:.1e} (tol {tol})")

    def to_json(self):
        return {
            "verdict": self.verdict,
            "first_divergence": self.first_divergence,
            "verdict_line": self.verdict_line(),
            "run": self.run.__dict__,
            "model_config": self.model_config.to_dict() if self.model_config else None,
            "data": self.data,
            "seconds": round(self.seconds, 3),
            "samples": self.samples,
            "n_checks": self.tally.count,
            # the worst check of each quantity and mode over the run, with the step it happened at
            "checks": [c.to_json() for c in self.tally.worst.values()],
            "series": self.tally.series_by_family(),  # mode -> family -> [[step, worst share of tolerance]]
        }


def _compare_records(mode, step, pure_rec, torch_rec, quantities, dtype):
    checks = []
    for q, _phase in quantities:
        mask = None
        if q.endswith("attn_weights"):
            # Only the causal part exists in pure; torch's masked entries carry gradients of a zero weight.
            T = pure_rec[q].shape[0]
            mask = np.tril(np.ones((T, T), dtype=bool))
        per_position = family(q) in ("activation", "act_grad", "logits")
        checks.append(compare(mode, step, q, pure_rec[q], torch_rec[q], tolerance(q, dtype, mode), mask, per_position))
    return checks


def _samples_check(mode, step, pure_samples, torch_samples):
    bad = [i for i, (a, b) in enumerate(zip(pure_samples, torch_samples)) if a != b]
    bad += list(range(min(len(pure_samples), len(torch_samples)), max(len(pure_samples), len(torch_samples))))
    check = Check(mode, step, "samples", float(len(bad)), float(len(bad)) / max(1, len(pure_samples)),
                  Tol(0.0, 0.0), not bad, [bad[0]] if bad else None)
    if bad:
        i = bad[0]
        check.detail = {"first_differing_sample": i + 1, "pure": pure_samples[i] if i < len(pure_samples) else None,
                        "torch": torch_samples[i] if i < len(torch_samples) else None}
    return check


def engine_check(mode, step, failure):
    """A failing check standing for every quantity the step would have produced: the Value class raised."""
    return Check(mode, step, ENGINE, float("inf"), float("inf"), Tol(0.0, 0.0), False, ratio=float("inf"),
                 detail=failure.to_json())


def first_divergence(checks, quantities):
    order = {q: i for i, (q, _) in enumerate(quantities)}
    order["samples"] = len(order)
    order[ENGINE] = -1  # nothing else of that step was computed
    failing = [c for c in checks if not c.ok]
    if not failing:
        return None
    c = min(failing, key=lambda c: (c.step, MODES.index(c.mode), order[c.quantity]))
    phase = c.detail["phase"] if c.quantity == ENGINE else dict(quantities).get(c.quantity, "samples")
    return {"step": c.step, "mode": c.mode, "quantity": c.quantity, "phase": phase, "description": describe(c.quantity),
            "position": c.position, "index": c.index, "max_abs": c.max_abs, "max_rel": c.max_rel, "ratio": c.ratio,
            "tol": c.tol.to_json(),
            "nonfinite": c.nonfinite, **({"detail": c.detail} if c.detail else {})}


def run_parity(docs, run=None, *, modes=MODES, value_cls=Value, on_step=None, tamper=None, keep_checks=True,
               details=None):
    """Train both implementations for run.steps steps and compare everything; returns a Report.

    on_step(step, checks) is called after each step (for progress). tamper(torch_trainer) is applied to
    torch_ref's state after every reset (lockstep) and once at the start (free): the tests use it to
    perturb a weight and check that the harness notices. value_cls is the Value class pure's model runs
    with, which is how a user's own engine gets in; if it raises, that step fails in every mode with an
    ENGINE check naming the exception, and the run stops there.
    """
    from torch_ref.train import TorchTrainer

    t0 = time.perf_counter()
    run = run or RunConfig()
    kwargs = dict(seed=run.seed, steps=run.steps, n_layer=run.n_layer, n_embd=run.n_embd, n_head=run.n_head,
                  block_size=run.block_size, adam=AdamConfig(lr=run.lr))
    pure = Trainer(docs, value_cls=value_cls, engine=run.engine, **kwargs)
    run = replace(run, engine=pure.engine)  # the report says which engine ran
    torch_kwargs = dict(kwargs, dtype=run.dtype, device=run.device)
    lock = TorchTrainer(docs, **torch_kwargs) if "lockstep" in modes else None
    free = TorchTrainer(docs, **torch_kwargs) if "free" in modes else None
    if free is not None and tamper:
        tamper(free)
    quantities = step_quantities(pure.config)
    report = Report(run, model_config=pure.config, keep_checks=keep_checks, details=details)
    for step in range(run.steps):
        if lock is not None:
            lock.load_state_from_pure(pure, step)
            if tamper:
                tamper(lock)
        try:
            with gc_paused():  # exact: see pure.engine.gc_paused; any engine, the user's included
                pure_rec = record_pure_step(pure, step)
        except EngineFailure as failure:
            if failure.recursion:
                tokens = pure.tokens_at(step)
                failure.add_depth(graph_depth(tokens, pure.config), pure.config, len(tokens))
            report.add([engine_check(m, step + 1, failure) for m in modes])
            return _finish(report, quantities, t0)
        step_checks = []
        if lock is not None:
            step_checks += _compare_records("lockstep", step + 1, pure_rec, record_torch_step(lock, step), quantities,
                                            run.dtype)
        if free is not None:
            step_checks += _compare_records("free", step + 1, pure_rec, record_torch_step(free, step), quantities,
                                            run.dtype)
        report.add(step_checks)
        if on_step:
            on_step(step + 1, step_checks)
    # Samples: minGPT's escalation ends here, at the decoded strings.
    rng_state = pure.rng.get_state()
    try:
        pure_samples = run_engine("samples", pure.sample, run.samples, run.temperature)
    except EngineFailure as failure:
        report.add([engine_check(m, run.steps, failure) for m in modes])
        return _finish(report, quantities, t0)
    if lock is not None:
        lock.load_state_from_pure(pure, run.steps)
        lock.rng.set_state(rng_state)
        lock_samples = lock.sample(run.samples, run.temperature)
        report.add([_samples_check("lockstep", run.steps, pure_samples, lock_samples)])
        report.samples["lockstep"] = {"pure": pure_samples, "torch": lock_samples}
    if free is not None:
        free_samples = free.sample(run.samples, run.temperature)
        report.add([_samples_check("free", run.steps, pure_samples, free_samples)])
        report.samples["free"] = {"pure": pure_samples, "torch": free_samples}
    return _finish(report, quantities, t0)


def _finish(report, quantities, t0):
    report.first_divergence = first_divergence(report.tally.failing, quantities)
    report.seconds = time.perf_counter() - t0
    return report
