"""`parity ops`: every rule of a Value class, checked one operation at a time (the table: parity/ops_cases.py).

For each op and each input of its table:

1. build the computation with the class under test, then weight the outputs with random, non-uniform upstream
   gradients: L = sum_i w_i * out_i, built with the protocol's own `*` and `+` (with the weights as Values),
   then `L.backward()` and read each input's `.grad` (`user_side`: the only part that runs the class);
2. do the same in torch float64 (`torch.autograd.grad`) and compare forward values and input gradients;
3. compare both gradients with central finite differences of torch's L, which also validates the reference.

Errors are "mixed": |got - expected| / max(1, the case's largest |expected|), relative for large values and
absolute for small ones, per case; the tolerances are in parity/tolerances.py. The weights of step 1 are
`Value * Value` and `Value + Value`, so the table lists those building blocks first: the first failing op in
table order is the one to look at.
"""

import math
import sys

from pure.engine import Value

from . import ops_cases
from .ops_report import OpResult, OpsReport, not_checked, stopped
from .tolerances import OPS_FD_ROUNDING_ULPS, OPS_FD_STEP, OPS_FD_TOL, OPS_FWD_TOL, OPS_GRAD_TOL

EPS = sys.float_info.epsilon
CHECKS = ("torch", "finite-difference")


# ---- nested inputs <-> flat lists

def _flatten(x):
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in _flatten(item)]
    return [float(x)]


def _rebuild(template, it):
    if isinstance(template, (list, tuple)):
        return [_rebuild(t, it) for t in template]
    return next(it)


def _indices(shape):
    if not shape:
        return [()]
    return [(i,) + rest for i in range(shape[0]) for rest in _indices(shape[1:])]


def _input_names(case):
    names = []
    for name, val in case.inputs.items():
        if isinstance(val, (list, tuple)):
            shape = []
            v = val
            while isinstance(v, (list, tuple)):
                shape.append(len(v))
                v = v[0] if v else None
            for idx in _indices(shape):
                names.append(name + "".join(f"[{i}]" for i in idx))
        else:
            names.append(name)
    return names


def _plain_input(case):
    d = {name: (val if isinstance(val, list) else float(val)) for name, val in case.inputs.items()}
    d.update(case.const)
    return d


# ---- the two sides

def user_side(spec, case, value_cls, weights):
    """(forward values, input gradients) with the class under test: the outputs weighted by `weights` with the
    protocol's own * and +, then backward."""
    leaves = [value_cls(x) for x in _flatten(list(case.inputs.values()))]
    it = iter(leaves)
    args = {name: _rebuild(val, it) for name, val in case.inputs.items()}
    outs = list(spec.build(**args, **case.const))
    w = weights(len(outs))
    loss = outs[0] * value_cls(w[0])
    for o, wi in zip(outs[1:], w[1:]):
        loss = loss + o * value_cls(wi)
    loss.backward()
    return [float(o.data) for o in outs], [float(v.grad) for v in leaves]


def _torch_side(spec, case, weights):
    import torch

    tensors = {name: torch.tensor(val, dtype=torch.float64, requires_grad=True) for name, val in case.inputs.items()}
    out = spec.ref(**tensors, **case.const).reshape(-1)
    w = torch.tensor(weights(out.numel()), dtype=torch.float64)
    grads = torch.autograd.grad((w * out).sum(), list(tensors.values()), allow_unused=True)
    grad = []
    for t, g in zip(tensors.values(), grads):
        grad += (torch.zeros_like(t) if g is None else g).reshape(-1).tolist()
    return out.detach().tolist(), grad, w


def _finite_differences(spec, case, w):
    """Central differences of torch's L = sum_j w_j out_j, and each one's rounding-error allowance."""
    import torch

    flat = _flatten(list(case.inputs.values()))
    shapes = {name: torch.tensor(val, dtype=torch.float64).shape for name, val in case.inputs.items()}
    sizes = [math.prod(s) for s in shapes.values()]

    def terms(xs):
        tensors, offset = {}, 0
        for (name, shape), n in zip(shapes.items(), sizes):
            tensors[name] = torch.tensor(xs[offset: offset + n], dtype=torch.float64).reshape(shape)
            offset += n
        with torch.no_grad():
            return w * spec.ref(**tensors, **case.const).reshape(-1)

    base = float(terms(flat).abs().sum())
    fd, noise = [], []
    for i, x in enumerate(flat):
        h = case.fd_step or OPS_FD_STEP
        if spec.singular_at_0 and x:
            h *= abs(x)
        xp, xm = list(flat), list(flat)
        xp[i], xm[i] = x + h, x - h
        tp, tm = terms(xp), terms(xm)
        step = xp[i] - xm[i]
        fd.append(float(tp.sum() - tm.sum()) / step)
        noise.append(EPS * (base + float(tp.abs().sum()) + float(tm.abs().sum())) / step)  # one ulp of rounding
    return fd, noise


