"""Code under test runs in a worker process, never in the judge.

The judge (`Worker`) starts a fresh interpreter (`python -I`) in a temporary folder of its own, with standard
input closed, in a session of its own; as root, the worker drops to an unprivileged user of its own (a uid no
other process has) before it imports anything of the user's, so it can neither write the judge's files nor signal
it. The worker (`serve`) sets its own limits (address space, CPU time, file size, processes), imports the user's
class, runs the model or the ops with it, and sends back only numbers over a pipe: frames of a JSON header and
float64 arrays, length-prefixed and size-capped, which the judge checks against what it expects before using
them. The judge holds torch, the tolerances, the comparisons, the report and the exit code.

At a limit (the whole job's wall time, memory, CPU time), or when the worker crashes or exits, with any status,
before its result is complete, the judge kills the worker's whole process group (as root, every process of its
uid too) and reports that engine's divergence, named: "the Value class timed out in backward at step 2 after
20 s", "the Value class exited with status 0 during import". The worker's output is kept apart, shown trimmed as
the class's output, never as the judge's.
"""

import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAME = struct.Struct("<II")  # header bytes, payload bytes
MAX_HEADER = 1 << 20  # a header is a few KB (an ops result, a record's names and shapes)
MAX_PAYLOAD = 1 << 30  # the largest record the judge accepts; a run's is smaller still (checked per frame)
UID_BASE, UID_SPAN = 61000, 4000  # the worker's own uid, as root: UID_BASE + something unique to this worker
OUTPUT_TAIL = 2000  # characters of the worker's output shown
PRELOAD = ("math", "random", "itertools", "functools", "collections", "dataclasses", "typing", "numbers", "operator",
           "copy", "re", "json", "time", "struct", "array", "heapq", "bisect", "enum", "abc", "types", "warnings",
           "contextlib", "weakref", "traceback", "fractions", "decimal", "statistics", "string", "textwrap",
           "importlib.util", "linecache", "inspect", "gc")
ROOT = Path(__file__).resolve().parent.parent  # the folder that holds pure/ and parity/


class WorkerFailure(Exception):
    """The worker stopped before its result was complete: timed out, out of memory, crashed, exited, or sent what the
    judge does not accept. A finding about the code under test, never agree."""

    def __init__(self, what, phase=None, step=None, output="", after=None):
        self.what, self.phase, self.step, self.output = what, phase, step, output
        where = f" during {phase}" if phase in ("start", "import") else (f" in {phase}" if phase else "")
        at = f" at step {step}" if step else ""
        tail = f" after {after:g} s" if after is not None else ""
        super().__init__(f"the Value class {what}{where}{at}{tail}")


class WorkerInputError(ValueError):
    """The code under test could not be used at all (an import that raised, a class lacking the protocol): the
    commands' exit 2, as for any unusable input."""


# ---- frames (both sides) ---------------------------------------------------------------------------------------

def write_frame(fd, header, arrays=()):
    """One frame: the header (JSON) and float64 arrays, named in the header with their shapes."""
    import numpy as np

    names, chunks = [], []
    for name, a in arrays:
        a = np.asarray(a, dtype="<f8")  # (not ascontiguousarray, which makes a 0-d loss 1-d)
        names.append([name, list(a.shape)])
        chunks.append(a.tobytes(order="C"))
    head = json.dumps(dict(header, arrays=names)).encode()
    payload = b"".join(chunks)
    data = FRAME.pack(len(head), len(payload)) + head + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd, n, deadline):
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd, deadline, max_payload=MAX_PAYLOAD):
    """(header, {name: array}); ValueError for a frame the judge does not accept; TimeoutError, EOFError."""
    import numpy as np

    head_len, payload_len = FRAME.unpack(_read_exact(fd, FRAME.size, deadline))
    if head_len > MAX_HEADER or payload_len > max_payload:
        raise ValueError(f"a frame of {head_len} + {payload_len} bytes, over the limit")
    header = json.loads(_read_exact(fd, head_len, deadline))
    payload = _read_exact(fd, payload_len, deadline) if payload_len else b""
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) or \
            not isinstance(header.get("arrays"), list):
        raise ValueError("a frame without its type")
    arrays, at = {}, 0
    for item in header["arrays"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list)
                and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31 for d in item[1])):
            raise ValueError("an array described wrongly")
        name, shape = item
        size = 8 * int(np.prod(shape, dtype=np.int64))
        if at + size > len(payload) or name in arrays:
            raise ValueError("arrays that do not fit the payload")
        arrays[name] = np.frombuffer(payload, dtype="<f8", count=size // 8, offset=at).reshape(shape)
        at += size
    if at != len(payload):
        raise ValueError("a payload longer than its arrays")
    return header, arrays


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
                "from parity.worker import serve; serve()")
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
            from .errors import JudgeError

            changed = sorted({p for p, *_ in set(after) ^ set(self.before)})
            raise JudgeError(f"the judge's own files changed while the code under test ran ({', '.join(changed[:3])}"
                             f"{' ...' if len(changed) > 3 else ''}); no verdict is given: reinstall the project "
                             f"and run the check again")
        return False


