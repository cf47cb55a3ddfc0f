"""The intermediates of one forward pass, read by hooks, under pure's tap names (see pure.model.gpt).

The model itself records nothing: `record_intermediates(model)` registers a forward hook on each submodule that
`weights.intermediate_map` names, keeps the tensor of its input or output (all positions at once) and asks
autograd to keep that tensor's gradient (`retain_grad`), so that after `loss.backward()` each one's `.grad` is
the gradient pure's tapped Values hold. The hooks are removed when the block ends, so sampling and training
outside it run the bare model.
"""

import contextlib

from .weights import intermediate_map


@contextlib.contextmanager
def record_intermediates(model):
    """Yields a dict, filled as the model runs: pure's tap name -> tensor, its .grad kept through backward.

    Shapes: "embed", "embed_norm" (T, C); per layer i, "layer{i}." + "attn_norm", "q", "k", "v" (T, C),
    "attn_weights" (H, T, T) zero above the diagonal, "attn_out", "attn_resid", "mlp_norm" (T, C),
    "mlp_pre", "mlp_hidden" (T, 4C), "mlp_resid" (T, C); then "logits" (T, V).
    """
    taps = {}
    modules = dict(model.named_modules())
    handles = []

    def hook(names):
        def keep(module, inputs, output):
            for name, side in names:
                tensor = inputs[0] if side == "input" else output
                if tensor.requires_grad:
                    tensor.retain_grad()  # a non-leaf's .grad is freed after backward unless asked for
                taps[name] = tensor
        return keep

    by_module = {}
    for name, (module, side) in intermediate_map(model.config.n_layer).items():
        by_module.setdefault(module, []).append((name, side))
    try:
        for module, names in by_module.items():
            handles.append(modules[module].register_forward_hook(hook(names)))
        yield taps
    finally:
        for h in handles:
            h.remove()
