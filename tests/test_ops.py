"""`parity ops` and `--value SPEC`: every rule of a Value class, pure's and third parties', right ones and wrong ones.

The third-party engines live in tests/engines/: micrograd_style.py and direct_rules.py are correct and written
independently of pure (closures and sets, direct sub/div rules, other topological orders); wrong_rules.py holds
classes with exactly one wrong rule each, and one without relu; activations.py has the optional activations of the
declared variants (erf, gelu, gelu_tanh, silu, tanh, sigmoid), right, and with one wrong each.
"""

import json
import math
import subprocess
import sys

import pytest
import torch

import pure.model
from parity.__main__ import main
from parity.commands.run import run_parity
from parity.judge.tolerances import OPS_FD_TOL as FD_TOL
from parity.judge.tolerances import OPS_FWD_TOL as FWD_TOL
from parity.judge.tolerances import OPS_GRAD_TOL as GRAD_TOL
from parity.ops import cases as ops_cases
from parity.ops import checks
from parity.ops.checks import run_ops
from parity.sources.pure_side import RunConfig
from parity.sources.user_value import MODEL_METHODS, check_protocol, load_and_check, load_value_class
from pure.corpus import make_corpus
from pure.engine import Value
from tests.conftest import ROOT, verdict_line
from tests.engines import direct_rules, micrograd_style, wrong_rules

DOCS = make_corpus()
REAL_SOFTMAX = pure.model.softmax
RUN = RunConfig(steps=2, n_embd=8, n_head=2, block_size=8, samples=2)

CORRECT = {"micrograd_style": micrograd_style.Value, "direct_rules": direct_rules.Value,
           "wrong_rules.Engine": wrong_rules.Engine}
# class -> (an op that must fail, the first failing op in table order)
WRONG = {
    "WrongMul": ("mul", "mul"),
    "WrongPow": ("pow(2)", "pow(2)"),
    "WrongLog": ("log", "log"),
    "WrongRelu": ("relu", "relu"),
    "NoAccumulate": ("reuse", "reuse"),
}
EXTRAS = {"gelu", "gelu_tanh", "silu", "pow(Value)"}  # optional ops pure.Value does not have
# every optional row: the extras and the MLP activations of the declared variants (issue 28), methods and composites
OPTIONAL = {"tanh", "sigmoid", "erf", "gelu", "gelu_tanh", "silu", "pow(Value)", "relu2", "gelu(erf composite)",
            "gelu_tanh(composite)", "silu(composite)"}
ACTIVATIONS = ["erf", "gelu", "gelu_tanh", "silu", "relu2", "gelu(erf composite)", "gelu_tanh(composite)",
               "silu(composite)"]
REQUIRED_OPS = ["add", "sub", "mul", "div", "neg", "pow(2)", "pow(3)", "pow(0.5)", "pow(-0.5)", "pow(-1)", "exp",
                "log", "relu", "softmax", "rmsnorm", "linear", "attention", "cross-entropy", "reuse"]


@pytest.fixture(scope="module")
def pure_report():
    return run_ops(Value)


def by_op(report):
    return {r.op: r for r in report.ops}


# ---- pure.Value

def test_pure_value_passes_every_op(pure_report):
    ops_ = by_op(pure_report)
    assert pure_report.verdict == "agree", pure_report.verdict_line
    assert set(REQUIRED_OPS) <= set(ops_), set(REQUIRED_OPS) - set(ops_)
    assert {r.op for r in pure_report.ops if r.status == "n/a"} == EXTRAS
    assert not any(r.required for r in pure_report.ops if r.status in ("absent", "n/a"))
    for r in pure_report.checked:
        assert r.ok and r.status == "ok" and not r.failed_checks and r.input is None, (r.op, r.detail)
        assert r.max_fwd_error <= FWD_TOL and r.max_grad_error <= GRAD_TOL and r.max_fd_error <= FD_TOL
        assert r.ref_fd_error <= FD_TOL  # torch's own gradients agree with finite differences
        assert r.checks == ["torch", "finite-difference"], r.op
        assert r.cases >= 1
    assert pure_report.verdict_line.startswith(f"ops: all {len(pure_report.ops) - len(EXTRAS)} checked agree")
    assert pure_report.verdict_line.endswith("; n/a: gelu, gelu_tanh, silu, pow(Value)")


