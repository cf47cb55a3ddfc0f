"""The learner's path (issue 31): `parity ops` checks each rule on its own and points at the one wrong rule, with the
right fix, in the terminal, pytest, the notebook and `parity grade`.

tests/engines/learner_*.py are one-file micrograd-style classes, each with one slip a learner makes: mul's local
gradients swapped, `=` instead of `+=` in add's backward, a stack walk instead of a topological sort (over a tuple,
and over a set: run-to-run variation), pow's n*x^n.
"""

import os
import subprocess
import sys

import pytest

import parity
from parity.judge.formats import diagnosis_line
from parity.ops.checks import run_ops
from parity.sources.user_value import check_protocol, load_value_class
from tests.conftest import ROOT

ENGINES = ROOT / "tests/engines"
POW_ROWS = ["pow(2)", "pow(3)", "pow(0.5)", "pow(-0.5)", "pow(-1)"]
PRIMITIVES = ["mul", "add", "neg", "sub", *POW_ROWS, "div", "exp", "log", "relu", "add(number)", "sub(number)",
              "mul(number)", "div(number)"]


def learner(name):
    return load_value_class(f"{ENGINES / name}.py:Value")


def status(report):
    return {r.op: r.status for r in report.ops}


def test_a_wrong_mul_fails_mul_only_and_the_rows_built_on_it_are_not_checked():
    report = run_ops(learner("learner_mul_swapped"))
    s = status(report)
    assert [r.op for r in report.failing] == ["mul"]
    for op in ("add", "exp", "log", "relu", *POW_ROWS, "add(number)"):  # right rules, checked on their own
        assert s[op] == "ok", op
    for op in ("neg", "sub", "div", "mul(number)", "reuse", "softmax", "attention", "cross-entropy"):
        assert s[op] == "not checked", op
        assert next(r for r in report.ops if r.op == op).detail == "built on mul, which is wrong"
    d = report.diagnosis
    assert d["id"] == "ops:mul" and d["fix"] == "mul's local derivative: d(ab)/da = b, d(ab)/db = a"
    assert "mul at a=0.5, b=-1.2: d/da: got 0.5, torch.autograd says -1.2" in d["evidence"]
    line = diagnosis_line(d)
    assert "also reproduces" not in line and "built on mul (fix it first): 13 rows" in line
    assert report.verdict_line.startswith("ops: 1 of 13 checked wrong: mul (")
    assert "13 not checked, built on the wrong rule: neg, sub," in report.verdict_line


def test_add_assigning_its_gradient_is_named_accumulate():
    report = run_ops(learner("learner_add_assign"))
    s = status(report)
    assert [r.op for r in report.failing] == ["reuse"]
    assert all(s[op] == "ok" for op in PRIMITIVES)
    reuse = next(r for r in report.ops if r.op == "reuse")
    assert reuse.detail.startswith("y + y: d/dy: got 1, torch.autograd says 2") and reuse.cause == "accumulate"
    for op in ("softmax", "attention", "cross-entropy", "graph order"):
        assert s[op] == "not checked", op
    d = report.diagnosis
    assert d["id"] == "ops:accumulate" and "add's backward" in d["summary"]
    assert d["fix"].startswith("accumulate with += in every backward")
    assert "pow" not in d["fix"] and "reuse" not in d["fix"]


@pytest.mark.parametrize("name", ["learner_stack_walk", "learner_set_walk"])
def test_a_stack_walk_is_named_topological_order(name):
    for _ in range(3):  # the same table run after run, set or not
        report = run_ops(learner(name))
        s = status(report)
        assert [r.op for r in report.failing] == ["reuse", "graph order"], report.verdict_line
        assert all(s[op] == "ok" for op in PRIMITIVES)
        assert {s[op] for op in ("softmax", "rmsnorm", "attention", "cross-entropy")} == {"not checked"}
        d = report.diagnosis
        assert d["id"] == "ops:topological-order" and d["fix"].startswith("walk the graph in reverse topological order")
        assert "reuse" not in d["fix"]


def test_a_walk_over_a_set_is_said_to_depend_on_iteration_order():
    report = run_ops(learner("learner_set_walk"))
    assert any(r.varies for r in report.failing)
    assert "backward depends on iteration order (a set of children)" in report.diagnosis["summary"]
    assert not any(r.varies for r in run_ops(learner("learner_stack_walk")).ops)  # a tuple: the same every time
    assert not any(r.varies for r in run_ops(load_value_class(f"{ENGINES}/micrograd_style.py:Value")).ops)


