"""The quantities compared at each step, in the order the first divergence is searched, with readable names.

Forward: every intermediate the model taps (pure.model.gpt and torch_ref's
forward use the same names), then the loss. Backward: the gradients of those
intermediates from the logits down, then the parameter gradients in the order
backprop reaches them. Optimizer: Adam's moments and the updated weights.
"""

import re

from pure.model import param_shapes

ENGINE = "engine"  # not a tensor: the check that fails when the Value class under test raised (parity.engines)
LAYER_ACTIVATIONS = ["attn_norm", "q", "k", "v", "{heads}", "attn_out", "attn_resid", "mlp_norm", "mlp_pre",
                     "mlp_hidden", "mlp_resid"]


def forward_names(config):
    names = ["embed", "embed_norm"]
    for i in range(config.n_layer):
        for a in LAYER_ACTIVATIONS:
            if a == "{heads}":
                names += [f"layer{i}.head{h}.attn_weights" for h in range(config.n_head)]
            else:
                names.append(f"layer{i}.{a}")
    return names + ["logits"]


def param_names_backward(config):
    """Parameters in the order backprop reaches them: lm_head, the last block first, the embeddings last."""
    names = ["lm_head"]
    for i in reversed(range(config.n_layer)):
        names += [f"layer{i}.{p}" for p in ("mlp_fc2", "mlp_fc1", "attn_wo", "attn_wv", "attn_wk", "attn_wq")]
    return names + ["wpe", "wte"]


def step_quantities(config):
    """(quantity, phase) for one step, in search order."""
    fwd = forward_names(config)
    out = [(n, "forward") for n in fwd] + [("loss", "forward")]
    out += [(f"d:{n}", "backward") for n in reversed(fwd)]
    out += [(f"grad:{n}", "backward") for n in param_names_backward(config)]
    for n in param_shapes(config):
        out += [(f"adam_m:{n}", "optimizer"), (f"adam_v:{n}", "optimizer"), (f"param:{n}", "optimizer")]
    return out


def family(quantity):
    """The tolerance/plot family of a quantity."""
    if quantity in ("loss", "logits", "samples", ENGINE):
        return quantity
    if ":" in quantity:
        kind, name = quantity.split(":", 1)
        if kind == "d":
            return "act_grad"
        return {"grad": "param_grad", "adam_m": "adam_m", "adam_v": "adam_v", "param": "param"}[kind]
    return "activation"


_ACT_WORDS = {
    "embed": "token + position embedding", "embed_norm": "embedding rmsnorm", "attn_norm": "attention rmsnorm",
    "q": "q", "k": "k", "v": "v", "attn_out": "attention output", "attn_resid": "attention residual",
    "mlp_norm": "MLP rmsnorm", "mlp_pre": "MLP pre-activation (fc1 output)", "mlp_hidden": "MLP hidden (ReLU output)",
    "mlp_resid": "MLP residual", "logits": "logits", "loss": "loss", "attn_weights": "attention weights",
}


def describe(quantity):
    """'layer0.head2.attn_weights' -> 'layer 0 head 2 attention weights', 'adam_m:wte' -> 'Adam m of wte'."""
    if quantity == "samples":
        return "samples"
    if quantity == ENGINE:
        return "the Value class raised"
    prefix = ""
    if ":" in quantity:
        kind, quantity = quantity.split(":", 1)
        prefix = {"d": "gradient of ", "grad": "gradient of parameter ", "adam_m": "Adam m (exp_avg) of ",
                  "adam_v": "Adam v (exp_avg_sq) of ", "param": "updated parameter "}[kind]
        if kind != "d":
            return prefix + quantity
    parts = []
    for piece in quantity.split("."):
        m = re.fullmatch(r"(layer|head)(\d+)", piece)
        parts.append(f"{m.group(1)} {m.group(2)}" if m else _ACT_WORDS.get(piece, piece))
    return prefix + " ".join(parts)
