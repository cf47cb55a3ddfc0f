"""Output files: checked before a run starts, then written whole or not at all.

A command names its outputs (`--trace`, `--save`, `--json`, ...) and its inputs (`--data`, `--load`, ...)
in an `OutputPlan`, which checks them all before any long work: no output is a directory or the same file
as an input or as another output, each has a format the writer supports, and its folder exists (created
if needed, and removed again if the command then fails) and accepts a new file, tried by creating one. So
a bad path costs a one-line error at once, not a traceback after the run.

Every file is written to a temporary file beside its target and renamed at the end (`atomic_write_bytes`,
`AtomicFile`), with the permissions an ordinary new file gets under the umask. `handle_sigterm` makes
SIGTERM unwind the program like Ctrl-C does, so temporary files are removed on the way out.
"""

import os
import signal
import tempfile
from pathlib import Path


class OutputError(Exception):
    """An output (or input) path that cannot be used; the message names the flag, the path and the fix."""


class Terminated(BaseException):
    """Raised by the SIGTERM handler: unwinds like KeyboardInterrupt, so `finally` blocks clean up."""


def handle_sigterm():
    """From now on SIGTERM raises Terminated in the main thread (exit code 143 by convention)."""

    def _raise(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)


def _file_mode():
    """The mode open() would give a new file: 0o666 less the umask (mkstemp alone gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_beside(path):
    """(fd, temp path) of a new file in `path`'s folder, with ordinary permissions."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _file_mode())
    return fd, tmp


def atomic_write_bytes(path, data):
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class AtomicFile:
    """A text file written line by line into a temporary file; `commit()` renames it into place, `abort()` removes it.

    As a context manager it commits on success and aborts on any exception (Ctrl-C and SIGTERM included).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = temp_beside(self.path)
        self._f = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, text):
        self._f.write(text)

    def commit(self):
        self._f.close()
        os.replace(self._tmp, self.path)

    def abort(self):
        self._f.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


class OutputPlan:
    """Every output path of one command, checked together before the work starts.

    outputs: {flag: path or None}; inputs: {flag: path or None} (files the command reads, which no output may
    overwrite); suffixes: {flag: (".png", ".svg", ...)} for outputs whose format follows the file's extension.
    `check()` raises OutputError on the first problem. Used as a context manager around the work, it removes
    the folders `check()` created when the work fails, so a failed run leaves nothing behind.
    """

    def __init__(self, outputs, inputs=None, suffixes=None):
        for flag, p in outputs.items():
            if p is not None and not str(p).strip():
                raise OutputError(f"{flag} was given an empty file name; name a file, or leave {flag} out")
        self.outputs = {flag: Path(p) for flag, p in outputs.items() if p}
        self.inputs = {flag: Path(p) for flag, p in (inputs or {}).items() if p}
        self.suffixes = suffixes or {}
        self.created = []  # folders made by check(), outermost first

    def check(self):
        flags = list(self.outputs)
        for i, flag in enumerate(flags):
            path = self.outputs[flag]
            if str(path).endswith(os.sep) or path.is_dir():
                raise OutputError(f"{flag} {path} is a directory; give a file name, e.g. {path / 'out'}"
                                  f"{self._example_suffix(flag)}")
            allowed = self.suffixes.get(flag)
            if allowed and path.suffix.lower() not in allowed:
                raise OutputError(f"{flag} {path}: unsupported format {path.suffix or '(no extension)'}; "
                                  f"use one of {', '.join(sorted(allowed))}")
            for other in flags[:i]:
                if _same_file(path, self.outputs[other]):
                    raise OutputError(f"{flag} and {other} both name {path}; give each output its own file")
            for in_flag, in_path in self.inputs.items():
                if _same_file(path, in_path):
                    raise OutputError(f"{flag} {path} is the {in_flag} input; writing it would overwrite the input, "
                                      "give another file name")
        for flag, path in self.outputs.items():
            self._check_folder(flag, path)
        return self

    def _example_suffix(self, flag):
        allowed = self.suffixes.get(flag)
        return sorted(allowed)[0] if allowed else ""

    def _check_folder(self, flag, path):
        folder = path.parent
        missing = []
        probe = folder
        while not probe.exists():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"{flag} {path}: {probe} is a file, not a folder; choose another place for the output")
        for d in reversed(missing):
            try:
                d.mkdir()
            except OSError as e:
                raise OutputError(f"{flag} {path}: cannot create the folder {d} ({e.strerror}); "
                                  "choose a writable place") from None
            self.created.append(d)
        try:
            fd, tmp = temp_beside(path)
        except OSError as e:
            raise OutputError(f"{flag} {path}: cannot write in {folder} ({e.strerror}); choose a writable place") \
                from None
        os.close(fd)
        os.unlink(tmp)

    def cleanup(self):
        """Remove the folders check() created, if they are still empty (deepest first)."""
        for d in reversed(self.created):
            try:
                d.rmdir()
            except OSError:
                pass
        self.created = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.cleanup()
