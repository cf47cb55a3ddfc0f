"""`parity run`: train pure and torch_ref side by side and compare every quantity at every step.

Two modes run together, from one pure trajectory:
- lockstep: before each step torch_ref is reset to pure's weights, Adam moments and schedule position,
  so each step's own error is measured fresh;
- free: torch_ref trains on its own from the same seed, showing how the gap grows over the run.
"""

from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

from pure.engine import Value, gc_paused
from pure.model import split_flat
from pure.optim import AdamConfig
from pure.train import Trainer

from .compare import Check, Tol, compare_records
from .quantities import RAISED, SAMPLES, step_quantities
from .replay import record_torch_step
from .report import MODES, Report, first_divergence
from .tolerances import tolerance
from .user_value import ValueClassError, graph_depth, guarded_call


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
    engine: Optional[str] = None  # pure's engine: "fused" or "plain"; None: pure.train.default_engine


# ---- pure's side: one step, recorded as named float64 arrays -------------------------------------------------

def _numbers(rows, what):
    """rows of .data or .grad as a float64 array; a TypeError naming `what` if any is not a number (a .grad left
    as None by a Value class would otherwise become nan silently)."""
    arr = np.array(rows)
    if arr.dtype.kind not in "fiub":
        bad = next(x for x in arr.reshape(-1) if not isinstance(x, (int, float, np.number)))
        raise TypeError(f"{what} holds {type(bad).__name__} {bad!r}, not a number")
    return arr.astype(np.float64)


def _stack(by_pos, attr):
    T = len(by_pos)
    return _numbers([[getattr(v, attr) for v in by_pos[t]] for t in range(T)], f".{attr}")


def _causal(by_pos, attr):
    """Attention weights of each position over positions 0..t; an entry pure did not produce is nan
    (a failure when compared), so a cache that lost or gained a position shows up where it happened."""
    T = len(by_pos)
    out = np.zeros((T, T))
    for t in range(T):
        row = [getattr(v, attr) for v in by_pos[t]][: t + 1]
        out[t, : t + 1] = row + [np.nan] * (t + 1 - len(row))
    return out


def record_pure_step(trainer, step):
    """Run pure's 0-based `step` (forward, backward, Adam) and record everything along the way, under the names of
    parity.quantities. Whatever the Value class raises comes out as a ValueClassError naming the phase."""
    taps = {}

    def tap(name, pos, values):
        taps.setdefault(name, {})[pos] = values

    loss = guarded_call("forward", trainer.forward, step, tap)
    guarded_call("backward", trainer.backward, loss)
    rec = guarded_call("backward", _read_pure, loss, taps, trainer.params)  # a .data or .grad that is no number
    guarded_call("optimizer", trainer.optimizer.step, step)
    for kind, flat in (("adam_m:", trainer.optimizer.m), ("adam_v:", trainer.optimizer.v)):
        for name, rows in split_flat(flat, trainer.config).items():
            rec[kind + name] = np.array(rows, dtype=np.float64)
    rec.update(guarded_call("optimizer", _read_params, trainer.params))
    return rec


def _read_pure(loss, taps, params):
    """Every tapped intermediate, its gradient, and every parameter's gradient, as float64 arrays."""
    rec = {"loss": np.array(float(loss.data))}
    for name, by_pos in taps.items():
        if name == "loss":
            continue
        to_array = _causal if name.endswith("attn_weights") else _stack
        rec[name] = to_array(by_pos, "data")
        rec["d:" + name] = to_array(by_pos, "grad")
    for name, rows in params.items():
        rec["grad:" + name] = _numbers([[p.grad for p in row] for row in rows], f".grad of {name}")
    return rec


def _read_params(params):
    return {"param:" + name: _numbers([[p.data for p in row] for row in rows], f".data of {name}")
            for name, rows in params.items()}


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
    """A failing check standing for every quantity the step would have produced: the Value class raised."""
    return Check(mode, step, RAISED, float("inf"), float("inf"), Tol(0.0, 0.0), False, ratio=float("inf"),
                 detail=failure.to_json())


def _flat(rec, kind, config):
    """A record's matrices of one kind ("param:", "adam_m:", ...) as one flat list in the seed's order."""
    from pure.model import param_shapes

    return [x for name in param_shapes(config) for x in rec[kind + name].reshape(-1).tolist()]


# ---- the run -------------------------------------------------------------------------------------------------

