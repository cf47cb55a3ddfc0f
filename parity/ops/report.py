"""What `parity ops` found: one result per op, the verdict, the table and the JSON document.

An op's status is one of the table's words: `ok`; `FAIL` (a wrong rule or value, or an exception); `not checked`
(the row calls a rule an earlier row found wrong: it is built on that rule, and says so); `absent` (the
class lacks a method the model needs: not checked, not wrong); `n/a` (an optional op it lacks); `limit` (the deep
chain raised RecursionError: a limitation of the engine, not a wrong rule); `stopped` (the worker running the class
timed out, crashed or exited in this op or before it: not run, and the verdict is diverge).
"""

import math
import sys
import textwrap
from dataclasses import dataclass
from typing import Optional

from parity.judge.formats import Case, ReportForms
from parity.judge.tolerances import OPS_FD_TOL, OPS_FWD_TOL, OPS_GRAD_TOL, ops_tolerances

from .cases import DEEP_CHAIN, RULE_NAMES, RULES, WALK

DIAGNOSIS_RULES = 3  # wrong rules the diagnosis describes; the rest are counted
VERDICT_DETAILED = 4  # failing ops described in the verdict line; the rest are named only
TABLE_WIDTH = 100
STATUSES = ("ok", "FAIL", "not checked", "absent", "n/a", "limit", "stopped")


@dataclass
class OpResult:
    op: str
    ok: bool
    max_fwd_error: float  # vs torch float64, mixed error (see parity.ops.checks)
    max_grad_error: float  # vs torch.autograd
    max_fd_error: float  # vs central finite differences, beyond their rounding allowance
    ref_fd_error: float  # torch's own gradient vs finite differences (validates the reference)
    checks: list  # what the op was judged against: "torch", "finite-difference"
    failed_checks: list  # which of "forward", "gradient", "finite-difference", "reference", "exception" failed
    input: Optional[dict]  # the first input (in table order) that broke it, as plain floats
    detail: str  # what broke there, in words
    cases: int
    kind: str = "op"
    status: str = "ok"  # one of STATUSES
    required: bool = True  # the model needs the op: an absent one means `parity run` cannot use the class
    rule: Optional[str] = None  # the rule the row checks (a method, or ops_cases.WALK); a failing output's own
    cause: Optional[str] = None  # why a FAIL row fails: "rule", "forward", "accumulate" (= for +=), "order" (the walk)
    built_on: Optional[list] = None  # not checked: the earlier rows, found wrong, whose rules this row calls
    varies: bool = False  # the same case gave other gradients on a fresh graph (iteration order)
    calls: Optional[list] = None  # the protocol methods the row's computation called

    @property
    def judged(self):
        return self.status in ("ok", "FAIL")

    def to_json(self):
        d = dict(self.__dict__)
        for k in ("max_fwd_error", "max_grad_error", "max_fd_error", "ref_fd_error"):
            d[k] = d[k] if math.isfinite(d[k]) else None  # inf/nan (an exception, a nan) -> null; see detail
        return d


def not_checked(op, kind, why, required):
    """The result of an op the class does not have: absent (the model needs it) or n/a (an optional one)."""
    nan = math.nan
    return OpResult(op=op, ok=False, max_fwd_error=nan, max_grad_error=nan, max_fd_error=nan, ref_fd_error=nan,
                    checks=[], failed_checks=[], input=None, detail=why, cases=0, kind=kind,
                    status="absent" if required else "n/a", required=required)


def stopped(spec, why):
    """The result of an op the job never ran, or never finished: the worker stopped (parity.worker)."""
    nan = math.nan
    return OpResult(op=spec.name, ok=False, max_fwd_error=nan, max_grad_error=nan, max_fd_error=nan,
                    ref_fd_error=nan, checks=[], failed_checks=[], input=None, detail=why, cases=0, kind=spec.kind,
                    status="stopped", required=not spec.extra)


def format_input(inputs, width=None):
    if inputs is None:
        return "-"

    def fmt(x):
        if isinstance(x, list):
            return "[" + ", ".join(fmt(y) for y in x) + "]"
        return f"{x:.6g}" if isinstance(x, float) else str(x)

    text = ", ".join(f"{k}={fmt(v)}" for k, v in inputs.items())
    if width and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def tolerance_text():
    return f"fwd {OPS_FWD_TOL:.0e} grad {OPS_GRAD_TOL:.0e} fd {OPS_FD_TOL:.0e}"


