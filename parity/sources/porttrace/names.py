"""A trace's parameter lists: flat in the seed's order, or each matrix under its name (the seed's, or the port's own
through meta.names / `--names FILE`), spread over lines and merged in any order."""

import difflib
import json

from pure.model import param_shapes
from pure.variants import echo

from .limits import TraceError
from .numbers import read_numbers


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


def flat_params(value, config, where):
    """A flat list of floats in the seed's order, from a flat list (named matrices go through Named); TraceError if
    the count does not fit the config."""
    total, order = expected_order(config)
    if not isinstance(value, list):
        raise TraceError(f"{where}: expected a list of numbers or an object of matrices")
    if len(value) != total:
        raise TraceError(f"{where}: {len(value)} numbers, but the config needs {total}: {order}"
                         f"{_tied_hint(config, len(value))}")
    return read_numbers(value, where)


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
                flat += read_numbers(row, f"{where}, {name}")
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
