"""The seed's main program as a class: shuffle, tokenize, initialise, train, sample.

One `Rng` drives everything, in the seed's order (shuffle the documents, draw
the weights, then draw the samples), so a run is fully determined by its seed.
"""

from . import fused
from .data import Tokenizer
from .engine import Value, gc_paused
from .model import PLAIN_SUMS, GPTConfig, flatten, gpt, init_params, softmax
from .optim import Adam
from .rng import Rng
from .variants import Variant


def doc_loss(tokens, params, config, tap=None, sums=PLAIN_SUMS):
    """Mean cross-entropy of predicting tokens[1:] from tokens[:-1], one position at a time.

    Documents longer than block_size are cut to their first block_size predictions.
    `tap(name, pos, values)` receives each position's intermediates and finally
    ("loss", None, [loss]).
    """
    losses = position_losses(tokens, params, config, tap, sums)
    loss = sums[0](losses) / len(losses)
    if tap is not None:
        tap("loss", None, [loss])
    return loss


def position_losses(tokens, params, config, tap=None, sums=PLAIN_SUMS):
    """-log p(target) at each predicted position of one document (the first block_size)."""
    n = min(config.block_size, len(tokens) - 1)
    kv_keys = [[] for _ in range(config.n_layer)]
    kv_vals = [[] for _ in range(config.n_layer)]
    losses = []
    for pos in range(n):
        pos_tap = None if tap is None else (lambda name, values, pos=pos: tap(name, pos, values))
        logits = gpt(tokens[pos], pos, kv_keys, kv_vals, params, config, pos_tap, sums)
        probs = softmax(logits, sums)
        losses.append(-probs[tokens[pos + 1]].log())  # -log p(target)
    return losses


def batch_loss(docs, params, config, tap=None, sums=PLAIN_SUMS, reduction="token_mean"):
    """The loss of several documents in one step (a declared variant's docs_per_step): "token_mean", the mean over
    every predicted position of every document (their summed -log p over their count), or "doc_mean", the mean of
    each document's own mean. `tap` sees the last document's intermediates, as a hook sees the last forward."""
    if len(docs) == 1:
        return doc_loss(docs[0], params, config, tap, sums)
    taps = [tap if i == len(docs) - 1 else None for i in range(len(docs))]
    if reduction == "doc_mean":
        means = []
        for tokens, t in zip(docs, taps):
            losses = position_losses(tokens, params, config, t, sums)
            means.append(sums[0](losses) / len(losses))
        loss = sums[0](means) / len(means)
    else:
        losses = [x for tokens, t in zip(docs, taps) for x in position_losses(tokens, params, config, t, sums)]
        loss = sums[0](losses) / len(losses)
    if tap is not None:
        tap("loss", None, [loss])
    return loss


def sample_ids(params, config, rng, bos, temperature, sums=PLAIN_SUMS):
    """Token ids drawn one at a time from softmax(logits / temperature) until BOS or block_size."""
    kv_keys = [[] for _ in range(config.n_layer)]
    kv_vals = [[] for _ in range(config.n_layer)]
    token, out = bos, []
    population = list(range(config.vocab_size))
    for pos in range(config.block_size):
        logits = gpt(token, pos, kv_keys, kv_vals, params, config, sums=sums)
        probs = softmax([logit / temperature for logit in logits], sums)
        token = rng.choices(population, [p.data for p in probs])
        if token == bos:
            break
        out.append(token)
    return out


ENGINES = ("fused", "plain")


def shuffled(docs, rng):
    """(the documents in the order the run uses them, the tokenizer): the seed's first draws from `rng`."""
    docs = list(docs)
    rng.shuffle(docs)
    return docs, Tokenizer.from_docs(docs)


def default_engine(value_cls=Value):
    """The one rule: pure's own Value runs fused (pure.fused, the same numbers, several times faster); any other
    Value class (a user's) runs the plain engine, one node per op, through the protocol's operators."""
    return "fused" if value_cls is Value else "plain"


