"""The GPT of the seed program: config, parameters, and the per-token forward pass.

Everything here is written with the Value protocol's operators only
(`+ - * / **`, `.exp() .log() .relu()`), so any class that follows the
protocol can run the model. The helper functions are looked up as module
globals at call time, which is also what lets a test swap one out.
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

from .engine import Value
from .variants import ACTIVATIONS, activate

INIT_STD = 0.08  # std of the Gaussian initialisation, as in the seed
RMS_EPS = 1e-5  # added to the mean square inside rmsnorm


@dataclass(frozen=True)
class GPTConfig:
    n_layer: int = 1  # transformer blocks
    n_embd: int = 16  # width of the residual stream
    n_head: int = 4  # attention heads per block; n_embd must divide evenly
    block_size: int = 16  # longest context; documents are cut to block_size tokens
    vocab_size: int = 27  # characters + 1 for BOS (26 letters for the names data)
    # A declared variant's model (pure.variants); the defaults are the seed's, and to_dict leaves them out.
    activation: str = "relu"  # the MLP's nonlinearity
    norm_eps: Optional[float] = None  # rmsnorm's eps; None: RMS_EPS, the seed's
    tie_embeddings: bool = False  # lm_head is wte: no lm_head among the parameters

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "n_head", "block_size", "vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"invalid config: {name} must be a positive integer, got {value!r}")
        if self.vocab_size < 2:
            raise ValueError(
                f"invalid config: vocab_size must be at least 2 (one character + BOS), got {self.vocab_size}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"invalid config: activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"invalid config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}); "
                "pick n_head among the divisors of n_embd"
            )

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @property
    def rms_eps(self):
        """rmsnorm's eps: the variant's, else RMS_EPS (looked up now, so a test may swap the module's constant)."""
        return RMS_EPS if self.norm_eps is None else self.norm_eps

    def to_dict(self):
        """The fields, leaving out a variant's fields at their defaults (a microgpt config reads as it always did)."""
        defaults = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in asdict(self).items()
                if k in ("n_layer", "n_embd", "n_head", "block_size", "vocab_size") or v != defaults[k]}


def param_shapes(config):
    """Every parameter's name and (rows, cols), in the seed's initialisation order."""
    c = config
    shapes = {"wte": (c.vocab_size, c.n_embd), "wpe": (c.block_size, c.n_embd), "lm_head": (c.vocab_size, c.n_embd)}
    if c.tie_embeddings:  # lm_head is wte
        del shapes["lm_head"]
    for i in range(c.n_layer):
        shapes[f"layer{i}.attn_wq"] = (c.n_embd, c.n_embd)
        shapes[f"layer{i}.attn_wk"] = (c.n_embd, c.n_embd)
        shapes[f"layer{i}.attn_wv"] = (c.n_embd, c.n_embd)
        shapes[f"layer{i}.attn_wo"] = (c.n_embd, c.n_embd)
        shapes[f"layer{i}.mlp_fc1"] = (4 * c.n_embd, c.n_embd)
        shapes[f"layer{i}.mlp_fc2"] = (c.n_embd, 4 * c.n_embd)
    return shapes


def init_params(config, rng, value_cls=Value, std=INIT_STD):
    """name -> list of rows of value_cls, drawn from rng.gauss row by row in the seed's order."""
    return {
        name: [[value_cls(rng.gauss(0, std)) for _ in range(cols)] for _ in range(rows)]
        for name, (rows, cols) in param_shapes(config).items()
    }


def flatten(params):
    """All parameters as one list, in insertion order (the optimizer's order): the inverse of split_flat."""
    return [p for rows in params.values() for row in rows for p in row]


def split_flat(flat, config):
    """A flat list in the seed's parameter order (param_shapes order, each matrix row by row: the optimizer's
    moments, a port trace's `init`, `grads` and `params`) -> name -> rows. The one place this layout is cut."""
    out, offset = {}, 0
    for name, (rows, cols) in param_shapes(config).items():
        out[name] = [flat[offset + r * cols: offset + (r + 1) * cols] for r in range(rows)]
        offset += rows * cols
    if offset != len(flat):
        raise ValueError(f"{len(flat)} numbers, but the config's parameters have {offset}")
    return out


def vsum(values):
    """Left-to-right sum starting from a zero of the same class, as the seed's
    `Value.sum` (never builtins.sum, whose float path may be compensated)."""
    values = iter(values)
    first = next(values)
    total = type(first)(0) + first
    for v in values:
        total = total + v
    return total