def test_the_input_table_has_the_edge_cases():
    specs = {s.name: s for s in ops_cases.specs()}
    relu_inputs = [c.inputs["x"] for c in specs["relu"].cases]
    assert 0.0 in relu_inputs and any(x > 0 for x in relu_inputs) and any(x < 0 for x in relu_inputs)
    assert [c.kink for c in specs["relu"].cases if c.inputs["x"] == 0.0] == [True]  # no finite differences there
    for e in ("0.5", "-0.5"):
        assert min(c.inputs["x"] for c in specs[f"pow({e})"].cases) <= 1e-4  # small positive x
    notes = {c.note for c in specs["softmax"].cases}
    assert {"one dominant logit", "equal logits"} <= notes


def test_upstream_gradients_are_random_and_non_uniform():
    w = ops_cases.upstream(0, "softmax", 0, 6)
    assert len(set(w)) == 6 and all(0.5 <= abs(x) <= 2.0 for x in w)
    assert w == ops_cases.upstream(0, "softmax", 0, 6)  # fixed per seed, op and case
    assert w != ops_cases.upstream(1, "softmax", 0, 6)


def detached_softmax(logits, sums=pure.model.PLAIN_SUMS):
    """Right forward, no gradient at all: what a uniform upstream gradient cannot tell from the right rule."""
    cls = type(logits[0])
    return [cls(p.data) for p in REAL_SOFTMAX(logits, sums)]


def test_a_wrong_softmax_rule_is_caught_only_with_non_uniform_upstream_gradients(monkeypatch):
    monkeypatch.setattr(pure.model, "softmax", detached_softmax)
    report = run_ops(Value, only=["softmax"])
    assert report.verdict == "diverge"
    assert report.ops[0].failed_checks[:1] == ["gradient"] and "finite-difference" in report.ops[0].failed_checks
    # with all upstream gradients equal to 1 (backprop from .sum()) the same wrong rule would pass
    monkeypatch.setattr(ops_cases, "upstream", lambda seed, op, case, n: [1.0] * n)
    assert run_ops(Value, only=["softmax"]).verdict == "agree"


def test_finite_differences_check_the_reference_itself(monkeypatch):
    """A torch reference with a wrong gradient (right forward) is caught by the finite differences."""
    real = ops_cases.specs

    def specs():
        out = []
        for s in real():
            if s.name == "exp":
                s.ref = lambda x: (torch.exp(x.detach()) + 2 * (x - x.detach())).reshape(1)
            out.append(s)
        return out

    monkeypatch.setattr(ops_cases, "specs", specs)
    r = run_ops(Value, only=["exp"]).ops[0]
    assert not r.ok
    assert "reference" in r.failed_checks and "finite-difference" not in r.failed_checks
    assert r.ref_fd_error > 1e-3 and r.max_fd_error <= FD_TOL


def test_json_schema(pure_report):
    d = json.loads(json.dumps(pure_report.to_dict(), allow_nan=False))
    assert d["verdict"] == "agree"
    assert [o["op"] for o in d["ops"]] == ops_cases.op_names()
    for o in d["ops"]:
        assert {"op", "ok", "status", "required", "max_fwd_error", "max_grad_error", "max_fd_error", "checks",
                "input", "detail"} <= set(o)
        assert o["ok"] is (o["status"] == "ok") and o["status"] in ("ok", "n/a")
        assert (o["status"] == "n/a") == (o["op"] in EXTRAS)


# ---- third-party engines

@pytest.mark.parametrize("name", CORRECT)
def test_correct_third_party_engines_pass_ops(name):
    """Right, and without the activations' methods: those rows read n/a and the class still agrees."""
    report = run_ops(CORRECT[name], seed=3)
    assert report.verdict == "agree", report.verdict_line
    assert all(r.max_grad_error <= GRAD_TOL for r in report.checked)
    status = {r.op: r.status for r in report.ops}
    assert status["relu2"] == "ok"  # relu and ** are the model's own: the squared-ReLU variant runs
    for op in (op for op in ACTIVATIONS if op != "relu2"):
        assert status[op] == "n/a" and not by_op(report)[op].required, op
    assert by_op(report)["gelu(erf composite)"].detail == "lacks erf"
    assert by_op(report)["silu(composite)"].detail == "lacks sigmoid"
    assert not any(r.status in ("absent", "FAIL") for r in report.ops)


