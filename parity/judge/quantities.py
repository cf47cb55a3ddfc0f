"""The quantities compared at each step: one `Quantity` record each, in the order the first divergence is searched.

Forward: every intermediate the model taps (pure.model.gpt and torch_ref.intermediates use the same names), then
the loss. Backward: the gradients of those intermediates from the logits down, then the parameter gradients in
the order backprop reaches them. Optimizer: Adam's moments and the updated weights. A port trace (`parity
check`) carries fewer: the logits, the loss, the parameter gradients and the updated weights.

Everything that depends on what a quantity is (its phase, its tolerance family, the words for it, whether only
its causal part counts, whether its first index is a sequence position) comes from its record, never from its
name's spelling.
"""

import re
from dataclasses import dataclass

from pure.model import param_shapes

# Not a tensor: the check that fails when the Value class under test raised (parity.sources.user_value). The name is
# the one the JSON reports have always carried.
RAISED = "engine"
SAMPLES = "samples"  # the sampled names after training, compared as strings
PHASES = ("forward", "backward", "optimizer", "samples")
LAYER_ACTIVATIONS = ["attn_norm", "q", "k", "v", "{heads}", "attn_out", "attn_resid", "mlp_norm", "mlp_pre",
                     "mlp_hidden", "mlp_resid"]
KINDS = {"d": "act_grad", "grad": "param_grad", "adam_m": "adam_m", "adam_v": "adam_v", "param": "param"}


@dataclass(frozen=True)
class Quantity:
    name: str  # "layer0.q", "d:layer0.q", "grad:wte", "adam_v:lm_head", "param:wpe", "loss", ...
    phase: str  # one of PHASES
    family: str  # the tolerance and plot family (parity.judge.tolerances)
    description: str  # in words, for the verdict line
    causal: bool = False  # (T, T) attention weights: only the lower triangle exists in pure (position t sees 0..t)
    per_position: bool = False  # the first index is a sequence position (activations, their gradients, logits)


def family(name):
    """The tolerance/plot family of a quantity's name."""
    if name in ("loss", "logits", SAMPLES, RAISED):
        return name
    if ":" in name:
        return KINDS[name.split(":", 1)[0]]
    return "activation"


# The families in the order of a step (forward, backward, optimizer, samples): the tolerance legend and the plot
FAMILY_ORDER = ["activation", "logits", "loss", "act_grad", "param_grad", "adam_m", "adam_v", "param", "samples"]


_ACT_WORDS = {
    "embed": "token + position embedding", "embed_norm": "embedding rmsnorm", "attn_norm": "attention rmsnorm",
    "q": "q", "k": "k", "v": "v", "attn_out": "attention output", "attn_resid": "attention residual",
    "mlp_norm": "MLP rmsnorm", "mlp_pre": "MLP pre-activation (fc1 output)", "mlp_hidden": "MLP hidden (ReLU output)",
    "mlp_resid": "MLP residual", "logits": "logits", "loss": "loss", "attn_weights": "attention weights",
}
_PREFIX_WORDS = {"d": "gradient of ", "grad": "gradient of parameter ", "adam_m": "Adam m (exp_avg) of ",
                 "adam_v": "Adam v (exp_avg_sq) of ", "param": "updated parameter "}


def describe(name):
    """'layer0.head2.attn_weights' -> 'layer 0 head 2 attention weights', 'adam_m:wte' -> 'Adam m (exp_avg) of wte'."""
    if name == SAMPLES:
        return "samples"
    if name == RAISED:
        return "the Value class raised"
    prefix = ""
    if ":" in name:
        kind, name = name.split(":", 1)
        prefix = _PREFIX_WORDS[kind]
        if kind != "d":
            return prefix + name
    parts = []
    for piece in name.split("."):
        m = re.fullmatch(r"(layer|head)(\d+)", piece)
        parts.append(f"{m.group(1)} {m.group(2)}" if m else _ACT_WORDS.get(piece, piece))
    return prefix + " ".join(parts)


def quantity(name, phase):
    fam = family(name)
    return Quantity(name, phase, fam, describe(name), causal=name.endswith("attn_weights"),
                    per_position=fam in ("activation", "act_grad", "logits"))


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
    """Parameters in the order backprop reaches them: lm_head, the last block first, the embeddings last (tied
    embeddings, a variant's, have no lm_head)."""
    names = [] if config.tie_embeddings else ["lm_head"]
    for i in reversed(range(config.n_layer)):
        names += [f"layer{i}.{p}" for p in ("mlp_fc2", "mlp_fc1", "attn_wo", "attn_wv", "attn_wk", "attn_wq")]
    return names + ["wpe", "wte"]


def step_quantities(config):
    """Everything `parity run` compares at one step, in search order."""
    fwd = forward_names(config)
    out = [quantity(n, "forward") for n in fwd] + [quantity("loss", "forward")]
    out += [quantity(f"d:{n}", "backward") for n in reversed(fwd)]
    out += [quantity(f"grad:{n}", "backward") for n in param_names_backward(config)]
    for n in param_shapes(config):
        out += [quantity(f"adam_m:{n}", "optimizer"), quantity(f"adam_v:{n}", "optimizer"),
                quantity(f"param:{n}", "optimizer")]
    return out


def port_quantities(config):
    """What a port trace can carry (`parity check`), in search order: forward (the logits, the loss), backward
    (the parameter gradients, lm_head first), then the optimizer (the updated weights)."""
    out = [quantity("logits", "forward"), quantity("loss", "forward")]
    out += [quantity(f"grad:{n}", "backward") for n in param_names_backward(config)]
    out += [quantity(f"param:{n}", "optimizer") for n in param_shapes(config)]
    return out


def record_shapes(config, T):
    """name -> shape of everything a step of `parity run` records, for a document of T predicted positions: what a
    worker's record must hold, exactly (parity.worker)."""
    C, V = config.n_embd, config.vocab_size
    wide = {"mlp_pre", "mlp_hidden"}
    shapes = {"loss": ()}
    for name in forward_names(config):
        if name == "logits":
            shape = (T, V)
        elif name.endswith("attn_weights"):
            shape = (T, T)
        else:
            shape = (T, 4 * C) if name.split(".")[-1] in wide else (T, C)
        shapes[name] = shapes["d:" + name] = shape
    for name, shape in param_shapes(config).items():
        for kind in ("grad:", "adam_m:", "adam_v:", "param:"):
            shapes[kind + name] = shape
    return shapes


def by_name(quantities) -> dict:
    return {q.name: q for q in quantities}
