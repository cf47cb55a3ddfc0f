"""The judge cannot be fooled, hung or crashed by what it judges: a Value class runs in a worker (parity.worker),
tried here as a hostile student would write it."""

import json
import os
import subprocess
import sys
import time

import pytest

import parity
from parity.worker.process import judge_fingerprint, judge_unchanged
from tests.conftest import ROOT, verdict_line

TINY = ["--steps", "2", "--n-embd", "8", "--n-head", "2", "--block-size", "8", "--samples", "0", "--no-table"]
# relu's gradient 1 everywhere (an engine of its own whose nodes are all of the class): wrong, so that agreeing
# would be a lie
WRONG = '''
from tests.engines.wrong_rules import WrongRelu as _Base


class Value(_Base):
    pass
'''


def student(tmp_path, text, name="student.py"):
    path = tmp_path / name
    path.write_text(WRONG + text)
    return f"{path}:Value"


def parity_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "parity", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


HOSTILE = {
    "widens the judge's tolerances at import": '''
import parity.judge.tolerances as t
from parity.judge.compare import Tol
for table in t.TOLERANCES.values():
    for k in table:
        table[k] = Tol(1e300, 1e300)
t.OPS_GRAD_TOL = t.OPS_FD_TOL = t.OPS_FWD_TOL = 1e300
''',
    "prints agree and exits 0 at import": '''
import os
print("verdict: agree (9999 checks over 2 steps, modes lockstep, free)", flush=True)
os._exit(0)
''',
    "sys.exit(0) in backward": '''
import sys
def backward(self):
    print("ops: all 24 checked agree", flush=True)
    sys.exit(0)
Value.backward = backward
''',
    "rewrites the report at exit": '''
import atexit, glob, json, os, sys
class Filter:
    def write(self, text):
        sys.__stdout__.write(text.replace("first divergence", "verdict: agree"))
    def flush(self):
        pass
sys.stdout = Filter()
def rewrite():
    for path in glob.glob("/tmp/**/*.json", recursive=True):
        try:
            with open(path, "w") as f:
                json.dump({"verdict": "agree"}, f)
        except OSError:
            pass
atexit.register(rewrite)
''',
    "appends to the judge's own sources": '''
import parity.judge.tolerances
try:
    with open(parity.judge.tolerances.__file__, "a") as f:
        f.write("\\nF64_LOCKSTEP['param_grad'] = F64_LOCKSTEP['loss'].__class__(1e9, 1e9)\\n")
except OSError:
    pass
''',
}


@pytest.mark.parametrize("command", ["ops", "run"])
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_class_never_reads_agree(tmp_path, command, name):
    before = judge_fingerprint()
    out = tmp_path / "out" / "report.json"
    extra = TINY if command == "run" else []
    r = parity_cli(command, "--value", student(tmp_path, HOSTILE[name]), "--json", out, *extra)
    assert r.returncode in (1, 3), (r.returncode, r.stdout[-600:], r.stderr[-600:])
    assert "Traceback" not in r.stderr
    last = verdict_line(r.stdout) if r.returncode == 1 else r.stderr.strip().splitlines()[-1]
    assert not last.startswith(("verdict: agree", "ops: all")), last
    if r.returncode == 1:
        assert json.loads(out.read_text())["verdict"] == "diverge"
    assert judge_fingerprint() == before, "the judge's own files changed"


def test_what_the_class_prints_is_shown_as_its_own(tmp_path):
    r = parity_cli("ops", "--value", student(tmp_path, HOSTILE["prints agree and exits 0 at import"]))
    assert r.returncode == 1
    assert "output of the Value class (its own, trimmed):" in r.stdout
    assert "  | verdict: agree (9999 checks" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("ops: the Value class exited with status 0 during import")


def test_a_hang_in_backward_with_sigterm_ignored_is_a_timeout_that_ends_the_job(tmp_path):
    spec = student(tmp_path, '''
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
def backward(self):
    while True:
        pass
Value.backward = backward
''')
    t0 = time.monotonic()
    r = parity_cli("run", "--value", spec, "--timeout", "6", *TINY)
    assert time.monotonic() - t0 < 40
    assert r.returncode == 1
    assert verdict_line(r.stdout) == ("first divergence: step 1 (lockstep), the Value class timed out in backward at "
                                      "step 1 after 6 s")
    t0 = time.monotonic()
    r = parity_cli("ops", "--value", spec, "--timeout", "6")
    assert time.monotonic() - t0 < 40, "a timeout ends the job, not each op"
    assert r.returncode == 1 and "timed out in op mul after 6 s" in r.stdout.strip().splitlines()[-1]