ACCUMULATE_FIX = ("accumulate with += in every backward (self.grad += local * out.grad, never =): a node used more "
                  "than once must get the sum of the gradients of all its uses")
ORDER_FIX = ("walk the graph in reverse topological order: list the nodes with a depth-first post-order (each node "
             "after every node it was built from), then call each node's backward from the output back, so that a "
             "node passes its gradient on only after every use of it has added to it")
VARIES_TEXT = ("its gradients differ from run to run on the same computation (a fresh graph, other node ids): backward "
               "depends on iteration order (a set of children)")


def _rule_name(r):
    if r.rule in RULE_NAMES:
        return RULE_NAMES[r.rule]
    return r.rule or r.op


def _problem(r, rows):
    """(id, summary, fix) of a wrong rule, from its first failing row r (rows: every row failing by it)."""
    at = f"at {format_input(r.input, 80)}"
    if r.cause == "accumulate":
        return ("ops:accumulate", f"the Value class's backward does not accumulate: a node used twice gets the "
                f"gradient of one use only ({_rule_name(r)}'s backward, in {r.op})", ACCUMULATE_FIX)
    if r.cause == "order" or r.rule == WALK:
        summary = ("the Value class's backward does not walk the graph in topological order: a node passes its "
                   "gradient on before every use of it has added to it")
        fix = ORDER_FIX
        if any(x.varies for x in rows):
            summary += f"; {VARIES_TEXT}"
            fix = ORDER_FIX + " (then the order a set iterates in no longer matters)"
        return "ops:topological-order", summary, fix
    name = _rule_name(r)
    if r.rule in RULES:
        what = "forward value" if r.cause == "forward" else "local derivative"
        return f"ops:{name}", f"the Value class's {name} is wrong", f"{name}'s {what}: {RULES[r.rule]}"
    return (f"ops:{r.op}", f"the Value class's {r.op} is wrong, though every rule it calls passes its own row",
            f"compute {r.op} as pure.model does, from the ops of the table ({at})")


