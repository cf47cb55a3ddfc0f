"""One training step of each implementation, recorded as named float64 arrays.

A record maps every quantity of parity.quantities.step_quantities to an
array: activations as (T, ...) stacked over positions, attention weights per
head as (T, T) with zeros above the diagonal, gradients of the same shapes,
and per-parameter gradients, Adam moments and updated weights as matrices.
"""

import numpy as np

from pure.model import param_shapes


def _stack(by_pos, attr):
    T = len(by_pos)
    return np.array([[getattr(v, attr) for v in by_pos[t]] for t in range(T)], dtype=np.float64)


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
    """Run pure's 0-based `step` (forward, backward, Adam) and record everything along the way."""
    taps = {}

    def tap(name, pos, values):
        taps.setdefault(name, {})[pos] = values

    loss = trainer.forward_backward(step, tap)
    rec = {"loss": np.array(float(loss.data))}
    for name, by_pos in taps.items():
        if name == "loss":
            continue
        to_array = _causal if name.endswith("attn_weights") else _stack
        rec[name] = to_array(by_pos, "data")
        rec["d:" + name] = to_array(by_pos, "grad")
    for name, rows in trainer.params.items():
        rec["grad:" + name] = np.array([[p.grad for p in row] for row in rows], dtype=np.float64)
    trainer.optimizer.step(step)
    for name, arr in _split_flat(trainer.optimizer.m, trainer.config).items():
        rec["adam_m:" + name] = arr
    for name, arr in _split_flat(trainer.optimizer.v, trainer.config).items():
        rec["adam_v:" + name] = arr
    for name, rows in trainer.params.items():
        rec["param:" + name] = np.array([[p.data for p in row] for row in rows], dtype=np.float64)
    return rec


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
