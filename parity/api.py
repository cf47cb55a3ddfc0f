"""The harness as a library: each command of `python -m parity` as a function that returns its report.

Every function checks its inputs and output paths before any work, writes the outputs asked for (`json=`,
`plot=`, `junit=`, `markdown=`, `details=`), and raises parity.ParityError (never SystemExit) with the one-line
message the command would print. The commands themselves are these functions plus printing. Each lives with its
command, in parity/commands/: run.py, check.py, ops.py, mutants.py.
"""

from .commands.check import check_trace
from .commands.common import MAX_MEMORY, MODES, TIMEOUT
from .commands.mutants import mutants
from .commands.ops import check_ops
from .commands.run import check_value, run

__all__ = ["MAX_MEMORY", "MODES", "TIMEOUT", "check_ops", "check_trace", "check_value", "mutants", "run"]
