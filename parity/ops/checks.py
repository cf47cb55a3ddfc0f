"""`parity ops`: every rule of a Value class, checked one operation at a time (the table: parity/ops/cases.py).

For each op and each input of its table:

1. build the computation with the class under test and run the class's own `backward()` from each output in turn,
   on a fresh graph each time, reading each input's `.grad` (`user_side`: the only part that runs the class); the
   upstream gradients weight those per-output gradients here, in plain floats, never through the class's own `*`
   and `+`, so a wrong mul shows in the rows that call mul and nowhere else;
2. do the same in torch float64 (`torch.autograd.grad` of sum_j w_j out_j) and compare forward values and input
   gradients;
3. compare both gradients with central finite differences of torch's L, which also validates the reference.

Each rule is checked on its own: the methods a row's computation calls are recorded while it is built, and a row
that calls the rule of an earlier row found wrong reads `not checked` ("built on mul, which is wrong"), never FAIL:
the first FAIL of the table is the rule to fix, and only wrong rules read FAIL. The rows where nodes are shared
(reuse, softmax, graph order, the composites) run each case three times on fresh graphs (other node ids, so other
orders of a set): results that differ from run to run mean the class's backward depends on iteration order.

Errors are "mixed": |got - expected| / max(1, the case's largest |expected|), relative for large values and
absolute for small ones, per case; the tolerances are in parity/tolerances.py.
"""

import math
import sys

from parity.judge.tolerances import OPS_FD_ROUNDING_ULPS, OPS_FD_STEP, OPS_FD_TOL, OPS_FWD_TOL, OPS_GRAD_TOL
from pure.engine import Value

from . import cases as ops_cases
from .report import OpResult, OpsReport, not_checked, stopped
from .user_side import flatten_inputs, user_results, weights_of

EPS = sys.float_info.epsilon
CHECKS = ("torch", "finite-difference")


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

    flat = flatten_inputs(list(case.inputs.values()))
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


def _torch_jacobian(spec, case):
    """torch's gradient of each output separately (rows of input gradients), to say which output is wrong."""
    import torch

    tensors = {name: torch.tensor(val, dtype=torch.float64, requires_grad=True) for name, val in case.inputs.items()}
    out = spec.ref(**tensors, **case.const).reshape(-1)
    rows = []
    for j in range(out.numel()):
        grads = torch.autograd.grad(out[j], list(tensors.values()), retain_graph=True, allow_unused=True)
        row = []
        for t, g in zip(tensors.values(), grads):
            row += (torch.zeros_like(t) if g is None else g).reshape(-1).tolist()
        rows.append(row)
    return rows


def _check_op(spec, user, seed):
    """user: {"why": text} when the class cannot run the op, else {"cases": [{"fwd", "grad"} or {"raised"}]}: what
    the class computed for each case (here, or in a worker)."""
    from parity.sources.user_value import MODEL_METHODS

    required = not spec.extra and all(m in MODEL_METHODS for m in spec.uses)
    if user.get("why") is not None:
        return not_checked(spec.name, spec.kind, user["why"], required)
    result = _judge_op(spec, user["cases"], seed)
    result.required = required
    lacks = _lacks_from(user["cases"]) if result.failed_checks == ["exception"] else None
    if lacks is not None:  # the computation called a method the class lacks (its __sub__ calling __rmul__)
        return not_checked(spec.name, spec.kind, f"lacks {lacks}", required)
    result.calls = list(user.get("calls") or [])
    what = _lookalike(spec, user["cases"]) if result.status == "FAIL" else None
    if what is not None:
        result.detail += f"; every forward value matches {what}"
    if spec.name.startswith("deep chain") and result.detail.startswith("raised RecursionError"):
        # Every rule may be right: the engine's recursive topological sort cannot go this deep.
        result.status, result.ok, result.failed_checks = "limit", False, []
        result.detail = (f"RecursionError: backward sorts the graph recursively, and this chain is "
                         f"{ops_cases.DEEP_CHAIN} nodes deep; Python's recursion limit is {sys.getrecursionlimit()}")
    return result


def _lacks_from(user_cases):
    """The one method the class lacks that every raising case names (TypeError: unsupported operand ...), or None."""
    from parity.sources.user_value import lacking_method

    named = set()
    for c in user_cases:
        if "raised" in c:
            kind, _, text = c["raised"].partition(": ")
            m = lacking_method(text) if kind in ("TypeError", "AttributeError") else None
            if m is None:
                return None
            named.add(m)
    return named.pop() if len(named) == 1 else None


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


def _grad_text(names, i, got, expected, w):
    text = f"d/d{names[i]}: got {got:.17g}, torch.autograd says {expected:.17g}"
    if len(w) > 1:
        text += f" (upstream weights {', '.join(f'{x:.3g}' for x in w)})"
    return text