def dot(a, b):
    """a_0*b_0 + a_1*b_1 + ...: the products, summed left to right (the seed's `Value.dot`)."""
    return vsum(ai * bi for ai, bi in zip(a, b))


def matvec(w, x):
    """W x: one dot product per row of W."""
    return [dot(row, x) for row in w]


# How sums are built: (vsum, dot, matvec). pure.fused passes its own, which build one node per sum with the
# same arithmetic; every other op stays the Value protocol's.
PLAIN_SUMS = (vsum, dot, matvec)


def linear(x, w, sums=PLAIN_SUMS):
    """y = W x, one dot product per row of W."""
    return sums[2](w, x)


def rmsnorm(x, sums=PLAIN_SUMS, eps=None):
    ms = sums[1](x, x) / len(x)
    scale = (ms + (RMS_EPS if eps is None else eps)) ** -0.5
    return [xi * scale for xi in x]


def softmax(logits, sums=PLAIN_SUMS):
    # Subtracting the max is a constant shift (no gradient flows through it):
    # it avoids overflow in exp and leaves the result unchanged.
    max_val = max(v.data for v in logits)
    exps = [(v - max_val).exp() for v in logits]
    total = sums[0](exps)
    return [e / total for e in exps]


def residual(x, skip):
    """x + skip, elementwise: a block's output added back onto the stream it read."""
    return [a + b for a, b in zip(x, skip)]


def gpt(token_id, pos_id, kv_keys, kv_vals, params, config, tap=None, sums=PLAIN_SUMS):
    """Logits for the next token after `token_id` at position `pos_id`.

    kv_keys/kv_vals hold one list per layer of the keys/values of earlier
    positions; this call appends the current position's. `tap(name, values)`,
    when given, receives each named intermediate (a list of Values), which is
    how the parity harness compares activations and their gradients. `sums` builds the sums (PLAIN_SUMS, or
    pure.fused's).
    """
    dot_ = sums[1]
    tap = tap or (lambda name, values: None)
    head_dim, n_head = config.head_dim, config.n_head
    x = [t + p for t, p in zip(params["wte"][token_id], params["wpe"][pos_id])]  # (C,)
    tap("embed", x)
    eps = config.norm_eps  # None: the seed's RMS_EPS
    x = rmsnorm(x, sums, eps)
    tap("embed_norm", x)
    for li in range(config.n_layer):
        pre = f"layer{li}."
        x_residual = x
        x = rmsnorm(x, sums, eps)
        tap(pre + "attn_norm", x)
        q = linear(x, params[pre + "attn_wq"], sums)  # (C,)
        k = linear(x, params[pre + "attn_wk"], sums)
        v = linear(x, params[pre + "attn_wv"], sums)
        tap(pre + "q", q)
        tap(pre + "k", k)
        tap(pre + "v", v)
        kv_keys[li].append(k)
        kv_vals[li].append(v)
        x_attn = []
        for h in range(n_head):
            hs = slice(h * head_dim, (h + 1) * head_dim)
            q_h = q[hs]  # (D,)
            k_h = [ki[hs] for ki in kv_keys[li]]  # (t, D)
            v_h = [vi[hs] for vi in kv_vals[li]]  # (t, D)
            scale = math.sqrt(head_dim)  # the seed's `headDim ** 0.5`, which JavaScript computes as sqrt
            attn_logits = [dot_(q_h, kt) / scale for kt in k_h]  # (t,)
            attn_weights = softmax(attn_logits, sums)  # (t,)
            tap(f"{pre}head{h}.attn_weights", attn_weights)
            for j in range(head_dim):
                x_attn.append(dot_(attn_weights, [vt[j] for vt in v_h]))
        tap(pre + "attn_out", x_attn)
        x = residual(linear(x_attn, params[pre + "attn_wo"], sums), x_residual)
        tap(pre + "attn_resid", x)
        x_residual = x
        x = rmsnorm(x, sums, eps)
        tap(pre + "mlp_norm", x)
        x = linear(x, params[pre + "mlp_fc1"], sums)  # (4C,)
        tap(pre + "mlp_pre", x)
        x = [xi.relu() for xi in x] if config.activation == "relu" else [activate(xi, config.activation) for xi in x]
        tap(pre + "mlp_hidden", x)
        x = residual(linear(x, params[pre + "mlp_fc2"], sums), x_residual)  # (C,)
        tap(pre + "mlp_resid", x)
    logits = linear(x, params["wte" if config.tie_embeddings else "lm_head"], sums)  # (V,)
    tap("logits", logits)
    return logits
