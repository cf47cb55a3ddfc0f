"""microgpt as an ordinary torch.nn.Module: the seed's GPT, written the way PyTorch code usually is.

Differences from a textbook GPT-2 block are the seed's, kept on purpose:
rmsnorm without a learned gain (nn.RMSNorm, eps 1e-5), an extra rmsnorm right
after the embeddings, no biases, ReLU in the MLP, no final norm before lm_head.
A declared variant (pure.variants) changes what its GPTConfig says: the MLP's
activation (torch's own F.gelu, F.silu, ...), rmsnorm's eps, lm_head tied to wte.

The model sees one document at a time, so activations have no batch dimension:
T is the sequence length, C = n_embd, H = n_head, D = head_dim, V = vocab_size.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from pure.model import GPTConfig


def rmsnorm(config):
    """The seed's rmsnorm: x / sqrt(mean(x^2) + eps), with no learned gain (so no parameters)."""
    return nn.RMSNorm(config.n_embd, eps=config.rms_eps, elementwise_affine=False)


# The MLP's nonlinearity of each variant, in torch's own functions (pure.variants.activate is pure's side).
ACTIVATIONS = {
    "relu": F.relu,
    "relu2": lambda x: F.relu(x).square(),
    "gelu": F.gelu,  # the exact form, x * Phi(x) with erf
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


class KVCache:
    """Keys and values of the positions seen so far, per layer, for sampling one token at a time."""

    def __init__(self, n_layer):
        self.keys = [[] for _ in range(n_layer)]  # per layer: a list of (1, C) tensors
        self.values = [[] for _ in range(n_layer)]

    def append(self, layer, k, v):
        """Add this position's (1, C) key and value; return all of them so far, (t, C) each."""
        self.keys[layer].append(k)
        self.values[layer].append(v)
        return torch.cat(self.keys[layer]), torch.cat(self.values[layer])

    def __len__(self):
        return len(self.keys[0]) if self.keys else 0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.wq = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.wk = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.wv = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.wo = nn.Linear(config.n_embd, config.n_embd, bias=False)
        # mask[i, j]: may position i attend to position j? Not a parameter, and not in the state_dict.
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)
        # The post-softmax weights pass through here unchanged: a named point where a forward hook can read them
        # (parity compares them), as nanoGPT's attn_dropout sits at the same place.
        self.attn_probs = nn.Identity()

    def forward(self, x, cache=None, layer=0):
        """x: (T, C) -> (T, C). With `cache`, x holds the newest position(s) only and attends to the cache too."""
        T, C = x.shape
        q = self.wq(x)  # (T, C)
        k = self.wk(x)  # (T, C)
        v = self.wv(x)  # (T, C)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (S, C) each: every position so far, S >= T
        S = k.size(0)
        # Split the channels into heads: (T, C) -> (T, H, D) -> (H, T, D).
        q = q.view(T, self.n_head, self.head_dim).transpose(0, 1)  # (H, T, D)
        k = k.view(S, self.n_head, self.head_dim).transpose(0, 1)  # (H, S, D)
        v = v.view(S, self.n_head, self.head_dim).transpose(0, 1)  # (H, S, D)
        # Scaled dot-product attention written out (not F.scaled_dot_product_attention), so that the post-softmax
        # weights exist as a tensor.
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (H, T, S)
        # The queries are the last T of the S positions, so they use rows S-T..S-1 of the causal mask.
        scores = scores.masked_fill(~self.mask[S - T:S, :S], float("-inf"))  # (H, T, S)
        att = self.attn_probs(F.softmax(scores, dim=-1))  # (H, T, S); exactly 0 above the diagonal
        y = att @ v  # (H, T, D)
        y = y.transpose(0, 1).reshape(T, C)  # (T, C): heads side by side, as pure concatenates them
        return self.wo(y)  # (T, C)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.fc2 = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.act = ACTIVATIONS[config.activation]

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))  # (T, 4C) -> (T, 4C) -> (T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn_norm = rmsnorm(config)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = rmsnorm(config)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, layer=0):
        x = x + self.attn(self.attn_norm(x), cache, layer)  # (T, C)
        x = x + self.mlp(self.mlp_norm(x))  # (T, C)
        return x


class MicroGPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.embed_norm = rmsnorm(config)  # the seed normalises the embeddings before the first block
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:  # a variant's: one Parameter read as the embedding and as the output layer
            self.lm_head.weight = self.wte.weight
        # PyTorch's default init is replaced by the seed's: see torch_ref.weights.init_from_rng.

    def _run(self, idx, pos, cache=None):
        """Logits (T, V) for tokens idx (T,) at positions pos (T,)."""
        x = self.embed_norm(self.wte(idx) + self.wpe(pos))  # (T, C)
        for i, block in enumerate(self.layers):
            x = block(x, cache, i)  # (T, C)
        return self.lm_head(x)  # (T, V)

    def forward(self, idx):
        """Whole sequence at once, for training: idx (T,) token ids -> logits (T, V). (The intermediates parity
        compares are read by hooks: torch_ref.intermediates.)"""
        (T,) = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        return self._run(idx, pos)

    def new_cache(self):
        return KVCache(self.config.n_layer)

    def forward_cached(self, token_id: int, pos: int, cache: KVCache):
        """One token at position `pos`, attending to the cached earlier positions: logits (V,)."""
        if pos != len(cache):
            raise ValueError(f"position {pos} does not follow the cache, which holds {len(cache)} positions")
        if pos >= self.config.block_size:
            raise ValueError(f"position {pos} is past block_size {self.config.block_size}")
        device = self.wte.weight.device
        idx = torch.tensor([token_id], device=device)  # (1,)
        pos_t = torch.tensor([pos], device=device)  # (1,)
        return self._run(idx, pos_t, cache=cache)[0]  # (V,)
