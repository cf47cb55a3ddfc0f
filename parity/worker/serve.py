"""The worker itself (`serve`): confined (parity.worker.confine), the user's class imported and checked, then the
model (parity.sources.pure_side) or the ops table (parity.ops.user_side) run with it, as frames."""

import json
import os
import sys
from pathlib import Path

from .confine import drop_privileges, set_limits
from .frames import write_frame

PRELOAD = ("math", "random", "itertools", "functools", "collections", "dataclasses", "typing", "numbers", "operator",
           "copy", "re", "json", "time", "struct", "array", "heapq", "bisect", "enum", "abc", "types", "warnings",
           "contextlib", "weakref", "traceback", "fractions", "decimal", "statistics", "string", "textwrap",
           "importlib.util", "linecache", "inspect", "gc")


def serve():
    """The worker: one job, described by the JSON in argv[1], its frames written to the fd it names."""
    job = json.loads(sys.argv[1])
    fd = job["fd"]
    set_limits(job)
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    import numpy  # noqa: F401 - loaded before the drop: its files may be out of reach after it

    from parity.ops import cases, user_side  # noqa: F401 - the same
    from parity.sources import pure_side, user_value  # noqa: F401 - the same
    from pure import fused, train  # noqa: F401

    drop_privileges(job)
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
    from parity.sources.user_value import OPS_METHODS, check_protocol, load_value_class

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
    from parity.ops.cases import specs
    from parity.ops.user_side import method_codes, user_results
    from parity.sources.user_value import present_methods

    present = present_methods(cls)
    codes = method_codes(cls)
    for spec in specs():
        if job.get("only") and spec.name not in job["only"]:
            continue
        send({"type": "phase", "phase": f"op {spec.name}"})
        result = user_results(spec, cls, job["seed"], present, codes)
        send({"type": "op", "op": spec.name, **result})


def _serve_run(job, cls, send):
    """pure's run with the class, as the events of parity.sources.pure_side, each a frame."""
    from parity.sources.pure_side import RunConfig, pure_events

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
