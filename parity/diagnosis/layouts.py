"""A trace whose parameter lists are laid out wrongly: the orders the gradients themselves allow (any
permutation, read from the numbers), the usual other orders, and matrices written column by column, each replayed
in torch_ref from the weights put back in the seed's layout."""

import itertools
import math
from dataclasses import replace

import numpy as np

from pure.model import param_shapes, split_flat

from .step_replay import Trial, compared_names, fit, port_grads, rss_miss

# ---- the parameter order, read from the numbers -------------------------------------------------------------------

# Orders the search hands to the replay (torch_ref, ~5 ms each at a small config) at most: the gradients' rows and
# row spaces leave one order, or a few (matrices of one shape whose gradients are all zero, as attn_wq and attn_wk
# at a document of one position); past this many they do not tell the matrices apart.
MAX_ORDERS = 24
# The search's steps at most: where the row spaces prune nothing (a document as long as n_embd) it stops here, and
# the usual other orders are tried instead (_layouts)
SEARCH_NODES = 2_000
ROW_SPACE_RTOL = 1e-6  # a gradient lies in a row space when what is left of it is below this share of its norm


def _basis(x):
    """An orthonormal basis of the span of x's rows."""
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    return vt[s > s[0] * 1e-10] if s.size and s[0] > 0 else vt[:0]


