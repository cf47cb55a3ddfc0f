"""A diverging report's diagnosis, for `run` and `check`: for a user's Value class, the first rule `parity ops`
finds wrong; else the diverging step replayed under the catalogue of known bugs (parity.diagnosis)."""

from .ops import check_ops


def name_the_bug(report, log, value_cls=None, value_spec=None, timeout=None, max_memory=None):
    """Name the bug of a diverging report (parity.diagnosis): for a user's Value class, the first op `parity ops`
    finds wrong; else the replay of the diverging step under the catalogue of known bugs."""
    if report.verdict != "diverge" or (report.first_divergence or {}).get("quantity") == "engine":
        return
    from pure.engine import Value

    if value_spec is not None or (value_cls is not None and value_cls is not Value):
        log("diagnosing: checking the Value class rule by rule (parity ops) ...")
        ops = (check_ops(value_spec, timeout=timeout, max_memory=max_memory) if value_spec is not None else
               check_ops(value_cls))
        report.diagnosis = _ops_diagnosis(ops, report.first_divergence)
        if report.diagnosis is not None:
            return
    from parity.diagnosis.diagnose import diagnose
    from parity.diagnosis.losses import LossesState, diagnose_losses

    state = report.capture
    if isinstance(state, LossesState):
        log("diagnosing: replaying whole runs under the known bugs of the forward and the optimizer ...")
        report.diagnosis = diagnose_losses(state)
    elif state is not None:
        log(f"diagnosing: replaying step {state.step} under the known bugs of the {state.phase} ...")
        report.diagnosis = diagnose(state)


def _ops_diagnosis(ops, fd):
    """The wrong rule(s) `parity ops` finds in the class, as the run's diagnosis (the same text as `parity ops`'
    diagnosis: the rule, the input, what it got and what torch says, the fix); None when every rule is right. The
    rows that fail only because they are built on a wrong rule are counted in the evidence, never offered as other
    causes (no alternatives)."""
    d = ops.diagnosis
    if d is None:
        return None
    return dict(d, phase=fd["phase"], step=fd["step"], alternatives=[])
