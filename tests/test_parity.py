"""parity run: agreement on several configs, sensitivity (a perturbed weight, a wrong rule), JSON schema, exit codes."""

import json
import subprocess
import sys

import pytest
import torch

from parity.commands.run import run_parity
from parity.sources.pure_side import RunConfig
from pure.corpus import make_corpus, write_corpus
from pure.engine import Value
from tests.conftest import ROOT, verdict_line

DOCS = make_corpus()
SMALL = dict(n_embd=8, n_head=2, block_size=8, samples=3)


def small_run(**kw):
    return RunConfig(**{**dict(steps=3, **SMALL), **kw})


@pytest.mark.parametrize("kw", [
    dict(),
    dict(n_layer=2, n_head=1, seed=5),
    dict(n_embd=12, n_head=3, block_size=4, seed=0, temperature=1.0),
    dict(n_layer=1, n_embd=16, n_head=4, block_size=16, steps=4),
])
def test_agrees_on_several_configs(kw):
    report = run_parity(DOCS, small_run(**kw))
    assert report.verdict == "agree", report.verdict_line
    assert report.first_divergence is None
    modes = {c.mode for c in report.checks}
    assert modes == {"lockstep", "free"}
    # every quantity of every step was compared, in both modes
    steps = kw.get("steps", 3)
    assert len([c for c in report.checks if c.quantity != "samples"]) % (2 * steps) == 0
    assert report.samples["lockstep"]["pure"] == report.samples["lockstep"]["torch"]


def perturb(pure_name, index, eps):
    def tamper(trainer):
        p = trainer.params_by_name()[pure_name]
        with torch.no_grad():
            p[index] += eps
    return tamper


@pytest.mark.parametrize("name,index,expected", [
    ("layer0.attn_wq", (0, 0), "layer0.q"),
    ("layer0.mlp_fc2", (3, 5), "layer0.mlp_resid"),
    ("lm_head", (2, 1), "logits"),
])
def test_a_1e_6_perturbation_is_caught_and_localised(name, index, expected):
    report = run_parity(DOCS, small_run(steps=2), tamper=perturb(name, index, 1e-6))
    fd = report.first_divergence
    assert report.verdict == "diverge"
    assert (fd["step"], fd["mode"], fd["quantity"]) == (1, "lockstep", expected), report.verdict_line


def broken_relu(self):
    out = Value(self.data if self.data > 0 else 0.0, (self,), (1,))  # wrong: gradient 1 everywhere
    return out


def wrong_log(self):
    import math
    return Value(math.log(self.data), (self,), (1 / self.data ** 2,))  # wrong: 1/x^2


