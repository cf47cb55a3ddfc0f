"""The port trace: what a microgpt port in any language writes so that `parity check` can judge it.

JSON lines, read as a stream (a 1000-step trace with every tensor is ~70 MB; memory stays flat):

    {"meta": {"n_layer": 1, "n_embd": 16, "n_head": 4, "block_size": 16, "chars": "abc...z"}}
    {"init": [every parameter before training, in the seed's order]}
    {"step": 1, "doc": "emma", "loss": 3.48, "grads": [...], "params": [...], "logits": [[...], ...]}
    ...

meta may also hold `implementation` (free text), `steps` (the length of the linear lr decay), `lr`, `beta1`,
`beta2`, `eps`, `weight_decay`, `grad_clip`, `norm_eps` (the port's facts; default: the seed's), `bos`, `eos` (the
ids of BOS and of a separate end token), `dtype` ("float32" for a float32 port) and `variant` (the deviations
from microgpt the port declares: parity.variants). A step may carry `lr` (the rate its update used) and several
documents (`docs`, or `tokens` as a list of id lists). A parameter list is either flat,
in the seed's order (wte, wpe, lm_head, then per layer attn_wq, attn_wk, attn_wv, attn_wo, mlp_fc1, mlp_fc2,
each row by row: `params.map(p => p.data)`), or an object with each matrix under the seed's name (pure.model's
param_shapes: no lm_head with tied embeddings), which may be spread over lines, down to one matrix a line
(`{"init": {"wte": rows}}`, `{"step": k, "grads": {"wte": rows}}`), merged in any order: each matrix once, init's
before the first step, a step's before the next step's. meta.names (and `parity check --names FILE`) maps the port's
own names to the seed's: {"tok_emb": "wte", ...}. A step
gives `doc` (a string over `chars`) or `tokens` (ids, BOS = len(chars) at both ends); `grads` (after
backward, before the update), `params` (after the update) and `logits` (one row per position) are optional,
on any steps, either on the step's line or on lines of their own carrying `"step": k` (merged into step k, in
any order, as long as every line of step k comes before any line of step k+1). Lines that do not start with `{`
(a port's own prints) are skipped. A number that is null, NaN or inf is kept as nan/inf: the port's divergence at
that step, never a reason to refuse the trace. The tokens C, Rust and Go print for them (`nan`, `-nan`, `inf`,
`+Inf`, `-Infinity`, ..., any case) are read too, and so are hex floats (`"0x1.91eb851eb851fp+1"`, C's `%a`,
Java's `Double.toHexString`; quoted or bare), exactly.
"""

import difflib
import gzip
import json
import math
import os
import re
import zlib
from dataclasses import dataclass, field
from typing import Optional

from pure.model import GPTConfig, param_shapes
from pure.optim import AdamConfig
from pure.variants import echo

from .variants import Declaration

FORMAT = 1  # the version of this format; meta.format, when given, must not be newer
SEED_STEPS = 1000  # the seed's numSteps: the lr decay's length when meta has no `steps`
CONFIG_KEYS = ("n_layer", "n_embd", "n_head", "block_size")
ADD_TENSORS = ('add "grads" (every parameter\'s .grad after backward, before the update) and "params" (every '
               'parameter after the update) to the step lines, as flat lists in the seed\'s order')


class TraceError(ValueError):
    """An unusable trace: one line naming where and what (exit 2)."""


@dataclass(frozen=True)
class Limits:
    """What a trace may ask of the judge, checked as it is read (each a flag of `parity check`): a legitimate
    trace is far inside every one (the seed's 1000 steps with every tensor: 164 MB, lines of 0.2 MB)."""

    max_line_mb: float = 64.0  # one line (--max-line-mb)
    max_trace_mb: float = 4096.0  # the whole trace, decompressed (--max-trace-mb)
    max_steps: int = 1_000_000  # step lines (--max-steps)
    max_params: int = 50_000_000  # the config's parameter count (--max-params)
    max_memory_mb: float = 4096.0  # what replaying the config would allocate, estimated from its sizes (--max-memory)


META_DEPTH = 8  # nesting of meta's values (a config dict is 2)