def _orders_from_numbers(state, grads):
    """The orders of the seed's matrices that the trace's gradients allow, read from the numbers: wte where a
    block's gradient has rows exactly at the document's tokens, wpe where it has rows exactly at the positions used;
    then, layer by layer, a forward in numpy from the trace's own weights, each matrix where its gradient lies in the
    row space of its input (a linear layer's gradient is the sum over positions of its output's gradient times its
    input): attn_wq, attn_wk, attn_wv in that of the normed stream, attn_wo in that of the attention's output (which
    tells q, k and v apart), mlp_fc1 in that of the normed stream, mlp_fc2 in that of the hidden activations,
    lm_head in that of the last stream; the blocks may not overlap. Returns (orders, conclusive): each order a list
    of the seed's names in the trace's order, at most MAX_ORDERS; conclusive False when the gradients could not
    tell (every row space full: a document as long as n_embd) and the search stopped."""
    config, tokens = state.config, state.tokens
    if not tokens or isinstance(tokens[0], list) or config.tie_embeddings:
        return [], False
    shapes = param_shapes(config)
    g, w = np.asarray(grads, np.float64), np.asarray(state.weights, np.float64)
    total = len(g)
    eps = config.rms_eps
    n = min(config.block_size, len(tokens) - 1)
    C, hd = config.n_embd, config.head_dim
    causal = np.tril(np.ones((n, n), bool))
    nonzero = g != 0

    def starts(shape, rows):
        r, c = shape
        return [o for o in range(total - r * c + 1) if set(np.flatnonzero(
            nonzero[o:o + r * c].reshape(r, c).any(1)).tolist()) == rows]

    def rms(x):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)

    def attention(x, wq, wk, wv):
        q, k, v = x @ wq.T, x @ wk.T, x @ wv.T
        out = np.empty_like(q)
        for h in range(config.n_head):
            s = slice(h * hd, (h + 1) * hd)
            logits = np.where(causal, q[:, s] @ k[:, s].T / math.sqrt(hd), -np.inf)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            out[:, s] = (p / p.sum(-1, keepdims=True)) @ v[:, s]
        return out

    def mat(off, shape, src=w):
        return src[off:off + shape[0] * shape[1]].reshape(shape)

    # the sums the other blocks can fill: a block starts only where what is before it and after it in its gap
    # between the embeddings can be filled by whole blocks
    sums = 1
    for name, (r, c) in shapes.items():
        if name not in ("wte", "wpe"):
            sums |= sums << (r * c)
    gaps = []

    def fillable(o, size):
        return any(a <= o and o + size <= b and sums >> (o - a) & 1 and sums >> (b - o - size) & 1 for a, b in gaps)

    def fits(shape, x, taken):
        """The offsets whose block of `shape` lies clear of `taken` and whose gradient is in x's row space."""
        b = _basis(x)
        full = b.shape[0] == b.shape[1]
        size = shape[0] * shape[1]
        out = []
        for o in range(total - size + 1):
            if not fillable(o, size) or any(o < e and s < o + size for s, e in taken):
                continue
            gm = mat(o, shape, g)
            norm = np.linalg.norm(gm)
            if full or norm == 0 or np.linalg.norm(gm - (gm @ b.T) @ b) <= ROW_SPACE_RTOL * norm:
                out.append(o)
        return out

    found, nodes, sq, wide = [], [0], (C, C), (4 * C, C)

    def busy():
        nodes[0] += 1
        return len(found) >= MAX_ORDERS or nodes[0] > SEARCH_NODES

    def layer(li, h, taken, chosen):
        if busy():
            return
        if li == config.n_layer:
            r, c = shapes["lm_head"]
            for o in fits((r, c), h, taken):
                found.append(dict(chosen, lm_head=o))
            return
        pre = f"layer{li}."
        x = rms(h)
        qkv = fits(sq, x, taken)
        for oq, ok_, ov in itertools.permutations(qkv, 3):
            spans = [(o, o + C * C) for o in (oq, ok_, ov)]
            if any(a < e and s < b for i, (a, b) in enumerate(spans) for s, e in spans[i + 1:]) or busy():
                if nodes[0] > SEARCH_NODES:
                    return
                continue
            att = attention(x, mat(oq, sq), mat(ok_, sq), mat(ov, sq))
            for oo in fits(sq, att, taken + spans):
                h1 = h + att @ mat(oo, sq).T
                x2 = rms(h1)
                t1 = taken + spans + [(oo, oo + C * C)]
                for o1 in fits(wide, x2, t1):
                    if busy():
                        return
                    hidden = np.maximum(x2 @ mat(o1, wide).T, 0.0)
                    t2 = t1 + [(o1, o1 + 4 * C * C)]
                    for o2 in fits((C, 4 * C), hidden if config.activation == "relu" else np.eye(4 * C), t2):
                        names = ("attn_wq", "attn_wk", "attn_wv", "attn_wo", "mlp_fc1", "mlp_fc2")
                        layer(li + 1, h1 + hidden @ mat(o2, (C, 4 * C)).T, t2 + [(o2, o2 + 4 * C * C)],
                              dict(chosen, **{pre + m: o for m, o in zip(names, (oq, ok_, ov, oo, o1, o2))}))

    for ote in starts(shapes["wte"], set(tokens[:n])):
        for ope in starts(shapes["wpe"], set(range(n))):
            te, pe = (ote, ote + shapes["wte"][0] * C), (ope, ope + shapes["wpe"][0] * C)
            if te[0] < pe[1] and pe[0] < te[1]:
                continue
            cuts = sorted([te, pe])
            gaps[:] = [(a, b) for a, b in ((0, cuts[0][0]), (cuts[0][1], cuts[1][0]), (cuts[1][1], total)) if b > a]
            x0 = rms(mat(ote, shapes["wte"])[tokens[:n]] + mat(ope, shapes["wpe"])[:n])
            layer(0, x0, [te, pe], {"wte": ote, "wpe": ope})
    orders = []
    for offsets in found:
        order = sorted(shapes, key=lambda name: offsets[name])
        if order not in orders:
            orders.append(order)
    return orders, nodes[0] <= SEARCH_NODES


def _order_words(order, names):
    """An order in words: a known pattern's name, else the names in the trace's order."""
    if order == sorted(names):
        return "sorted by name"
    if order == names[::-1]:
        return "the seed's order reversed"
    return "the trace's order: " + ", ".join(order)


def _from_order(config, order):
    """The permutation that maps a flat list written in `order` (a list of the seed's names) to the seed's."""
    shapes = param_shapes(config)
    sizes = {n: r * c for n, (r, c) in shapes.items()}
    offsets, at = {}, 0
    for n in order:
        offsets[n] = at
        at += sizes[n]
    return np.concatenate([np.arange(offsets[n], offsets[n] + sizes[n]) for n in shapes])


