"""Assertions for test files, in the spirit of numpy.testing and torch.testing: each runs a check and raises
AssertionError whose message is the verdict line, the diagnosis and the failing rows, so a plain pytest file
shows why.

    # test_my_port.py
    from parity.testing import assert_ops, assert_trace, assert_value_class

    def test_my_value_rules():
        assert_ops("engine.py:Value")

    def test_my_value_trains_like_torch():
        assert_value_class("engine.py:Value", steps=5)

    def test_my_c_port():
        assert_trace("build/run.jsonl")

Unusable input (a missing trace, a class that cannot be loaded) raises parity.InputError, not AssertionError:
a broken test set-up is not a failing check.
"""

from . import api

__all__ = ["assert_ops", "assert_trace", "assert_value_class"]


def _failure(report):
    """The verdict line, the diagnosis and what broke (an ops report's what-broke lines, else the failing rows of
    the table): never a repr of the report."""
    __tracebackhide__ = True
    lines = [report.message()]
    broke = report.what_broke() if hasattr(report, "what_broke") else []
    if broke:
        lines += ["", "what broke (the first input, in table order):", *(f"  {line}" for line in broke)]
    else:
        rows = report.failing_rows()
        if rows:
            lines += ["", *rows]
    for note in getattr(report, "notes", None) or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _assert(report, allow_partial):
    __tracebackhide__ = True  # pytest shows the test's own line, not this frame and its report argument
    if report.verdict == "agree" or (allow_partial and report.verdict == "partial"):
        return report
    raise AssertionError(_failure(report)) from None


def assert_trace(path, *, allow_partial=False, **options):
    """Assert that a port's trace agrees with torch_ref (parity.check_trace's options). A trace that lets only part
    of the run be checked (verdict "partial") fails unless allow_partial. Returns the report."""
    __tracebackhide__ = True  # pytest shows the caller's line
    return _assert(api.check_trace(path, **options), allow_partial)


def assert_value_class(value, *, steps=5, **options):
    """Assert that pure's model, run with this Value class, agrees with torch_ref at every step
    (parity.check_value's options). Returns the report."""
    __tracebackhide__ = True
    return _assert(api.check_value(value, steps=steps, **options), False)


def assert_ops(value, *, allow_partial=False, **options):
    """Assert that every op of the Value class agrees with torch.autograd and finite differences
    (parity.check_ops's options). A class lacking an op the model needs (verdict "partial") fails unless
    allow_partial. Returns the report."""
    __tracebackhide__ = True
    return _assert(api.check_ops(value, **options), allow_partial)