def run_parity(docs, run=None, *, modes=MODES, value_cls=Value, on_step=None, tamper=None, keep_checks=True,
               details=None):
    """Train both implementations for run.steps steps and compare everything; returns a Report.

    on_step(step, checks) is called after each step (for progress). tamper(torch_trainer) is applied to
    torch_ref's state after every reset (lockstep) and once at the start (free): the tests use it to
    perturb a weight and check that the harness notices. value_cls is the Value class pure's model runs
    with, which is how a user's own class gets in; if it raises, that step fails in every mode with a
    RAISED check naming the exception, and the run stops there.
    """
    from torch_ref.train import TorchTrainer

    run = run or RunConfig()
    kwargs = dict(seed=run.seed, steps=run.steps, n_layer=run.n_layer, n_embd=run.n_embd, n_head=run.n_head,
                  block_size=run.block_size, adam=AdamConfig(lr=run.lr))
    pure = Trainer(docs, value_cls=value_cls, engine=run.engine, **kwargs)
    run = replace(run, engine=pure.engine)  # the report says which engine ran
    torch_kwargs = dict(kwargs, dtype=run.dtype, device=run.device)
    torch_sides = {mode: TorchTrainer(docs, **torch_kwargs) for mode in modes}  # lockstep, then free
    if "free" in torch_sides and tamper:
        tamper(torch_sides["free"])
    quantities = step_quantities(pure.config)
    report = Report("pure", quantities, asdict(run), dtype=run.dtype, model_config=pure.config, samples={},
                    keep_checks=keep_checks, details=details, steps=run.steps)

    def tolerance_of(mode):
        return lambda q: tolerance(q, run.dtype, mode)

    # What a replay of the first diverging step needs (parity.diagnose): the weights and Adam's moments before it,
    # which are the previous step's record (the initial weights and zero moments before step 1).
    from .diagnose import StateRecorder

    recorder = StateRecorder(pure.config, pure.optimizer.config, run.steps, run.dtype, reference="pure")
    initial, previous = pure.flat_values(), None
    for step in range(run.steps):
        if "lockstep" in torch_sides:
            torch_sides["lockstep"].load_state_from_pure(pure, step)
            if tamper:
                tamper(torch_sides["lockstep"])
        try:
            with gc_paused():  # exact: see pure.engine.gc_paused; any Value class, the user's included
                pure_rec = record_pure_step(pure, step)
        except ValueClassError as failure:
            if failure.recursion:
                tokens = pure.tokens_at(step)
                failure.add_depth(graph_depth(tokens, pure.config), pure.config, len(tokens))
            report.add([raised_check(m, step + 1, failure) for m in modes])
            return report.finish()
        tokens = pure.tokens_at(step)
        step_checks = []
        for mode, trainer in torch_sides.items():
            step_checks += compare_records(mode, step + 1, quantities, pure_rec, record_torch_step(trainer, tokens),
                                           tolerance_of(mode), "pure")
        report.add(step_checks)
        failing = [c for c in step_checks if not c.ok and c.mode == "lockstep"]
        if failing and not recorder.done:
            zeros = [0.0] * len(initial)
            recorder.before(step + 1, tokens, *((initial, zeros, zeros, None, None) if previous is None else
                                                 (*(_flat(previous, k, pure.config) for k in ("param:", "adam_m:",
                                                                                               "adam_v:")), None,
                                                  _flat(previous, "grad:", pure.config))))
            recorder.diverged(pure_rec, first_divergence(failing, quantities)["phase"])
            report.capture = recorder.state
        previous = pure_rec
        if on_step:
            on_step(step + 1, step_checks)
    if report.capture is not None and "free" in torch_sides:
        report.capture.free_agrees = not any(c.mode == "free" and not c.ok for c in report.tally.failing)
    # Samples: minGPT's escalation ends here, at the decoded strings.
    rng_state = pure.rng.get_state()
    try:
        pure_samples = guarded_call("samples", pure.sample, run.samples, run.temperature)
    except ValueClassError as failure:
        report.add([raised_check(m, run.steps, failure) for m in modes])
        return report.finish()
    for mode, trainer in torch_sides.items():
        if mode == "lockstep":
            trainer.load_state_from_pure(pure, run.steps)
            trainer.rng.set_state(rng_state)
        torch_samples = trainer.sample(run.samples, run.temperature)
        report.add([samples_check(mode, run.steps, pure_samples, torch_samples)])
        report.samples[mode] = {"pure": pure_samples, "torch": torch_samples}
    return report.finish()
