"""The diagnosis names the bug, not only the place: every bug of the catalogue injected into pure and into real
programs (the seed under bun, microgpt.py), every tracing slip, is named; correct runs and bugs outside the
catalogue get no name."""

import gzip
import json

import pytest

import parity
from parity.__main__ import main
from parity.diagnosis.bugs import catalogue
from parity.diagnosis.diagnose import CLOSEST_EXPLAINS
from parity.judge.formats import diagnosis_line
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
    if expected is None and d is not None:  # a divergence nothing explains: said so, no name; the nearest bug only
        assert d["id"] is None and d["summary"] == "no known bug reproduces this"  # when it explains most of it
        assert d["closest"] is None or d["closest"]["explained"] >= CLOSEST_EXPLAINS, d
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
                                "relu: d relu(x)/dx = 1 if x > 0 else 0; reproduces the port's gradients at step 1 "
                                "to ")
    d = json.loads(out.read_text())["diagnosis"]
    assert {"id", "summary", "fix", "phase", "step", "evidence", "alternatives", "ambiguous"} <= set(d)
    assert d["ambiguous"] is False
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


# ---- an honest diagnosis: ties, the nearest, fixes, the parameter order from the numbers, one count -------------

def _neg_log_tie(tmp_path):
    case = next(c for c in ALL if c[0] == "neg-grad-sign")
    return parity.check_trace(cases.build(case, tmp_path))