@dataclass
class OpsReport(ReportForms):
    """What `parity ops` found: `ops` (one OpResult per row), `verdict` ("agree", "partial": every op the class has
    is right but one the model needs is absent, "diverge"), `verdict_line`, `first_divergence` (the first failing
    op), and the forms of every report (parity.judge.formats)."""

    ops: list
    value_class: str = "pure.engine:Value"
    seed: int = 0
    stopped: Optional[str] = None  # how the worker running the class stopped, when it did

    def __repr__(self):
        return f"<OpsReport {self.value_class}: {self.verdict_line}>"

    @property
    def title(self):
        return f"parity ops: {self.value_class}"

    @property
    def checks(self):
        return self.ops

    @property
    def first_divergence(self):
        """The first failing op in table order, as a dict (op, input, detail, failed_checks), or None."""
        bad = self.failing
        if not bad:
            return None
        r = bad[0]
        return {"op": r.op, "input": r.input, "detail": r.detail, "failed_checks": r.failed_checks,
                "max_fwd_error": r.to_json()["max_fwd_error"], "max_grad_error": r.to_json()["max_grad_error"]}

    def fix_of(self, op):
        """The fix of the wrong rule a FAIL row fails by, or None."""
        for r, rows in self.problems():
            if op in [x.op for x in rows]:
                return _problem(r, rows)[2]
        return None

    def what_broke(self):
        """One line per FAIL row: the op, the input, what it got and what torch says."""
        return [f"{r.op}: at {format_input(r.input)}: {r.detail}" for r in self.failing]

    def cases(self):
        out = []
        for r in self.ops:
            skipped = None if r.judged else f"{r.status}: {r.detail}"
            text = f"at {format_input(r.input)}: {r.detail}" if r.status == "FAIL" else ""
            message = f"{r.op} is wrong {text}; fix: {self.fix_of(r.op)}" if text else ""
            out.append(Case(r.op, r.status != "FAIL", message, text, skipped))
        return out

    def failing_rows(self):
        lines = self.table().splitlines()
        bad = {r.op for r in self.failing}
        rows = [line for line in lines[2:] if any(line.startswith(op + "  ") for op in bad)]
        return lines[:2] + rows if rows else []

    @property
    def verdict(self):
        """"diverge" when an op the class has is wrong; "partial" when every op it has is right but one the
        model needs is absent; "agree" otherwise (n/a ops and limitations are listed, not judged)."""
        if self.failing or self.stopped:
            return "diverge"
        return "partial" if any(r.status == "absent" for r in self.ops) else "agree"

    @property
    def failing(self):
        return [r for r in self.ops if r.status == "FAIL"]

    @property
    def checked(self):
        return [r for r in self.ops if r.status not in ("absent", "n/a", "stopped", "not checked")]

    def _tail(self):
        """'; absent: exp, log (...); n/a: tanh; limitation: ...' for what was not judged."""
        absent = [r for r in self.ops if r.status == "absent"]
        optional = [r for r in self.ops if r.status == "n/a"]
        limits = [r for r in self.ops if r.status == "limit"]
        tail = ""
        if absent:
            methods = list(dict.fromkeys(m for r in absent for m in r.detail.removeprefix("lacks ").split(", ")))
            tail += (f"; absent: {', '.join(methods)} (the model needs them; not checked: "
                     f"{', '.join(r.op for r in absent)})")
        if optional:
            tail += f"; n/a: {', '.join(r.op for r in optional)}"
        if limits:
            tail += (f"; limitation: a recursive backward fails on a graph {DEEP_CHAIN} nodes deep (RecursionError, "
                     f"recursion limit {sys.getrecursionlimit()})")
        return tail

    @property
    def verdict_line(self):
        bad = self.failing
        n = len(self.checked)
        if self.stopped:
            not_run = sum(r.status == "stopped" for r in self.ops)
            return f"ops: {self.stopped}; {not_run} op(s) not run, {len(bad)} of {n} checked wrong"
        if not bad:
            inputs = sum(r.cases for r in self.checked)
            return (f"ops: all {n} checked agree with torch float64 and finite differences "
                    f"({inputs} inputs, random upstream gradients){self._tail()}")
        parts = []
        for r in bad[:VERDICT_DETAILED]:
            if "exception" in r.failed_checks:
                what = r.detail
            elif "forward" in r.failed_checks:
                what = f"max fwd error {r.max_fwd_error:.1e}"
            elif "gradient" in r.failed_checks:
                what = f"max grad error {r.max_grad_error:.1e}"
            else:
                what = f"max finite-difference error {r.max_fd_error:.1e}"
            parts.append(f"{r.op} ({what} at {format_input(r.input, 80)})")
        more = [r.op for r in bad[VERDICT_DETAILED:]]
        tail = f"; and {len(more)} more: {', '.join(more)}" if more else ""
        built = self.not_checked
        if built:
            tail += (f"; {len(built)} not checked, built on the wrong rule: "
                     f"{', '.join(r.op for r in built)}")
        return f"ops: {len(bad)} of {n} checked wrong: " + ", ".join(parts) + tail + self._tail()

    @property
    def notes(self):
        """What the user should know to read the failures."""
        return []

    @property
    def not_checked(self):
        return [r for r in self.ops if r.status == "not checked"]

    def problems(self):
        """The wrong rules, in table order: [(first failing row, every row failing by that rule)]."""
        groups = {}
        for r in self.failing:
            key = "walk" if (r.cause == "order" or r.rule == WALK) else (
                "accumulate" if r.cause == "accumulate" else (r.rule or r.op))
            groups.setdefault(key, []).append(r)
        return [(rows[0], rows) for rows in groups.values()]

    @property
    def diagnosis(self):
        """The wrong rule(s) and the fix, as a diagnosis dict (id, summary, fix, evidence; parity.judge.formats'
        diagnosis_line says it): the op, the input where it fails, what it got and what torch says, and the
        correct local derivative; None when no rule is wrong."""
        problems = self.problems()
        if not problems:
            return None
        more = len(problems) - DIAGNOSIS_RULES
        problems = problems[:DIAGNOSIS_RULES]
        said = [_problem(r, rows) for r, rows in problems]
        first, rows0 = problems[0]
        ids = list(dict.fromkeys(p[0] for p in said))
        if len(said) == 1:
            summary, fix = said[0][1], said[0][2]
        else:
            summary = f"{len(said)} wrong rules: " + "; ".join(p[1].removeprefix("the Value class's ") for p in said)
            fix = "; ".join(p[2] for p in said)
        evidence = []
        for r, rows in problems:
            text = f"parity ops: {r.op} at {format_input(r.input, 80)}: {r.detail}"
            same = [x.op for x in rows[1:]]
            if same:
                text += f"; the same rule fails in {', '.join(same)}"
            evidence.append(text)
        built = self.not_checked
        tail = f"; and {more} more wrong rule(s): see the table" if more > 0 else ""
        if built:
            on = list(dict.fromkeys(op for r in built for op in (r.built_on or [])))
            tail += (f"; not checked, built on {' and '.join(on)} (fix {'it' if len(on) == 1 else 'them'} first): "
                     f"{len(built)} row{'s' if len(built) > 1 else ''}, {', '.join(r.op for r in built)}")
        return {"id": ids[0], "summary": summary, "kind": "rule", "fix": fix, "evidence": "; ".join(evidence) + tail,
                "rules": [{"id": p[0], "summary": p[1], "fix": p[2], "op": r.op, "input": r.input,
                           "detail": r.detail} for p, (r, _) in zip(said, problems)],
                "not_checked": [r.op for r in built], "alternatives": []}

    def to_dict(self):
        """The --json document."""
        return {
            "verdict": self.verdict,
            "verdict_line": self.verdict_line,
            "value_class": self.value_class,
            "seed": self.seed,
            "tolerances": ops_tolerances(),
            "diagnosis": self.diagnosis,
            "ops": [r.to_json() for r in self.ops],
        }

    def table(self, width=TABLE_WIDTH):
        return format_ops_table(self, width)