@pytest.mark.parametrize("method,bug,expected", [
    ("relu", broken_relu, "d:layer0.mlp_pre"),
    ("log", wrong_log, "d:logits"),
])
def test_a_wrong_rule_is_caught_and_localised(monkeypatch, method, bug, expected):
    monkeypatch.setattr(Value, method, bug)
    report = run_parity(DOCS, small_run(steps=2))
    fd = report.first_divergence
    assert report.verdict == "diverge"
    assert (fd["step"], fd["mode"], fd["phase"], fd["quantity"]) == (1, "lockstep", "backward", expected)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "parity", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cli_json_schema_plot_and_exit_0(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    r = run_cli("run", "--data", corpus, "--steps", "2", "--n-embd", "8", "--n-head", "2", "--block-size", "6",
                "--samples", "2", "--json", out_json, "--plot", out_png)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("verdict: agree")
    doc = json.loads(out_json.read_text())
    assert doc["verdict"] == "agree" and doc["first_divergence"] is None
    assert {"verdict", "first_divergence", "checks"} <= set(doc)
    for c in doc["checks"]:
        assert {"mode", "step", "quantity", "max_abs", "max_rel", "tol", "ok"} <= set(c)
        assert c["mode"] in ("lockstep", "free") and isinstance(c["ok"], bool)
    assert {c["quantity"] for c in doc["checks"]} >= {"logits", "loss", "grad:wte", "adam_m:wte", "adam_v:wte",
                                                       "param:wte", "samples", "layer0.head1.attn_weights"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_exit_1_on_divergence_with_verdict_line(tmp_path):
    # A user's engine with a wrong mul rule, through the same module path a user would give.
    corpus = write_corpus(tmp_path / "c.txt")
    out_json = tmp_path / "r.json"
    engine = tmp_path / "engine.py"
    engine.write_text(  # pure's own Value, its mul rule made wrong (in the worker that imports this file)
        "from pure.engine import Value\n"
        "def mul(self, other):\n"
        "    other = other if isinstance(other, Value) else Value(other)\n"
        "    return Value(self.data * other.data, (self, other), (self.data, other.data))\n"
        "Value.__mul__ = mul\n")
    r = subprocess.run([sys.executable, "-m", "parity", "run", "--data", corpus, "--steps", "1", "--n-embd", "8",
                        "--n-head", "2", "--samples", "1", "--json", out_json, "--no-table", "--value",
                        f"{engine}:Value"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert verdict_line(r.stdout).startswith("first divergence: step 1 (lockstep, ")
    doc = json.loads(out_json.read_text())
    assert doc["verdict"] == "diverge" and doc["first_divergence"]["step"] == 1


@pytest.mark.parametrize("args,message", [
    (["run", "--data", "/no/such/file"], "data file not found"),
    (["run", "--n-embd", "10", "--n-head", "3"], "divisible"),
    (["run", "--device", "cuda:7"], "not available"),
    (["run", "--device", "tpu"], "device"),
    (["run", "--dtype", "float16"], "invalid choice"),
    (["run", "--modes", "sideways"], "--modes"),
    (["walk"], "invalid choice"),
])
def test_cli_usage_errors_exit_2(tmp_path, args, message):
    if "--data" not in args and args[0] == "run":
        args = args + ["--data", str(write_corpus(tmp_path / "c.txt")), "--steps", "1"]
    r = run_cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr


def test_float32_mode_agrees_within_its_own_tolerances():
    from parity.judge.tolerances import F32_LOCKSTEP

    report = run_parity(DOCS, small_run(dtype="float32", steps=2))
    assert report.verdict == "agree", report.verdict_line
    lock = [c for c in report.checks if c.mode == "lockstep" and c.quantity == "logits"]
    assert lock and all(c.tol == F32_LOCKSTEP["logits"] for c in lock)
    # float32 noise is real: far above float64's, so the float64 tolerances would have failed it
    assert max(c.max_abs for c in lock) > 1e-10


def test_cli_details_streams_every_check_and_the_json_keeps_the_worst(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    out_json, details = tmp_path / "r.json", tmp_path / "d.jsonl"
    r = run_cli("run", "--data", corpus, "--steps", "3", "--n-embd", "8", "--n-head", "2", "--block-size", "6",
                "--samples", "1", "--json", out_json, "--details", details, "--no-table")
    assert r.returncode == 0, r.stderr
    strict = dict(parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    doc = json.loads(out_json.read_text(), **strict)
    lines = [json.loads(line, **strict) for line in details.read_text().splitlines()]
    assert len(lines) == doc["n_checks"] and {c["step"] for c in lines} == {1, 2, 3}
    keys = [(c["quantity"], c["mode"]) for c in doc["checks"]]
    assert len(keys) == len(set(keys)) == len({(c["quantity"], c["mode"]) for c in lines})
    for worst in doc["checks"]:  # each is the largest share of its tolerance over the run
        same = [c["ratio"] for c in lines if (c["quantity"], c["mode"]) == (worst["quantity"], worst["mode"])]
        assert worst["ratio"] == max(same)
    assert set(doc["series"]) == {"lockstep", "free"} and len(doc["series"]["free"]["loss"]) == 3
    assert not list(tmp_path.glob(".*.tmp"))
