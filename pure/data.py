"""The names dataset: find it, check it, split it into documents; and the character tokenizer.

Where the file comes from, first match wins:
1. an explicit path (`--data PATH`);
2. the environment variable MICROGPT_DATA;
3. a cached copy ($XDG_CACHE_HOME or ~/.cache, then microgpt-parity/names.txt);
4. a download from the seed's pinned URL, kept only if its sha256 matches;
5. otherwise a one-line error saying how to supply the file.
"""

import hashlib
import os
import urllib.request
from pathlib import Path

from .outputs import atomic_write_bytes

DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/988aa59/names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
ENV_VAR = "MICROGPT_DATA"
NO_DOWNLOAD_ENV_VAR = "MICROGPT_NO_DOWNLOAD"  # set to 1 to fail fast instead of trying the network
DOWNLOAD_TIMEOUT_S = 20


class DataError(Exception):
    """A dataset problem the user can fix; its message names the fix."""


def cache_path():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "microgpt-parity" / "names.txt"


def _download():
    url, sha256 = DATA_URL, DATA_SHA256
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise DataError(
            f"downloaded {url} but its sha256 is {digest}, expected {sha256}; pass --data PATH to a good copy")
    return data


def resolve_data_path(path=None):
    """The dataset's path, by the order in the module docstring (may download into the cache)."""
    if path is not None:
        if Path(path).is_dir():
            raise DataError(f"--data {path} is a directory; pass the names file itself (one document per line)")
        if not Path(path).is_file():
            raise DataError(
                f"data file not found: {path}; pass --data with the path to a text file of one document per line")
        return Path(path)
    env = os.environ.get(ENV_VAR)
    if env:
        if Path(env).is_dir():
            raise DataError(f"{ENV_VAR}={env} is a directory; point it at the names file itself or unset it")
        if not Path(env).is_file():
            raise DataError(f"{ENV_VAR}={env} is not a file; point it at names.txt or unset it")
        return Path(env)
    cached = cache_path()
    if cached.is_file():
        return cached
    if os.environ.get(NO_DOWNLOAD_ENV_VAR) != "1":
        try:
            atomic_write_bytes(cached, _download())
            return cached
        except DataError:
            raise
        except Exception as e:  # offline, DNS, HTTP error, timeout...
            reason = f"download from {DATA_URL} failed ({type(e).__name__}: {e})"
    else:
        reason = f"downloads are off ({NO_DOWNLOAD_ENV_VAR}=1)"
    raise DataError(
        f"no names dataset: {reason}; pass --data PATH, set {ENV_VAR}=PATH, or put names.txt at {cached}"
    )


def parse_docs(text):
    """One document per non-empty line, trimmed as JavaScript's String.trim does."""
    return [d for d in (line.strip().strip("\ufeff") for line in text.split("\n")) if d]


def load_docs(path=None):
    """The documents of the dataset found by `resolve_data_path`; a clear error if there are none."""
    resolved = resolve_data_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{resolved} is not UTF-8 text ({e.reason} at byte {e.start}); pass a plain text file") from None
    except OSError as e:
        raise DataError(f"cannot read {resolved}: {e.strerror}; check the path and its permissions") from None
    docs = parse_docs(text)
    if not docs:
        raise DataError(f"{resolved} holds no documents (every line is empty); pass a file with one document per line")
    return docs


class Tokenizer:
    """Characters to ids: the sorted unique characters, then BOS (start and end marker)."""

    def __init__(self, chars):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars) or self.chars != sorted(self.chars):
            raise ValueError("tokenizer characters must be unique and sorted")
        self._index = {ch: i for i, ch in enumerate(self.chars)}
        self.bos = len(self.chars)

    @classmethod
    def from_docs(cls, docs):
        return cls(sorted(set("".join(docs))))

    @property
    def vocab_size(self):
        return len(self.chars) + 1

    def encode(self, doc):
        """[BOS, c1, ..., cn, BOS]"""
        try:
            return [self.bos] + [self._index[ch] for ch in doc] + [self.bos]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids if i != self.bos)


def load_docs_or_corpus(path=None, warn=None):
    """(documents, where they came from): the names data (`path`, else the loader's order); when no path was given
    and none can be found, the project's own synthetic corpus (pure.corpus), saying so through warn(text), so that
    a first run works offline. An explicit path that fails is an error, never a silent substitute."""
    if path is not None:
        if not str(path).strip():
            raise DataError("--data was given an empty path; name the names file, or leave --data out")
        return load_docs(path), str(path)
    try:
        return load_docs(None), "names dataset (loader)"
    except DataError as e:
        from .corpus import make_corpus

        if warn:
            warn(f"note: {e}")
            warn("note: using the built-in synthetic corpus (pure.corpus.make_corpus, 300 made-up words) instead; "
                 "results are not the seed's")
        return make_corpus(), "synthetic corpus (pure.corpus.make_corpus)"