def replay_bytes(config):
    """An estimate of what torch_ref allocates to replay a config: per parameter its weight, gradient, Adam's two
    moments and the port's copies (about ten float64s, both modes), the causal mask (block_size^2 bytes), and one
    document's attention (n_layer x n_head x block_size^2 float64s, forward and backward)."""
    c = config
    params = 2 * c.vocab_size * c.n_embd + c.block_size * c.n_embd + 12 * c.n_layer * c.n_embd ** 2
    return 80 * params + c.block_size ** 2 + 3 * 8 * c.n_layer * c.n_head * c.block_size ** 2, params


def _depth(x, limit):
    if limit < 0:
        return False
    if isinstance(x, dict):
        return all(_depth(v, limit - 1) for v in x.values())
    if isinstance(x, list):
        return all(_depth(v, limit - 1) for v in x)
    return True


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


_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
# Outside string literals (which are matched first and kept): the non-finite tokens of C, Rust, Go, Java and
# friends, and bare hex floats. Used only on a line json.loads refused, so normal lines never pay for it; the
# leading lookahead (every alternative's first character) lets the matcher skip the digits quickly.
_LENIENT = re.compile(r'(?=["+\-0nNiI])(?:"(?:[^"\\]|\\.)*"'
                      r"|(?<![\w.])([+-]?)(?:(nan)(?:\(\w*\))?|inf(?:inity)?)(?![\w.])"
                      r"|(?<![\w.])(" + _HEX.pattern + r")(?![\w.]))", re.IGNORECASE)


def _lenient(match):
    sign, nan, hexfloat = match.groups()
    if hexfloat is not None:
        return f'"{hexfloat}"'  # read by _number, exactly
    if sign is None:
        return match.group()  # a string literal, untouched
    return "NaN" if nan is not None else "-Infinity" if sign == "-" else "Infinity"


def _number(x, where):
    if type(x) is float:
        return x
    if x is None:
        return math.nan  # JavaScript's JSON.stringify writes NaN and inf as null
    if isinstance(x, str) and _HEX.fullmatch(x):
        try:
            return float.fromhex(x)  # C's %a, Java's Double.toHexString: exact
        except OverflowError:
            raise TraceError(f"{where}: hex float {x} is beyond the range of a double") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        hint = " (a string holds a number only as a hex float, e.g. \"0x1.8p+1\")" if isinstance(x, str) else ""
        raise TraceError(f"{where}: expected a number, got {json.dumps(x)[:40]}{hint}")
    try:
        return float(x)
    except OverflowError:  # an integer beyond any double: the port's non-finite value there
        return math.inf if x > 0 else -math.inf


def _numbers(values, where):
    if set(map(type, values)) == {float}:  # the common case, checked at C speed
        return values
    return [x if type(x) is float else _number(x, where) for x in values]


def expected_order(config):
    shapes = param_shapes(config)
    total = sum(r * c for r, c in shapes.values())
    order = ", ".join(f"{n} ({r}x{c})" for n, (r, c) in list(shapes.items())[:3 + 6 * min(1, config.n_layer)])
    more = " and the same for every further layer" if config.n_layer > 1 else ""
    return total, f"{order}{more}, each row by row"


def _tied_hint(config, count):
    """What a count that is exactly the config's without lm_head means: a tied lm_head, undeclared."""
    if not config.tie_embeddings and count == expected_order(config)[0] - config.vocab_size * config.n_embd:
        return ("; that is the count without lm_head: if lm_head is wte (tied embeddings), declare it: \"variant\": "
                "{\"tie_embeddings\": true}")
    return ""


def flat_params(value, config, where, names=None):
    """A flat list of floats in the seed's order, from a flat list or a {name: rows} object; TraceError if the
    count or a shape does not fit the config. names: a Names (the port's names for the matrices)."""
    if isinstance(value, dict):
        line, _, field = where.rpartition(", ")
        named = Named(config, names, field)
        named.add(value, 0, line)
        named.complete(where)
        return named.flat()
    total, order = expected_order(config)
    if not isinstance(value, list):
        raise TraceError(f"{where}: expected a list of numbers or an object of matrices")
    if len(value) != total:
        raise TraceError(f"{where}: {len(value)} numbers, but the config needs {total}: {order}"
                         f"{_tied_hint(config, len(value))}")
    return _numbers(value, where)


