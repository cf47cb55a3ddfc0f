"""Shared fixtures: where the seed's golden output lives, and small corpora made by the project itself."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
NAMES = SHARED / "data" / "names.txt"
GOLDEN = SHARED / "golden" / "seed_default.jsonl"
RNG_VECTORS = SHARED / "golden" / "rng_vectors.json"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def need(path):
    """Skip (with the reason) when a file from ../shared is not beside the checkout."""
    if not path.is_file():
        pytest.skip(f"{path} not found: clone the project with ../shared beside it")
    return path


@pytest.fixture(scope="session")
def golden():
    """The seed program's default run: init weights, per-step losses (and grads/params of steps 1-3), samples."""
    lines = [json.loads(line) for line in need(GOLDEN).read_text().splitlines()]
    return {
        "meta": next(d["meta"] for d in lines if "meta" in d),
        "init": next(d["init"] for d in lines if "init" in d),
        "steps": {d["step"]: d for d in lines if "step" in d},
        "losses": [d["loss"] for d in lines if "step" in d],
        "samples": [d["text"] for d in lines if "sample" in d],
    }


@pytest.fixture(scope="session")
def names_docs():
    from pure.data import load_docs

    return load_docs(need(NAMES))


@pytest.fixture(scope="session")
def seed_runs():
    """Figures from the seed program itself, run under bun with other seeds and configs."""
    return {run["name"]: run for run in json.loads((FIXTURES / "seed_runs.json").read_text())["runs"]}


@pytest.fixture
def corpus_file(tmp_path):
    from pure.corpus import write_corpus

    path = tmp_path / "corpus.txt"
    write_corpus(path)
    return path


def verdict_line(out):
    """The verdict line of a command's output: its last line, or the one before a closing `diagnosis:` line."""
    lines = out.strip().splitlines()
    return lines[-2] if lines[-1].startswith("diagnosis:") else lines[-1]
