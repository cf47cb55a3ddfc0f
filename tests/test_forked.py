"""parity.sources.forked: the judge's own work in a forked child (parity check's free replay). Its items come back in
order; its failures come back as failures (never as fewer items); it leaves no process behind; and a check
whose free replay is forked reports exactly what the same check done in one process reports."""

import json
import os
import time

import pytest

from parity.commands.check import replay_trace
from parity.sources import forked
from tests.test_check import PORTS, lines, write

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="forking is used on Linux only")


def gone(pid):
    """The child was reaped: it is neither running nor a zombie of ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_items_come_back_in_order_and_the_child_is_reaped():
    job = forked.Forked(lambda: ({"step": i, "checks": [i * 0.5]} for i in range(1, 201)))
    pid = job.pid
    assert list(job) == [{"step": i, "checks": [i * 0.5]} for i in range(1, 201)]
    assert gone(pid)


def failing_after_one(error):
    def make():
        yield 1
        raise error
    return make


def test_an_exception_in_the_child_is_raised_here_at_its_item():
    job = forked.Forked(failing_after_one(ValueError("the replay failed at step 2")))
    assert next(job) == 1
    with pytest.raises(ValueError, match="the replay failed at step 2"):
        next(job)
    assert job.pid is None


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


def test_an_exception_that_does_not_pickle_is_named():
    job = forked.Forked(failing_after_one(Unpicklable("odd")))
    assert next(job) == 1
    with pytest.raises(RuntimeError, match="Unpicklable: odd"):
        next(job)


def test_a_child_that_dies_is_an_error_not_fewer_items():
    def make():
        yield 1
        os._exit(0)  # status 0, and no end: still a failure

    job = forked.Forked(make)
    pid = job.pid
    assert next(job) == 1
    with pytest.raises(RuntimeError, match="ended without its results"):
        next(job)
    job.close()
    assert gone(pid)


def test_a_child_that_hangs_times_out_and_is_killed():
    def make():
        time.sleep(60)
        yield 1

    t0 = time.monotonic()
    with forked.Forked(make, timeout=0.5) as job:
        pid = job.pid
        with pytest.raises(RuntimeError, match="sent nothing for 0 s|sent nothing for 1 s"):
            next(job)
    assert time.monotonic() - t0 < 10 and gone(pid)


def test_closing_early_kills_the_child():
    job = forked.Forked(lambda: iter(range(10**9)))
    pid = job.pid
    assert next(job) == 0
    job.close()
    job.close()  # idempotent
    assert gone(pid)


def summary(report):
    return ([(c.mode, c.step, c.quantity, c.max_abs, c.max_rel, c.ok) for c in report.checks], report.verdict_line,
            report.notes, report.first_divergence)


@pytest.mark.parametrize("case", ["clean", "free_diverges", "lockstep_diverges"])
def test_a_forked_free_replay_reports_what_one_process_does(tmp_path, monkeypatch, case):
    recs = [json.loads(r) for r in lines("gist_default") if r.startswith("{")]
    if case == "free_diverges":  # losses only from step 10 on, one of them wrong: only free mode sees it
        for r in recs:
            if r.get("step", 0) >= 10:
                r.pop("grads", None), r.pop("params", None)
        next(r for r in recs if r.get("step") == 12)["loss"] += 1e-6
    if case == "lockstep_diverges":
        for r in recs:
            if "grads" in r:
                r["grads"] = [0.0] * len(r["grads"])
    path = write(tmp_path, recs)
    made = []
    real = forked.Forked
    monkeypatch.setattr(forked, "Forked", lambda *a, **k: made.append(1) or real(*a, **k))
    both = summary(replay_trace(path))
    assert made, "the free replay was not forked"
    monkeypatch.setattr(forked, "can_fork", lambda device="cpu": False)
    assert summary(replay_trace(path)) == both
    if case == "free_diverges":
        assert both[3]["mode"] == "free" and both[3]["step"] == 12, both[3]
    assert ("agree" in both[1]) == (case == "clean"), both[1]


def test_a_failing_free_replay_fails_the_check(monkeypatch):
    """An error in the forked replay is the judge's error: raised, never a shorter report that agrees."""
    import parity.commands.check

    real = parity.commands.check._free_checks

    def broken(free, steps, quantities, dtype):
        yield from real(free, steps[:3], quantities, dtype)
        raise MemoryError("out of memory in the free replay")

    monkeypatch.setattr(parity.commands.check, "_free_checks", broken)
    with pytest.raises(MemoryError, match="free replay"):
        replay_trace(PORTS / "gist_default.jsonl.gz")


THREADS_FIRST = """
import torch
a = torch.randn(1500, 1500, dtype=torch.float64)
(a @ a).sum()
torch.randn(5_000_000).exp_()  # torch's thread pools are running before the judge forks
from parity.commands.check import replay_trace
print(replay_trace("tests/fixtures/ports/gist_default.jsonl.gz").verdict)
"""


def test_a_process_that_already_ran_torch_in_threads_still_forks_safely():
    """A notebook judges after its own torch work: the free replay's child runs with one thread of its own, and
    finishes (a child that inherited a dead thread pool would hang)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, "-c", THREADS_FIRST], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.stdout.split() == ["agree"], r.stderr[-2000:]


def test_an_interrupted_wait_leaves_the_child_to_close():
    """Ctrl-C while the judge waits: the KeyboardInterrupt is the judge's, and close() (a finally) ends the child.
    The child ignores Ctrl-C itself (it reaches the whole process group): it never reports a half result."""
    import signal

    def make():
        time.sleep(60)
        yield 1

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with forked.Forked(make) as job:
                pid = job.pid
                os.kill(pid, signal.SIGINT)  # ignored by the child
                signal.setitimer(signal.ITIMER_REAL, 0.5)
                next(job)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert gone(pid)


def test_the_child_ignores_ctrl_c_and_answers():
    import signal

    def make():
        time.sleep(0.5)
        yield "done"

    with forked.Forked(make) as job:
        os.kill(job.pid, signal.SIGINT)
        assert list(job) == ["done"]


def test_free_mode_alone_is_not_forked(monkeypatch):
    """With no lockstep replay to run meanwhile, a fork would only add a process: the judge replays free itself."""
    made = []
    real = forked.Forked
    monkeypatch.setattr(forked, "Forked", lambda *a, **k: made.append(1) or real(*a, **k))
    report = replay_trace(PORTS / "gist_default.jsonl.gz", modes=("free",))
    assert not made and {c.mode for c in report.checks} == {"free"} and report.verdict == "agree"


def test_a_closed_job_has_no_more_items():
    job = forked.Forked(lambda: iter(range(3)))
    assert next(job) == 0
    job.close()
    assert list(job) == []
