"""`parity grade DIR`: a class's submissions judged, each in a judge process of its own, N at a time.

Every `*.py` in DIR is a Value-class submission (class `Value` unless --class), checked by `ops` and a short `run`;
every `*.jsonl` / `*.jsonl.gz` is a port trace, checked by `check`. Each runs in a child judge (a fresh
`python -I` process, which runs a class's code in a worker of its own: parity.worker), with the time and memory
limits given, so that no submission can slow, crash or fool the others or the grader.

Grading pins its terms: the config and the hyper-parameters are the grader's (the seed's by default, `--config
FILE` to change them), so a trace whose meta says otherwise is "not comparable", a trace checked in float32 only
when the terms say float32, and a trace without gradients and weights is "partial", which does not pass.
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from parity.judge.formats import Case, ReportForms

TERMS = {"n_layer": 1, "n_embd": 16, "n_head": 4, "block_size": 16, "lr": 0.01, "beta1": 0.85, "beta2": 0.99,
         "eps": 1e-8, "dtype": "float64", "seed": 42, "steps": 5}  # the seed's; steps: a Value class's short run
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz")
CHILD_MARGIN = 120  # seconds a child judge gets beyond the job's own timeout (torch's import, the check itself)


def load_terms(path=None):
    """The seed's terms, with those of a JSON file over them; ValueError naming what is wrong."""
    terms = dict(TERMS)
    if path is None:
        return terms
    try:
        given = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"--config {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--config {path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(given, dict):
        raise ValueError(f"--config {path}: expected an object of terms ({', '.join(TERMS)})")
    unknown = sorted(set(given) - set(TERMS))
    if unknown:
        raise ValueError(f"--config {path}: unknown terms {', '.join(unknown)}; known: {', '.join(TERMS)}")
    terms.update(given)
    from pure.model import GPTConfig

    GPTConfig(**{k: terms[k] for k in ("n_layer", "n_embd", "n_head", "block_size")})
    if terms["dtype"] not in ("float64", "float32"):
        raise ValueError(f"--config {path}: dtype must be float64 or float32")
    return terms


