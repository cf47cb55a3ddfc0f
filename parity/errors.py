"""The errors the harness raises to a caller of its Python API. Each message is the one line the commands print
after `error:` (what is wrong, and what to do); none is ever a SystemExit."""

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