def test_pow_n_x_n_fails_the_pow_rows_only_and_says_the_rule_once():
    report = run_ops(learner("learner_pow_n_x_n"))
    assert [r.op for r in report.failing] == POW_ROWS
    assert status(report)["div"] == "not checked"
    d = report.diagnosis
    assert d["id"] == "ops:pow" and d["fix"] == "pow's local derivative: d(x^n)/dx = n x^(n-1)"
    assert d["evidence"].startswith("parity ops: pow(2) at x=0.5: d/dx: got 0.5, torch.autograd says 1; the same "
                                    "rule fails in pow(3), pow(0.5), pow(-0.5), pow(-1)")
    assert "also reproduces" not in diagnosis_line(d)
    doc = report.to_dict()
    assert doc["diagnosis"]["id"] == "ops:pow" and doc["diagnosis"]["rules"][0]["op"] == "pow(2)"


def test_the_worker_gives_the_same_table_as_in_process():
    spec = f"{ENGINES}/learner_add_assign.py:Value"
    here, there = run_ops(load_value_class(spec)), parity.check_ops(spec)
    assert status(here) == status(there) and here.diagnosis["summary"] == there.diagnosis["summary"]
    assert next(r for r in there.ops if r.op == "sub").calls == ["__add__", "__mul__", "__neg__", "__sub__"]


def test_run_value_says_the_same_diagnosis_with_no_alternatives():
    report = parity.check_value(f"{ENGINES}/learner_mul_swapped.py:Value", steps=1, n_embd=8, n_head=2,
                                block_size=8, samples=0)
    d = report.diagnosis
    assert d["id"] == "ops:mul" and d["alternatives"] == [] and d["fix"].endswith("d(ab)/da = b, d(ab)/db = a")
    assert "built on mul (fix it first)" in diagnosis_line(d)


def test_a_refused_class_is_told_every_method_it_lacks_at_once(tmp_path):
    source = (ENGINES / "micrograd_style.py").read_text()
    source = source.replace("    def __rmul__(self, other):\n        return self * other\n", "")
    source = source.replace("return self + (-other)", "return self + (-1 * other)")
    start, end = source.index("    def relu(self):"), source.index("    def backward(self):")
    (tmp_path / "engine.py").write_text(source[:start] + source[end:])
    cls = load_value_class(f"{tmp_path}/engine.py:Value")
    with pytest.raises(ValueError) as e:
        check_protocol(cls)
    text = str(e.value)
    assert "it lacks relu, __rmul__ (needed: " in text and "a - b raised TypeError" in text
    report = run_ops(cls)
    assert {r.op: r.detail for r in report.ops if r.status == "absent"} == {"sub": "lacks __rmul__",
                                                                           "relu": "lacks relu"}


def test_pytest_shows_the_verdict_the_diagnosis_and_what_broke_never_the_report(tmp_path):
    (tmp_path / "test_course.py").write_text(
        "from parity.testing import assert_ops\n"
        f"def test_rules():\n    assert_ops({str(ENGINES / 'learner_mul_swapped.py')!r} + ':Value')\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for flags in ([], ["-l", "--tb=long"]):
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags,
                            str(tmp_path / "test_course.py")], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=300)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "OpsReport(" not in r.stdout and "parity/testing.py" not in r.stdout and "def _assert" not in r.stdout
        assert "E       AssertionError: ops: 1 of 13 checked wrong: mul" in r.stdout
        assert "E       diagnosis: the Value class's mul is wrong (ops:mul); fix: " in r.stdout
        assert "E         mul: at a=0.5, b=-1.2: d/da: got 0.5, torch.autograd says -1.2" in r.stdout


def test_the_notebook_shows_the_diagnosis_once_and_wraps():
    page = run_ops(learner("learner_mul_swapped"))._repr_html_()
    assert "diagnosis: diagnosis:" not in page and "<b>diagnosis</b>: the Value class&#x27;s mul is wrong" in page
    assert page.count("the Value class&#x27;s mul is wrong (ops:mul)") == 1
    assert "white-space:pre-wrap" in page