class Names:
    """The port's names for the matrices: {port's name: the seed's name} (meta.names, `parity check --names FILE`);
    a matrix not in the map goes by the seed's name. The map is checked against the config's parameters
    (pure.model.param_shapes: tied embeddings have no lm_head)."""

    def __init__(self, config, mapping=None, where="names"):
        self.shapes = param_shapes(config)
        self.tied = config.tie_embeddings
        self.to_seed = _name_map(mapping, self.shapes, self.tied, where) if mapping is not None else {}
        self.shown = {seed: port for port, seed in self.to_seed.items() if port != seed}

    def show(self, seed):
        """A parameter as the port names it: `tok_emb (wte)` when the map renames it."""
        port = self.shown.get(seed)
        return seed if port is None else f"{port} ({seed})"

    def listing(self):
        return ", ".join(map(self.show, self.shapes))

    def keys(self, seeds):
        """The keys a port may write for these parameters: its own name where the map gives one, else the seed's."""
        return [self.shown.get(n, n) for n in seeds]

    def seed(self, key, where, missing):
        """The seed's name for a key of the trace; TraceError naming the nearest expected key if none."""
        name = self.to_seed.get(key, key)
        if name in self.shapes:
            return name
        near = difflib.get_close_matches(str(key), self.keys(missing) or self.keys(self.shapes), n=1)
        hint = f" (did you mean {echo(near[0])}?)" if near else ""
        if key == "lm_head" and self.tied:
            hint = " (tied embeddings: lm_head is wte, so there is no lm_head)"
        raise TraceError(f"{where}: unknown key {echo(key)}{hint}; the keys are {self.listing()}")


def _name_map(mapping, shapes, tied, where):
    expected = ", ".join(shapes)
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in mapping.items()):
        raise TraceError(f'{where}: the names must be an object of strings, {{"the port\'s name": "the seed\'s '
                         f'name", ...}}; the seed\'s names are {expected}')
    first = {}
    for port, seed in mapping.items():
        if seed not in shapes:
            near = difflib.get_close_matches(seed, [n for n in shapes if n not in first] or list(shapes), n=1)
            hint = f" (did you mean {echo(near[0])}?)" if near else ""
            if seed == "lm_head" and tied:
                hint = " (tied embeddings: lm_head is wte, so there is no lm_head)"
            raise TraceError(f"{where}: {echo(port)} is named as {echo(seed)}, which is no parameter{hint}; the names "
                             f"are {expected}")
        if seed in first:
            raise TraceError(f"{where}: both {echo(first[seed])} and {echo(port)} are named as {echo(seed)}; each "
                             f"parameter has one name; the names are {expected}")
        first[seed] = port
    return dict(mapping)


def merge_names(config, meta_names, file_names, meta_where, file_where):
    """A Names from meta.names and a --names file's object (the file's entries win for the same port name); each is
    checked on its own first, so that an error names where it came from."""
    if meta_names is None and file_names is None:
        return Names(config)
    if meta_names is not None:
        Names(config, meta_names, meta_where)
    if file_names is None:
        return Names(config, meta_names, meta_where)
    Names(config, file_names, file_where)
    if meta_names is None:
        return Names(config, file_names, file_where)
    return Names(config, {**meta_names, **file_names}, f"{meta_where} with {file_where}")


