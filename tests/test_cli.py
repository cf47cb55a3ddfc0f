"""`python -m pure` end to end on a small corpus: output, trace, checkpoint round trip, and errors."""

import json
import subprocess
import sys

import pytest

from pure.trace import read_trace
from tests.conftest import ROOT

SMALL = ["--steps", "4", "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--samples", "3"]


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pure", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_help_lists_every_flag():
    out = run("train", "--help").stdout
    for flag in ["--data", "--seed", "--steps", "--n-layer", "--n-embd", "--n-head", "--block-size", "--lr",
                 "--temperature", "--samples", "--trace", "--save"]:
        assert flag in out
    assert "--load" in run("sample", "--help").stdout


def test_train_trace_save_and_sample(corpus_file, tmp_path):
    trace, ckpt = tmp_path / "trace.jsonl", tmp_path / "model.json"
    r = run("train", "--data", corpus_file, *SMALL, "--trace", trace, "--save", ckpt)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("num docs: ") and lines[1].startswith("vocab size: ")
    assert lines[2].startswith("num params: ")
    assert any(line.startswith("step    4 / 4 | loss ") for line in lines)
    assert "--- inference (new, hallucinated names) ---" in lines
    printed = [line.split(": ", 1)[1] if ": " in line else "" for line in lines if line.startswith("sample ")]
    assert len(printed) == 3

    meta, losses, samples = read_trace(trace)
    assert meta["implementation"] == "pure" and meta["config"]["n_embd"] == 8 and meta["steps"] == 4
    assert len(losses) == 4 and all(isinstance(x, float) for x in losses)
    assert samples == printed
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert "init" in records[1] and len(records[1]["init"]) == meta["num_params"]  # the port-trace format
    assert records[2]["step"] == 1 and records[2]["lr"] == 0.01 and records[3]["lr"] == 0.01 * (1 - 1 / 4)
    assert records[2]["doc"] and "grads" not in records[2]  # tensors only with --trace-tensors

    again = run("sample", "--load", ckpt, "--samples", "3")
    assert again.returncode == 0, again.stderr
    assert [line.split(": ", 1)[1] if ": " in line else "" for line in again.stdout.splitlines()
            if line.startswith("sample ")] == printed


def test_losses_match_in_process_trainer(corpus_file, tmp_path):
    from pure import Trainer
    from pure.data import load_docs

    trace = tmp_path / "t.jsonl"
    assert run("train", "--data", corpus_file, *SMALL, "--seed", "9", "--trace", trace).returncode == 0
    trainer = Trainer(load_docs(corpus_file), seed=9, steps=4, n_embd=8, n_head=2, block_size=8)
    assert read_trace(trace)[1] == [trainer.train_step(s) for s in range(4)]


@pytest.mark.parametrize("args,message", [
    (["train", "--n-embd", "10", "--n-head", "3"], "divisible by n_head"),
    (["train", "--data", "/no/such/file.txt"], "data file not found"),
    (["train", "--steps", "0"], "positive integer"),
    (["train", "--temperature", "-1"], "positive"),
    (["train", "--lr", "nan"], "positive finite"),
    (["sample", "--load", "/no/such/ckpt.json"], "checkpoint not found"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, corpus_file):
    if args[0] == "train" and "--data" not in args:
        args = args + ["--data", str(corpus_file)]
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_and_mismatched_checkpoints(corpus_file, tmp_path):
    ckpt = tmp_path / "m.json"
    assert run("train", "--data", corpus_file, *SMALL, "--save", ckpt).returncode == 0
    good = json.loads(ckpt.read_text())

    truncated = tmp_path / "truncated.json"
    truncated.write_text(ckpt.read_text()[:200])
    bad_shape = dict(good, params=dict(good["params"], wte=good["params"]["wte"][:-1]))
    wrong_vocab = dict(good, vocab=good["vocab"][:-1])
    missing = dict(good, params={k: v for k, v in good["params"].items() if k != "lm_head"})
    cases = {"truncated.json": None, "shape.json": bad_shape, "vocab.json": wrong_vocab, "missing.json": missing,
             "other.json": {"hello": 1}}
    for name, doc in cases.items():
        path = tmp_path / name
        if doc is not None:
            path.write_text(json.dumps(doc))
        r = run("sample", "--load", path)
        assert r.returncode == 2, name
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, name
        assert "Traceback" not in r.stderr


def test_failed_run_leaves_no_trace_file(corpus_file, tmp_path):
    trace = tmp_path / "t.jsonl"
    r = run("train", "--data", corpus_file, *SMALL, "--lr", "1e6", "--steps", "30", "--trace", trace)
    assert r.returncode == 1 and "loss became" in r.stderr
    assert not trace.exists() and not list(tmp_path.glob("t.jsonl*"))
