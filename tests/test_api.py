"""The harness as a library (parity.check_trace, check_value, check_ops, run, mutants), parity.testing, the CI
outputs (--junit, --markdown) and the first stumbles of a new user."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import parity
from parity.testing import assert_ops, assert_trace, assert_value_class
from tests.conftest import FIXTURES, ROOT
from tests.conftest import verdict_line as verdict_line_of

PORTS = FIXTURES / "ports"
RIGHT_TRACE, WRONG_TRACE = PORTS / "gist_default.jsonl.gz", PORTS / "seed_bug_exp_grad_one.jsonl.gz"
RIGHT_CLASS, WRONG_CLASS = "tests/engines/micrograd_style.py:Value", "tests/engines/wrong_rules.py:WrongRelu"
TINY = dict(steps=2, n_embd=8, n_head=2, block_size=8, samples=0)


@pytest.fixture(scope="module")
def wrong_trace_report():
    return parity.check_trace(WRONG_TRACE)


def test_import_parity_is_cheap_and_lists_the_api():
    code = "import sys, parity; print('torch' in sys.modules, sorted(parity.__all__))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    loaded, names = r.stdout.split(" ", 1)
    assert loaded == "False", "import parity must not load torch"
    assert {"check_trace", "check_value", "check_ops", "run", "mutants", "ParityError"} <= set(eval(names))


def test_check_trace_right_and_wrong(wrong_trace_report, tmp_path):
    right = parity.check_trace(RIGHT_TRACE, json=tmp_path / "r.json")
    assert right.ok and right.verdict == "agree" and right.first_divergence is None and right.diagnosis is None
    assert right.verdict_line.startswith("verdict: agree") and right.checks
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "agree"
    assert right.to_dict()["verdict_line"] == right.verdict_line
    wrong = wrong_trace_report
    assert not wrong.ok and wrong.verdict == "diverge"
    assert (wrong.first_divergence["step"], wrong.first_divergence["phase"]) == (1, "backward")
    assert any(not c.ok for c in wrong.checks)


def test_check_value_and_check_ops_right_and_wrong():
    assert parity.check_value(RIGHT_CLASS, **dict(TINY, samples=0)).ok
    from tests.engines import micrograd_style

    assert parity.check_value(micrograd_style.Value, steps=2, n_embd=8, n_head=2, block_size=8).ok  # a class
    wrong = parity.check_value(WRONG_CLASS, steps=2, n_embd=8, n_head=2, block_size=8)
    assert wrong.verdict == "diverge" and wrong.first_divergence["phase"] == "backward"
    ops = parity.check_ops(WRONG_CLASS)
    assert ops.verdict == "diverge" and not ops.ok and ops.first_divergence["op"] == "relu"
    assert parity.check_ops().ok  # pure's own Value


def test_run_and_mutants():
    report = parity.run(**TINY)
    assert report.ok and report.steps == 2 and report.to_dict()["run"]["steps"] == 2
    m = parity.mutants(only="exp_grad_one")
    assert m.ok and m.verdict == "ok" and m.verdict_line.startswith("mutants: 1/1 caught, 1/1 localised")


@pytest.mark.parametrize("call,message", [
    (lambda: parity.check_trace("no/such/trace.jsonl"), "cannot read trace no/such/trace.jsonl"),
    (lambda: parity.check_value(""), "--value was given an empty spec"),
    (lambda: parity.check_ops("tests/engines"), "is a folder; name the .py file"),
    (lambda: parity.run(n_embd=10, n_head=4), "n_embd (10) must be divisible by n_head (4)"),
    (lambda: parity.run(modes="sideways"), "--modes must be lockstep, free or both"),
    (lambda: parity.mutants(only="no_such_bug"), "unknown mutants: no_such_bug"),
    (lambda: parity.check_trace(RIGHT_TRACE, json=""), "--json was given an empty file name"),
])
def test_errors_are_parity_errors_with_the_commands_message(call, message):
    with pytest.raises(parity.InputError) as e:
        call()
    assert message in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, parity.ParityError)


def test_repr_html_marks_the_failing_row_and_shows_verdict_and_plot(wrong_trace_report):
    page = wrong_trace_report._repr_html_()
    assert "diverge" in page and "first divergence: step 1 (lockstep, backward)" in page
    marked = [chunk.split("</span>")[0] for chunk in page.split("<span style='background:#ffebe9")[1:]]
    assert any("grad:lm_head" in m for m in marked) and not any("param:wte" in m for m in marked)
    assert "<img alt='error per step' style='max-width:100%;height:auto' src='data:image/png;base64," in page
    assert "diagnosis: diagnosis:" not in page and "white-space:pre-wrap" in page
    assert "agree" in parity.check_ops()._repr_html_()


def test_assert_helpers_pass_and_fail_with_the_reason(wrong_trace_report):
    assert assert_trace(RIGHT_TRACE).ok
    with pytest.raises(AssertionError) as e:
        assert_trace(WRONG_TRACE)
    text = str(e.value)
    assert text.startswith("first divergence: step 1 (lockstep, backward), gradient of parameter lm_head")
    assert "grad:lm_head" in text and "FAIL" in text  # the failing rows
    with pytest.raises(AssertionError, match="ops: 1 of .* checked wrong: relu"):
        assert_ops(WRONG_CLASS)
    with pytest.raises(AssertionError, match="ops: all .* absent: exp, log"):
        assert_ops("tests/engines/micrograd_closures.py:Value")  # partial is not a pass ...
    assert_ops("tests/engines/micrograd_closures.py:Value", allow_partial=True)  # ... unless asked
    assert_value_class(RIGHT_CLASS, steps=2, n_embd=8, n_head=2, block_size=8)
    with pytest.raises(parity.InputError):  # a broken set-up is not a failing check
        assert_trace("missing.jsonl")


def test_a_pytest_file_shows_the_failure_text(tmp_path):
    test_file = tmp_path / "test_course.py"
    test_file.write_text(
        "from parity.testing import assert_ops, assert_trace\n"
        f"def test_rules():\n    assert_ops({str(ROOT / 'tests/engines/wrong_rules.py')!r} + ':WrongRelu')\n"
        f"def test_port():\n    assert_trace({str(WRONG_TRACE)!r})\n"
        f"def test_good_port():\n    assert_trace({str(RIGHT_TRACE)!r})\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 failed, 1 passed" in r.stdout
    assert "AssertionError: ops: 1 of" in r.stdout and "relu" in r.stdout
    assert "AssertionError: first divergence: step 1 (lockstep, backward), gradient of parameter lm_head" in r.stdout


@pytest.mark.parametrize("command", [
    ["check", str(RIGHT_TRACE)], ["check", str(WRONG_TRACE)], ["ops", "--value", WRONG_CLASS],
    ["run", "--steps", "2", "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--samples", "0"],
    ["mutants", "--only", "exp_grad_one,control_other_topological_order"],
], ids=["check-right", "check-wrong", "ops-wrong", "run", "mutants"])
def test_junit_and_markdown_outputs(command, tmp_path, capsys, corpus_file):
    from parity.__main__ import main

    junit, md = tmp_path / "out" / "r.xml", tmp_path / "r.md"
    extra = ["--data", str(corpus_file)] if command[0] == "run" else []
    code = main([*command, *extra, "--junit", str(junit), "--markdown", str(md)])
    out = capsys.readouterr().out.splitlines()
    verdict_line = verdict_line_of('\n'.join(out))
    assert f"junit: {junit}" in out and f"markdown: {md}" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    failures = [c.find("failure") for c in cases if c.find("failure") is not None]
    assert int(suite.get("tests")) == len(cases) > 0 and int(suite.get("failures")) == len(failures)
    assert bool(failures) == (code == 1)
    for f in failures:
        assert f.get("message").splitlines()[0] in (verdict_line, f.get("message").splitlines()[0]) and f.text
    if command[0] in ("check", "run"):
        names = {c.get("name") for c in cases}
        assert "lockstep.loss" in names
        for f in failures:
            assert f.get("message").splitlines()[0] == verdict_line
    text = md.read_text()
    assert verdict_line in text
    assert ("failing rows" in text) == (code == 1)


def test_plot_without_matplotlib_is_one_error_line(tmp_path, corpus_file):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from parity.__main__ import main\n"
            f"sys.exit(main(['run', '--data', {str(corpus_file)!r}, '--steps', '1', '--plot', "
            f"{str(tmp_path / 'p.png')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("error: --plot needs matplotlib, which is not installed here: pip install "
                                "'microgpt-parity[plot]' (or pip install matplotlib), or leave --plot out")
    assert r.stdout == "" and not (tmp_path / "p.png").exists()


def test_quick_start_works_offline_without_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MICROGPT_DATA"}
    env.update(MICROGPT_NO_DOWNLOAD="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "pure", "train", "--steps", "3", "--samples", "1"], cwd=ROOT,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "using the built-in synthetic corpus" in r.stderr and "num docs: 300" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "--value", "", "--steps", "1"], "error: --value was given an empty spec"),
    (["ops", "--json", ""], "error: --json was given an empty file name"),
    (["ops", "--value", "tests/engines"], "is a folder; name the .py file that defines the class"),
    (["run", "--data", "", "--steps", "1"], "error: --data was given an empty path"),
])
def test_empty_and_folder_arguments_are_errors_not_ignored(args, message, capsys):
    from parity.__main__ import main

    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_options_before_the_command_belong_to_it(capsys):
    from parity.__main__ import main

    assert main(["--value", "tests/engines/wrong_rules.py:WrongRelu", "ops"]) == 1
    assert "relu" in capsys.readouterr().out.splitlines()[-1]


def test_a_short_plot_has_whole_step_ticks_and_staggered_exact_marks(tmp_path):
    from parity.judge.plot import figure

    report = parity.run(**dict(TINY, steps=3))
    fig = figure(report)
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
        marks = {}
        for line in fig.axes[0].get_lines():
            if line.get_marker() == "|" and len(line.get_ydata()):
                marks.setdefault(line.get_ydata()[0], []).append(line.get_color())
        assert all(len(colors) == 1 for colors in marks.values()), "exact marks of two families share a height"
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
