"""pure's side of `parity run`: pure trains, and each step comes out as named float64 arrays (under the names of
parity.judge.quantities), in a stream of events that the judge consumes the same way whether pure runs in its own
process or in a worker (parity.worker): this module imports neither torch nor anything of the judge's comparisons.

Events, in order: ("init", weights), then per step ("record", step, record) or, when the Value class raised,
("raised", step, failure as a dict) and nothing after it; then ("samples", samples, rng state) or ("raised", ...).
"""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from pure.engine import Value, gc_paused
from pure.model import param_shapes
from pure.train import Trainer
from pure.variants import Variant

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
    variant: dict = field(default_factory=dict)  # a declared variant's deviations (pure.variants), lr aside

    def declared(self):
        """The Variant both sides run: the declared deviations, with this run's lr."""
        return Variant.from_dict(self.variant).with_changes(lr=self.lr)


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


def record_pure_step(trainer, step, on_phase=None):
    """Run pure's 0-based `step` (forward, backward, Adam) and record everything along the way, under the names of
    parity.judge.quantities. Whatever the Value class raises comes out as a ValueClassError naming the phase."""
    taps = {}

    def tap(name, pos, values):
        taps.setdefault(name, {})[pos] = values

    on_phase = on_phase or (lambda phase: None)
    on_phase("forward")
    loss = guarded_call("forward", trainer.forward, step, tap)
    on_phase("backward")
    guarded_call("backward", trainer.backward, loss)
    rec = guarded_call("backward", _read_pure, loss, taps, trainer.params)  # a .data or .grad that is no number
    on_phase("optimizer")
    guarded_call("optimizer", trainer.optimizer.step, step)
    for kind, flat in (("adam_m:", trainer.optimizer.m), ("adam_v:", trainer.optimizer.v)):
        at = 0
        for name, (rows, cols) in param_shapes(trainer.config).items():
            rec[kind + name] = np.array(flat[at:at + rows * cols], dtype=np.float64).reshape(rows, cols)
            at += rows * cols
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


def pure_events(docs, run, value_cls=Value, on_phase=None):
    """pure's run as events (see the module docstring): a Trainer with `value_cls`, step by step, then sampling.
    on_phase(step, phase), if given, is told where the run is ("forward", "backward", "optimizer", "samples")."""
    try:  # the initial weights are made with the class too
        pure = guarded_call("initialisation", Trainer, docs, value_cls=value_cls, engine=run.engine, seed=run.seed,
                            steps=run.steps, n_layer=run.n_layer, n_embd=run.n_embd, n_head=run.n_head,
                            block_size=run.block_size, variant=run.declared())
        weights = guarded_call("initialisation", pure.flat_values)
    except ValueClassError as failure:
        yield "raised", 1, failure.to_json()
        return
    yield "init", weights, pure.engine
    for step in range(run.steps):
        try:
            with gc_paused():  # exact: see pure.engine.gc_paused; any Value class, the user's included
                record = record_pure_step(pure, step, on_phase and (lambda phase, k=step: on_phase(k + 1, phase)))
        except ValueClassError as failure:
            if failure.recursion:
                tokens = pure.tokens_at(step)
                failure.add_depth(graph_depth(tokens, pure.config), pure.config, len(tokens))
            yield "raised", step + 1, failure.to_json()
            return
        yield "record", step + 1, record
    rng_state = pure.rng.get_state()
    if on_phase:
        on_phase(run.steps, "samples")
    try:
        samples = guarded_call("samples", pure.sample, run.samples, run.temperature)
    except ValueClassError as failure:
        yield "raised", run.steps, failure.to_json()
        return
    yield "samples", samples, rng_state
