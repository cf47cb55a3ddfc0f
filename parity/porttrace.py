"""The port trace: what a microgpt port in any language writes so that `parity check` can judge it.

JSON lines, read as a stream (a 1000-step trace with every tensor is ~70 MB; memory stays flat):

    {"meta": {"n_layer": 1, "n_embd": 16, "n_head": 4, "block_size": 16, "chars": "abc...z"}}
    {"init": [every parameter before training, in the seed's order]}
    {"step": 1, "doc": "emma", "loss": 3.48, "grads": [...], "params": [...], "logits": [[...], ...]}
    ...

meta may also hold `implementation` (free text), `steps` (the length of the linear lr decay), `lr`, `beta1`,
`beta2`, `eps` (default: the seed's) and `dtype` ("float32" for a float32 port). A parameter list is either flat,
in the seed's order (wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2,
each row by row: `params.map(p => p.data)`), or an object with each matrix under the seed's name. A step
gives `doc` (a string over `chars`) or `tokens` (ids, BOS = len(chars) at both ends); `grads` (after
backward, before the update), `params` (after the update) and `logits` (one row per position) are optional,
on any steps. Lines that do not start with `{` (a port's own prints) are skipped. A number that is null,
NaN or inf is kept as nan/inf: the port's divergence at that step, never a reason to refuse the trace.
"""

import gzip
import json
import math
from dataclasses import dataclass, field
from typing import Optional

from pure.model import GPTConfig, param_shapes
from pure.optim import AdamConfig

FORMAT = 1  # the version of this format; meta.format, when given, must not be newer
SEED_STEPS = 1000  # the seed's numSteps: the lr decay's length when meta has no `steps`
CONFIG_KEYS = ("n_layer", "n_embd", "n_head", "block_size")
ADD_TENSORS = ('add "grads" (every parameter\'s .grad after backward, before the update) and "params" (every '
               'parameter after the update) to the step lines, as flat lists in the seed\'s order')


class TraceError(ValueError):
    """An unusable trace: one line naming where and what (exit 2)."""


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


@dataclass
class PortStep:
    line: int
    step: int
    tokens: list
    loss: float
    grads: Optional[list] = None  # flat, the seed's order
    params: Optional[list] = None
    logits: Optional[list] = None  # (n, V)


def _number(x, where):
    if x is None:
        return math.nan  # JavaScript's JSON.stringify writes NaN and inf as null
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TraceError(f"{where}: expected a number, got {json.dumps(x)[:40]}")
    return float(x)


def expected_order(config):
    shapes = param_shapes(config)
    total = sum(r * c for r, c in shapes.values())
    order = ", ".join(f"{n} ({r}x{c})" for n, (r, c) in list(shapes.items())[:3 + 6 * min(1, config.n_layer)])
    more = " and the same for every further layer" if config.n_layer > 1 else ""
    return total, f"{order}{more}, each row by row"


def flat_params(value, config, where):
    """A flat list of floats in the seed's order, from a flat list or a {name: rows} object; TraceError if the
    count or a shape does not fit the config."""
    shapes = param_shapes(config)
    total, order = expected_order(config)
    if isinstance(value, dict):
        missing = [n for n in shapes if n not in value]
        unknown = [n for n in value if n not in shapes]
        if missing or unknown:
            raise TraceError(f"{where}: parameter names do not fit the config: missing {missing}, unknown {unknown} "
                             f"(expected {', '.join(shapes)})")
        flat = []
        for name, (rows, cols) in shapes.items():
            m = value[name]
            if not isinstance(m, list) or len(m) != rows or any(not isinstance(r, list) or len(r) != cols for r in m):
                raise TraceError(f"{where}: {name} must be {rows} rows of {cols} numbers")
            flat += [_number(x, f"{where}, {name}") for row in m for x in row]
        return flat
    if not isinstance(value, list):
        raise TraceError(f"{where}: expected a list of numbers or an object of matrices")
    if len(value) != total:
        raise TraceError(f"{where}: {len(value)} numbers, but the config needs {total}: {order}")
    return [_number(x, where) for x in value]