def submissions(folder):
    """(path, kind) of every submission in the folder, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give the folder of the submissions (*.py, *.jsonl, *.jsonl.gz)")
    out = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name.endswith(".py"):
            out.append((path, "value"))
        elif path.is_file() and path.name.endswith(TRACE_SUFFIXES):
            out.append((path, "trace"))
    if not out:
        raise ValueError(f"{folder} holds no submission (*.py Value classes, *.jsonl or *.jsonl.gz port traces)")
    return out


# ---- one submission, in a child judge --------------------------------------------------------------------------

def _comparable(meta, terms):
    """None when the trace's meta is the grader's terms, else what differs."""
    c, a = meta.config, meta.adam
    own = {"n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head, "block_size": c.block_size, "lr": a.lr,
           "beta1": a.beta1, "beta2": a.beta2, "eps": a.eps}
    differ = [f"{k} {own[k]!r} (the grade's {terms[k]!r})" for k in own if own[k] != terms[k]]
    return "; ".join(differ) or None


def grade_one(path, kind, terms, options):
    """The row of one submission (a dict), judged here (this is the child judge)."""
    from parity.errors import ParityError, as_parity_errors
    from parity.judge.formats import diagnosis_line

    from .check import check_trace
    from .ops import check_ops
    from .run import check_value

    row = {"path": str(path), "name": Path(path).name, "kind": kind}
    try:
        if kind == "trace":
            from parity.sources.porttrace.limits import Limits
            from parity.sources.porttrace.reader import PortTrace

            limits = Limits(max_memory_mb=options["max_memory"])
            with as_parity_errors():
                trace = PortTrace(path, limits)
                trace.close()
            differs = _comparable(trace.meta, terms)
            if differs:
                return dict(row, verdict="not comparable", first_divergence=None, diagnosis=None,
                            detail=f"the trace's terms are not the grade's: {differs}")
            # grading pins its terms: a declared variant (meta.variant) is not the assignment (strict)
            report = check_trace(path, dtype=terms["dtype"], limits=limits, strict=True)
            reports = [report]
        else:
            spec = f"{path}:{options['class_name']}"
            ops = check_ops(spec, timeout=options["timeout"], max_memory=options["max_memory"])
            reports = [ops]
            if ops.verdict == "agree":  # a class that cannot run the model is refused by `run` (an InputError)
                reports.append(check_value(spec, steps=terms["steps"], seed=terms["seed"],
                                               n_layer=terms["n_layer"], n_embd=terms["n_embd"],
                                               n_head=terms["n_head"], block_size=terms["block_size"],
                                               lr=terms["lr"], dtype=terms["dtype"], data=options.get("data"),
                                               timeout=options["timeout"], max_memory=options["max_memory"]))
                row["run"] = reports[-1].verdict_line
            elif ops.verdict == "partial":
                lacks = sorted({m for r in ops.ops if r.status == "absent"
                                for m in r.detail.removeprefix("lacks ").split(", ")})
                from parity.ops.cases import RULES

                row["run"] = (f"skipped: the class lacks {', '.join(lacks)}, which the model needs (every op it has "
                              f"is right)")
                row["missing"] = {m: RULES.get(m, "") for m in lacks}
            else:
                row["run"] = "skipped: ops found a wrong rule (fix it first: a run would only show its effects)"
    except ParityError as e:
        row = dict(row, verdict="error", first_divergence=None, diagnosis=None, detail=_cause(str(e), path))
        if kind == "value":
            row["run"] = "skipped: the class could not be checked (the error above)"
        return row
    worst = next((r for r in reports if r.verdict == "diverge"), None) or next(
        (r for r in reports if r.verdict == "partial"), reports[-1])
    d = worst.diagnosis
    diagnosis = d and {"id": d.get("id"), "summary": d.get("summary"), "fix": d.get("fix"),
                       "line": diagnosis_line(d), "rules": d.get("rules")}
    return dict(row, verdict=worst.verdict, first_divergence=worst.first_divergence, diagnosis=diagnosis,
                detail=worst.verdict_line, verdict_lines=[r.verdict_line for r in reports])


def _cause(message, path):
    """An error's message with the worker's copy of the file named as the submission (its cause kept whole)."""
    import re

    return re.sub(r"\S*/parity-worker-[^/\s]+/" + re.escape(Path(path).name), str(path), message)


def _what(row):
    """What a row says in a line: the wrong rule and its fix, the first divergence, or the error's cause."""
    d = row.get("diagnosis") or {}
    rules = d.get("rules") or []
    if rules:
        r = rules[0]
        inputs = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in
                           (r.get("input") or {}).items())
        return f"{r['op']} at {inputs}: {r['detail']}; fix: {r['fix']}"
    if row.get("missing"):
        return (f"lacks {', '.join(row['missing'])}, which the model needs; implement: "
                + "; ".join(f"{m}: {rule}" for m, rule in row["missing"].items()))
    fd = row.get("first_divergence")
    if fd and "step" in fd:
        where = f"step {fd['step']} {fd.get('phase', '')} {fd.get('quantity', '')}".strip()
        return where + (f"; {d['summary']}; fix: {d['fix']}" if d.get("fix") else "")
    detail = row.get("detail") or ""
    if row["verdict"] == "error" and "failed: " in detail:
        detail = detail.rsplit("failed: ", 1)[1]
    return detail if row["verdict"] != "agree" else ""


def child():
    """`python -I -c 'from parity.commands.grade import child; child()' JOB`: grade one submission, its row as JSON on
    stdout (the last line)."""
    job = json.loads(sys.argv[1])
    row = grade_one(job["path"], job["kind"], job["terms"], job["options"])
    sys.stdout.write("\n" + json.dumps(row) + "\n")
    sys.stdout.flush()


def _run_child(path, kind, terms, options):
    """grade_one in a fresh judge process, within the submission's time; a row whatever happens to it."""
    from parity.worker.process import ROOT

    t0 = time.monotonic()
    job = {"path": str(path), "kind": kind, "terms": terms, "options": options}
    boot = (f"import sys; sys.path[:0] = [{str(ROOT)!r}]; sys.argv[1:] = [{json.dumps(job)!r}]; "
            "from parity.commands.grade import child; child()")
    budget = options["timeout"] * (2 if kind == "value" else 1) + CHILD_MARGIN
    row = {"path": str(path), "name": Path(path).name, "kind": kind, "first_divergence": None, "diagnosis": None}
    try:
        done = subprocess.run([sys.executable, "-I", "-c", boot], capture_output=True, text=True, timeout=budget,
                              stdin=subprocess.DEVNULL, cwd=os.getcwd(), start_new_session=True)
        try:
            row = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            err = (done.stderr.strip().splitlines() or ["no output"])[-1]
            row.update(verdict="error", detail=f"the judge of this submission failed: {err[:300]}")
    except subprocess.TimeoutExpired:
        row.update(verdict="timed out", detail=f"its check took longer than {budget:g} s")
    row["seconds"] = round(time.monotonic() - t0, 2)
    return row


# ---- the grade -------------------------------------------------------------------------------------------------

