"""The judge's side of a worker: `Worker` starts it (a fresh `python -I`, a folder, a session and, as root, a uid of
its own), reads its frames within the job's limits, and kills its whole process group when it stops;
`judge_unchanged` refuses a verdict when the judge's own files changed while code under test ran."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from parity.errors import WorkerFailure, WorkerInputError

from .frames import MAX_PAYLOAD, read_frame

UID_BASE, UID_SPAN = 61000, 4000  # the worker's own uid, as root: UID_BASE + something unique to this worker
OUTPUT_TAIL = 2000  # characters of the worker's output shown
ROOT = Path(__file__).resolve().parents[2]  # the folder that holds pure/ and parity/


# ---- the judge's side --------------------------------------------------------------------------------------------

def _uid_for_worker():
    """A uid no other process has: UID_BASE plus a number from this process and a counter."""
    _uid_for_worker.count = getattr(_uid_for_worker, "count", 0) + 1
    return UID_BASE + (os.getpid() * 7 + _uid_for_worker.count) % UID_SPAN


def _kill_uid(uid):
    """Every process of `uid` (the worker's own, as root), killed."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            os.kill(int(entry), signal.SIGKILL)
                        break
        except (OSError, ValueError):
            pass


class Worker:
    """A worker process running `job` (parity.worker.serve); iterate `frames()` for what it sends.

    timeout: seconds for the whole job (wall time); max_memory: MB of address space; user_file: the .py file of
    the user's class, copied into the worker's folder (the only copy it imports); docs: documents it trains on."""

    def __init__(self, job, *, timeout=3600.0, max_memory=4096, user_file=None, docs=None):
        self.job, self.timeout, self.max_memory = dict(job), float(timeout), int(max_memory)
        self.user_file, self.docs = user_file, docs
        self.proc, self.phase, self.step = None, "start", None
        self.uid = _uid_for_worker() if os.geteuid() == 0 else None

    def __enter__(self):
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        self.home = Path(tempfile.mkdtemp(prefix="parity-worker-"))  # the worker's folder: it may write here
        self.logs = Path(tempfile.mkdtemp(prefix="parity-judge-"))  # the judge's: the worker's output
        job = dict(self.job, cpu_seconds=int(self.timeout) + 5, max_memory=self.max_memory, uid=self.uid,
                   file_limit=64 << 20, fd=None)
        if self.user_file is not None:
            copy = self.home / Path(self.user_file).name
            shutil.copyfile(self.user_file, copy)
            job["user_file"] = str(copy)
            job["user_folder"] = str(Path(self.user_file).resolve().parent)
        if self.docs is not None:
            (self.home / "docs.json").write_text(json.dumps(list(self.docs)))
            job["docs"] = str(self.home / "docs.json")
        if self.uid is not None:
            for path in [self.home, *self.home.iterdir()]:
                os.chown(path, self.uid, self.uid)
            os.chmod(self.home, 0o700)
        read_end, write_end = os.pipe()
        job["fd"] = write_end
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        boot = (f"import sys; sys.path[:0] = [{str(ROOT)!r}]; sys.argv[1:] = [{json.dumps(job)!r}]; "
                "from parity.worker.serve import serve; serve()")
        self.out = open(self.logs / "output.txt", "wb")
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-c", boot], cwd=self.home, env=env,
                                         stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                         pass_fds=(write_end,), start_new_session=True)
        finally:
            os.close(write_end)
        self.fd = read_end
        return self

    def _ended(self):
        """The WorkerFailure for a worker that stopped sending: how it ended, where it was."""
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.stop()
            code = self.proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            what = {"SIGXCPU": "ran out of CPU time", "SIGKILL": "was killed (SIGKILL: out of memory?)",
                    "SIGXFSZ": "wrote more than the file size limit"}.get(name, f"was killed by {name}")
        else:
            what = f"exited with status {code}"
        return WorkerFailure(what, self.phase, self.step, self.output())

    def frames(self, max_payload=MAX_PAYLOAD):
        """(header, arrays) as the worker sends them, up to its "done"; WorkerFailure when it stops before, times
        out, or sends a frame the judge does not accept. "phase" frames only say where the worker is."""
        while True:
            try:
                header, arrays = read_frame(self.fd, self.deadline, max_payload)
            except TimeoutError:
                self.stop()
                raise WorkerFailure("timed out", self.phase, self.step, self.output(), after=self.timeout) from None
            except EOFError:
                raise self._ended() from None
            except (ValueError, json.JSONDecodeError, struct.error) as e:
                self.stop()
                raise WorkerFailure(f"sent a message the judge refuses ({e})", self.phase, self.step,
                                    self.output()) from None
            kind = header["type"]
            if kind == "phase":
                self.phase, self.step = str(header.get("phase", ""))[:40], header.get("step")
                continue
            if kind == "error":
                self.stop()
                raise WorkerInputError(str(header.get("message", ""))[:2000])
            if kind == "done":
                return
            yield header, arrays

    def output(self):
        """What the worker printed, trimmed (the end kept)."""
        try:
            self.out.flush()
            text = (self.logs / "output.txt").read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""
        return text if len(text) <= OUTPUT_TAIL else "..." + text[-OUTPUT_TAIL:]

    def stop(self):
        """The worker's whole process group killed, and, as root, every process of its uid."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.uid is not None:
            _kill_uid(self.uid)

    def __exit__(self, *exc):
        self.captured = self.output()
        self.stop()
        self.out.close()
        os.close(self.fd)
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        return False


def judge_fingerprint():
    """(path, size, sha256) of every file of the judge's own packages (pure, torch_ref, parity)."""
    import hashlib

    out = []
    for package in ("pure", "torch_ref", "parity"):
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                data = path.read_bytes()
                out.append((str(path), len(data), hashlib.sha256(data).hexdigest()))
    return out


class judge_unchanged:
    """Around a job that runs code under test: the judge's own files must be as they were, or the judge refuses to
    report (JudgeError, exit 3): a worker that rewrote them could have changed any verdict to come."""

    def __enter__(self):
        self.before = judge_fingerprint()
        return self

    def __exit__(self, exc_type, exc, tb):
        after = judge_fingerprint()
        if after != self.before:
            from parity.errors import JudgeError

            changed = sorted({p for p, *_ in set(after) ^ set(self.before)})
            raise JudgeError(f"the judge's own files changed while the code under test ran ({', '.join(changed[:3])}"
                             f"{' ...' if len(changed) > 3 else ''}); no verdict is given: reinstall the project "
                             f"and run the check again")
        return False
