"""The class under test on the table of `parity ops`, one case at a time: its forward values and its own
backward()'s input gradients, and the protocol methods each computation called. The only part of `ops` that runs
the class: in a worker (parity.worker) for a spec, here for a class object."""

import math
import random
import sys

from . import cases as ops_cases

# ---- nested inputs <-> flat lists


def flatten_inputs(x):
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in flatten_inputs(item)]
    return [float(x)]


def _rebuild(template, it):
    if isinstance(template, (list, tuple)):
        return [_rebuild(t, it) for t in template]
    return next(it)


# ---- the two sides

PROTOCOL_NAMES = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                  "__rtruediv__", "__pow__", "__neg__", "exp", "log", "relu", "tanh", "sigmoid", "erf", "gelu",
                  "gelu_tanh", "silu")


def method_codes(value_cls):
    """{code object: the protocol names it implements} for the class's methods (a method may have two names)."""
    codes = {}
    for name in PROTOCOL_NAMES:
        f = getattr(value_cls, name, None)
        code = getattr(getattr(f, "__func__", f), "__code__", None)
        if code is not None:
            codes.setdefault(code, set()).add(name)
    return codes


def _recording(codes, calls, fn, own=None):
    """fn(), with the protocol methods it calls (its operators calling others: __sub__ calling __neg__) added to
    `calls`; a method that is also the row's own rule (`own`: gelu_tanh = gelu) counts as that rule only."""
    def profile(frame, event, arg):
        if event == "call":
            names = codes.get(frame.f_code)
            if names:
                calls.update((own,) if own in names else names)

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        return fn()
    finally:
        sys.setprofile(old)


def weights_of(seed, op, case_index, n):
    """The upstream gradients of a case: 1 for one output (the row shows the local derivative itself), else
    random and non-uniform (ops_cases.upstream)."""
    return [1.0] if n == 1 else ops_cases.upstream(seed, op, case_index, n)


def user_side(spec, case, value_cls, weights, calls=None, codes=None):
    """What the class computes for one case: (forward values, input gradients weighted by `weights`, per-output
    input gradients, the weighted gradients of each further repeat). Each output's gradients come from the class's
    own backward() run from that output on a graph of its own: nothing but backward() is asked of the class beyond
    the computation itself. `calls`, a set, gets the protocol methods the computation called."""
    def build():
        leaves = [value_cls(x) for x in flatten_inputs(list(case.inputs.values()))]
        it = iter(leaves)
        args = {name: _rebuild(val, it) for name, val in case.inputs.items()}
        return leaves, list(spec.build(**args, **case.const))

    keep = []  # every graph stays alive to the end: each fresh one gets fresh ids, so other orders of a set
    pad = random.Random(f"{spec.name}:{flatten_inputs(list(case.inputs.values()))}")
    fwd, jac, weighted = None, None, []
    for r in range(spec.repeat):
        if r:  # shift the next graph's addresses by a few nodes, so that hash-ordered sets iterate otherwise
            keep.append([value_cls(0.0) for _ in range(pad.randrange(1, 9))])
        rows, n, i = [], None, 0
        while n is None or i < n:
            if r == 0 and i == 0 and calls is not None:
                leaves, outs = _recording(codes if codes is not None else method_codes(value_cls), calls, build,
                                          spec.rule)
            else:
                leaves, outs = build()
            keep.append((leaves, outs))
            if n is None:
                n = len(outs)
                if r == 0:
                    fwd = [float(o.data) for o in outs]
            if n:
                outs[i].backward()
                rows.append([float(v.grad) for v in leaves])
            i += 1
        w = weights(n)
        weighted.append([math.fsum(wi * row[k] for wi, row in zip(w, rows)) for k in range(len(leaves))])
        if r == 0:
            jac = rows
    return fwd, weighted[0], jac, weighted[1:]


# ---- judging one op

def _why_not_checked(spec, value_cls, present):
    """Why the op cannot be checked with this class (the text of an absent or n/a row), or None when it can."""
    lacks = [m for m in spec.uses if m not in present]
    if lacks:
        return f"lacks {', '.join(lacks)}"
    if spec.probe is not None:
        try:
            spec.probe(value_cls)
        except Exception as e:  # noqa: BLE001 - any refusal (TypeError, AssertionError, ...) means unsupported
            return f"Value ** Value raised {type(e).__name__}"
    return None


def user_results(spec, value_cls, seed, present, codes=None):
    """What the class computes for every case of the op, in the form _check_op takes (the worker sends the same):
    {"why"}, or {"cases": [{"fwd", "grad", "jac", "again"} or {"raised"}], "calls": the protocol methods called}."""
    why = _why_not_checked(spec, value_cls, present)
    if why is not None:
        return {"why": why}
    cases, calls = [], set()
    codes = codes if codes is not None else method_codes(value_cls)
    for ci, case in enumerate(spec.cases):
        try:
            fwd, grad, jac, again = user_side(spec, case, value_cls,
                                              lambda n, ci=ci: weights_of(seed, spec.name, ci, n), calls, codes)
            cases.append({"fwd": fwd, "grad": grad, "jac": jac, "again": again})
        except Exception as e:  # noqa: BLE001 - the class under test raised: that op is wrong
            cases.append({"raised": f"{type(e).__name__}: {' '.join(str(e).split())}"[:200]})
    return {"cases": cases, "calls": sorted(calls)}