def _mixed_errors(got, expected):
    """Per element |got - expected| / max(1, max |expected|); non-finite mismatches are inf."""
    scale = max([1.0] + [abs(e) for e in expected if math.isfinite(e)])
    errs = []
    for g, e in zip(got, expected):
        if g == e:
            errs.append(0.0)
        elif not (math.isfinite(g) and math.isfinite(e)):
            errs.append(math.inf)
        else:
            errs.append(abs(g - e) / scale)
    return errs, scale


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


def _check_op(spec, user, seed):
    """user: {"why": text} when the class cannot run the op, else {"cases": [{"fwd", "grad"} or {"raised"}]}: what
    the class computed for each case (here, or in a worker)."""
    from .user_value import MODEL_METHODS

    required = not spec.extra and all(m in MODEL_METHODS for m in spec.uses)
    if user.get("why") is not None:
        return not_checked(spec.name, spec.kind, user["why"], required)
    result = _judge_op(spec, user["cases"], seed)
    result.required = required
    what = _lookalike(spec, user["cases"]) if result.status == "FAIL" else None
    if what is not None:
        result.detail += f"; every forward value matches {what}"
    if spec.name.startswith("deep chain") and result.detail.startswith("raised RecursionError"):
        # Every rule may be right: the engine's recursive topological sort cannot go this deep.
        result.status, result.ok, result.failed_checks = "limit", False, []
        result.detail = (f"RecursionError: backward sorts the graph recursively, and this chain is "
                         f"{ops_cases.DEEP_CHAIN} nodes deep; Python's recursion limit is {sys.getrecursionlimit()}")
    return result


def _lookalike(spec, user_cases):
    """The name of the function often mistaken for spec's (spec.lookalike) when the class's forward values are that
    function's at every input (a gelu that is GELU's tanh approximation), else None."""
    if spec.lookalike is None or len(user_cases) != len(spec.cases):
        return None
    import torch

    what, ref = spec.lookalike
    for case, user in zip(spec.cases, user_cases):
        if "fwd" not in user:
            return None
        tensors = {name: torch.tensor(val, dtype=torch.float64) for name, val in case.inputs.items()}
        expected = ref(**tensors, **case.const).reshape(-1).tolist()
        if len(user["fwd"]) != len(expected):
            return None
        errs, _ = _mixed_errors([float(x) for x in user["fwd"]], expected)
        if not all(e <= OPS_FWD_TOL for e in errs):
            return None
    return what


def user_results(spec, value_cls, seed, present):
    """What the class computes for every case of the op, in the form _check_op takes (the worker sends the same)."""
    why = _why_not_checked(spec, value_cls, present)
    if why is not None:
        return {"why": why}
    cases = []
    for ci, case in enumerate(spec.cases):
        try:
            fwd, grad = user_side(spec, case, value_cls, lambda n, ci=ci: ops_cases.upstream(seed, spec.name, ci, n))
            cases.append({"fwd": fwd, "grad": grad})
        except Exception as e:  # noqa: BLE001 - the class under test raised: that op is wrong
            cases.append({"raised": f"{type(e).__name__}: {' '.join(str(e).split())}"[:200]})
    return {"cases": cases}


