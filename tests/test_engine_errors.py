"""A user's Value class that raises inside `parity run` is that engine's divergence, not a traceback (issue 9.5)."""

import json

import pytest

from parity.commands.run import run_parity
from parity.judge.report import write_json
from parity.sources.pure_side import RunConfig
from pure.corpus import make_corpus
from pure.engine import Value
from pure.train import Trainer
from tests.test_parity import run_cli

DOCS = make_corpus()
RUN = RunConfig(steps=3, n_embd=8, n_head=2, block_size=8, samples=2, engine="plain")  # Value.backward is patched


def raise_on_call(n, exc, original):
    """A method that behaves like `original` except on its n-th call (1-based), where it raises exc."""
    calls = [0]

    def method(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise exc
        return original(*args, **kwargs)
    return method


@pytest.mark.parametrize("modes", [("lockstep", "free"), ("lockstep",), ("free",)])
def test_backward_raising_at_step_2_is_that_steps_divergence(monkeypatch, modes, tmp_path):
    monkeypatch.setattr(Value, "backward", raise_on_call(2, ZeroDivisionError("float division by zero"),
                                                         Value.backward))
    report = run_parity(DOCS, RUN, modes=modes, value_cls=Value)
    fd = report.first_divergence
    assert report.verdict == "diverge"
    assert (fd["step"], fd["mode"], fd["quantity"], fd["phase"]) == (2, modes[0], "engine", "backward")
    assert fd["detail"]["exception"] == "ZeroDivisionError: float division by zero"
    assert "test_engine_errors.py" in fd["detail"]["where"]
    line = report.verdict_line
    assert "step 2" in line and "raised in backward: ZeroDivisionError: float division by zero" in line
    engine = [c for c in report.checks if c.quantity == "engine"]
    assert [(c.mode, c.step, c.ok) for c in engine] == [(m, 2, False) for m in modes]
    assert max(c.step for c in report.checks) == 2  # the run stopped there: nothing after is claimed
    write_json(report, tmp_path / "r.json")  # strict JSON even so
    doc = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict: {c}"))
    assert doc["first_divergence"]["max_abs"] is None and doc["first_divergence"]["detail"]["phase"] == "backward"


def test_forward_raising_names_the_forward_phase(monkeypatch):
    monkeypatch.setattr(Value, "log", raise_on_call(1, ValueError("math domain error"), Value.log))
    fd = run_parity(DOCS, RUN, value_cls=Value).first_divergence
    assert (fd["step"], fd["phase"], fd["detail"]["exception"]) == (1, "forward", "ValueError: math domain error")


def test_a_grad_that_is_not_a_number_is_reported(monkeypatch):
    def backward(self):  # leaves every .grad as None, as a half-finished engine might
        for node in self.topological_order():
            node.grad = None
    monkeypatch.setattr(Value, "backward", backward)
    fd = run_parity(DOCS, RUN, value_cls=Value).first_divergence
    assert (fd["step"], fd["phase"]) == (1, "backward") and fd["detail"]["exception"].startswith("TypeError")


def test_sampling_raising_is_reported_at_the_samples(monkeypatch):
    monkeypatch.setattr(Trainer, "sample", raise_on_call(1, RuntimeError("sampler broke"), Trainer.sample))
    report = run_parity(DOCS, RUN, value_cls=Value)
    fd = report.first_divergence
    assert (fd["step"], fd["phase"], fd["detail"]["exception"]) == (3, "samples", "RuntimeError: sampler broke")
    assert all(c.ok for c in report.checks if c.quantity != "engine")  # the steps before were fine


def test_recursion_error_says_it_is_the_recursion_limit(monkeypatch):
    def deep(self):
        return deep(self)
    monkeypatch.setattr(Value, "backward", deep)
    fd = run_parity(DOCS, RUN, value_cls=Value).first_divergence
    assert fd["phase"] == "backward" and fd["detail"]["exception"].startswith("RecursionError")
    assert "recursion limit of" in fd["detail"]["exception"] and "nodes deep" in fd["detail"]["exception"]


def test_cli_engine_raising_exit_1_one_verdict_no_traceback(tmp_path, corpus_file):
    # micrograd-style engines call math.log, which raises on 0: at lr 1e6 a probability underflows to 0
    out = tmp_path / "r.json"
    r = run_cli("run", "--data", str(corpus_file), "--steps", "4", "--samples", "2", "--lr", "1e6",
                "--value", "tests/engines/micrograd_style.py:Value", "--json", str(out))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    verdict = r.stdout.strip().splitlines()[-1]
    assert "the Value class raised in forward: ValueError: math domain error" in verdict
    assert "micrograd_style.py:" in verdict
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert doc["verdict"] == "diverge" and doc["first_divergence"]["quantity"] == "engine"
    assert doc["first_divergence"]["detail"]["exception"] == "ValueError: math domain error"
    assert "engine" in r.stdout.split("\n", 3)[-1]  # the table has the engine's row


def test_the_fused_engine_raising_is_reported_too(monkeypatch):
    import pure.fused

    monkeypatch.setattr(pure.fused, "backward", raise_on_call(1, MemoryError("out of memory"), pure.fused.backward))
    fd = run_parity(DOCS, RunConfig(steps=2, n_embd=8, n_head=2, block_size=8, samples=0)).first_divergence
    assert (fd["step"], fd["phase"], fd["detail"]["exception"]) == (1, "backward", "MemoryError: out of memory")