def test_a_memory_hoard_is_stopped(tmp_path):
    spec = student(tmp_path, '''
def backward(self):
    hoard = []
    while True:
        hoard.append(bytearray(64 << 20))
Value.backward = backward
''')
    r = parity_cli("run", "--value", spec, "--max-memory", "700", *TINY)
    assert r.returncode == 1, r.stderr[-500:]
    line = verdict_line(r.stdout)
    assert line.startswith("first divergence: step 1 (lockstep), the Value class") and "backward" in line, line


@pytest.mark.parametrize("text,message", [
    ('''
def __getattr__(self, name):
    raise RuntimeError("no")
Value.__getattribute__ = lambda self, name: (_ for _ in ()).throw(RuntimeError("no attribute for you"))
''', "error: Value class"),
])
def test_a_class_that_breaks_when_inspected_is_one_error_line(tmp_path, text, message, corpus_file):
    r = parity_cli("run", "--value", student(tmp_path, text), "--data", corpus_file, *TINY)
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr, r.stderr
    if r.returncode == 2:
        assert r.stderr.strip().startswith(message) and r.stderr.count("\n") == 1


def test_a_constructor_raising_on_its_50th_call_is_the_class_divergence(tmp_path):
    spec = student(tmp_path, '''
_calls = [0]
_init = _Base.__init__
def __init__(self, *args, **kwargs):
    _calls[0] += 1
    if _calls[0] == 50:
        raise RuntimeError("the 50th Value")
    _init(self, *args, **kwargs)
Value.__init__ = __init__
''')
    r = parity_cli("run", "--value", spec, *TINY)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "the Value class raised in initialisation: RuntimeError: the 50th Value" in verdict_line(r.stdout)


def test_processes_the_class_starts_are_gone_before_the_report(tmp_path):
    spec = student(tmp_path, '''
import subprocess, sys
child = subprocess.Popen(["sleep", "300"], start_new_session=True)
print("CHILD", child.pid, flush=True)
''')
    report = parity.check_ops(spec)
    pid = int(report.worker_output.split("CHILD ")[1].split()[0])
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()


def test_the_judge_refuses_to_report_when_its_own_files_changed(tmp_path):
    evil = ROOT / "parity" / "_planted.py"
    try:
        with pytest.raises(parity.JudgeError, match="the judge's own files changed"):
            with judge_unchanged():
                evil.write_text("x = 1\n")
    finally:
        evil.unlink(missing_ok=True)


def test_an_internal_error_is_exit_3_with_the_traceback_in_a_file(tmp_path):
    code = ("import sys, parity.api\n"
            "def boom(*a, **k):\n    raise KeyError('a bug of the judge')\n"
            "parity.api.check_trace = boom\n"
            "from parity.__main__ import main\n"
            f"sys.exit(main(['check', {str(ROOT / 'tests/fixtures/ports/gist_default.jsonl.gz')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 3
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("internal error: KeyError: 'a bug of the judge'; the traceback is in ")
    path = line.split("the traceback is in ")[1].split(" (")[0]
    assert "KeyError: 'a bug of the judge'" in open(path).read() and "Traceback" in open(path).read()
    os.unlink(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="the worker drops to a uid of its own only when the judge is root")
def test_as_root_the_worker_runs_as_another_user_and_cannot_write_the_judges_files(tmp_path):
    spec = student(tmp_path, '''
import os
import parity
print("UID", os.getuid(), flush=True)
try:
    open(os.path.join(os.path.dirname(parity.__file__), "__init__.py"), "a").close()
    print("WROTE", flush=True)
except OSError as e:
    print("REFUSED", type(e).__name__, flush=True)
''')
    report = parity.check_ops(spec)
    assert "UID 0" not in report.worker_output and "UID " in report.worker_output
    assert "REFUSED PermissionError" in report.worker_output and "WROTE" not in report.worker_output
