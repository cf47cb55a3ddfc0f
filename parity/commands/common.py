"""What every command does alike: its output paths checked before any work and written after (JSON, plot, JUnit,
Markdown, details), its Value class loaded and checked, the limits of a job that runs code under test."""

import contextlib
import os
from typing import Union

from parity.errors import InputError

PathLike = Union[str, "os.PathLike[str]"]
MODES = ("lockstep", "free")


def modes_of(modes):
    from parity.judge.report import parse_modes

    return parse_modes(modes if isinstance(modes, str) else ",".join(modes))


def plan_outputs(outputs, inputs=None):
    """Check every output path before the work (pure.outputs.OutputPlan); `--plot` needs matplotlib."""
    from pure.outputs import OutputPlan

    suffixes = {}
    if outputs.get("--plot"):
        try:
            from parity.judge.plot import plot_formats

            suffixes["--plot"] = plot_formats()
        except ImportError:
            raise InputError("--plot needs matplotlib, which is not installed here: pip install "
                             "'microgpt-parity[plot]' (or pip install matplotlib), or leave --plot out") from None
    return OutputPlan(outputs, inputs=inputs, suffixes=suffixes).check()


def write_outputs(report, json=None, plot=None, junit=None, markdown=None):
    """Write the outputs asked for; returns [(what, path)] written."""
    written = []
    if json:
        report.to_json(json)
        written.append(("report", json))
    if plot:
        from parity.judge.plot import write_plot

        write_plot(report, plot)
        written.append(("plot", plot))
    if junit:
        report.to_junit(junit)
        written.append(("junit", junit))
    if markdown:
        report.to_markdown(markdown)
        written.append(("markdown", markdown))
    report.written = written
    return report


def open_details(path):
    from pure.outputs import AtomicFile

    return AtomicFile(path) if path else contextlib.nullcontext()


def value_class(value, for_ops=False, activation="relu"):
    """(class, its name) from a spec "file.py:Class" / "module:Class", a class object, or None (pure's Value);
    activation: a declared variant's, whose methods the class needs too."""
    from parity.sources.user_value import check_protocol, load_value

    if isinstance(value, type):
        name = f"{value.__module__}:{value.__qualname__}"
        if for_ops:
            from parity.sources.user_value import OPS_METHODS

            return check_protocol(value, name=name, needs=OPS_METHODS, purpose="be checked op by op"), name
        return check_protocol(value, name=name, activation=activation), name
    if value is not None and not str(value).strip():
        raise InputError("--value was given an empty spec; give path/to/file.py:Class or module:Class, or leave "
                         "--value out")
    return load_value(value, for_ops=for_ops, activation=activation)


TIMEOUT, MAX_MEMORY = 3600.0, 4096  # the defaults of a job that runs code under test: seconds, MB


def check_limits(timeout, max_memory):
    for name, v in (("timeout", timeout), ("max_memory", max_memory)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise InputError(f"{name} must be a positive number, got {v!r}")


def is_isolated(value, isolate):
    """Whether the code runs in a worker (parity.worker): a spec or pure's own Value does, unless isolate=False; a
    class object (a notebook's) runs here, in this process, which has imported it already."""
    if isolate is None:
        return not isinstance(value, type)
    if isolate and isinstance(value, type):
        raise InputError("a class object cannot run in a worker: give its spec, path/to/file.py:Class or "
                         "module:Class, or isolate=False")
    return bool(isolate)