@pytest.mark.parametrize("name", ["micrograd_style", "direct_rules"])
def test_correct_third_party_engines_agree_in_run(name):
    report = run_parity(DOCS, RUN, value_cls=CORRECT[name])
    assert report.verdict == "agree", report.verdict_line
    assert report.samples["lockstep"]["pure"] == report.samples["lockstep"]["torch"]
    assert {c.mode for c in report.checks} == {"lockstep", "free"}


@pytest.mark.parametrize("name", WRONG)
def test_a_wrong_rule_fails_ops_and_ops_names_it(name):
    must_fail, first = WRONG[name]
    report = run_ops(getattr(wrong_rules, name))
    failing = [r.op for r in report.failing]
    assert report.verdict == "diverge"
    assert must_fail in failing, failing
    assert failing[0] == first, failing
    r = by_op(report)[first]
    assert r.input is not None and r.detail and "gradient" in r.failed_checks
    assert r.max_grad_error > 1e-2  # a wrong rule is O(1) off, far above any tolerance
    assert report.verdict_line.startswith(f"ops: {len(failing)} of {len(report.checked)} checked wrong: {first} (")
    json.dumps(report.to_dict(), allow_nan=False)


def test_wrong_rules_fail_exactly_where_they_should():
    assert [r.op for r in run_ops(wrong_rules.WrongRelu).failing] == ["relu"]
    relu = by_op(run_ops(wrong_rules.WrongRelu))["relu"]
    assert relu.input["x"] < 0  # gradient 1 at negative inputs: the first negative input breaks it
    log = run_ops(wrong_rules.WrongLog)
    assert [r.op for r in log.failing] == ["log"]  # cross-entropy calls log: built on it, not checked
    assert by_op(log)["cross-entropy"].status == "not checked"
    assert by_op(log)["cross-entropy"].detail == "built on log, which is wrong"
    pow_failing = [r.op for r in run_ops(wrong_rules.WrongPow).failing]
    assert {"pow(2)", "pow(3)", "pow(0.5)", "pow(-0.5)", "pow(-1)"} <= set(pow_failing)
    assert not {"mul", "add", "exp", "log", "relu"} & set(pow_failing)
    acc_failing = [r.op for r in run_ops(wrong_rules.NoAccumulate).failing]
    assert not {"mul", "add", "sub", "div", "exp", "log", "relu"} & set(acc_failing)


@pytest.mark.parametrize("name", WRONG)
def test_a_wrong_rule_fails_run(name):
    report = run_parity(DOCS, RunConfig(steps=1, n_embd=8, n_head=2, block_size=8, samples=1),
                        modes=("lockstep",), value_cls=getattr(wrong_rules, name))
    assert report.verdict == "diverge"
    fd = report.first_divergence
    assert (fd["step"], fd["phase"]) == (1, "backward"), report.verdict_line


# ---- loading and the protocol

def test_load_value_class_by_module_and_by_path():
    assert load_value_class("tests.engines.micrograd_style:Value") is micrograd_style.Value
    cls = load_value_class("tests/engines/direct_rules.py:Value")
    assert cls.__name__ == "Value" and cls.__module__ != direct_rules.__name__  # loaded from the file
    assert check_protocol(cls) is cls
    assert load_value_class(f"{ROOT / 'tests' / 'engines' / 'wrong_rules.py'}:WrongLog").__name__ == "WrongLog"
    assert load_and_check("pure.engine:Value") is Value


@pytest.mark.parametrize("spec,words", [
    ("nocolon", "expected module:Class or path/to/file.py:Class"),
    ("no/such/file.py:X", "no such file"),
    ("json:NoSuchClass", "has no class 'NoSuchClass'"),
    ("no_such_module_xyz:Value", "no module named 'no_such_module_xyz'"),
    ("tests/engines/micrograd_style.py:math", "not a class"),
    (":Value", "expected module:Class"),
])
def test_bad_specs_are_one_line_errors(spec, words):
    with pytest.raises(ValueError) as e:
        load_value_class(spec)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_an_import_failure_is_a_one_line_error(tmp_path):
    bad = tmp_path / "broken_engine.py"
    bad.write_text("class Value:\n    def __init__(self, data)\n        pass\n")
    with pytest.raises(ValueError, match=r"importing .*broken_engine.py failed: SyntaxError") as e:
        load_value_class(f"{bad}:Value")
    assert "\n" not in str(e.value)


