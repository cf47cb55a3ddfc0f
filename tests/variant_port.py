"""A small hand-written microgpt port, standard library only, written apart from pure/ (issue 28).

It trains Karpathy's microgpt (token + position embedding, rmsnorm without gain, causal multi-head attention
with a KV cache one token at a time, an MLP 4C wide, lm_head, Adam with bias correction) on a few words it makes
itself, with a chosen activation, lr schedule, betas, lr and documents per step, and writes a port trace
(README, "The port-trace format") that `python -m parity check` judges:

    python tests/variant_port.py --activation gelu --schedule cosine --out run.jsonl
    python -m parity check run.jsonl

--declare (the default) puts a `variant` object in meta naming exactly its deviations from microgpt's defaults;
--no-declare leaves it out (the facts lr, beta1, beta2, eps, steps are in meta either way).
"""

import argparse
import json
import math
import random

N_LAYER, N_EMBD, N_HEAD, BLOCK = 1, 8, 2, 8
HEAD_DIM = N_EMBD // N_HEAD
NORM_EPS, ADAM_EPS = 1e-5, 1e-8
ALPHABET = "abcdefghij"
WARMUP = 2
MICROGPT = {"activation": "relu", "lr_schedule": "linear", "lr": 0.01, "beta1": 0.85, "beta2": 0.99,
            "docs_per_step": 1}


class Value:
    """A scalar with its gradient: each op keeps its inputs and their local derivatives."""

    __slots__ = ("data", "grad", "_prev", "_local")

    def __init__(self, data, prev=(), local=()):
        self.data, self.grad, self._prev, self._local = data, 0.0, prev, local

    def __add__(self, o):
        o = o if isinstance(o, Value) else Value(o)
        return Value(self.data + o.data, (self, o), (1.0, 1.0))

    def __mul__(self, o):
        o = o if isinstance(o, Value) else Value(o)
        return Value(self.data * o.data, (self, o), (o.data, self.data))

    def __pow__(self, k):
        return Value(self.data ** k, (self,), (k * self.data ** (k - 1),))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def log(self):
        return Value(math.log(self.data), (self,), (1 / self.data,))

    def relu(self):
        return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1 - t * t,))

    def erf(self):
        return Value(math.erf(self.data), (self,), (2 / math.sqrt(math.pi) * math.exp(-self.data ** 2),))

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data))
        return Value(s, (self,), (s * (1 - s),))

    def __neg__(self):
        return self * -1

    def __sub__(self, o):
        return self + (-o)

    def __truediv__(self, o):
        return self * o ** -1

    __radd__ = __add__
    __rmul__ = __mul__

    def backward(self):
        order, seen = [], set()
        stack = [(self, False)]
        while stack:  # iterative topological sort (no recursion limit)
            v, done = stack.pop()
            if done:
                order.append(v)
            elif id(v) not in seen:
                seen.add(id(v))
                stack.append((v, True))
                stack.extend((c, False) for c in v._prev)
        self.grad = 1.0
        for v in reversed(order):
            for c, d in zip(v._prev, v._local):
                c.grad += d * v.grad


def activate(x, name):
    if name == "relu":
        return x.relu()
    if name == "relu2":
        return x.relu() ** 2
    if name == "gelu":
        return 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())
    if name == "gelu_tanh":
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)).tanh())
    if name == "silu":
        return x * x.sigmoid()
    raise ValueError(name)


def lr_at(t, args):
    """The rate of 0-based step t."""
    if args.schedule == "linear":
        return args.lr * (1 - t / args.steps)
    if args.schedule == "cosine":
        return args.lr * 0.5 * (1 + math.cos(math.pi * t / args.steps))
    if args.schedule == "constant":
        return args.lr
    if t < WARMUP:  # warmup: linear up to lr over the first WARMUP steps, then cosine over the rest
        return args.lr * (t + 1) / WARMUP
    return args.lr * 0.5 * (1 + math.cos(math.pi * (t - WARMUP) / max(1, args.steps - WARMUP)))


def make_docs(n=50, seed=12345):
    """n short words over ALPHABET from a tiny LCG (never the names dataset)."""
    state, words = seed, []

    def draw(k):
        nonlocal state
        state = (1103515245 * state + 12345) % 2 ** 31
        return (state >> 16) % k

    for _ in range(n):
        words.append("".join(ALPHABET[draw(len(ALPHABET))] for _ in range(2 + draw(5))))
    return words


def matrix(rng, rows, cols):
    return [[Value(rng.gauss(0, 0.08)) for _ in range(cols)] for _ in range(rows)]


def init_params(seed, vocab):
    """The state dict in the seed's order: wte, wpe, lm_head, then per layer attn_wq .. mlp_fc2."""
    rng = random.Random(seed)
    sd = {"wte": matrix(rng, vocab, N_EMBD), "wpe": matrix(rng, BLOCK, N_EMBD), "lm_head": matrix(rng, vocab, N_EMBD)}
    for li in range(N_LAYER):
        for name, shape in (("attn_wq", (N_EMBD, N_EMBD)), ("attn_wk", (N_EMBD, N_EMBD)),
                            ("attn_wv", (N_EMBD, N_EMBD)), ("attn_wo", (N_EMBD, N_EMBD)),
                            ("mlp_fc1", (4 * N_EMBD, N_EMBD)), ("mlp_fc2", (N_EMBD, 4 * N_EMBD))):
            sd[f"layer{li}.{name}"] = matrix(rng, *shape)
    return sd


