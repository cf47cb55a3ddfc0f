"""The torch side of every comparison: torch_ref's own trainer (torch_ref.TorchTrainer, torch.optim.Adam with the
seed's schedule) stepped on a document and recorded as named float64 arrays, under the names of
parity.judge.quantities.

`parity run` resets it to pure's state before each lockstep step (`TorchTrainer.load_state`); `parity check`
builds it from a port's weights (`TorchTrainer.from_params`) and feeds its optimizer the port's own gradients.
"""

import contextlib

import numpy as np


def _np(t):
    return t.detach().to("cpu").double().numpy()


def record_torch_step(trainer, tokens, *, intermediates=True, grads=None, tensors=True, moments=True):
    """Forward and backward on `tokens`, then one Adam update (on `grads`, name -> rows or flat in the seed's
    order, when given; else on torch's own gradients). The record: the loss and the logits (n, V); with
    `tensors`, every parameter's gradient (torch's own), Adam's moments (with `moments`) and the updated weights;
    with `intermediates`, every tapped intermediate and its gradient (attention weights split per head into
    (T, T))."""
    from torch_ref.intermediates import record_intermediates  # torch, once a step is replayed: not at import

    with record_intermediates(trainer.model) if intermediates else contextlib.nullcontext({}) as taps:
        loss, logits = trainer.forward_backward(tokens)
    rec = {"loss": np.array(float(loss.item())), "logits": _np(logits)}
    for name, t in taps.items():
        grad = _np(t.grad) if t.grad is not None else np.zeros(tuple(t.shape))
        value = _np(t)
        if name.endswith("attn_weights"):  # (H, T, T) -> one (T, T) per head
            layer = name.rsplit(".", 1)[0]
            for h in range(value.shape[0]):
                rec[f"{layer}.head{h}.attn_weights"] = value[h]
                rec[f"d:{layer}.head{h}.attn_weights"] = grad[h]
        else:
            rec[name] = value
            rec["d:" + name] = grad
    if not tensors:
        trainer.update()
        return rec
    params = trainer.params_by_name()
    for name, p in params.items():
        # a copy: a float64 CPU tensor's numpy() is a view, and a variant's gradient clipping scales .grad in place
        rec["grad:" + name] = _np(p.grad).copy() if p.grad is not None else np.zeros(tuple(p.shape))
    if grads is not None:
        trainer.set_grads(grads)
    trainer.update()
    for name, p in params.items():
        if moments:
            state = trainer.optimizer.state[p]
            rec["adam_m:" + name] = _np(state["exp_avg"])
            rec["adam_v:" + name] = _np(state["exp_avg_sq"])
        rec["param:" + name] = _np(p)
    return rec