def _numbers(x):
    return isinstance(x, list) and len(x) <= 1 << 16 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in x)


def _rows(x):
    return isinstance(x, list) and len(x) <= 1 << 10 and all(_numbers(row) for row in x)


def _names(x):
    from .ops import PROTOCOL_NAMES

    return isinstance(x, list) and all(isinstance(n, str) and n in PROTOCOL_NAMES for n in x)


def ops_events(worker, specs):
    """An ops worker's frames as (op, {"why"} or {"cases"}), each checked: the ops in table order, one result per
    case, numbers where numbers belong; anything else stops the job (WorkerFailure)."""
    order = iter(specs)
    for header, _ in worker.frames():
        spec = next(order, None)
        ok = header["type"] == "op" and spec is not None and header.get("op") == spec.name
        if ok and "why" in header:
            if isinstance(header["why"], str):
                yield spec.name, {"why": header["why"][:300]}
                continue
        elif ok and isinstance(header.get("cases"), list) and len(header["cases"]) == len(spec.cases) and \
                _names(header.get("calls", [])):
            cases = []
            for c in header["cases"]:
                if isinstance(c, dict) and isinstance(c.get("raised"), str):
                    cases.append({"raised": c["raised"][:300]})
                elif isinstance(c, dict) and all(_numbers(c.get(k)) for k in ("fwd", "grad")) and \
                        all(_rows(c.get(k, [])) for k in ("jac", "again")):
                    cases.append({"fwd": [float(x) for x in c["fwd"]], "grad": [float(x) for x in c["grad"]],
                                  "jac": [[float(x) for x in row] for row in c.get("jac", [])],
                                  "again": [[float(x) for x in row] for row in c.get("again", [])][:8]})
                else:
                    break
            else:
                yield spec.name, {"cases": cases, "calls": list(header.get("calls", []))}
                continue
        worker.stop()
        raise WorkerFailure("sent a message the judge refuses (an op's result out of order or malformed)",
                            worker.phase, None, worker.output())
    if next(order, None) is not None:
        raise WorkerFailure("ended before every op was run", worker.phase, None, worker.output())


# ---- the worker's side -------------------------------------------------------------------------------------------

def _limit(job):
    import resource

    mem = job["max_memory"] << 20
    for which, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, job["cpu_seconds"]),
                         (resource.RLIMIT_FSIZE, job["file_limit"]), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


def _drop(job):
    """As root: to the worker's own uid, for good. The interpreter's own files may lie where that uid cannot go (a
    home folder closed to others), so every folder of sys.path is opened first and reached after the drop through
    its open descriptor (/proc/self/fd/N): the user's code can still import the standard library and the packages
    installed, and nothing else it could not read anyway."""
    import resource

    uid = job.get("uid")
    if uid is None or os.geteuid() != 0:
        return
    mapping = {}
    for path in sys.path:
        if path and path not in mapping and os.path.isdir(path):
            mapping[path] = f"/proc/self/fd/{os.open(path, os.O_RDONLY | os.O_DIRECTORY)}"
    longest_first = sorted(mapping.items(), key=lambda kv: -len(kv[0]))

    def remap(path):
        for old, new in longest_first:
            if path == old or path.startswith(old + os.sep):
                return new + path[len(old):]
        return path

    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))  # counted per uid: this worker's own processes
    except (ValueError, OSError):
        pass
    sys.path[:] = [remap(p) for p in sys.path]
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if search is not None:
            try:
                search[:] = [remap(p) for p in search]
            except TypeError:  # a namespace package's path recomputes itself from sys.path
                pass
    sys.path_importer_cache.clear()


def serve():
    """The worker: one job, described by the JSON in argv[1], its frames written to the fd it names."""
    job = json.loads(sys.argv[1])
    fd = job["fd"]
    _limit(job)
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    import numpy  # noqa: F401 - loaded before the drop: its files may be out of reach after it

    from pure import fused, train  # noqa: F401

    from . import ops, ops_cases, pure_side, user_value  # noqa: F401 - the same

    _drop(job)
    send = lambda header, arrays=(): write_frame(fd, header, arrays)  # noqa: E731
    send({"type": "phase", "phase": "import"})
    cls = _load(job, send)
    if cls is not None:
        if job["mode"] == "ops":
            _serve_ops(job, cls, send)
        else:
            _serve_run(job, cls, send)
        send({"type": "done"})
    sys.stdout.flush()
    os._exit(0)  # nothing of the user's runs after the result (atexit handlers, finalizers)