def _judge_op(spec, user_cases, seed):
    worst = {"fwd": 0.0, "grad": 0.0, "fd": 0.0, "ref": 0.0}
    failed, first_input, detail = [], None, ""
    used_fd, varies, cause, rule = False, False, None, spec.rule

    def fail(check, case, text, why=None, which=None):
        nonlocal first_input, detail, cause, rule
        if check not in failed:
            failed.append(check)
        if first_input is None:
            first_input, detail = _plain_input(case), text + (f" ({case.note})" if case.note else "")
            cause = why
            if which is not None:
                rule = which

    for ci, case in enumerate(spec.cases):
        def weights(n, ci=ci):
            return weights_of(seed, spec.name, ci, n)

        t_fwd, t_grad, w = _torch_side(spec, case, weights)
        w = w.tolist()
        names = _input_names(case)
        user = user_cases[ci] if ci < len(user_cases) else {"raised": "no result"}
        if "raised" in user:  # the class under test raised: that op is wrong
            worst["fwd"] = worst["grad"] = math.inf
            fail("exception", case, f"raised {user['raised']}"[:200])
            continue
        u_fwd, u_grad = [float(x) for x in user["fwd"]], [float(x) for x in user["grad"]]
        again = [[float(x) for x in g] for g in user.get("again") or []]
        if len(u_grad) != len(t_grad) or any(len(g) != len(t_grad) for g in again):
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
            out = "output" if len(t_fwd) == 1 else f"output {spec.outputs[i][0] if spec.outputs else i}"
            fail("forward", case, f"{out}: got {u_fwd[i]:.17g}, torch says {t_fwd[i]:.17g}", "forward")
        for g in again:  # the same case on a fresh graph: a correct backward gives the same gradients
            if max(_mixed_errors(g, u_grad)[0], default=0.0) > OPS_GRAD_TOL:
                varies = True
        for r, grads in enumerate([u_grad, *again]):
            errs, _ = _mixed_errors(grads, t_grad)
            worst["grad"] = max(worst["grad"], max(errs))
            bad = [i for i, e in enumerate(errs) if not e <= OPS_GRAD_TOL]
            if not bad:
                continue
            i, why, which = bad[0], None, None
            text = _grad_text(names, i, grads[i], t_grad[i], w)
            jac = user.get("jac")
            if r == 0 and jac and len(jac) == len(t_fwd) > 1:  # name the output that is wrong
                t_jac = _torch_jacobian(spec, case)
                for j, (u_row, t_row) in enumerate(zip(jac, t_jac)):
                    row_errs, _ = _mixed_errors([float(x) for x in u_row], t_row)
                    wrong = [k for k, e in enumerate(row_errs) if not e <= OPS_GRAD_TOL]
                    if wrong:
                        k = wrong[0]
                        label, why, which = spec.outputs[j] if spec.outputs else (f"output {j}", None, None)
                        text = (f"{label}: d/d{names[k]}: got {float(u_row[k]):.17g}, torch.autograd says "
                                f"{t_row[k]:.17g}")
                        break
            if r:
                text += f" (run {r + 1} of {1 + len(again)}, on a fresh graph)"
            fail("gradient", case, text, why, which)
            break
        if case.kink:
            continue
        used_fd = True
        fd, noise = _finite_differences(spec, case, torch_tensor(w))
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
    if failed and varies:
        detail += ("; other gradients on a fresh graph of the same computation: backward depends on iteration "
                   "order (a set)")
    if cause is None and failed:
        cause = "order" if spec.rule == ops_cases.WALK else ("forward" if failed == ["forward"] else "rule")
    return OpResult(op=spec.name, ok=not failed, max_fwd_error=worst["fwd"], max_grad_error=worst["grad"],
                    max_fd_error=worst["fd"], ref_fd_error=worst["ref"],
                    checks=list(CHECKS) if used_fd else ["torch"], failed_checks=failed, input=first_input,
                    detail=detail, cases=len(spec.cases), kind=spec.kind, status="FAIL" if failed else "ok",
                    rule=rule if failed else spec.rule, cause=cause, varies=varies)


def torch_tensor(values):
    import torch

    return torch.tensor(values, dtype=torch.float64)


def run_ops(value_cls=Value, seed=0, only=None, results=None, value_name=None):
    """Check every op and composite of the table with `value_cls`; `only` restricts to some op names.

    results: what the class computed, op by op, when it ran elsewhere (a worker: parity.worker), as an iterable of
    (op, {"why"} or {"cases"}) in table order; a WorkerFailure raised while reading it stops the job: the op it
    stopped in fails, naming how, and the ops after it are not run."""
    from parity.errors import WorkerFailure
    from parity.sources.user_value import present_methods

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
    mark_built_on(report.ops, by_op)
    return report


def mark_built_on(results, by_op):
    """Rows (in table order) that call the rule of an earlier row found wrong read `not checked`, built on it; so
    do the rows whose graphs share nodes (walk) once reuse or graph order is wrong. Only wrong rules read FAIL."""
    wrong, walk_rows = {}, []  # rule -> the first row that found it wrong; the shared-node rows found wrong
    for r in results:
        spec = by_op.get(r.op)
        if spec is None or r.status not in ("ok", "FAIL"):
            continue
        on = [wrong[m] for m in r.calls if m != spec.rule and m in wrong]
        if spec.walk:
            on += walk_rows
        on = list(dict.fromkeys(on))
        if on:
            r.status, r.ok, r.built_on = "not checked", False, on
            r.detail = f"built on {', '.join(on)}, which {'is' if len(on) == 1 else 'are'} wrong"
            r.failed_checks, r.input = [], None
            continue
        if r.status != "FAIL":
            continue
        name = (ops_cases.RULE_NAMES.get(r.rule) or r.rule or r.op) if r.cause in ("rule", "forward") else r.op
        if r.cause == "accumulate":
            name = f"{r.op} (accumulate)"
        elif r.cause == "order" or r.rule == ops_cases.WALK:
            name = f"{r.op} (topological order)"
        if r.rule is not None:
            wrong.setdefault(r.rule, name)
        if r.op in ("reuse", "graph order"):
            walk_rows.append(name)
