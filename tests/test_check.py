"""`parity check TRACE`: ports judged from the traces real programs wrote (tests/fixtures/ports, made by
tests/make_port_traces.py from the seed program under bun and Karpathy's microgpt.py, on the synthetic corpus)."""

import gzip
import json
import subprocess
import sys

import pytest

from parity.__main__ import main
from parity.commands.check import replay_trace
from tests.conftest import FIXTURES, ROOT, verdict_line

PORTS = FIXTURES / "ports"
CLEAN = ["seed_default", "seed_2x12x3", "gist_default", "gist_2x12x3"]
# bug -> (phase, quantity prefix) of the first divergence, which must be at step 1 in lockstep
BUGS = {"unscaled_attention": ("forward", "loss"), "exp_grad_one": ("backward", "grad:"),
        "no_bias_correction": ("optimizer", "param:")}


def lines(name):
    with gzip.open(PORTS / f"{name}.jsonl.gz", "rt") as f:
        return f.read().splitlines()


def write(tmp_path, records, name="t.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.mark.parametrize("name", CLEAN)
def test_unmodified_real_programs_agree(name):
    report = replay_trace(PORTS / f"{name}.jsonl.gz")
    assert report.verdict == "agree", report.verdict_line
    quantities = {c.quantity for c in report.checks if c.mode == "lockstep"}
    assert "loss" in quantities and "grad:wte" in quantities and "param:lm_head" in quantities
    assert {c.mode for c in report.checks} == {"lockstep", "free"}
    assert report.steps == sum('"step"' in line for line in lines(name))


@pytest.mark.parametrize("program", ["seed", "gist"])
@pytest.mark.parametrize("bug", BUGS)
def test_one_bug_diverges_at_step_1_in_the_right_phase(program, bug):
    fd = replay_trace(PORTS / f"{program}_bug_{bug}.jsonl.gz").first_divergence
    phase, prefix = BUGS[bug]
    assert (fd["step"], fd["mode"], fd["phase"]) == (1, "lockstep", phase), fd
    assert fd["quantity"].startswith(prefix), fd


def test_cli_agree_exit_0_and_diverge_exit_1_with_json_and_phase(tmp_path, capsys):
    assert main(["check", str(PORTS / "gist_default.jsonl.gz"), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("verdict: agree") and "grad:layer0.mlp_fc1" in out
    doc = json.loads((tmp_path / "r.json").read_text(), parse_constant=pytest.fail)
    assert doc["verdict"] == "agree" and doc["implementation"] == "microgpt.py (karpathy gist)"
    assert main(["check", str(PORTS / "seed_bug_exp_grad_one.jsonl.gz"), "--no-table"]) == 1
    last = verdict_line(capsys.readouterr().out)
    assert last.startswith("first divergence: step 1 (lockstep, backward), gradient of parameter lm_head")


def _pure_trace(tmp_path, corpus_file, *extra):
    import pure.__main__ as pm
    from pure.cli import main as pure_main

    path = tmp_path / "pure.jsonl"
    assert pure_main(["train", "--data", str(corpus_file), "--steps", "6", "--samples", "1", "--n-embd", "8",
                      "--n-head", "2", "--block-size", "8", "--trace", str(path), *extra],
                     prog="pure", backend=pm.BACKEND) == 0
    return path


def test_pure_and_torch_float32_traces_are_port_traces_that_agree(tmp_path, corpus_file, capsys):
    path = _pure_trace(tmp_path, corpus_file, "--trace-tensors", "3")
    report = replay_trace(path)
    assert report.verdict == "agree" and report.dtype == "float64"
    assert max(c.step for c in report.checks if c.quantity.startswith("grad:")) == 3
    from pure.cli import main as cli_main
    from torch_ref.__main__ import BACKEND

    t32 = tmp_path / "t32.jsonl"
    assert cli_main(["train", "--data", str(corpus_file), "--steps", "6", "--samples", "0", "--n-embd", "8",
                     "--n-head", "2", "--block-size", "8", "--dtype", "float32", "--trace", str(t32),
                     "--trace-tensors", "6"], prog="torch_ref", backend=BACKEND) == 0
    report = replay_trace(t32)
    assert report.dtype == "float32" and report.verdict == "agree", report.verdict_line
    # the same float32 trace judged with float64's tolerances fails: float32's are needed, and used
    assert replay_trace(t32, dtype="float64").verdict == "diverge"


def test_losses_only_is_checked_free_and_says_what_to_add(tmp_path, corpus_file, capsys):
    path = _pure_trace(tmp_path, corpus_file)
    capsys.readouterr()
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: lockstep: not checked: the trace has losses only" in out and '"grads"' in out
    report = replay_trace(path)
    assert {c.mode for c in report.checks} == {"free"}


@pytest.mark.parametrize("bad", [float("nan"), None, float("inf")])
def test_a_non_finite_port_loss_is_a_divergence_not_a_pass(tmp_path, bad):
    recs = lines("gist_default")
    recs = [json.loads(r) if r.startswith("{") else r for r in recs]
    step3 = next(r for r in recs if isinstance(r, dict) and r.get("step") == 3)
    step3["loss"] = bad
    report = replay_trace(write(tmp_path, recs))
    fd = report.first_divergence
    assert report.verdict == "diverge" and fd["step"] == 3 and fd["quantity"] == "loss"
    assert fd["nonfinite"]["side"] == "ref"


def test_object_form_init_and_tokens_are_accepted(tmp_path):
    from pure.model import GPTConfig, param_shapes

    recs = [json.loads(r) for r in lines("gist_default") if r.startswith("{")]
    meta = recs[0]["meta"]
    config = GPTConfig(**{k: meta[k] for k in ("n_layer", "n_embd", "n_head", "block_size")},
                       vocab_size=len(meta["chars"]) + 1)
    flat, obj = recs[1]["init"], {}
    for name, (rows, cols) in param_shapes(config).items():
        obj[name], flat = [flat[r * cols:(r + 1) * cols] for r in range(rows)], flat[rows * cols:]
    recs[1]["init"] = obj
    step1 = recs[2]
    bos = len(meta["chars"])
    step1["tokens"] = [bos] + [meta["chars"].index(c) for c in step1.pop("doc")] + [bos]
    assert replay_trace(write(tmp_path, recs[:7])).verdict == "agree"


META = {"meta": {"n_layer": 1, "n_embd": 4, "n_head": 2, "block_size": 4, "chars": "ab"}}
N_PARAMS = 3 * 4 + 4 * 4 + 3 * 4 + 4 * 16 + 2 * 64  # wte, wpe, lm_head (3 tokens), four 4x4, fc1 16x4, fc2 4x16


@pytest.mark.parametrize("records,words", [
    (['{"meta": {', ], "line 1: not JSON"),
    ([{"init": [0.0]}], "init before meta"),
    ([{"step": 1, "doc": "a", "loss": 1.0}], "a step before meta"),
    ([META], "no init line"),
    ([META, {"init": [0.0] * 5}], f"5 numbers, but the config needs {N_PARAMS}: wte (3x4), wpe (4x4)"),
    ([META, {"init": [0.0] * N_PARAMS}, {"step": 1, "doc": "abc", "loss": 1.0}], "characters outside meta.chars"),
    ([META, {"init": [0.0] * N_PARAMS}, {"step": 2, "doc": "ab", "loss": 1.0}], "steps missing"),
    ([META, {"init": [0.0] * N_PARAMS}, {"step": 1, "doc": "ab", "loss": 1.0}, {"step": 1, "doc": "a", "loss": 1.0}],
     "out of order"),
    ([META, {"init": [0.0] * N_PARAMS}], "no step lines"),
    ([{"meta": {"n_layer": 1, "n_embd": 4, "n_head": 3, "block_size": 4, "chars": "ab"}}], "divisible by n_head"),
    ([{"meta": {"n_layer": 1, "n_embd": 4, "block_size": 4, "chars": "ab"}}], "meta lacks n_head"),
])
def test_an_unusable_trace_is_one_line_and_exit_2(tmp_path, capsys, records, words):
    path = write(tmp_path, records)
    assert main(["check", str(path), "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and words in err, err
    assert str(path) in err
    assert not (tmp_path / "out.json").exists()


def test_a_missing_or_corrupt_gzip_is_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "none.jsonl")]) == 2
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot read trace" in err and "unreadable" in err and "Traceback" not in err


def test_fixtures_hold_no_names_data():
    """The traces carry their documents: they must come from the synthetic corpus, never names.txt. A document
    given as text is one of the corpus; one given as ids (decoded with the reader's own layout) may be a prefix of
    one, as a port may trace only the block_size + 1 tokens it uses."""
    from parity.sources.porttrace.meta import read_meta
    from pure.corpus import make_corpus

    corpus = set(make_corpus())
    for path in PORTS.glob("*.jsonl.gz"):
        recs = [json.loads(line) for line in gzip.open(path, "rt") if line.startswith("{")]
        meta = read_meta(next(r for r in recs if "meta" in r), path.name)
        char_of = {i: c for c, i in meta.char_ids().items()}
        texts, decoded = set(), set()
        for s in (r for r in recs if "step" in r and "loss" in r):
            texts |= {s["doc"]} if "doc" in s else set(s.get("docs", []))
            tokens = s.get("tokens", [])
            for t in (tokens if tokens and isinstance(tokens[0], list) else [tokens] if tokens else []):
                decoded.add("".join(char_of[i] for i in t if i in char_of))  # BOS/EOS dropped
        assert texts | decoded, path.name
        assert texts <= corpus, (path.name, sorted(texts - corpus)[:3])
        assert all(any(c.startswith(d) for c in corpus) for d in decoded), path.name


def test_tensors_after_a_step_without_them_are_not_checked_in_lockstep_and_the_report_says_so(tmp_path):
    recs = [json.loads(r) for r in lines("seed_default") if r.startswith("{")]
    for r in recs:  # keep tensors on steps 1 and 3 only: step 3's starting weights are unknown
        if r.get("step") == 2:
            r.pop("grads"), r.pop("params")
    report = replay_trace(write(tmp_path, recs[:6]))
    assert report.verdict == "agree"
    assert {c.step for c in report.checks if c.mode == "lockstep"} == {1, 4}
    assert any("step 3" in n and "not checked in lockstep" in n for n in report.notes)


def test_the_table_shows_the_worst_over_the_run_and_a_failing_rows_tolerance(capsys):
    """The grad:lm_head row's max abs is the largest over every step (the verdict line's, at step 1), not that of
    the check with the largest share of its allowance (step 2); a failing row ends with the tolerance it used."""
    assert main(["check", str(PORTS / "seed_bug_exp_grad_one.jsonl.gz")]) == 1
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith("grad:lm_head "))
    last = verdict_line("\n".join(out))
    verdict_max_abs = last.split("max abs ")[1].split(" ")[0]
    assert row.split()[1] == verdict_max_abs == "4.2e-01", (row, last)
    assert "FAIL" in row and row.endswith(" tol 5e-14/1e-12")


# ---- what a check says about how much it could check, and about the trace itself (issue 20) --------------------

def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_losses_only_is_partial_not_agree(tmp_path, corpus_file, capsys):
    path = _pure_trace(tmp_path, corpus_file)
    capsys.readouterr()
    assert main(["check", str(path), "--json", str(tmp_path / "r.json")]) == 0  # partial: exit 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("verdict: partial: what the trace holds agrees (")
    assert 'gradients and weights are not in the trace: add "grads" and "params"' in last
    report = replay_trace(path)
    assert report.verdict == "partial" and not report.ok
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "partial"


def test_grads_without_params_is_partial_naming_the_weights(tmp_path, corpus_file):
    recs = _records(_pure_trace(tmp_path, corpus_file, "--trace-tensors", "2"))
    for r in recs:
        r.pop("params", None)
    report = replay_trace(write(tmp_path, recs, "g.jsonl"))
    assert report.verdict == "partial", report.verdict_line
    assert report.verdict_line.endswith('the updated weights not checked in lockstep: add "params" (every parameter '
                                        'after the update), with "grads"')


def _float32_trace(tmp_path, corpus_file, **meta_changes):
    from pure.cli import main as cli_main
    from torch_ref.__main__ import BACKEND

    t32 = tmp_path / "t32.jsonl"
    assert cli_main(["train", "--data", str(corpus_file), "--steps", "4", "--samples", "0", "--n-embd", "8",
                     "--n-head", "2", "--block-size", "8", "--dtype", "float32", "--trace", str(t32),
                     "--trace-tensors", "4"], prog="torch_ref", backend=BACKEND) == 0
    recs = _records(t32)
    for k, v in meta_changes.items():
        if v is None:
            recs[0]["meta"].pop(k)
        else:
            recs[0]["meta"][k] = v
    return write(tmp_path, recs, "f32.jsonl")


def test_a_float32_trace_without_dtype_is_recognised_and_said(tmp_path, corpus_file):
    report = replay_trace(_float32_trace(tmp_path, corpus_file, dtype=None))
    assert report.dtype == "float32" and report.verdict == "agree", report.verdict_line
    assert report.verdict_line.endswith("; judged as float32: the trace's numbers are float32)")
    assert any(n.startswith("judged as float32: every number of the trace is a float32") for n in report.notes)
    assert report.to_dict()["run"]["dtype_from"] == "the trace's numbers"


def test_meta_float64_with_float32_numbers_is_said(tmp_path, corpus_file):
    report = replay_trace(_float32_trace(tmp_path, corpus_file, dtype="float64"))
    assert report.dtype == "float64" and report.verdict == "diverge"  # meta's word is kept ...
    assert any(n.startswith("meta says float64, but every number of the trace is a float32") for n in report.notes)


def test_too_few_digits_are_said_with_the_fix(tmp_path, corpus_file):
    recs = _records(_pure_trace(tmp_path, corpus_file, "--trace-tensors", "2"))
    rounded = lambda x: float(f"{x:g}")  # noqa: E731 - C's %g: 6 significant digits
    recs[1]["init"] = [rounded(x) for x in recs[1]["init"]]
    report = replay_trace(write(tmp_path, recs, "g.jsonl"))
    assert any("at most 6 significant digits" in n and "%.17g" in n for n in report.notes), report.notes


def test_free_mode_agreeing_points_at_the_trace(tmp_path):
    """Gradients read after Adam zeroed them: lockstep fails at the gradients, free mode (the losses) agrees."""
    recs = [json.loads(r) for r in lines("gist_default") if r.startswith("{")]
    for r in recs:
        if "grads" in r:
            r["grads"] = [0.0] * len(r["grads"])
    report = replay_trace(write(tmp_path, recs))
    assert report.first_divergence["phase"] == "backward"
    assert any(n.startswith("free mode agrees over all 20 steps: the port's training looks right, so its trace is "
                            "the suspect") for n in report.notes), report.notes


def test_the_run_section_holds_the_traces_facts(tmp_path):
    report = replay_trace(PORTS / "gist_2x12x3.jsonl.gz")
    run = report.to_dict()["run"]
    assert run["trace"].endswith("gist_2x12x3.jsonl.gz") and run["implementation"] == "microgpt.py (karpathy gist)"
    assert run["config"]["n_layer"] == 2 and run["config"]["n_embd"] == 12 and run["steps"] == report.steps
    assert (run["dtype"], run["lr"], run["beta1"], run["beta2"], run["eps"]) == ("float64", 0.01, 0.85, 0.99, 1e-8)
    assert "seed" not in run and "temperature" not in run and "samples" not in run


def test_a_non_finite_port_value_is_blamed_on_the_port(tmp_path):
    recs = [json.loads(r) for r in lines("gist_default") if r.startswith("{")]
    next(r for r in recs if r.get("step") == 2)["loss"] = None
    line = replay_trace(write(tmp_path, recs)).verdict_line
    assert "the port has a non-finite value (nan; port nan, torch_ref " in line and "pure" not in line


def test_without_torch_parity_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert main(["check", str(PORTS / "gist_default.jsonl.gz")]) == 2
    assert capsys.readouterr().err.startswith("error: parity needs torch, which is not installed here; run "
                                              "`make install`")


READS_IN_THE_BACKGROUND = """
import runpy, sys
import parity.sources.porttrace.spool as pt
real = pt._can_fork
answers = []
pt._can_fork = lambda: answers.append(real()) or answers[-1]
sys.argv = ["parity", "check", sys.argv[1], "--no-table"]
try:
    runpy.run_module("parity", run_name="__main__")
except SystemExit as e:
    print("exit", e.code, "forked", answers, "torch before", "torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the trace is read in the background on Linux only")
def test_the_command_reads_the_trace_while_it_imports_torch():
    """`parity check` forks its trace reader before torch is imported (checking torch is installed must not
    import it): the reading and torch's import, about a second each, overlap."""
    r = subprocess.run([sys.executable, "-c", READS_IN_THE_BACKGROUND, str(PORTS / "gist_default.jsonl.gz")],
                       capture_output=True, text=True, cwd=ROOT)
    assert "exit 0 forked [True]" in r.stderr, r.stderr[-2000:]


def test_a_broken_torch_is_named_as_such_not_as_a_bug_of_the_judge(tmp_path):
    """torch found but failing to import (a missing shared library): one error line saying so, exit 2."""
    import os

    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text('raise ImportError("libtorch_cpu.so: cannot open shared object")\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "parity", "check", str(PORTS / "gist_default.jsonl.gz")],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "error: torch is installed but cannot be imported (libtorch_cpu.so: cannot open shared object); reinstall "
        "it: run `make install`, or `pip install torch==2.13.0 numpy matplotlib` then `pip install .`")
