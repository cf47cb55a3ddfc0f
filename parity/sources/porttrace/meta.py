"""A trace's meta line (the config, the characters, the facts, the declared variant) and the tokens of a step's
documents."""

from dataclasses import dataclass, field
from typing import Optional

from parity.judge.variants import Declaration
from pure.model import GPTConfig
from pure.optim import AdamConfig
from pure.variants import echo

from .limits import META_DEPTH, Limits, TraceError, replay_bytes, within_depth

FORMAT = 1  # the version of this format; meta.format, when given, must not be newer
SEED_STEPS = 1000  # the seed's numSteps: the lr decay's length when meta has no `steps`
CONFIG_KEYS = ("n_layer", "n_embd", "n_head", "block_size")
ADD_TENSORS = ('add "grads" (every parameter\'s .grad after backward, before the update) and "params" (every '
               'parameter after the update) to the step lines, as flat lists in the seed\'s order')


@dataclass
class PortMeta:
    config: GPTConfig
    chars: str
    adam: AdamConfig
    steps: int  # the lr decay's length
    steps_given: bool  # whether meta said so (otherwise SEED_STEPS is assumed, and the report says it)
    implementation: str = ""
    dtype: Optional[str] = None  # "float32" when the port says it computes in float32
    extra: dict = field(default_factory=dict)
    declaration: Declaration = field(default_factory=Declaration)  # the port's facts and declared variant
    bos: Optional[int] = None  # BOS's id (None: len(chars))
    eos: Optional[int] = None  # the end token's id (None: BOS's)

    @property
    def bos_id(self):
        return len(self.chars) if self.bos is None else self.bos

    @property
    def eos_id(self):
        return self.bos_id if self.eos is None else self.eos

    def char_ids(self):
        """Each character's id: the ids that BOS and EOS do not take, in order (chars lists them in id order)."""
        special = {self.bos_id, self.eos_id}
        ids = [i for i in range(len(self.chars) + len(special)) if i not in special]
        return dict(zip(self.chars, ids))


@dataclass
class PortStep:
    line: int
    step: int
    tokens: list  # ids, BOS at both ends; a list of such lists for a step over several documents
    loss: float
    lr: Optional[float] = None  # the rate the step's update used, when the trace says
    grads: Optional[list] = None  # flat, the seed's order
    params: Optional[list] = None
    logits: Optional[list] = None  # (n, V)


def read_meta(rec, where, limits=None):
    m = rec.get("meta")
    if not isinstance(m, dict):
        raise TraceError(f"{where}: meta must be an object")
    if not within_depth(m, META_DEPTH):
        raise TraceError(f"{where}: meta is nested deeper than {META_DEPTH} levels")
    if m.get("format", FORMAT) != FORMAT:
        raise TraceError(f"{where}: trace format {echo(m.get('format'))}; this version reads format {FORMAT}")
    missing = [k for k in (*CONFIG_KEYS, "chars") if k not in m]
    if missing:
        raise TraceError(f"{where}: meta lacks {', '.join(missing)} (it needs n_layer, n_embd, n_head, block_size "
                         f"and chars, the vocabulary's characters in id order)")
    chars = m["chars"]
    if not isinstance(chars, str) or not chars or len(set(chars)) != len(chars):
        raise TraceError(f"{where}: meta.chars must be a non-empty string of distinct characters")
    declaration = Declaration.from_meta(m, lambda message: TraceError(f"{where}: {message}"))
    bos, eos = _special_ids(m, len(chars), where)
    vocab = len(chars) + (1 if eos == bos else 2)
    try:
        config = GPTConfig(**{k: m[k] for k in CONFIG_KEYS}, vocab_size=vocab, **declaration.effective.model_fields())
    except ValueError as e:
        raise TraceError(f"{where}: {e}") from None
    limits = limits or Limits()
    need, params = replay_bytes(config)  # before anything of that size is made
    if params > limits.max_params:
        raise TraceError(f"{where}: the config has {params:.3g} parameters, over the limit of {limits.max_params:.3g} "
                         f"(--max-params to allow more)")
    if need > limits.max_memory_mb * 2 ** 20:
        raise TraceError(f"{where}: replaying this config would take about {need / 2 ** 20:.0f} MB (block_size "
                         f"{config.block_size}, {params} parameters), over the limit of {limits.max_memory_mb:g} MB "
                         f"(--max-memory to allow more)")
    adam = declaration.effective.adam_config()
    steps = m.get("steps", SEED_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TraceError(f"{where}: meta.steps must be a positive integer, got {echo(steps)}")
    dtype = m.get("dtype")
    if dtype not in (None, "float64", "float32"):
        raise TraceError(f"{where}: meta.dtype must be float64 or float32, got {echo(dtype)}")
    return PortMeta(config, chars, adam, steps, "steps" in m, str(m.get("implementation", "")), dtype,
                    {k: v for k, v in m.items() if k not in (*CONFIG_KEYS, "chars")}, declaration,
                    None if bos == len(chars) else bos, None if eos == bos else eos)


def _special_ids(m, n, where):
    """(bos, eos) from meta: BOS is len(chars) by default; a separate end token (eos) makes the vocabulary one
    larger. The characters take the other ids, in order: BOS 0 puts them after it, BOS 0 and EOS 1 after both."""
    bos = m.get("bos", n)
    eos = m.get("eos", bos)
    size = n + (1 if eos == bos else 2)
    for key, value in (("bos", bos), ("eos", eos)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
            raise TraceError(f"{where}: meta.{key} must be a token id in 0..{size - 1} (the {n} characters and "
                             f"{size - n} special token(s) BOS{'/EOS' if size - n == 2 else ''}), got {echo(value)}")
    return bos, eos


def _doc_tokens(doc, meta, where):
    if not isinstance(doc, str) or not doc:
        raise TraceError(f"{where}: doc must be a non-empty string")
    bad = sorted(set(doc) - set(meta.chars))
    if bad:
        raise TraceError(f"{where}: doc {echo(doc)} has characters outside meta.chars: {echo(''.join(bad))}")
    index = meta.char_ids()
    return [meta.bos_id] + [index[c] for c in doc] + [meta.eos_id]


def _id_list(tokens, meta, where):
    top = meta.config.vocab_size - 1
    if not isinstance(tokens, list) or len(tokens) < 2:
        raise TraceError(f"{where}: a step needs doc (a string) or tokens (ids with BOS = {meta.bos_id} at the start "
                         f"and {meta.eos_id} at the end)")
    if any(isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= top for t in tokens):
        raise TraceError(f"{where}: tokens must be ids in 0..{top}")
    return tokens


def read_tokens(rec, meta, where):
    """The step's token ids (a list), or for a step over several documents a list of such lists."""
    if "doc" in rec:
        return _doc_tokens(rec["doc"], meta, where)
    if "docs" in rec:
        docs = rec["docs"]
        if not isinstance(docs, list) or not docs:
            raise TraceError(f"{where}: docs must be a non-empty list of strings (the step's documents)")
        out = [_doc_tokens(d, meta, where) for d in docs]
        return out[0] if len(out) == 1 else out
    tokens = rec.get("tokens")
    if isinstance(tokens, list) and tokens and isinstance(tokens[0], list):
        out = [_id_list(t, meta, where) for t in tokens]
        return out[0] if len(out) == 1 else out
    return _id_list(tokens, meta, where)


def doc_count(tokens):
    """How many documents a step's tokens hold."""
    return len(tokens) if tokens and isinstance(tokens[0], list) else 1
