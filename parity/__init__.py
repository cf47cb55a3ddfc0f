"""microgpt-parity's harness, as a library: the commands of `python -m parity` as functions that return reports.

    import parity
    report = parity.check_trace("run.jsonl")           # a port in any language, from its trace
    report = parity.check_value("engine.py:Value")     # your Value class, through the whole model
    report = parity.check_ops("engine.py:Value")       # your Value class, rule by rule
    report = parity.run(steps=60)                      # pure against torch_ref
    report = parity.mutants()                          # the harness's own sensitivity
    report.ok, report.verdict, report.verdict_line, report.first_divergence, report.diagnosis
    report.to_json("r.json"); report.to_junit("r.xml"); report.to_markdown("r.md")

In a notebook a report shows its table, verdict and plot. Errors are parity.ParityError (InputError for unusable
input), with the one-line message the commands print. `parity.testing` has assert_* helpers for pytest.
Importing this package is cheap: torch is loaded by the first function that needs it.
"""

from typing import TYPE_CHECKING

from .errors import InputError, JudgeError, ParityError

__all__ = ["InputError", "JudgeError", "ParityError", "check_ops", "check_trace", "check_value", "mutants", "run"]
_API = {"check_ops", "check_trace", "check_value", "mutants", "run"}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs; at run time the functions load on first use
    from .api import check_ops, check_trace, check_value, mutants, run


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'parity' has no attribute {name!r}")
