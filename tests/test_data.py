"""The dataset loader's order (path, env, cache, download, error) and the tokenizer."""

import hashlib

import pytest

from pure import data
from pure.data import DataError, Tokenizer, load_docs, parse_docs, resolve_data_path


class FakeResponse:
    def __init__(self, payload):
        self.payload = payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.payload


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env var, an empty cache folder, and a network that fails unless a test fakes it."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.delenv(data.NO_DOWNLOAD_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(url, timeout):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    return tmp_path


def test_explicit_path_wins(isolated, monkeypatch):
    a, b = isolated / "a.txt", isolated / "b.txt"
    a.write_text("ann\nbob\n")
    b.write_text("zed\n")
    monkeypatch.setenv(data.ENV_VAR, str(b))
    assert load_docs(a) == ["ann", "bob"]
    assert load_docs() == ["zed"]


def test_download_then_cache(isolated, monkeypatch):
    payload = b"ann\nbob\n"
    monkeypatch.setattr(data, "DATA_SHA256", hashlib.sha256(payload).hexdigest())
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return FakeResponse(payload)

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    path = resolve_data_path()
    assert path == data.cache_path() and path.read_bytes() == payload
    assert calls == [data.DATA_URL]
    assert resolve_data_path() == path and len(calls) == 1  # second time: the cache, no download


def test_download_with_bad_checksum_is_refused(isolated, monkeypatch):
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: FakeResponse(b"tampered\n"))
    with pytest.raises(DataError, match="sha256"):
        resolve_data_path()
    assert not data.cache_path().exists()  # nothing unverified is left in the cache


def test_offline_error_says_how_to_fix(isolated):
    with pytest.raises(DataError) as e:
        resolve_data_path()
    msg = str(e.value)
    assert "--data" in msg and data.ENV_VAR in msg and "\n" not in msg


def test_no_download_switch(isolated, monkeypatch):
    monkeypatch.setenv(data.NO_DOWNLOAD_ENV_VAR, "1")
    with pytest.raises(DataError, match="downloads are off"):
        resolve_data_path()


def test_missing_and_bad_files(isolated, monkeypatch):
    with pytest.raises(DataError, match="not found"):
        load_docs(isolated / "nope.txt")
    empty = isolated / "empty.txt"
    empty.write_text("\n  \n\n")
    with pytest.raises(DataError, match="no documents"):
        load_docs(empty)
    binary = isolated / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(DataError, match="UTF-8"):
        load_docs(binary)
    monkeypatch.setenv(data.ENV_VAR, str(isolated / "missing.txt"))
    with pytest.raises(DataError, match=data.ENV_VAR):
        load_docs()


def test_parse_docs_trims_like_javascript():
    assert parse_docs("  ann \r\nbob\n\n\ufeffcy\n") == ["ann", "bob", "cy"]


def test_tokenizer_round_trip():
    tok = Tokenizer.from_docs(["cab", "bad"])
    assert tok.chars == ["a", "b", "c", "d"] and tok.bos == 4 and tok.vocab_size == 5
    ids = tok.encode("dab")
    assert ids == [4, 3, 0, 1, 4]
    assert tok.decode(ids) == "dab"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("z")