def _layouts(config, orders=None):
    """(kind, words, permutation) for the parameter layouts a trace may use by mistake: `orders` (the orders the
    numbers allow: _orders_from_numbers), or without gradients to read them from, the seed's blocks in the usual
    other orders (sorted by name, lm_head last, the equal-shaped matrices of a block permuted); and every matrix
    written column by column. A permutation maps the trace's flat list to the seed's."""
    shapes = param_shapes(config)
    names = list(shapes)
    out, seen = [], set()
    if orders is not None:
        for order in orders:
            if order != names:
                out.append(("order", _order_words(order, names), _from_order(config, order)))
    else:
        layer = ["attn_wq", "attn_wk", "attn_wv", "attn_wo"]
        bases = {"the seed's": names, "sorted by name": sorted(names),
                 "lm_head after the layers": [n for n in names if n != "lm_head"] + ["lm_head"] * ("lm_head" in names)}
        for base_words, base in bases.items():
            for perm in itertools.permutations(layer):
                for swap in (False, True):
                    mapping = {f"layer{i}.{a}": f"layer{i}.{b}" for i in range(config.n_layer)
                               for a, b in zip(layer, perm)}
                    if swap and "lm_head" not in names:  # tied embeddings: no lm_head to swap
                        continue
                    if swap:
                        mapping.update({"wte": "lm_head", "lm_head": "wte"})
                    order = [mapping.get(n, n) for n in base]
                    key = tuple(order)
                    if key in seen or order == names:
                        continue
                    seen.add(key)
                    words = f"{base_words} order" + (f", {', '.join(perm)} within each layer" if list(perm) != layer
                                                      else "") + (", wte and lm_head swapped" if swap else "")
                    out.append(("order", words, _from_order(config, order)))
    transposed = []
    at = 0
    for n in names:
        r, c = shapes[n]
        transposed.append(at + np.arange(r * c).reshape(c, r).T.reshape(-1))  # column-major -> row-major
        at += r * c
    out.append(("column-major", "every matrix column by column", np.concatenate(transposed)))
    return out


def trials_of_layouts(state, slips):
    """A trace whose every parameter list is laid out wrongly: replayed from the weights put back in the seed's
    layout, does torch_ref reproduce the port's loss (and gradients)? Only where the weights before the step are
    the trace's own."""
    from torch_ref.train import DTYPES, TorchTrainer

    by_id = {b.id: b for b in slips}
    if state.phase != "forward" or not ({"slip-parameter-order", "slip-column-major"} & set(by_id)):
        return []
    names = compared_names(state, ("forward", "backward"))
    grads = port_grads(state)
    weights = np.array(state.weights)
    trainer = TorchTrainer.from_params(state.config, state.weights, steps=state.total_steps, adam=state.adam,
                                       dtype=DTYPES[state.dtype])
    trials = []
    orders = None  # without gradients, or where they cannot tell, the usual other orders are tried
    if grads is not None and "slip-parameter-order" in by_id:
        orders, conclusive = _orders_from_numbers(state, grads)
        orders = orders if conclusive or orders else None
    for kind, words, perm in _layouts(state.config, orders):
        bug = by_id.get("slip-parameter-order" if kind == "order" else "slip-column-major")
        if bug is None:
            continue
        trainer.load_params(weights[perm].tolist())
        loss, logits = trainer.forward_backward(state.tokens)
        cand = {"loss": np.array(loss.item()), "logits": logits.detach().double().numpy()}
        port = dict(state.port)
        if grads is not None:  # the port's gradients, put in the seed's layout too
            for name, rows in split_flat(np.array(grads)[perm].tolist(), state.config).items():
                port["grad:" + name] = np.array(rows)
            for name, p in trainer.params_by_name().items():
                cand["grad:" + name] = p.grad.detach().double().numpy()
        view = replace(state, port=port)
        trials.append(Trial(bug, fit(cand, view, names), rss_miss(cand, view, names), names, words))
    return trials
