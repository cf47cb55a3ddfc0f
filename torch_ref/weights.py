"""The seed's initial weights, and the one map between pure's names and the module's.

pure keeps each weight matrix as rows of scalars, named like "layer0.attn_wq";
the module keeps tensors under state_dict keys like "layers.0.attn.wq.weight".
`name_map` is the one place that pairs them (as nanoGPT's from_pretrained
does for GPT-2's checkpoint). Both sides store a linear layer's weight as
(out_features, in_features) and an embedding as (num, C), so nothing is
transposed: row r of pure's matrix is row r of the tensor. `intermediate_map`
pairs the intermediates pure's model taps (pure.model.gpt) with the submodule
whose input or output holds them (read by hooks: torch_ref.intermediates).
"""

import numpy as np
import torch

from pure.model import INIT_STD, param_shapes


def name_map(n_layer, tie_embeddings=False):
    """pure parameter name -> state_dict key, in pure's (the seed's initialisation) order. Tied embeddings (a
    variant's) have no lm_head: its weight is wte's."""
    names = {
        "wte": "wte.weight",
        "wpe": "wpe.weight",
        "lm_head": "lm_head.weight",
    }
    if tie_embeddings:
        del names["lm_head"]
    for i in range(n_layer):
        names[f"layer{i}.attn_wq"] = f"layers.{i}.attn.wq.weight"
        names[f"layer{i}.attn_wk"] = f"layers.{i}.attn.wk.weight"
        names[f"layer{i}.attn_wv"] = f"layers.{i}.attn.wv.weight"
        names[f"layer{i}.attn_wo"] = f"layers.{i}.attn.wo.weight"
        names[f"layer{i}.mlp_fc1"] = f"layers.{i}.mlp.fc1.weight"
        names[f"layer{i}.mlp_fc2"] = f"layers.{i}.mlp.fc2.weight"
    return names


def intermediate_map(n_layer):
    """pure's tap name -> (submodule name, "input" or "output"): the tensor of all positions at once that holds it.

    Residual sums are no module's output, so they are read as the input of the module that consumes them."""
    taps = {"embed": ("embed_norm", "input"), "embed_norm": ("embed_norm", "output")}
    for i in range(n_layer):
        block = f"layers.{i}"
        taps.update({
            f"layer{i}.attn_norm": (f"{block}.attn_norm", "output"),  # (T, C)
            f"layer{i}.q": (f"{block}.attn.wq", "output"),  # (T, C)
            f"layer{i}.k": (f"{block}.attn.wk", "output"),
            f"layer{i}.v": (f"{block}.attn.wv", "output"),
            f"layer{i}.attn_weights": (f"{block}.attn.attn_probs", "output"),  # (H, T, T), 0 above the diagonal
            f"layer{i}.attn_out": (f"{block}.attn.wo", "input"),  # (T, C): the heads side by side
            f"layer{i}.attn_resid": (f"{block}.mlp_norm", "input"),  # (T, C)
            f"layer{i}.mlp_norm": (f"{block}.mlp_norm", "output"),
            f"layer{i}.mlp_pre": (f"{block}.mlp.fc1", "output"),  # (T, 4C)
            f"layer{i}.mlp_hidden": (f"{block}.mlp.fc2", "input"),  # (T, 4C): relu's output
            f"layer{i}.mlp_resid": (block, "output"),  # (T, C)
        })
    taps["logits"] = ("lm_head", "output")  # (T, V)
    return taps


def checked_state_dict(model):
    """The model's state_dict and the name map for its config, after checking they describe the same weights."""
    config = model.config
    names = name_map(config.n_layer, config.tie_embeddings)
    sd = model.state_dict()
    if config.tie_embeddings:  # the state_dict names the one shared Parameter twice; the map pairs it once, as wte
        assert sd["lm_head.weight"].data_ptr() == sd["wte.weight"].data_ptr(), "lm_head is not tied to wte"
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    assert len(sd) == len(names), f"state_dict has {len(sd)} tensors, the name map {len(names)}"
    assert set(sd) == set(names.values()), f"state_dict keys {sorted(set(sd) ^ set(names.values()))} do not match"
    for name, (rows, cols) in param_shapes(config).items():
        key = names[name]
        shape = tuple(sd[key].shape)
        assert shape == (rows, cols), f"{key} has shape {shape}, pure's {name} ({rows}, {cols})"
    return sd, names


def _as_float64(rows):
    """Rows of Value-like objects (pure's or a user's: anything with .data), of floats, or an array -> a float64
    array."""
    if isinstance(rows, np.ndarray):
        return np.array(rows, dtype=np.float64)  # a copy: torch takes no read-only array (one a worker sent)
    return np.array([[getattr(x, "data", x) for x in row] for row in rows], dtype=np.float64)


@torch.no_grad()
def load_pure_params(model, params, checked=None):
    """Copy pure's parameters (name -> rows of Value or floats) into the module, exactly (rounded for float32).
    checked: the model's `checked_state_dict`, when the caller keeps it (its tensors are the parameters')."""
    sd, names = checked or checked_state_dict(model)
    assert set(params) == set(names), (
        f"pure params do not match the model: missing {sorted(set(names) - set(params))}, "
        f"unexpected {sorted(set(params) - set(names))}"
    )
    for name, key in names.items():
        array = _as_float64(params[name])
        shape = tuple(sd[key].shape)
        assert array.shape == shape, f"pure's {name} has shape {array.shape}, {key} has shape {shape}"
        sd[key].copy_(torch.from_numpy(array))  # state_dict tensors share storage with the parameters


def to_pure_params(model):
    """The module's weights as pure's layout: name -> rows of Python floats (float32 weights widened exactly)."""
    sd, names = checked_state_dict(model)
    return {name: sd[key].detach().cpu().double().numpy().tolist() for name, key in names.items()}


def init_from_rng(model, rng, std=INIT_STD):
    """Draw the seed's initial weights from `rng` (a pure.Rng): each matrix row by row, in param_shapes order.

    This consumes the RNG exactly as pure.model.init_params does, so the same seed gives the same weights.
    """
    params = {name: [[rng.gauss(0, std) for _ in range(cols)] for _ in range(rows)]
              for name, (rows, cols) in param_shapes(model.config).items()}
    load_pure_params(model, params)