def format_ops_table(report, width=TABLE_WIDTH):
    """One row per op (status, max errors: forward, gradient vs torch, gradient vs finite differences, and a
    note: the input that broke a failing op, the rule an absent one needs), within `width` columns; then, for
    each failing op, what broke in full; then the tolerances."""
    name_w = max(len(r.op) for r in report.ops) + 2
    status_w = max(8, max(len(r.status) for r in report.ops) + 1)
    head = f"{'op':<{name_w}}{'status':<{status_w}}{'max fwd':>9}{'max grad':>10}{'max fd':>9}  note"
    lines = [head, "-" * width]
    room = width - (name_w + status_w + 9 + 10 + 9 + 2)

    def err(x, w, judged):
        return f"{'-' if not (judged and math.isfinite(x)) else f'{x:.1e}':>{w}}"

    def fit(text):
        return text if len(text) <= room else text[: room - 3] + "..."
    details, rules = [], {}
    for r in report.ops:
        if r.status == "absent":
            for m in r.detail.removeprefix("lacks ").split(", "):
                rules.setdefault(m, RULES.get(m, ""))
        if r.status in ("absent", "n/a", "not checked"):
            note = r.detail
        elif r.status == "FAIL":
            note = format_input(r.input)
            details.append(f"  {r.op}: at {format_input(r.input)}: {r.detail}")
        elif r.status == "limit":
            note = "RecursionError: a recursive backward"
        elif r.status == "stopped":
            note = "not run: the worker stopped"
        else:
            note = ""
        lines.append(f"{r.op:<{name_w}}{r.status:<{status_w}}{err(r.max_fwd_error, 9, r.judged)}"
                     f"{err(r.max_grad_error, 10, r.judged)}{err(r.max_fd_error, 9, r.judged)}  {fit(note)}")
    if details:
        lines += ["what broke (the first input, in table order):", *details]
    if rules:
        lines += ["absent, and the model needs them (the rule to implement):",
                  *(f"  {m}: {rule}" for m, rule in rules.items())]
    lines.append(f"tolerances (mixed error): {tolerance_text()}. not checked: the row calls a rule found wrong above "
                 f"(fix that one first); absent: the class lacks an op the model needs; n/a: an optional op it lacks "
                 f"(neither is checked or wrong); limit: a limitation of the engine")
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ") if line.startswith("tolerances")
                     else line.rstrip() for line in lines)
