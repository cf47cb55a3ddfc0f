"""`PortTrace`: a trace opened, its meta and init read, its steps read as a stream (memory stays flat), each
step's lines merged and checked."""

import gzip
import json
import os
import re
import zlib

from pure.variants import echo

from .limits import Limits, TraceError
from .meta import PortStep, doc_count, read_meta, read_tokens
from .names import Named, flat_params, load_names, merge_names
from .numbers import lenient_json, read_number, read_numbers
from .spool import SpooledSteps

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
                self.s.tokens = read_tokens(rec, self.meta, where)
            elif field == "loss":
                self.s.loss = read_number(rec["loss"], f"{where}, loss")
            elif field == "lr":
                self.s.lr = read_number(rec["lr"], f"{where}, lr")
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
            s.logits = [read_numbers(r, f"{lwhere}, logits") for r in rows]
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
                self.meta = read_meta(rec, where, self.limits)
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
                        rec = lenient_json(line.decode("utf-8"))
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
