"""The errors of the harness. Those it raises to a caller of its Python API (ParityError: InputError, JudgeError):
each message is the one line the commands print after `error:` (what is wrong, and what to do); none is ever a
SystemExit. And those of a worker running code under test (WorkerFailure, WorkerInputError: parity.worker), which
the commands turn into a divergence or an input error; they live here, below every layer, because the ops check
(parity.ops) reads a worker's results without importing the worker.

Imports nothing of parity."""

import contextlib


class ParityError(Exception):
    """Base class of every error of the harness."""

    exit_code = 2


class InputError(ParityError, ValueError):
    """Unusable input: a bad option or config, a missing or unreadable data file, an unusable trace, a Value class
    that cannot be loaded, an output path that cannot be written (the commands' exit 2)."""


class JudgeError(ParityError):
    """The harness itself failed: never a finding about the code under test (the commands' exit 3)."""

    exit_code = 3


def input_errors():
    """The exceptions that mean unusable input, wherever they are raised (pure, torch_ref, parity)."""
    from pure.checkpoint import CheckpointError
    from pure.cli import UsageError
    from pure.data import DataError
    from pure.outputs import OutputError

    return (DataError, CheckpointError, UsageError, OutputError, ValueError)


@contextlib.contextmanager
def as_parity_errors():
    """Re-raise unusable-input exceptions as InputError with the same one-line message."""
    try:
        yield
    except ParityError:
        raise
    except input_errors() as e:
        raise InputError(str(e)) from None


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
