"""Traces that try to hang, exhaust or fool the judge: each is one error line within seconds, or a divergence
blamed on the port, never a traceback and never a weaker check that reads agree."""

import gzip
import json
import subprocess
import sys
import time

import pytest

import parity
from parity.sources.porttrace.limits import Limits
from tests.conftest import FIXTURES, ROOT

GOOD = FIXTURES / "ports" / "gist_default.jsonl.gz"


def lines():
    """The trace's JSON lines (the program's own prints dropped): meta first."""
    with gzip.open(GOOD, "rt") as f:
        return [line for line in f.read().splitlines() if line.startswith("{")]


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "parity", "check", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(r, fragment):
    assert r.returncode == 2, (r.returncode, r.stdout[-300:], r.stderr[-500:])
    err = r.stderr.strip().splitlines()
    assert err[-1].startswith("error: ") and fragment in err[-1], err[-1]
    assert "Traceback" not in r.stderr


def test_a_huge_line_from_a_small_gzip_is_refused_early(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b'{"meta": {"n_layer": 1, "n_embd": 4, "n_head": 2, "block_size": 4, "chars": "ab", "x": "')
        block = b"a" * (1 << 20)
        for _ in range(200):  # 200 MB on one line, a few hundred KB compressed
            f.write(block)
        f.write(b'"}}\n')
    assert path.stat().st_size < 1 << 20
    t0 = time.monotonic()
    r = cli(path, "--max-line-mb", "16")
    assert time.monotonic() - t0 < 30
    one_error_line(r, "line 1 is longer than 16 MB; --max-line-mb to allow more")


def test_a_newline_bomb_costs_seconds(tmp_path):
    path = tmp_path / "newlines.jsonl.gz"
    trace = lines()
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(("\n".join(trace[:3]) + "\n").encode())
        block = b"\n" * (1 << 20)
        for _ in range(300):  # 300 MB of empty lines between step 1 and the rest
            f.write(block)
        f.write(("\n".join(trace[3:]) + "\n").encode())
    t0 = time.monotonic()
    report = parity.check_trace(path)
    assert time.monotonic() - t0 < 60
    assert report.verdict == "agree", report.verdict_line


def test_the_whole_trace_is_capped(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(lines()) + "\n" + "# the port's own print\n" * 200_000)
    with pytest.raises(parity.InputError, match=r"longer than 1 MB \(decompressed\) by line .*--max-trace-mb"):
        parity.check_trace(path, limits=Limits(max_trace_mb=1))


@pytest.mark.parametrize("meta,fragment", [
    ({"n_layer": 10 ** 8, "n_embd": 4, "n_head": 2, "block_size": 4, "chars": "ab"},
     "over the limit of 5e+07 (--max-params to allow more)"),
    ({"n_layer": 1, "n_embd": 4, "n_head": 2, "block_size": 200_000, "chars": "ab"},
     "(--max-memory to allow more)"),
])
def test_a_config_that_would_exhaust_memory_is_refused_before_anything_is_allocated(tmp_path, meta, fragment):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"meta": meta}) + "\n")
    assert path.stat().st_size < 200
    t0 = time.monotonic()
    r = cli(path)
    assert time.monotonic() - t0 < 20
    one_error_line(r, fragment)


def test_deep_nesting_is_one_error_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(lines()[0] + "\n" + '{"init": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    one_error_line(cli(path), "line 2: nested too deep")


def test_a_number_beyond_float_range_is_the_ports_non_finite_value(tmp_path):
    trace = lines()
    step2 = next(i for i, line in enumerate(trace) if line.startswith('{"step": 2'))
    rec = json.loads(trace[step2])
    trace[step2] = json.dumps(rec).replace(json.dumps(rec["loss"]), "9" * 401, 1)
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(trace) + "\n")
    report = parity.check_trace(path)
    assert report.verdict == "diverge" and report.first_divergence["step"] == 2
    assert "the port has a non-finite value (inf" in report.verdict_line


@pytest.mark.parametrize("value,fragment", [('"0x1p+2000"', "meta.lr '0x1p+2000' is beyond the range of a double"),
                                            ("1" + "0" * 400, "is beyond the range of a double"),
                                            ('"fast"', "meta.beta1 must be a number, got 'fast'")])
def test_a_meta_fact_beyond_a_double_or_not_a_number_is_one_error_line(tmp_path, value, fragment):
    """meta's facts are numbers the judge replays with: one it cannot hold is unusable input, never a traceback."""
    trace = lines()
    meta = json.loads(trace[0])
    meta["meta"]["beta1" if "fast" in value else "lr"] = "VALUE"
    trace[0] = json.dumps(meta).replace('"VALUE"', value)
    path = tmp_path / "fact.jsonl"
    path.write_text("\n".join(trace) + "\n")
    one_error_line(cli(path, "--json", tmp_path / "out.json"), fragment)
    assert not (tmp_path / "out.json").exists()


def test_a_trace_choosing_lr_0_is_not_a_full_check(tmp_path):
    """A port that trains with lr 0 and says so: nothing moves, so no update is checked: partial, not agree."""
    from tests.diagnosis_cases import pure_trace

    path = pure_trace(tmp_path / "lr0.jsonl", adam={"lr": 0.0})
    trace = [json.loads(line) for line in path.read_text().splitlines()]
    trace[0]["meta"]["lr"] = 0
    path.write_text("".join(json.dumps(r) + "\n" for r in trace))
    undeclared = parity.check_trace(path)  # lr 0 is not microgpt's: without a declaration, never agree
    assert undeclared.verdict == "diverge" and "undeclared deviation from microgpt: lr 0" in undeclared.verdict_line
    trace[0]["meta"]["variant"] = {"lr": 0}
    path.write_text("".join(json.dumps(r) + "\n" for r in trace))
    report = parity.check_trace(path)
    assert report.verdict == "partial", report.verdict_line
    assert report.verdict_line.endswith("meta's lr is 0, so the weights never move and no update is checked: trace "
                                        "the run with the learning rate it trains with")


def test_a_float32_claim_on_float64_numbers_is_said(tmp_path):
    trace = lines()
    meta = json.loads(trace[0])
    meta["meta"]["dtype"] = "float32"
    path = tmp_path / "claim.jsonl"
    path.write_text("\n".join([json.dumps(meta), *trace[1:]]) + "\n")
    report = parity.check_trace(path)
    assert any(n.startswith("meta says float32, but the trace's numbers are float64") for n in report.notes)