def _load(job, send):
    from .user_value import OPS_METHODS, check_protocol, load_value_class

    spec = job.get("spec")
    if spec is None:
        from pure.engine import Value

        return Value
    if job.get("user_file"):
        if job.get("user_folder") and os.access(job["user_folder"], os.R_OK | os.X_OK):
            sys.path.insert(0, job["user_folder"])  # so that the file can import its own siblings
        spec = f"{job['user_file']}:{spec.rpartition(':')[2]}"
    elif job.get("cwd"):
        sys.path.insert(0, job["cwd"])  # module:Class, importable from where the judge was started
    try:
        cls = load_value_class(spec)
        if job["mode"] == "ops":
            check_protocol(cls, name=job["spec"], needs=OPS_METHODS, purpose="be checked op by op")
        else:
            check_protocol(cls, name=job["spec"], activation=job["run"].get("variant", {}).get("activation", "relu"))
    except ValueError as e:
        send({"type": "error", "message": str(e).replace(spec, job["spec"])})
        return None
    except BaseException as e:  # noqa: BLE001 - anything else the class does while being inspected
        send({"type": "error", "message": f"Value class {job['spec']}: inspecting it raised {type(e).__name__}: "
                                          f"{' '.join(str(e).split())[:300]}"})
        return None
    return cls


def _serve_ops(job, cls, send):
    """For each op of the table: absent / n/a, or per case the forward values and input gradients (or what it
    raised), computed with the class, and the protocol methods its computation called; the judge does the rest."""
    from . import ops
    from .ops_cases import specs
    from .user_value import present_methods

    present = present_methods(cls)
    codes = ops._method_codes(cls)
    for spec in specs():
        if job.get("only") and spec.name not in job["only"]:
            continue
        send({"type": "phase", "phase": f"op {spec.name}"})
        result = ops.user_results(spec, cls, job["seed"], present, codes)
        send({"type": "op", "op": spec.name, **result})


def _serve_run(job, cls, send):
    """pure's run with the class, as the events of parity.pure_side, each a frame."""
    from .pure_side import RunConfig, pure_events

    docs = json.loads(Path(job["docs"]).read_text())
    run = RunConfig(**job["run"])
    on_phase = lambda step, phase: send({"type": "phase", "phase": phase, "step": step})  # noqa: E731
    for event in pure_events(docs, run, cls, on_phase):
        kind = event[0]
        if kind == "init":
            send({"type": "init", "engine": event[2]}, [("weights", event[1])])
        elif kind == "record":
            send({"type": "record", "step": event[1]}, sorted(event[2].items()))
        elif kind == "raised":
            send({"type": "raised", "step": event[1], "failure": event[2]})
            return
        else:
            send({"type": "samples", "samples": event[1], "rng": event[2]})


# ---- what the judge accepts from a run --------------------------------------------------------------------------

def run_events(worker, run, config, tokens_at):
    """A run worker's frames as the events of parity.pure_side, each checked against what it must be (names,
    shapes, types, step order); a worker that fails becomes a ("raised", step, failure) event naming how."""
    from pure.model import param_shapes

    from .quantities import record_shapes

    n_params = sum(r * c for r, c in param_shapes(config).values())
    expected_step = 1
    try:
        for header, arrays in worker.frames():
            kind = header["type"]
            if kind == "init" and expected_step == 1 and set(arrays) == {"weights"} and \
                    arrays["weights"].shape == (n_params,) and header.get("engine") in ("fused", "plain"):
                yield "init", arrays["weights"].tolist(), header["engine"]
            elif kind == "record" and header.get("step") == expected_step:
                T = min(config.block_size, len(tokens_at(expected_step - 1)) - 1)
                shapes = record_shapes(config, T)
                if set(arrays) != set(shapes) or any(arrays[n].shape != s for n, s in shapes.items()):
                    raise ValueError(f"step {expected_step}'s record does not hold what a step records")
                yield "record", expected_step, arrays
                expected_step += 1
            elif kind == "raised" and isinstance(header.get("failure"), dict) and \
                    all(isinstance(header["failure"].get(k), str) for k in ("phase", "exception", "where")):
                f = header["failure"]
                yield "raised", max(1, min(expected_step, run.steps)), {k: f[k][:2000] for k in ("phase", "exception",
                                                                                                   "where")}
                return
            elif kind == "samples" and expected_step == run.steps + 1 and _samples_ok(header, run, config):
                yield "samples", header["samples"], header["rng"]
            else:
                raise ValueError(f"an unexpected {kind!r} frame at step {expected_step}")
    except WorkerInputError:
        raise  # the class cannot be used at all: the commands' exit 2
    except WorkerFailure as failure:
        yield "raised", max(1, min(expected_step, run.steps)), {"phase": failure.phase or "start",
                                                                 "exception": str(failure), "where": "",
                                                                 "output": failure.output, "worker": True}
    except ValueError as e:
        worker.stop()
        failure = WorkerFailure(f"sent a message the judge refuses ({e})", worker.phase, worker.step, worker.output())
        yield "raised", max(1, min(expected_step, run.steps)), {"phase": failure.phase or "start",
                                                                 "exception": str(failure), "where": "",
                                                                 "output": failure.output, "worker": True}


def _samples_ok(header, run, config):
    samples, rng = header.get("samples"), header.get("rng")
    return (isinstance(samples, list) and len(samples) == run.samples
            and all(isinstance(x, str) and len(x) <= config.block_size for x in samples)
            and isinstance(rng, dict) and isinstance(rng.get("state"), int) and isinstance(rng.get("has_spare"), bool)
            and isinstance(rng.get("spare"), float))