def load_names(path):
    """The JSON object of a --names FILE; TraceError naming the file if it cannot be read or is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise TraceError(f"cannot read names file {path}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:
        raise TraceError(f"names file {path}: not JSON ({e})") from None
    if not isinstance(value, dict):
        raise TraceError(f'names file {path}: expected a JSON object, {{"the port\'s name": "the seed\'s name", '
                         f'...}}')
    return value


class Named:
    """One parameter list (init, or a step's grads or params) as named matrices, merged over the lines that give
    them: each matrix once, checked against its shape on its own line; complete() once the list's lines are done."""

    def __init__(self, config, names, field, step=None):
        self.names = names or Names(config)
        self.shapes, self.field, self.step = self.names.shapes, field, step
        self.got = {}  # seed name -> (flat numbers, line)
        self.lines = []  # the lines that gave any (an empty object too)

    def add(self, value, lineno, line):
        """line: where the line is ("TRACE: line N")."""
        where = f"{line}, {self.field}"
        self.lines.append(lineno)
        for key, m in value.items():
            name = self.names.seed(key, where, [n for n in self.shapes if n not in self.got])
            if name in self.got:
                whose = self.field if self.step is None else f"step {self.step} {self.field}"
                raise TraceError(f"{line}: {whose} gives {self.names.show(name)} again (first on line "
                                 f"{self.got[name][1]}); each matrix comes once"
                                 + ("" if self.step is None else " per step"))
            rows, cols = self.shapes[name]
            if not isinstance(m, list) or len(m) != rows or any(not isinstance(r, list) or len(r) != cols for r in m):
                raise TraceError(f"{where}: {self.names.show(name)} must be {rows} rows of {cols} numbers")
            flat = []
            for row in m:
                flat += _numbers(row, f"{where}, {name}")
            self.got[name] = (flat, lineno)

    def where(self, path):
        """"TRACE: line(s) ..., FIELD": the lines that gave the list's matrices."""
        seen = sorted(set(self.lines))
        lines = f"line {seen[0]}" if len(seen) == 1 else f"lines {', '.join(map(str, seen))}"
        return f"{path}: {lines}, {self.field if self.step is None else f'step {self.step} {self.field}'}"

    def complete(self, where, ended=""):
        """TraceError naming the first missing matrix (and the expected keys), unless every one is here."""
        missing = [n for n in self.shapes if n not in self.got]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise TraceError(f"{where}: missing key {echo(self.names.keys(missing)[0])}{more}; the keys are "
                             f"{self.names.listing()}{ended}")

    def flat(self):
        out = []
        for name in self.shapes:
            out += self.got[name][0]
        return out


def _meta(rec, where, limits=None):
    m = rec.get("meta")
    if not isinstance(m, dict):
        raise TraceError(f"{where}: meta must be an object")
    if not _depth(m, META_DEPTH):
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


def _tokens(rec, meta, where):
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


FIELDS = {"doc": "doc", "docs": "doc", "tokens": "doc", "loss": "loss", "lr": "lr", "grads": "grads",
          "params": "params", "logits": "logits"}


class _Pending:
    """The lines of one step, merged: each field once, from whichever line gave it."""

    def __init__(self, path, meta, step, lineno, names=None):
        self.path, self.meta, self.step, self.first, self.names = path, meta, step, lineno, names
        self.seen = {}  # field -> line number
        self.named = {}  # "grads" / "params" -> Named: matrices given by name, merged over the step's lines
        self.s = PortStep(lineno, step, None, None)
        self.logits = None  # (rows, where): checked once the tokens are known

    def add(self, rec, lineno):
        where = f"{self.path}: line {lineno}"
        for key in rec:
            field = FIELDS.get(key)
            if field is None:
                continue
            if field in self.named and isinstance(rec[key], dict):
                self.named[field].add(rec[key], lineno, where)
                continue
            if field in self.seen:
                again = "doc/docs/tokens" if field == "doc" else field
                raise TraceError(f"{where}: step {self.step} gives {again} again (first on line {self.seen[field]}); "
                                 f"each field comes once per step, and all lines of step k come before step k+1's "
                                 f"(a repeated step, or steps out of order?)")
            self.seen[field] = lineno
            if field == "doc":
                self.s.tokens = _tokens(rec, self.meta, where)
            elif field == "loss":
                self.s.loss = _number(rec["loss"], f"{where}, loss")
            elif field == "lr":
                self.s.lr = _number(rec["lr"], f"{where}, lr")
            elif field == "logits":
                self.logits = (rec["logits"], where)
            elif isinstance(rec[field], dict):
                self.named[field] = Named(self.meta.config, self.names, field, self.step)
                self.named[field].add(rec[field], lineno, where)
            else:
                setattr(self.s, field, flat_params(rec[field], self.meta.config, f"{where}, {field}"))

    def finish(self):
        s, where = self.s, f"{self.path}: line {self.first}"
        if "loss" not in self.seen:
            raise TraceError(f"{where}: step {self.step} has no loss (its lines give "
                             f"{', '.join(self.seen) or 'nothing but the step number'})")
        if s.tokens is None:
            raise TraceError(f"{where}: a step needs doc (a string), docs (strings) or tokens (ids with BOS = "
                             f"{self.meta.bos_id} at the start and {self.meta.eos_id} at the end)")
        if self.logits is not None:
            rows, lwhere = self.logits
            docs = s.tokens if doc_count(s.tokens) > 1 else [s.tokens]
            n = sum(min(self.meta.config.block_size, len(t) - 1) for t in docs)  # the documents' rows, stacked
            V = self.meta.config.vocab_size
            if not isinstance(rows, list) or len(rows) != n or any(type(r) is not list or len(r) != V for r in rows):
                raise TraceError(f"{lwhere}: logits must be {n} rows (one per position) of {V} numbers")
            s.logits = [_numbers(r, f"{lwhere}, logits") for r in rows]
        for key, named in self.named.items():
            named.complete(named.where(self.path), f"; every matrix of a step comes before step {self.step + 1}'s "
                                                   f"lines")
            setattr(s, key, named.flat())
        return s


# Where a line that is a JSON object starts, searched in b"\n" + the buffer (which always starts a line): a
# pattern that starts with a literal lets the regex engine skip to each newline at memchr speed, where `^` with
# re.M is tried at every byte (12x slower on a 164 MB trace).
_JSON_LINE = re.compile(rb"\n[ \t\r\f\v]*\{")
CHUNK = 8 << 20  # bytes read at a time


class PortTrace:
    """Open a trace and read its meta and init; iterate over it for the steps, one at a time, or `spool()` them.

    The file is read in large chunks and only the lines that start with `{` are looked at (a port's own prints,
    and any number of empty lines, cost a scan at C speed), within `limits`. Every problem is a TraceError naming
    the file and line.
    """

    def __init__(self, path, limits=None, names=None):
        """names: the port's names for the matrices, {port's name: the seed's name} (an object, or the path of a JSON
        file holding one: `--names FILE`), over meta.names (the file's entry wins for the same port name)."""
        names_where = "--names"
        if isinstance(names, (str, os.PathLike)):
            names, names_where = load_names(names), f"names file {names}"
        self.path = str(path)
        self.limits = limits or Limits()
        self._file = None
        self.meta, self.init, self.names, self._init = None, None, None, None
        self._lines = self._records()
        for lineno, rec in self._lines:
            where = f"{self.path}: line {lineno}"
            if "meta" in rec:
                if self.meta is not None:
                    raise TraceError(f"{where}: a second meta line")
                self.meta = _meta(rec, where, self.limits)
                self.names = merge_names(self.meta.config, rec["meta"].get("names"), names, f"{where}, meta.names",
                                         names_where)
            elif "init" in rec:
                if self.meta is None:
                    raise TraceError(f"{where}: init before meta (meta must come first)")
                if isinstance(rec["init"], dict):  # named matrices, merged until every one is given
                    self._init = self._init or Named(self.meta.config, self.names, "init")
                    self._init.add(rec["init"], lineno, where)
                    if len(self._init.got) < len(self._init.shapes):
                        continue
                    self.init = self._init.flat()
                elif self._init is not None:
                    raise TraceError(f"{where}: init gives a flat list after named matrices ({self._init.where('')[2:]}"
                                     f"); give every matrix by name, or one flat list")
                else:
                    self.init = flat_params(rec["init"], self.meta.config, f"{where}, init")
                self._init_line = lineno
                break
            elif "step" in rec:
                if self._init is not None:
                    self._init.complete(self._init.where(self.path), f"; every matrix of init comes before the "
                                                                     f"first step (line {lineno})")
                raise TraceError(f"{where}: a step before {'meta' if self.meta is None else 'init'} "
                                 f"(the trace starts with a meta line, then an init line)")
        else:
            self.close()
            if self._init is not None:
                self._init.complete(self._init.where(self.path), "; the trace ended before every matrix of init")
            raise TraceError(f"{self.path}: no {'meta' if self.meta is None else 'init'} line (a port trace starts "
                             f"with {{\"meta\": ...}} and {{\"init\": [...]}}; see the README's port-trace section)")

    def _json_lines(self):
        """(line number, bytes) of every line that starts with `{`, within the limits."""
        max_line = int(self.limits.max_line_mb * 2 ** 20)
        max_total = int(self.limits.max_trace_mb * 2 ** 20)
        opener = gzip.open if self.path.endswith(".gz") else open
        try:
            self._file = opener(self.path, "rb")
        except OSError as e:
            raise TraceError(f"cannot read trace {self.path}: {e.strerror or e}") from None
        buf, line_at_buf, total = b"", 1, 0
        while True:
            chunk = self._file.read(CHUNK)
            total += len(chunk)
            if total > max_total:
                raise TraceError(f"{self.path}: longer than {self.limits.max_trace_mb:g} MB (decompressed) by line "
                                 f"{line_at_buf}; --max-trace-mb to allow more")
            buf += chunk
            if not buf:
                return
            end = len(buf) if not chunk else buf.rfind(b"\n") + 1  # complete lines only, until the end
            if end == 0:
                if len(buf) > max_line:
                    raise TraceError(f"{self.path}: line {line_at_buf} is longer than {self.limits.max_line_mb:g} MB; "
                                     f"--max-line-mb to allow more")
                continue
            counted, line = 0, line_at_buf
            for m in _JSON_LINE.finditer(b"\n" + buf, 0, end + 1):
                start = m.start()  # the newline's index in b"\n" + buf is the line's start in buf
                line += buf.count(b"\n", counted, start)
                counted = start
                stop = buf.find(b"\n", start, end)
                stop = end if stop < 0 else stop
                if stop - start > max_line:
                    raise TraceError(f"{self.path}: line {line} is longer than {self.limits.max_line_mb:g} MB; "
                                     f"--max-line-mb to allow more")
                yield line, buf[start:stop]
            line_at_buf = line + buf.count(b"\n", counted, end)
            buf = buf[end:]
            if not chunk:
                return

    def _records(self):
        try:
            for lineno, line in self._json_lines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    try:  # nan, -inf, +Inf, bare hex floats, ...: rewritten outside strings, then read again
                        rec = json.loads(_LENIENT.sub(_lenient, line.decode("utf-8")))
                    except (json.JSONDecodeError, RecursionError, ValueError):
                        raise TraceError(f"{self.path}: line {lineno}: not JSON ({e.msg} at column {e.colno})") \
                            from None
                except RecursionError:
                    raise TraceError(f"{self.path}: line {lineno}: nested too deep to be a trace line") from None
                except ValueError as e:  # an integer of more digits than Python reads, text that is not UTF-8
                    raise TraceError(f"{self.path}: line {lineno}: not JSON ({e})") from None
                if isinstance(rec, dict):
                    yield lineno, rec
        except (EOFError, OSError, gzip.BadGzipFile, zlib.error) as e:
            raise TraceError(f"{self.path}: unreadable ({type(e).__name__}: {e}); a trace is UTF-8 JSON lines, "
                             f"optionally gzipped (.gz)") from None

    def __iter__(self):
        expected, pending = 1, None
        for lineno, rec in self._lines:
            if "step" not in rec:
                if isinstance(rec.get("init"), dict):  # a named matrix once init is complete: given twice
                    init = self._init or Named(self.meta.config, self.names, "init")
                    if self._init is None:  # the flat init gave every matrix on its line
                        init.got = {n: ([], self._init_line) for n in init.shapes}
                    init.add(rec["init"], lineno, f"{self.path}: line {lineno}")
                continue  # samples and anything else
            k = rec["step"]
            if pending is not None and k == pending.step and type(k) is int:
                pending.add(rec, lineno)  # another line of the same step
                continue
            if pending is not None:
                expected += 1
            if k != expected or type(k) is not int:
                problem = "missing" if type(k) is int and k > expected else "out of order"
                raise TraceError(f"{self.path}: line {lineno}: step {echo(k)} where step {expected} was expected "
                                 f"(steps {problem}; steps count from 1, in order, all lines of a step before the "
                                 f"next's)")
            if expected > self.limits.max_steps:
                raise TraceError(f"{self.path}: line {lineno}: more than {self.limits.max_steps} steps; --max-steps "
                                 f"to allow more")
            if pending is not None:
                yield pending.finish()
            pending = _Pending(self.path, self.meta, k, lineno, self.names)
            pending.add(rec, lineno)
        if pending is None:
            raise TraceError(f"{self.path}: no step lines (one {{\"step\": k, \"doc\": ..., \"loss\": ...}} per "
                             f"training step)")
        yield pending.finish()
        self.close()

    def spool(self, background=False):
        """Read every step now, checking the whole trace before any work, into a spool (a temporary file, so that
        memory stays flat) that the replay iterates: the trace itself is read once. background: read it in a
        forked process, so that this one can import torch meanwhile; the first len() or iteration waits for it
        and raises its TraceError (a process that already holds torch or threads reads it here instead)."""
        return SpooledSteps(self, background)

    def close(self):
        if self._file is not None:
            self._file.close()


class SpooledSteps:
    """The steps of a trace, read and checked once, kept in a temporary file as arrays (float64) and replayed
    from there; `len()` is the step count, iteration gives PortSteps whose grads, params and logits are arrays."""

    def __init__(self, trace, background=False):
        import tempfile

        self.meta, self.init, self.path = trace.meta, trace.init, trace.path
        self._spool = tempfile.TemporaryFile()
        self.count, self._child = None, None
        if background and _can_fork():
            self._child = _Reader(trace, self._spool)
        else:
            self.count = _write_spool(trace, self._spool)

    def wait(self):
        """Wait for the reading process, if any: TraceError as the trace's, RuntimeError if the reader failed."""
        if self._child is not None:
            try:
                self.count = self._child.result()
            finally:  # interrupted while waiting (Ctrl-C), the reader is still running: close() ends it
                if self._child.reaped:
                    self._child = None

    def __len__(self):
        self.wait()
        return self.count

    def __iter__(self):
        import pickle

        self.wait()
        self._spool.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._spool)

    def close(self):
        if self._child is not None:
            self._child.kill()
            self._child = None
        self._spool.close()