class Trainer:
    """Holds one run's state; `train_step` is one step of the seed's loop."""

    def __init__(self, docs, *, seed=42, steps=1000, n_layer=1, n_embd=16, n_head=4, block_size=16,
                 adam=None, value_cls=Value, engine=None, variant=None):
        if not docs:
            raise ValueError("no documents to train on")
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.engine = engine or default_engine(value_cls)
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.engine == "fused" and value_cls is not Value:
            raise ValueError("the fused engine runs pure's own Value only; a user's Value class runs plain")
        self.sums = fused.SUMS if self.engine == "fused" else PLAIN_SUMS
        self.rng = Rng(seed)
        self.seed = seed
        self.docs, self.tokenizer = shuffled(docs, self.rng)
        self.variant = variant or Variant()  # microgpt's own, unless a variant is declared (pure.variants)
        self.variant.check_docs(len(docs))
        self.config = GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size,
                                vocab_size=self.tokenizer.vocab_size, **self.variant.model_fields())
        self.params = init_params(self.config, self.rng, value_cls)
        self.flat_params = flatten(self.params)
        self.optimizer = Adam(self.flat_params, steps, adam or self.variant.adam_config())
        self.steps = steps

    def tokens_at(self, step):
        """The 0-based step's document, tokenized: documents are used in shuffled order, cycling."""
        return self.tokenizer.encode(self.docs[step % len(self.docs)])

    def docs_at(self, step):
        """The 0-based step's documents, tokenized: docs_per_step of them, the next ones in shuffled order."""
        return [self.tokenizer.encode(doc) for doc in self.variant.docs_of_step(self.docs, step)]

    def forward(self, step, tap=None):
        """Loss of the step's document(s) (a Value, its graph built; no backward yet)."""
        if self.variant.docs_per_step == 1:
            return doc_loss(self.tokens_at(step), self.params, self.config, tap, self.sums)
        return batch_loss(self.docs_at(step), self.params, self.config, tap, self.sums, self.variant.loss_reduction)

    def backward(self, loss):
        """Fill in every node's .grad (the engine's own backward: fused graphs are walked by pure.fused)."""
        if self.engine == "fused":
            fused.backward(loss)
        else:
            loss.backward()

    def forward_backward(self, step, tap=None):
        """Loss of the step's document, with every parameter's .grad filled in (no update)."""
        loss = self.forward(step, tap)
        self.backward(loss)
        return loss

    def train_step(self, step, tap=None, on_grads=None):
        """Forward, backward and one Adam update; returns the loss as a float. on_grads(trainer), if given, is
        called between the backward and the update (a trace records the gradients there)."""
        with gc_paused():
            loss = self.forward_backward(step, tap)
            if on_grads:
                on_grads(self)
            self.optimizer.step(step)
            value = loss.data
            del loss  # the graph is freed here, so the collection at the end of the block has little to look at
        return value

    def flat_values(self, attr="data"):
        """Every parameter's .data (or .grad) as floats, in the seed's order (the port-trace layout)."""
        return [float(getattr(p, attr)) for p in self.flat_params]

    def sample(self, n, temperature):
        out = []
        for _ in range(n):
            with gc_paused():
                out.append(self.tokenizer.decode(
                    sample_ids(self.params, self.config, self.rng, self.tokenizer.bos, temperature, self.sums)))
        return out

    @property
    def num_params(self):
        return len(self.flat_params)

    def lr_at(self, step):
        return self.optimizer.lr_at(step)

    def export_params(self):
        """name -> rows of floats (the checkpoint layout)."""
        return {name: [[p.data for p in row] for row in rows] for name, rows in self.params.items()}


def sample_checkpoint(ckpt, rng, n, temperature, value_cls=Value, engine=None):
    """Samples from a checkpoint's weights, drawing from `rng` (fused unless a user's class or engine="plain")."""
    sums = fused.SUMS if (engine or default_engine(value_cls)) == "fused" else PLAIN_SUMS
    params = {name: [[value_cls(x) for x in row] for row in rows] for name, rows in ckpt.params.items()}
    tokenizer = Tokenizer(ckpt.chars)
    out = []
    for _ in range(n):
        with gc_paused():
            out.append(tokenizer.decode(sample_ids(params, ckpt.config, rng, tokenizer.bos, temperature, sums)))
    return out
