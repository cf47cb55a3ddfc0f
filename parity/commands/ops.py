"""`parity ops`: every rule of a Value class against torch.autograd and finite differences (the check itself:
parity/ops/), the class run in a worker when it is given as a spec."""

import os
from typing import Optional

from parity.errors import InputError, as_parity_errors

from .common import MAX_MEMORY, TIMEOUT, PathLike, check_limits, is_isolated, plan_outputs, value_class, write_outputs


def check_ops(value=None, *, seed: int = 0, json: Optional[PathLike] = None, junit: Optional[PathLike] = None,
              markdown: Optional[PathLike] = None, isolate: Optional[bool] = None, timeout: float = TIMEOUT,
              max_memory: int = MAX_MEMORY):
    """`parity ops`: every rule of a Value class against torch.autograd (float64) and finite differences.

    value: a class, "path/to/file.py:Class", "module:Class", or None for pure's own Value; a spec runs in a worker
    (parity.worker: `timeout` seconds for the whole job, `max_memory` MB), a class object in this process. Returns
    an OpsReport (verdict "agree", "partial" when every op the class has is right but one the model needs is
    absent, or "diverge").

    >>> report = parity.check_ops("tests/engines/wrong_rules.py:WrongLog")  # doctest: +SKIP
    >>> report.verdict, [r.op for r in report.failing]
    ('diverge', ['log', 'cross-entropy'])
    """
    from parity.ops.cases import specs
    from parity.ops.checks import run_ops
    from parity.sources.user_value import parse_spec, spec_file
    from parity.worker.events import ops_events
    from parity.worker.process import Worker, judge_unchanged

    with as_parity_errors():
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {seed!r}")
        check_limits(timeout, max_memory)
        isolated = value is not None and is_isolated(value, isolate)
        if isolated:
            parse_spec(value)
        else:
            value_cls, value_name = value_class(value, for_ops=True)
        outputs = {"--json": json, "--junit": junit, "--markdown": markdown}
        with plan_outputs(outputs, {"--value": spec_file(value) if isinstance(value, str) else None}):
            if isolated:
                job = {"mode": "ops", "spec": value, "seed": seed, "cwd": os.getcwd()}
                with judge_unchanged(), Worker(job, timeout=timeout, max_memory=max_memory,
                                               user_file=spec_file(value)) as worker:
                    report = run_ops(None, seed, results=ops_events(worker, specs()), value_name=value)
                report.worker_output = worker.captured
            else:
                report = run_ops(value_cls, seed=seed)
                report.value_class = value_name
            return write_outputs(report, json, None, junit, markdown)
