"""One training step of each implementation, recorded as named float64 arrays.

A record maps every quantity of parity.quantities.step_quantities to an
array: activations as (T, ...) stacked over positions, attention weights per
head as (T, T) with zeros above the diagonal, gradients of the same shapes,
and per-parameter gradients, Adam moments and updated weights as matrices.
"""

import numpy as np

from pure.model import param_shapes

from .engines import run_engine


def _numbers(rows, what):
    """rows of .data or .grad as a float64 array; a TypeError naming `what` if any is not a number (a .grad left
    as None by an engine would otherwise become nan silently)."""
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


def _split_flat(flat, config):
    out, offset = {}, 0
    for name, (rows, cols) in param_shapes(config).items():
        out[name] = np.array(flat[offset: offset + rows * cols], dtype=np.float64).reshape(rows, cols)
        offset += rows * cols
    return out


def record_pure_step(trainer, step):
    """Run pure's 0-based `step` (forward, backward, Adam) and record everything along the way.

    Whatever the Value class raises comes out as parity.engines.EngineFailure, naming the phase."""
    taps = {}

    def tap(name, pos, values):
        taps.setdefault(name, {})[pos] = values

    loss = run_engine("forward", trainer.forward, step, tap)
    run_engine("backward", trainer.backward, loss)
    rec = run_engine("backward", _read_pure, loss, taps, trainer.params)  # a .data or .grad that is no number
    run_engine("optimizer", trainer.optimizer.step, step)
    for name, arr in _split_flat(trainer.optimizer.m, trainer.config).items():
        rec["adam_m:" + name] = arr
    for name, arr in _split_flat(trainer.optimizer.v, trainer.config).items():
        rec["adam_v:" + name] = arr
    rec.update(run_engine("optimizer", _read_params, trainer.params))
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


def _np(t):
    return t.detach().to("cpu").double().numpy()


def record_torch_step(trainer, step):
    """Run torch_ref's 0-based `step` (forward, backward, optimizer.step) and record the same quantities."""
    taps = {}
    loss = trainer.forward_backward(step, taps)
    rec = {"loss": np.array(float(loss.item()))}
    for name, t in taps.items():
        if name == "loss":
            continue
        grad = _np(t.grad) if t.grad is not None else np.zeros(tuple(t.shape))
        value = _np(t)
        if name.endswith("attn_weights") and value.ndim == 3:  # (H, T, T) -> one (T, T) per head
            layer = name.rsplit(".", 1)[0]
            for h in range(value.shape[0]):
                rec[f"{layer}.head{h}.attn_weights"] = value[h]
                rec[f"d:{layer}.head{h}.attn_weights"] = grad[h]
        else:
            rec[name] = value
            rec["d:" + name] = grad
    params = trainer.params_by_name()
    for name, p in params.items():
        rec["grad:" + name] = _np(p.grad) if p.grad is not None else np.zeros(tuple(p.shape))
    trainer.update()
    for name, p in params.items():
        state = trainer.optimizer.state[p]
        rec["adam_m:" + name] = _np(state["exp_avg"])
        rec["adam_v:" + name] = _np(state["exp_avg_sq"])
        rec["param:" + name] = _np(p)
    return rec