def _meta(rec, where):
    m = rec.get("meta")
    if not isinstance(m, dict):
        raise TraceError(f"{where}: meta must be an object")
    if m.get("format", FORMAT) != FORMAT:
        raise TraceError(f"{where}: trace format {m.get('format')!r}; this version reads format {FORMAT}")
    missing = [k for k in (*CONFIG_KEYS, "chars") if k not in m]
    if missing:
        raise TraceError(f"{where}: meta lacks {', '.join(missing)} (it needs n_layer, n_embd, n_head, block_size "
                         f"and chars, the vocabulary's characters in id order)")
    chars = m["chars"]
    if not isinstance(chars, str) or not chars or len(set(chars)) != len(chars):
        raise TraceError(f"{where}: meta.chars must be a non-empty string of distinct characters")
    try:
        config = GPTConfig(**{k: m[k] for k in CONFIG_KEYS}, vocab_size=len(chars) + 1)
    except ValueError as e:
        raise TraceError(f"{where}: {e}") from None
    base = AdamConfig()
    try:
        adam = AdamConfig(**{k: float(m.get(k, getattr(base, k))) for k in ("lr", "beta1", "beta2", "eps")})
    except (TypeError, ValueError) as e:
        raise TraceError(f"{where}: meta lr/beta1/beta2/eps must be numbers ({e})") from None
    steps = m.get("steps", SEED_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TraceError(f"{where}: meta.steps must be a positive integer, got {steps!r}")
    dtype = m.get("dtype")
    if dtype not in (None, "float64", "float32"):
        raise TraceError(f"{where}: meta.dtype must be float64 or float32, got {dtype!r}")
    return PortMeta(config, chars, adam, steps, "steps" in m, str(m.get("implementation", "")), dtype,
                    {k: v for k, v in m.items() if k not in (*CONFIG_KEYS, "chars")})


def _tokens(rec, meta, where):
    bos = len(meta.chars)
    if "doc" in rec:
        doc = rec["doc"]
        if not isinstance(doc, str) or not doc:
            raise TraceError(f"{where}: doc must be a non-empty string")
        bad = sorted(set(doc) - set(meta.chars))
        if bad:
            raise TraceError(f"{where}: doc {doc!r} has characters outside meta.chars: {''.join(bad)!r}")
        index = {c: i for i, c in enumerate(meta.chars)}
        return [bos] + [index[c] for c in doc] + [bos]
    tokens = rec.get("tokens")
    if not isinstance(tokens, list) or len(tokens) < 2:
        raise TraceError(f"{where}: a step needs doc (a string) or tokens (ids with BOS = {bos} at both ends)")
    if any(isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= bos for t in tokens):
        raise TraceError(f"{where}: tokens must be ids in 0..{bos}")
    return tokens


def _step(rec, meta, lineno, where, expected):
    k = rec["step"]
    if k != expected:
        problem = "missing" if isinstance(k, int) and k > expected else "out of order"
        raise TraceError(f"{where}: step {k!r} where step {expected} was expected (steps {problem}; steps count "
                         f"from 1, one line each, in order)")
    if "loss" not in rec:
        raise TraceError(f"{where}: step {k} has no loss")
    tokens = _tokens(rec, meta, where)
    s = PortStep(lineno, k, tokens, _number(rec["loss"], f"{where}, loss"))
    for key in ("grads", "params"):
        if key in rec:
            setattr(s, key, flat_params(rec[key], meta.config, f"{where}, {key}"))
    if "logits" in rec:
        n, V = min(meta.config.block_size, len(tokens) - 1), meta.config.vocab_size
        rows = rec["logits"]
        if not isinstance(rows, list) or len(rows) != n or any(not isinstance(r, list) or len(r) != V for r in rows):
            raise TraceError(f"{where}: logits must be {n} rows (one per position) of {V} numbers")
        s.logits = [[_number(x, f"{where}, logits") for x in r] for r in rows]
    return s


class PortTrace:
    """Open a trace and read its meta and init; iterate over it for the steps, one at a time.

    Every problem is a TraceError naming the file and line.
    """

    def __init__(self, path):
        self.path = str(path)
        self._file = None
        self.meta, self.init = None, None
        self._lines = self._records()
        for lineno, rec in self._lines:
            where = f"{self.path}: line {lineno}"
            if "meta" in rec:
                if self.meta is not None:
                    raise TraceError(f"{where}: a second meta line")
                self.meta = _meta(rec, where)
            elif "init" in rec:
                if self.meta is None:
                    raise TraceError(f"{where}: init before meta (meta must come first)")
                self.init = flat_params(rec["init"], self.meta.config, f"{where}, init")
                break
            elif "step" in rec:
                raise TraceError(f"{where}: a step before {'meta' if self.meta is None else 'init'} "
                                 f"(the trace starts with a meta line, then an init line)")
        else:
            self.close()
            raise TraceError(f"{self.path}: no {'meta' if self.meta is None else 'init'} line (a port trace starts "
                             f"with {{\"meta\": ...}} and {{\"init\": [...]}}; see the README's port-trace section)")

    def _records(self):
        opener = gzip.open if self.path.endswith(".gz") else open
        try:
            self._file = opener(self.path, "rt", encoding="utf-8")
        except OSError as e:
            raise TraceError(f"cannot read trace {self.path}: {e.strerror or e}") from None
        try:
            for lineno, line in enumerate(self._file, 1):
                text = line.strip()
                if not text.startswith("{"):
                    continue  # the port's own prints
                try:
                    rec = json.loads(text)
                except json.JSONDecodeError as e:
                    raise TraceError(f"{self.path}: line {lineno}: not JSON ({e.msg} at column {e.colno})") from None
                if isinstance(rec, dict):
                    yield lineno, rec
        except (UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as e:
            raise TraceError(f"{self.path}: unreadable ({type(e).__name__}: {e}); a trace is UTF-8 JSON lines, "
                             f"optionally gzipped (.gz)") from None

    def __iter__(self):
        expected = 1
        for lineno, rec in self._lines:
            if "step" not in rec:
                continue  # samples and anything else
            yield _step(rec, self.meta, lineno, f"{self.path}: line {lineno}", expected)
            expected += 1
        if expected == 1:
            raise TraceError(f"{self.path}: no step lines (one {{\"step\": k, \"doc\": ..., \"loss\": ...}} per "
                             f"training step)")
        self.close()

    def close(self):
        if self._file is not None:
            self._file.close()