def _judge_op(spec, user_cases, seed):
    worst = {"fwd": 0.0, "grad": 0.0, "fd": 0.0, "ref": 0.0}
    failed, first_input, detail = [], None, ""
    used_fd = False

    def fail(check, case, text):
        nonlocal first_input, detail
        if check not in failed:
            failed.append(check)
        if first_input is None:
            first_input, detail = _plain_input(case), text + (f" ({case.note})" if case.note else "")

    for ci, case in enumerate(spec.cases):
        def weights(n, ci=ci):
            return ops_cases.upstream(seed, spec.name, ci, n)

        t_fwd, t_grad, w = _torch_side(spec, case, weights)
        names = _input_names(case)
        user = user_cases[ci] if ci < len(user_cases) else {"raised": "no result"}
        if "raised" in user:  # the class under test raised: that op is wrong
            worst["fwd"] = worst["grad"] = math.inf
            fail("exception", case, f"raised {user['raised']}"[:200])
            continue
        u_fwd, u_grad = [float(x) for x in user["fwd"]], [float(x) for x in user["grad"]]
        if len(u_grad) != len(t_grad):
            worst["grad"] = math.inf
            fail("gradient", case, f"{len(u_grad)} input gradients, expected {len(t_grad)}")
            continue
        if len(u_fwd) != len(t_fwd):
            worst["fwd"] = math.inf
            fail("forward", case, f"{len(u_fwd)} outputs, expected {len(t_fwd)}")
            continue
        errs, _ = _mixed_errors(u_fwd, t_fwd)
        worst["fwd"] = max(worst["fwd"], max(errs))
        bad = [i for i, e in enumerate(errs) if not e <= OPS_FWD_TOL]
        if bad:
            i = bad[0]
            out = "output" if len(t_fwd) == 1 else f"output {i}"
            fail("forward", case, f"{out}: got {u_fwd[i]:.17g}, torch says {t_fwd[i]:.17g}")
        errs, _ = _mixed_errors(u_grad, t_grad)
        worst["grad"] = max(worst["grad"], max(errs))
        bad = [i for i, e in enumerate(errs) if not e <= OPS_GRAD_TOL]
        if bad:
            i = bad[0]
            fail("gradient", case, f"d/d{names[i]}: got {u_grad[i]:.17g}, torch.autograd says {t_grad[i]:.17g} "
                                   f"(upstream weights {', '.join(f'{x:.3g}' for x in w.tolist())})")
        if case.kink:
            continue
        used_fd = True
        fd, noise = _finite_differences(spec, case, w)
        scale = max([1.0] + [abs(g) for g in t_grad])
        for label, grads in (("ref", t_grad), ("fd", u_grad)):
            for i, (g, f, n) in enumerate(zip(grads, fd, noise)):
                beyond = abs(g - f) - OPS_FD_ROUNDING_ULPS * n if math.isfinite(g) else math.inf
                err = max(beyond, 0.0) / scale
                worst[label] = max(worst[label], err)
                if not err <= OPS_FD_TOL:
                    who = "torch.autograd" if label == "ref" else "got"
                    fail("reference" if label == "ref" else "finite-difference", case,
                         f"d/d{names[i]}: {who} {g:.17g}, central difference {f:.17g}")
                    break
    return OpResult(op=spec.name, ok=not failed, max_fwd_error=worst["fwd"], max_grad_error=worst["grad"],
                    max_fd_error=worst["fd"], ref_fd_error=worst["ref"],
                    checks=list(CHECKS) if used_fd else ["torch"], failed_checks=failed, input=first_input,
                    detail=detail, cases=len(spec.cases), kind=spec.kind, status="FAIL" if failed else "ok")


def run_ops(value_cls=Value, seed=0, only=None, results=None, value_name=None):
    """Check every op and composite of the table with `value_cls`; `only` restricts to some op names.

    results: what the class computed, op by op, when it ran elsewhere (a worker: parity.worker), as an iterable of
    (op, {"why"} or {"cases"}) in table order; a WorkerFailure raised while reading it stops the job: the op it
    stopped in fails, naming how, and the ops after it are not run."""
    from .user_value import present_methods
    from .worker import WorkerFailure

    specs = ops_cases.specs()
    if only is not None:
        unknown = set(only) - {s.name for s in specs}
        if unknown:
            raise ValueError(f"unknown ops: {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in specs)}")
        specs = [s for s in specs if s.name in only]
    name = value_name or f"{value_cls.__module__}:{value_cls.__qualname__}"
    if results is None:
        present = present_methods(value_cls)
        results = ((s.name, user_results(s, value_cls, seed, present)) for s in specs)
    by_op, report = {s.name: s for s in specs}, OpsReport([], value_class=name, seed=seed)
    try:
        for op, user in results:
            report.ops.append(_check_op(by_op[op], user, seed))
    except WorkerFailure as failure:
        report.stopped = str(failure)
    done = {r.op for r in report.ops}
    for s in specs:
        if s.name not in done:
            report.ops.append(stopped(s, report.stopped or "no result"))
    report.ops.sort(key=lambda r: [s.name for s in specs].index(r.op))
    return report