@dataclass
class GradeReport(ReportForms):
    """What `parity grade` found: one row per submission; `ok` when every one agrees."""

    rows: list
    folder: str = ""
    terms: dict = field(default_factory=dict)
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def title(self):
        return f"parity grade: {self.folder}"

    @property
    def verdict(self):
        return "agree" if all(r["verdict"] == "agree" for r in self.rows) else "diverge"

    @property
    def checks(self):
        return self.rows

    @property
    def first_divergence(self):
        return next((r for r in self.rows if r["verdict"] != "agree"), None)

    def counts(self):
        out = {}
        for r in self.rows:
            out[r["verdict"]] = out.get(r["verdict"], 0) + 1
        return out

    @property
    def verdict_line(self):
        counts = self.counts()
        agree = counts.pop("agree", 0)
        rest = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        return f"grade: {agree} of {len(self.rows)} submissions agree" + (f" ({rest})" if rest else "")

    def to_dict(self):
        return {"verdict": self.verdict, "verdict_line": self.verdict_line, "folder": self.folder,
                "terms": self.terms, "seconds": round(self.seconds, 2),
                "summary": {"submissions": len(self.rows), **self.counts()}, "submissions": self.rows}

    def table(self, width=100):
        name_w = min(28, max([10] + [len(r["name"]) for r in self.rows]) + 2)
        lines = [f"{'submission':<{name_w}}{'kind':<7}{'verdict':<16}{'seconds':>8}  what is wrong and the fix, "
                 f"or the error", "-" * width]
        for r in self.rows:
            text = _what(r)
            if r.get("run", "").startswith("skipped") and r["verdict"] not in ("agree", "error"):
                text += f" (run {r['run'].split(':')[0]})"
            row = (f"{r['name'][:name_w - 1]:<{name_w}}{r['kind']:<7}{r['verdict']:<16}"
                   f"{r.get('seconds', 0):>8.1f}  {text}")
            lines.append(row if len(row) <= width else row[:width - 3] + "...")
        return "\n".join(lines)

    def to_markdown(self, path=None):
        """For a teacher and a student: one row per submission, the verdict, what is wrong (the rule, the input,
        what it got and what torch says) and the fix, or the error's cause, and the training run (or why it was
        skipped)."""
        from pure.outputs import atomic_write_bytes

        def cell(text):
            return (text or "").replace("|", "\\|").replace("\n", " ")

        icon = "✅" if self.ok else "❌"
        lines = [f"### {icon} {self.title}", "", f"`{self.verdict_line}`", "",
                 "| submission | verdict | what is wrong | fix | training run |", "|---|---|---|---|---|"]
        for r in self.rows:
            d = r.get("diagnosis") or {}
            rules = d.get("rules") or []
            if rules:
                wrong = "<br>".join(cell(f"{x['op']} at " + ", ".join(
                    f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in (x.get('input') or {}).items())
                    + f": {x['detail']}") for x in rules)
                fix = "<br>".join(cell(x["fix"]) for x in rules)
            elif r.get("missing"):
                wrong = cell(f"lacks {', '.join(r['missing'])}, which the model needs")
                fix = "<br>".join(cell(f"{m}: {rule}") for m, rule in r["missing"].items())
            else:
                wrong, fix = cell(_what(r)), cell(d.get("fix") or "")
            lines.append(f"| {cell(r['name'])} | {cell(r['verdict'])} | {wrong} | {fix} | {cell(r.get('run', ''))} |")
        text = "\n".join(lines) + "\n"
        if path is not None:
            atomic_write_bytes(path, text.encode())
        return text

    def failing_rows(self):
        lines = self.table().splitlines()
        bad = [line for line, r in zip(lines[2:], self.rows) if r["verdict"] != "agree"]
        return lines[:2] + bad if bad else []

    def cases(self):
        return [Case(r["name"], r["verdict"] == "agree",
                     "" if r["verdict"] == "agree" else f"{r['name']}: {r['verdict']}: {r.get('detail') or ''}",
                     (r.get("diagnosis") or {}).get("line") or "", None, r.get("seconds", 0.0)) for r in self.rows]


def grade(folder, *, jobs=2, timeout=300.0, max_memory=4096, terms=None, class_name="Value", data=None,
          on_done: Optional[callable] = None):
    """Every submission of the folder in a child judge, `jobs` at a time; a GradeReport."""
    t0 = time.monotonic()
    items = submissions(folder)
    terms = terms or dict(TERMS)
    options = {"timeout": timeout, "max_memory": max_memory, "class_name": class_name,
               "data": str(data) if data else None}
    rows = [None] * len(items)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_run_child, path, kind, terms, options): i for i, (path, kind) in enumerate(items)}
        for future in futures:
            i = futures[future]
            rows[i] = future.result()
            if on_done:
                on_done(rows[i])
    return GradeReport(rows, str(folder), terms, time.monotonic() - t0)
