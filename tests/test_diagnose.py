"""The diagnosis names the bug, not only the place: every bug of the catalogue injected into pure and into real
programs (the seed under bun, microgpt.py), every tracing slip, is named; correct runs and bugs outside the
catalogue get no name."""

import gzip
import json

import pytest

import parity
from parity.__main__ import main
from parity.bugs import catalogue
from tests import diagnosis_cases as cases
from tests.conftest import FIXTURES

PORTS = FIXTURES / "ports"
# One of each kind, the equivalent pair, a slip of each mechanism, and bugs outside the catalogue: the fast suite.
FAST = {"relu-grad", "add-drops-first", "log-grad-sign", "topological-order", "attention-unscaled",
        "rmsnorm-missing-embed", "kv-cache-not-extended", "adam-no-bias-correction", "adam-betas-swapped",
        "lr-cosine", "grads-not-zeroed", "slip-grads-after-zeroing", "slip-weights-before-update",
        "slip-parameter-order", "slip-column-major", "slip-too-few-digits", "slip-float32-judged-as-float64",
        "exp-grad-double", "adam-beta1-0.8", "leaky-relu", "correct"}
ALL = cases.cases()


def _check(case, tmp_path):
    report = parity.check_trace(cases.build(case, tmp_path))
    name, _, expected = case
    d = report.diagnosis
    if expected is None and name == "correct":
        assert report.verdict == "agree" and d is None
    else:
        assert report.verdict == "diverge", report.verdict_line
    assert cases.right(expected, d), (name, d)
    if expected is None and d is not None:  # a divergence nothing explains: said so, no name
        assert d["id"] is None and d["summary"] == "no known bug reproduces this"
    return report


@pytest.mark.parametrize("case", [c for c in ALL if c[0] in FAST], ids=lambda c: c[0])
def test_named_right_or_not_at_all(case, tmp_path):
    _check(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in ALL if c[0] not in FAST], ids=lambda c: c[0])
def test_named_right_or_not_at_all_every_bug(case, tmp_path):
    _check(case, tmp_path)


def test_every_bug_of_the_catalogue_has_a_case():
    assert {c[2] for c in ALL if c[2]} == {b.id for b in catalogue()}


REAL = sorted(p.name.removesuffix(".jsonl.gz") for p in PORTS.glob("*_bug_*-*.jsonl.gz"))


@pytest.mark.parametrize("name", REAL)
def test_real_programs_bugs_are_named(name):
    """The seed under bun and Karpathy's microgpt.py, each with one bug edited in (tests/make_port_traces.py)."""
    report = parity.check_trace(PORTS / f"{name}.jsonl.gz")
    expected = name.split("_bug_")[1]
    assert report.diagnosis is not None and report.diagnosis["id"] == expected, report.diagnosis


@pytest.mark.slow
@pytest.mark.parametrize("name,expected", [
    (f"{p}_bug_{b}", e) for p in ("seed", "gist") for b, e in
    (("unscaled_attention", "attention-unscaled"), ("exp_grad_one", "exp-grad-one"),
     ("no_bias_correction", "adam-no-bias-correction"))])
def test_real_programs_bugs_at_the_default_config_are_named(name, expected):
    assert parity.check_trace(PORTS / f"{name}.jsonl.gz").diagnosis["id"] == expected


@pytest.mark.parametrize("name", ["gist_default", "seed_2x12x3"])
def test_correct_real_programs_get_no_diagnosis(name):
    report = parity.check_trace(PORTS / f"{name}.jsonl.gz")
    assert report.verdict == "agree" and report.diagnosis is None and report.to_dict()["diagnosis"] is None


def test_the_cli_prints_the_diagnosis_after_the_verdict_and_writes_it(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["check", str(PORTS / "seed_bug_relu-grad.jsonl.gz"), "--no-table", "--json", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("first divergence: step 1 (lockstep, backward)")
    assert lines[-1].startswith("diagnosis: relu's backward passes gradients at negative inputs (relu-grad); fix: "
                                "d/dx relu = 1 if x > 0 else 0; reproduces the port's gradients at step 1 to ")
    d = json.loads(out.read_text())["diagnosis"]
    assert {"id", "summary", "fix", "phase", "step", "evidence", "alternatives"} <= set(d)
    assert (d["id"], d["phase"], d["step"]) == ("relu-grad", "backward", 1)
    assert main(["check", str(PORTS / "seed_bug_relu-grad.jsonl.gz"), "--no-table", "--no-diagnosis"]) == 1
    assert not capsys.readouterr().out.splitlines()[-1].startswith("diagnosis:")


def test_parity_diagnoses_lists_the_catalogue(capsys):
    assert main(["diagnoses"]) == 0
    out = capsys.readouterr().out
    for bug in catalogue():
        assert any(line.startswith(bug.id + " ") and bug.phase in line for line in out.splitlines()), bug.id


def test_run_value_names_the_wrong_rule_from_ops():
    report = parity.check_value("tests/engines/wrong_rules.py:WrongRelu", steps=2, n_embd=8, n_head=2,
                                block_size=8)
    d = report.diagnosis
    assert d["id"] == "ops:relu" and "x=-0.7" in d["evidence"] and "d/dx relu(x) = 1 where x > 0" in d["fix"]


def test_a_losses_only_trace_is_diagnosed_in_free_mode(tmp_path):
    bug = next(b for b in catalogue() if b.id == "attention-unscaled")
    path = cases.pure_trace(tmp_path / "a.jsonl", bug, steps=8, tensors=0)
    d = parity.check_trace(path).diagnosis
    assert d["id"] == "attention-unscaled" and "reproduces every one of the port's 8 losses" in d["evidence"]
    outside = next(b for b in cases.OUTSIDE if b.id == "leaky-relu")
    path = cases.pure_trace(tmp_path / "b.jsonl", outside, steps=8, tensors=0)
    assert parity.check_trace(path).diagnosis["id"] is None


def test_a_learning_rate_no_schedule_explains_is_fitted(tmp_path):
    path = cases.pure_trace(tmp_path / "lr.jsonl", adam={"lr": 0.013})
    d = parity.check_trace(path).diagnosis
    assert d["id"] == "lr-value" and "the port's lr at step 1 is 0.013, the seed's 0.01" in d["summary"]


def test_the_fixtures_hold_no_code():
    """Only the traces the programs printed: JSON lines and their own progress and sample prints."""
    for p in PORTS.glob("*.jsonl.gz"):
        with gzip.open(p, "rt") as f:
            text = f.read()
        assert "function" not in text and "def " not in text and "import" not in text, p.name