def flat(sd):
    """Every parameter, each matrix row by row (the trace's flat layout)."""
    return [p for mat in sd.values() for row in mat for p in row]


def step_loss(sd, step_docs, stoi, activation):
    """token_mean: the mean over every predicted position of the step's documents."""
    losses = [x for d in step_docs for x in doc_losses(sd, d, stoi, activation)]
    return sum(losses, Value(0.0)) * (1 / len(losses))


def linear(x, w):
    return [sum((wi * xi for wi, xi in zip(row, x)), Value(0.0)) for row in w]


def rmsnorm(x):
    scale = (sum((xi * xi for xi in x), Value(0.0)) * (1 / len(x)) + NORM_EPS) ** -0.5
    return [xi * scale for xi in x]


def softmax(logits):
    top = max(v.data for v in logits)
    exps = [(v - top).exp() for v in logits]
    total = sum(exps, Value(0.0))
    return [e / total for e in exps]


def gpt(sd, token, pos, keys, values, activation):
    x = rmsnorm([t + p for t, p in zip(sd["wte"][token], sd["wpe"][pos])])
    for li in range(N_LAYER):
        p = f"layer{li}."
        residual = x
        x = rmsnorm(x)
        q, k, v = (linear(x, sd[p + n]) for n in ("attn_wq", "attn_wk", "attn_wv"))
        keys[li].append(k)
        values[li].append(v)
        heads = []
        for h in range(N_HEAD):
            s = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
            att = softmax([sum((a * b for a, b in zip(q[s], kt[s])), Value(0.0)) * (1 / HEAD_DIM ** 0.5)
                           for kt in keys[li]])
            heads += [sum((w * vt[s][j] for w, vt in zip(att, values[li])), Value(0.0)) for j in range(HEAD_DIM)]
        x = [a + b for a, b in zip(linear(heads, sd[p + "attn_wo"]), residual)]
        residual = x
        h = [activate(z, activation) for z in linear(rmsnorm(x), sd[p + "mlp_fc1"])]
        x = [a + b for a, b in zip(linear(h, sd[p + "mlp_fc2"]), residual)]
    return linear(x, sd["lm_head"])


def doc_losses(sd, doc, stoi, activation):
    bos = len(stoi)
    tokens = [bos] + [stoi[c] for c in doc] + [bos]
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    out = []
    for pos in range(min(BLOCK, len(tokens) - 1)):
        probs = softmax(gpt(sd, tokens[pos], pos, keys, values, activation))
        out.append(-probs[tokens[pos + 1]].log())
    return out


def declared_variant(args):
    mine = {"activation": args.activation, "lr_schedule": "custom" if args.schedule == "warmup" else args.schedule,
            "lr": args.lr, "beta1": args.beta1, "beta2": args.beta2, "docs_per_step": args.docs_per_step}
    return {k: v for k, v in mine.items() if v != MICROGPT[k]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activation", default="relu", choices=("relu", "relu2", "gelu", "gelu_tanh", "silu"))
    ap.add_argument("--schedule", default="linear", choices=("linear", "cosine", "constant", "warmup"))
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--beta1", type=float, default=0.85)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--docs-per-step", type=int, default=1)
    ap.add_argument("--tensor-steps", type=int, default=3, help="steps 1..N carry grads and params")
    ap.add_argument("--declare", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    docs, chars = make_docs(), ALPHABET
    stoi = {c: i for i, c in enumerate(chars)}
    vocab = len(chars) + 1  # BOS is len(chars)
    sd = init_params(args.seed, vocab)
    params = flat(sd)
    m, v = [0.0] * len(params), [0.0] * len(params)

    meta = {"format": 1, "implementation": "tests/variant_port.py", "n_layer": N_LAYER, "n_embd": N_EMBD,
            "n_head": N_HEAD, "block_size": BLOCK, "chars": chars, "steps": args.steps, "lr": args.lr,
            "beta1": args.beta1, "beta2": args.beta2, "eps": ADAM_EPS}
    if args.declare and declared_variant(args):
        meta["variant"] = declared_variant(args)
    with open(args.out, "w") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        f.write(json.dumps({"init": [p.data for p in params]}) + "\n")
        for t in range(args.steps):
            step_docs = [docs[(t * args.docs_per_step + i) % len(docs)] for i in range(args.docs_per_step)]
            loss = step_loss(sd, step_docs, stoi, args.activation)
            loss.backward()
            rec = {"step": t + 1}
            rec.update({"doc": step_docs[0]} if len(step_docs) == 1 else {"docs": step_docs})
            lr = lr_at(t, args)
            rec.update(loss=loss.data, lr=lr)
            if t < args.tensor_steps:
                rec["grads"] = [p.grad for p in params]
            for i, p in enumerate(params):  # Adam with bias correction
                m[i] = args.beta1 * m[i] + (1 - args.beta1) * p.grad
                v[i] = args.beta2 * v[i] + (1 - args.beta2) * p.grad ** 2
                m_hat = m[i] / (1 - args.beta1 ** (t + 1))
                v_hat = v[i] / (1 - args.beta2 ** (t + 1))
                p.data -= lr * m_hat / (v_hat ** 0.5 + ADAM_EPS)
                p.grad = 0.0
            if t < args.tensor_steps:
                rec["params"] = [p.data for p in params]
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