def test_bugs_with_the_same_numbers_are_one_finding(tmp_path, capsys):
    """-log(p) is the only use of neg and of log here: either sign is the same gradient, so both are named as one
    finding, in the line and in the JSON; the evidence counts in the units of `parity diagnoses`."""
    report = _neg_log_tie(tmp_path)
    d = report.diagnosis
    assert f"of the {len(catalogue())} known bugs replayed at step 1" in d["evidence"]
    assert main(["diagnoses"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{len(catalogue())} known bugs;")
    assert d["ambiguous"] is True and {c["id"] for c in d["candidates"]} == {"neg-grad-sign", "log-grad-sign"}
    line = diagnosis_line(d)
    assert line.startswith("diagnosis: one of: neg's gradient +1 instead of -1 (neg-grad-sign), or log's gradient "
                           "-1/x instead of 1/x (log-grad-sign) (indistinguishable from this trace: each reproduces "
                           "the port's gradients at step 1 to at most "), line
    assert "fix: neg: d(-x)/dx = -1 (neg-grad-sign); log: d log(x)/dx = 1/x (log-grad-sign)" in line


def test_a_clearly_better_fit_is_named_alone():
    from types import SimpleNamespace

    from parity.diagnosis.bugs import by_id
    from parity.diagnosis.diagnose import CLEARLY_BETTER, ROUNDING_SHARE, _tied
    from parity.diagnosis.step_replay import Trial

    state = SimpleNamespace(free_agrees=None)
    a, b = by_id("relu-grad"), by_id("exp-grad-one")
    assert [t.bug.id for t in _tied([Trial(a, 0.001, 0, []), Trial(b, 0.5, 0, [])], state)] == ["relu-grad"]
    assert len(_tied([Trial(a, 0.001, 0, []), Trial(b, ROUNDING_SHARE * 0.9, 0, [])], state)) == 2  # both exact
    assert len(_tied([Trial(a, 0.2, 0, []), Trial(b, 0.2 * CLEARLY_BETTER * 0.9, 0, [])], state)) == 2
    # free mode decides between a bug and a slip of the trace's layout: a port whose training agrees is right
    slip = by_id("slip-grads-after-zeroing")
    trials = [Trial(by_id("add-drops-first"), 0.0, 0, []), Trial(slip, 0.0, 0, [])]
    assert [t.bug.id for t in _tied(trials, SimpleNamespace(free_agrees=True))] == ["slip-grads-after-zeroing"]
    assert [t.bug.id for t in _tied(trials, SimpleNamespace(free_agrees=False))] == ["add-drops-first"]


def test_the_nearest_is_shown_only_when_it_explains_most_of_the_error_and_said_not_to_match(tmp_path):
    # the cases of FAST are asserted so in _check; the others here, so that the fast suite covers every one
    for case in [c for c in ALL if c[2] is None and c[0] != "correct" and c[0] not in FAST]:
        d = parity.check_trace(cases.build(case, tmp_path)).diagnosis
        assert d["id"] is None and (d["closest"] is None or d["closest"]["explained"] >= CLOSEST_EXPLAINS), d
    line = diagnosis_line({"id": None, "summary": "no known bug reproduces this",
                           "closest": {"id": "relu-grad", "summary": "relu's backward passes gradients at negative "
                                       "inputs", "explained": 0.83}})
    assert line == ("diagnosis: no known bug reproduces this; the nearest, relu's backward passes gradients at "
                    "negative inputs (relu-grad), explains 83% of the error but is not a match")


# What each entry is about, as words its summary and its fix must both say (any one of them, any case)
SUBJECTS = [("mul-", ("mul",)), ("add-", ("add",)), ("neg-", ("neg",)), ("pow-", ("pow",)), ("div-", ("div",)),
            ("exp-", ("exp",)), ("log-", ("log",)), ("relu-grad", ("relu",)), ("grad-assigned", ("+=",)),
            ("topological-order", ("topological",)), ("attention-", ("attention",)), ("rmsnorm-", ("rmsnorm",)),
            ("layernorm", ("rmsnorm",)), ("residual-", ("residual",)), ("kv-cache", ("KV cache",)),
            ("position-", ("position",)), ("no-position", ("position",)), ("relu-squared", ("relu",)),
            ("gelu", ("relu",)), ("silu", ("relu",)), ("loss-", ("loss",)), ("adam-m-", ("m = ",)),
            ("adam-v-", ("v = ",)), ("adam-bias-correction", ("bias correction", "pow(beta")),
            ("adam-no-bias-correction", ("bias correction", "pow(beta")), ("adam-step-from-zero", ("t ",)),
            ("adam-eps", ("eps",)), ("adam-betas", ("beta",)), ("adam-weight-decay", ("weight decay",)),
            ("lr-", ("lr", "learning rate")), ("grads-not-zeroed", ("zeroed",)),
            ("slip-grads-after-zeroing", ("gradients",)), ("slip-weights-before-update", ("weights",)),
            ("slip-parameter-order", ("order",)), ("slip-column-major", ("row", "column")),
            ("slip-too-few-digits", ("digits", "precision")), ("slip-float32", ("float32",))]
# Each op's derivative as its fix writes it: a rule's fix has its own and no other op's
OP_FORMULAS = {"mul": "d(a*b)", "add": "d(a+b)", "neg": "d(-x)", "pow": "d pow(x, n)", "div": "d(a/b)",
               "exp": "d exp(x)", "log": "d log(x)", "relu": "d relu(x)"}


@pytest.mark.parametrize("bug", catalogue(), ids=lambda b: b.id)
def test_every_fix_is_about_its_own_bug_and_reads_right_in_any_language(bug):
    subject = next(words for prefix, words in SUBJECTS if bug.id.startswith(prefix))
    for text in (bug.summary, bug.fix):
        assert any(w.lower() in text.lower() for w in subject), (bug.id, text, subject)
    assert "**" not in bug.fix and "^" not in bug.fix, bug.fix  # pow(); `^` is XOR in C, Java, Rust, Go
    if "step / num_steps" in bug.fix:  # two integers: their division truncates, a bug of its own
        assert "floating-point" in bug.fix, bug.fix
    if bug.kind == "rule":
        op = bug.id.split("-")[0]
        if op in OP_FORMULAS:
            assert bug.fix.startswith(f"{op}: ") and OP_FORMULAS[op] in bug.fix, bug.fix
            assert not [o for o, f in OP_FORMULAS.items() if o != op and f in bug.fix], bug.fix
    if bug.id == "grad-assigned":
        assert "accumulate with += in every backward" in bug.fix


def _orders():
    import random

    from pure.model import GPTConfig, param_shapes

    one = list(param_shapes(GPTConfig(**cases.CONFIG)))
    two = list(param_shapes(GPTConfig(**dict(cases.CONFIG, n_layer=2))))
    shuffled = one[:]
    random.Random(1).shuffle(shuffled)
    map_order = two[:]
    random.Random(3).shuffle(map_order)
    swapped = [{"layer0.attn_wq": "layer1.attn_wk", "layer1.attn_wk": "layer0.attn_wq",
                "layer0.mlp_fc1": "layer1.mlp_fc1", "layer1.mlp_fc1": "layer0.mlp_fc1"}.get(n, n) for n in two]
    return [(1, "reversed", one[::-1]), (1, "sorted", sorted(one)), (1, "shuffled", shuffled),
            (2, "map order", map_order), (2, "equal shapes permuted across layers", swapped)]


@pytest.mark.parametrize("n_layer,words,order", _orders(), ids=lambda x: x if isinstance(x, str) else None)
def test_the_parameter_order_is_read_from_the_numbers(n_layer, words, order, tmp_path, monkeypatch):
    """Any order of the seed's matrices, found from what each matrix's gradient shows (wte's rows: the document's
    tokens; wpe's: the positions used; the layers' row spaces), named with the order found."""
    monkeypatch.setattr(cases, "CONFIG", dict(cases.CONFIG, n_layer=n_layer))
    correct = cases.pure_trace(tmp_path / "c.jsonl")
    d = parity.check_trace(cases.order_trace(tmp_path / "o.jsonl", correct, order)).diagnosis
    assert d["id"] == "slip-parameter-order" and not d["ambiguous"], d
    expected = ("sorted by name" if words == "sorted" else "the seed's order reversed" if words == "reversed"
                else "the trace's order: " + ", ".join(order))
    assert d["detail"] == expected, d


def test_where_the_numbers_cannot_tell_the_usual_orders_are_tried(tmp_path, monkeypatch):
    """A search that stops (every row space full: a document as long as n_embd) falls back on the usual orders."""
    import parity.diagnosis.layouts

    monkeypatch.setattr(parity.diagnosis.layouts, "SEARCH_NODES", 0)
    case = next(c for c in ALL if c[0] == "slip-parameter-order")
    d = parity.check_trace(cases.build(case, tmp_path)).diagnosis
    assert d["id"] == "slip-parameter-order" and d["detail"] == "sorted by name order", d