def _write_spool(trace, spool):
    """Every step of `trace`, its tensors as float64 arrays, pickled into `spool`; the step count."""
    import pickle

    import numpy as np

    count = 0
    for s in trace:
        for key in ("grads", "params", "logits"):
            value = getattr(s, key)
            if value is not None:
                setattr(s, key, np.array(value, dtype=np.float64))
        pickle.dump(s, spool, protocol=pickle.HIGHEST_PROTOCOL)
        count += 1
    spool.flush()
    return count


def _can_fork():
    """Reading in a forked process pays where torch is still to be imported (the reading overlaps the import), and
    is safe where parity.forked says so."""
    import sys

    from .forked import can_fork

    return "torch" not in sys.modules and can_fork()


class _Reader:
    """_write_spool in a forked process (parity.forked): the step count comes back, or the TraceError naming the
    line, raised here; any other failure is the judge's own (RuntimeError)."""

    def __init__(self, trace, spool):
        from .forked import Forked

        self._job = Forked(lambda: iter([_write_spool(trace, spool)]), timeout=None)  # a big trace takes minutes
        trace.close()  # the parent's copy of the file: the child reads its own

    @property
    def reaped(self):  # once waited for, its pid is no longer ours to signal
        return self._job.pid is None

    def result(self):
        try:
            count = next(self._job)
            for _ in self._job:  # the end: the child is reaped
                pass
        except TraceError:
            raise
        except Exception as e:  # noqa: BLE001 - the reader's failure, not the trace's
            raise RuntimeError(f"the process reading the trace failed: {type(e).__name__}: {e}") from None
        return count

    def kill(self):
        self._job.close()