def test_a_missing_method_is_named():
    with pytest.raises(ValueError, match=r"cannot run the model: it lacks relu \(needed: ") as e:
        check_protocol(wrong_rules.MissingRelu)
    assert "parity ops" in str(e.value)  # which checks what it has

    class Bare:
        def __init__(self, data):
            self.data = data

    with pytest.raises(ValueError) as e:
        check_protocol(Bare)
    named = str(e.value).split(" lacks ")[1].split(" (")[0].split(", ")
    assert named[:len(MODEL_METHODS) + 1] == ["grad", *MODEL_METHODS]
    assert {"__radd__", "__rsub__", "__rmul__", "__rtruediv__"} <= set(named)  # found by trying number op Value


def test_a_class_that_cannot_be_built_from_a_number_is_rejected():
    class NoArgs:
        def __init__(self):
            pass

    with pytest.raises(ValueError, match=r"raised TypeError"):
        check_protocol(NoArgs)


# ---- the command line

def test_cli_ops_default_is_pure_and_writes_json(tmp_path, capsys):
    out = tmp_path / "ops.json"
    assert main(["ops", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pure.engine:Value" in printed and "ops: all" in printed.splitlines()[-1]
    d = json.loads(out.read_text())
    assert d["verdict"] == "agree" and len(d["ops"]) == len(ops_cases.op_names())
    assert all(o["ok"] for o in d["ops"] if o["op"] not in EXTRAS)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, no leftovers


def test_cli_ops_on_a_third_party_engine(tmp_path):
    out = tmp_path / "ops.json"
    r = subprocess.run([sys.executable, "-m", "parity", "ops", "--value", "tests/engines/micrograd_style.py:Value",
                        "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(out.read_text())
    assert d["verdict"] == "agree" and d["value_class"] == "tests/engines/micrograd_style.py:Value"
    assert {o["op"] for o in d["ops"]} >= set(REQUIRED_OPS)


def test_cli_ops_on_a_wrong_engine_exits_1_and_names_the_op(tmp_path, capsys):
    out = tmp_path / "ops.json"
    assert main(["ops", "--value", "tests/engines/wrong_rules.py:WrongLog", "--json", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("ops: 1 of ") and " checked wrong: log (max grad error " in lines[-2]
    assert lines[-1].startswith("diagnosis: the Value class's log is wrong (ops:log); fix: log's local derivative: "
                                "d/dx ln x = 1/x; parity ops: log at x=0.001: d/dx: got 1000000, torch.autograd says "
                                "1000; not checked, built on log (fix it first): 1 row, cross-entropy")
    assert any(line.startswith("log ") and "FAIL" in line and "x=0.001" in line for line in lines)
    d = json.loads(out.read_text())
    assert d["verdict"] == "diverge"
    assert [o["op"] for o in d["ops"] if o["status"] == "FAIL"] == ["log"]
    assert [o["op"] for o in d["ops"] if o["status"] == "not checked"] == ["cross-entropy"]


@pytest.mark.parametrize("command", ["ops", "run"])
@pytest.mark.parametrize("spec,words", [
    ("tests/engines/wrong_rules.py:NoBackward", "lacks backward"),
    ("nocolon", "expected module:Class"),
    ("no/such/file.py:X", "no such file"),
    ("json:NoSuchClass", "has no class"),
])
def test_cli_usage_errors_exit_2_with_one_line(command, spec, words, capsys, corpus_file):
    extra = ["--data", str(corpus_file), "--steps", "1"] if command == "run" else []
    assert main([command, "--value", spec, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1


def test_cli_bad_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["ops", "--seed", "minus-one"])
    assert e.value.code == 2


def test_cli_run_with_a_third_party_engine(corpus_file):
    r = subprocess.run([sys.executable, "-m", "parity", "run", "--value", "tests/engines/micrograd_style.py:Value",
                        "--data", str(corpus_file), "--steps", "1", "--n-embd", "8", "--n-head", "2",
                        "--samples", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests/engines/micrograd_style.py:Value" in r.stdout
    assert r.stdout.splitlines()[-1].startswith("verdict: agree")


def test_cli_run_with_a_wrong_engine_exits_1(corpus_file, capsys):
    code = main(["run", "--value", "tests/engines/wrong_rules.py:WrongRelu", "--data", str(corpus_file),
                 "--steps", "1", "--n-embd", "8", "--n-head", "2", "--samples", "1", "--modes", "lockstep",
                 "--no-table"])
    assert code == 1
    out = capsys.readouterr().out
    last = verdict_line(out)
    assert last.startswith("first divergence: step 1 (lockstep, ") and "MLP pre-activation" in last
    assert out.strip().splitlines()[-1].startswith("diagnosis: the Value class's relu is wrong (ops:relu)")


def test_mixed_errors_treat_nan_and_inf_as_failures():
    errs, scale = checks._mixed_errors([1.0, math.nan, math.inf, 2.5e3], [1.0, 0.5, 1.0, 2.5e3 + 1])
    assert errs[0] == 0.0 and errs[1] == math.inf and errs[2] == math.inf
    assert scale == 2.5e3 + 1 and errs[3] == pytest.approx(1 / (2.5e3 + 1))


# ---- engines as people write them (issue 11): partial protocols, extra ops, recursive sorts

def test_micrograd_style_without_exp_log_is_checked_for_what_it_has():
    from tests.engines import micrograd_closures

    report = run_ops(micrograd_closures.Value)
    status = {r.op: r.status for r in report.ops}
    assert report.verdict == "partial" and not report.failing
    assert {op for op, s in status.items() if s == "absent"} == {"exp", "log", "softmax", "attention",
                                                                  "cross-entropy"}
    assert {op for op, s in status.items() if s == "n/a"} == OPTIONAL - {"relu2"}  # relu and ** are there
    for op in ("add", "mul", "pow(2)", "pow(-0.5)", "relu", "neg", "sub", "div", "add(number)", "div(number)",
               "reuse", "rmsnorm", "linear"):
        assert status[op] == "ok", op
    assert by_op(report)["exp"].detail == "lacks exp" and by_op(report)["exp"].required
    assert status["deep chain (5000 adds)"] == "limit"  # recursive build_topo
    line = report.verdict_line
    assert line.startswith(f"ops: all {len(report.checked)} checked agree")
    assert "absent: exp, log (the model needs them" in line and "limitation: a recursive backward" in line


def test_lecture_style_tanh_and_exp_only():
    from tests.engines import lecture_tanh

    report = run_ops(lecture_tanh.Value)
    status = {r.op: r.status for r in report.ops}
    assert status["tanh"] == status["exp"] == status["softmax"] == "ok"
    assert status["relu"] == status["log"] == "absent" and status["sigmoid"] == "n/a"
    assert by_op(report)["tanh"].max_grad_error <= GRAD_TOL and report.verdict == "partial"


def test_a_wrong_tanh_rule_is_named():
    from tests.engines import lecture_tanh

    report = run_ops(lecture_tanh.WrongTanh)
    assert [r.op for r in report.failing] == ["tanh"] and report.verdict == "diverge"
    assert report.verdict_line.startswith(f"ops: 1 of {len(report.checked)} checked wrong: tanh (max grad error")


class _PowValue(direct_rules.Value):
    """direct_rules' engine plus tanh, sigmoid and Value ** Value, with each rule stated once."""

    def __pow__(self, other):
        if not isinstance(other, direct_rules.Value):
            return super().__pow__(other)
        out = self.data ** other.data  # d/da = b a^(b-1), d/db = a^b ln a
        return direct_rules.Value(out, ((self, other.data * self.data ** (other.data - 1)),
                                        (other, out * math.log(self.data))))

    def tanh(self):
        t = math.tanh(self.data)
        return direct_rules.Value(t, ((self, 1 - t * t),))

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data))
        return direct_rules.Value(s, ((self, s * (1 - s)),))


def test_extra_ops_are_checked_when_present_and_right():
    report = run_ops(_PowValue, only=["tanh", "sigmoid", "pow(Value)"])
    assert [(r.op, r.status) for r in report.ops] == [("tanh", "ok"), ("sigmoid", "ok"), ("pow(Value)", "ok")]
    assert all(r.checks == ["torch", "finite-difference"] for r in report.ops)


def test_a_wrong_value_exponent_rule_is_caught(monkeypatch):
    def wrong_pow(self, other):
        if not isinstance(other, direct_rules.Value):
            return direct_rules.Value.__pow__(self, other)
        out = self.data ** other.data
        return direct_rules.Value(out, ((self, other.data * self.data ** (other.data - 1)), (other, out)))  # no ln a
    monkeypatch.setattr(_PowValue, "__pow__", wrong_pow)
    assert [r.op for r in run_ops(_PowValue, only=["pow(Value)"]).failing] == ["pow(Value)"]


def test_cli_ops_partial_class_exits_0_and_lists_the_rules(capsys):
    assert main(["ops", "--value", "tests/engines/micrograd_closures.py:Value"]) == 0
    out = capsys.readouterr().out
    assert "  exp: d/dx e^x = e^x" in out and "  log: d/dx ln x = 1/x" in out
    assert all(len(line) <= 100 for line in out.splitlines()[1:-1])  # the table fits 100 columns


def test_cli_run_refuses_a_class_that_cannot_run_the_model_before_any_work(capsys, corpus_file):
    assert main(["run", "--value", "tests/engines/micrograd_closures.py:Value", "--data", str(corpus_file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing started
    assert captured.err.startswith("error: Value class tests/engines/micrograd_closures.py:Value cannot run the "
                                   "model: it lacks exp, log (needed: ") and captured.err.count("\n") == 1


def test_run_reports_a_recursive_engine_past_the_limit_with_depth_and_config():
    from tests.engines import recursive_sort

    deep = RunConfig(steps=1, n_layer=2, n_embd=64, n_head=2, block_size=8, samples=0)
    report = run_parity(DOCS, deep, modes=("lockstep",), value_cls=recursive_sort.Value)
    fd = report.first_divergence
    assert (fd["step"], fd["quantity"], fd["phase"]) == (1, "engine", "backward")
    text = fd["detail"]["exception"]
    assert text.startswith("RecursionError: the model's graph at this step is ")
    assert "n_layer 2, n_embd 64, n_head 2, block_size 8" in text and "recursion limit of" in text
    depth = int(text.split(" is ")[1].split(" nodes")[0])
    assert depth > 1000
    # the same engine runs the default-width model, whose graph is shallower than the limit
    assert run_parity(DOCS, RUN, value_cls=recursive_sort.Value).verdict == "agree"


# ---- the MLP activations of the declared variants (issue 28): optional methods and composites

def test_pure_value_passes_the_activation_rows(pure_report):
    ops_ = by_op(pure_report)
    for op in ("tanh", "sigmoid", "erf", "relu2", "gelu(erf composite)", "gelu_tanh(composite)", "silu(composite)"):
        r = ops_[op]
        assert r.status == "ok" and r.checks == ["torch", "finite-difference"], (op, r.detail)
        assert not r.required and r.max_grad_error <= GRAD_TOL and r.max_fd_error <= FD_TOL
    for op in ("gelu", "gelu_tanh", "silu"):  # no methods of their own: n/a, never required, never wrong
        assert (ops_[op].status, ops_[op].detail, ops_[op].required) == ("n/a", f"lacks {op}", False)
    assert {s.name for s in ops_cases.specs() if s.extra} == OPTIONAL


def test_the_activation_inputs_have_the_edge_cases():
    specs = {s.name: s for s in ops_cases.specs()}
    for op in ("erf", "gelu", "gelu_tanh", "silu", "gelu(erf composite)", "gelu_tanh(composite)", "silu(composite)"):
        xs = [c.inputs["x"] for c in specs[op].cases]
        assert {0.0, 30.0, -30.0} <= set(xs), op  # zero; erf and tanh saturated, e^(-x^2) underflowing
        assert any(0 < abs(x) <= 1e-8 for x in xs) and any(x < 0 for x in xs) and any(x > 0 for x in xs), op
    assert 0.0 in [c.inputs["x"] for c in specs["relu2"].cases]
    for op, rule in (("erf", "2/sqrt(pi) e^(-x^2)"), ("gelu", "Phi(x) + x phi(x)"), ("silu", "s(x) (1 + x (1 - s(x)))"),
                     ("gelu_tanh", "0.044715")):
        assert rule in ops_cases.RULES[op]


def test_an_engine_with_every_activation_passes():
    from tests.engines import activations

    report = run_ops(activations.Activations, seed=2)
    assert report.verdict == "agree", report.verdict_line
    assert {r.op for r in report.ops if r.status == "n/a"} == {"pow(Value)"}
    for op in ACTIVATIONS:
        assert by_op(report)[op].status == "ok", op


@pytest.mark.parametrize("name,failing", [
    ("WrongErf", ["erf"]),  # the composite is built from the class's own erf: not checked
    ("WrongSigmoid", ["sigmoid"]),
    ("WrongSilu", ["silu"]),
    ("TanhGelu", ["gelu"]),
])
def test_a_wrong_activation_rule_fails_its_rows(name, failing):
    from tests.engines import activations

    report = run_ops(getattr(activations, name))
    assert [r.op for r in report.failing] == failing and report.verdict == "diverge"
    first = by_op(report)[failing[0]]
    assert first.input is not None and first.detail
    assert report.verdict_line.startswith(f"ops: {len(failing)} of {len(report.checked)} checked wrong: "
                                          f"{failing[0]} (")
    json.dumps(report.to_dict(), allow_nan=False)


def test_a_wrong_erf_rule_is_a_gradient_failure_at_a_named_input():
    from tests.engines import activations

    r = by_op(run_ops(activations.WrongErf, only=["erf"]))["erf"]
    assert r.failed_checks[:1] == ["gradient"] and "finite-difference" in r.failed_checks
    assert r.max_fwd_error == 0.0 and r.max_grad_error > 0.1  # 1 - sqrt(pi)/2 of the rule missing
    # the derivative missing 2/sqrt(pi): off by that factor wherever it is not 0
    got, expected = (float(t.split()[-1]) for t in r.detail.split(",")[:2])
    assert got / expected == pytest.approx(math.sqrt(math.pi) / 2)


def test_a_gelu_that_is_the_tanh_approximation_is_named_so():
    from tests.engines import activations

    report = run_ops(activations.TanhGelu, only=["gelu", "gelu_tanh"])
    gelu, gelu_tanh = report.ops
    assert gelu.status == "FAIL" and "forward" in gelu.failed_checks
    assert gelu.detail.endswith("; every forward value matches GELU's tanh approximation (checked as gelu_tanh)")
    assert gelu_tanh.status == "ok"
    # a gelu that is wrong in some other way gets no such note
    wrong = by_op(run_ops(activations.WrongErf, only=["gelu(erf composite)"]))["gelu(erf composite)"]  # alone
    assert wrong.status == "FAIL" and "matches" not in wrong.detail


def test_cli_ops_writes_json_junit_and_markdown_for_a_wrong_activation(tmp_path, capsys):
    """Through the worker (a spec runs there): its list of the class's methods has the optional ones."""
    out, junit, md = tmp_path / "ops.json", tmp_path / "ops.xml", tmp_path / "ops.md"
    code = main(["ops", "--value", "tests/engines/activations.py:WrongErf", "--json", str(out), "--junit", str(junit),
                 "--markdown", str(md)])
    assert code == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("ops: 1 of ") and " checked wrong: erf (max grad error " in lines[-2]
    assert lines[-1].startswith("diagnosis: the Value class's erf is wrong (ops:erf); fix: erf's local derivative: ")
    d = json.loads(out.read_text())
    status = {o["op"]: o["status"] for o in d["ops"]}
    assert d["verdict"] == "diverge" and [op for op, s in status.items() if s == "FAIL"] == ["erf"]
    assert status["gelu(erf composite)"] == "not checked"
    assert all(status[op] == "ok" for op in ACTIVATIONS if op not in ("erf", "gelu(erf composite)"))
    assert status["pow(Value)"] == "n/a"

    import xml.etree.ElementTree as ET

    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == set(ops_cases.op_names()) and suite.get("failures") == "1"
    assert cases["erf"].find("failure").text.startswith("at x=")
    assert "fix: erf's local derivative: d/dx erf x = 2/sqrt(pi) e^(-x^2)" in cases["erf"].find("failure").get(
        "message")
    assert cases["gelu(erf composite)"].find("skipped").get("message") == ("not checked: built on erf, which is "
                                                                          "wrong")
    assert cases["pow(Value)"].find("skipped") is not None and cases["silu"].find("failure") is None
    text = md.read_text()
    assert d["verdict_line"] in text and "failing rows" in text
    rows = text.split("```text")[1].split("```")[0].splitlines()
    assert [r.split()[0] for r in rows[3:]] == ["erf"]
    assert "**Diagnosis**: the Value class's erf is wrong (ops:erf); fix: " in text

