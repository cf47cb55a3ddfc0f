"""The forms a report takes besides the terminal: JSON, JUnit XML (CI pages show it natively), Markdown (a CI job's
summary page) and HTML (a notebook cell). Every report class (`run` and `check`, `ops`, `mutants`) mixes in
`ReportForms` and says what its test cases and failing rows are.
"""

import base64
import html
import io
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Optional

from pure.outputs import atomic_write_bytes

JUNIT_TEXT_LIMIT = 20_000  # characters of a test case's details kept in the XML


@dataclass
class Case:
    """One JUnit test case: a quantity family in one mode, an op, or a mutant."""

    name: str
    ok: bool
    message: str = ""  # the failure's one line (the verdict line, the diagnosis)
    text: str = ""  # details: the failing rows
    skipped: Optional[str] = None  # why it was not judged (an absent op, a family the trace lacks)
    seconds: float = 0.0


def json_safe(obj):
    """Non-finite floats become null (strict JSON has no such numbers; a check's `nonfinite` says which)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_doc(doc, path):
    """Strict JSON (non-finite numbers as null), written to a temporary file and renamed."""
    atomic_write_bytes(path, (json.dumps(json_safe(doc), indent=1, allow_nan=False) + "\n").encode())


class ReportForms:
    """What every report offers: `ok`, `to_dict()`, and the JSON, JUnit, Markdown and HTML forms.

    A report class provides: `verdict`, `verdict_line`, `title` (e.g. "parity check: run.jsonl"), `diagnosis`
    (a dict or None), `to_dict()`, `cases()` (a list of Case), `failing_rows()` (lines of its table, header
    first, or []) and `table()`."""

    diagnosis = None

    @property
    def ok(self):
        """True when the verdict is agree."""
        return self.verdict == "agree"

    def message(self):
        """The verdict line, then the diagnosis line when there is one: what a failure says first."""
        lines = [self.verdict_line]
        if self.diagnosis:
            lines.append(diagnosis_line(self.diagnosis))
        return "\n".join(lines)

    def to_json(self, path):
        """Write to_dict() as strict JSON (non-finite numbers as null), atomically."""
        write_json_doc(self.to_dict(), path)

    def to_junit(self, path):
        """JUnit XML: one test case per quantity family and mode, op or mutant; a failure's message is the verdict
        line and the diagnosis, its text the failing rows."""
        cases = self.cases()
        suite = ET.Element("testsuite", name=self.title, tests=str(len(cases)),
                           failures=str(sum(not c.ok and c.skipped is None for c in cases)),
                           skipped=str(sum(c.skipped is not None for c in cases)), errors="0",
                           time=f"{sum(c.seconds for c in cases):.3f}")
        for c in cases:
            case = ET.SubElement(suite, "testcase", classname=self.title, name=c.name, time=f"{c.seconds:.3f}")
            if c.skipped is not None:
                ET.SubElement(case, "skipped", message=c.skipped)
            elif not c.ok:
                failure = ET.SubElement(case, "failure", message=c.message or self.message(), type="divergence")
                failure.text = (c.text or "")[:JUNIT_TEXT_LIMIT]
        out = ET.Element("testsuites")
        out.append(suite)
        ET.indent(out)
        atomic_write_bytes(path, ET.tostring(out, encoding="utf-8", xml_declaration=True) + b"\n")

    def to_markdown(self, path=None):
        """A short summary (the verdict, the diagnosis, the table's failing rows, notes) for a CI job's summary
        page; written to `path` when given, and returned."""
        icon = {"agree": "✅", "partial": "🟡"}.get(self.verdict, "❌")
        lines = [f"### {icon} {self.title}", "", f"`{self.verdict_line}`", ""]
        if self.diagnosis:
            lines += [f"**Diagnosis**: {diagnosis_line(self.diagnosis).removeprefix('diagnosis: ')}", ""]
        rows = self.failing_rows()
        if rows:
            lines += ["<details open><summary>failing rows</summary>", "", "```text", *rows, "```", "", "</details>",
                      ""]
        for note in getattr(self, "notes", None) or []:
            lines.append(f"- note: {note}")
        text = "\n".join(lines).rstrip() + "\n"
        if path is not None:
            atomic_write_bytes(path, text.encode())
        return text

    def _repr_html_(self):
        """In a notebook: the verdict, the diagnosis, the table with failing rows marked, the plot when it can be
        drawn."""
        color = {"agree": "#1a7f37", "partial": "#9a6700"}.get(self.verdict, "#cf222e")
        parts = [f"<div style='max-width:100%'><p style='white-space:pre-wrap;overflow-wrap:anywhere'>"
                 f"<b style='color:{color}'>{html.escape(self.verdict)}</b> "
                 f"<code style='white-space:pre-wrap'>{html.escape(self.verdict_line)}</code></p>"]
        if self.diagnosis:
            text = diagnosis_line(self.diagnosis).removeprefix("diagnosis: ")
            parts.append(f"<p style='white-space:pre-wrap;overflow-wrap:anywhere'><b>diagnosis</b>: "
                         f"{html.escape(text)}</p>")
        failing = set(self.failing_rows()[1:])
        table = []
        for line in self.table().splitlines():
            text = html.escape(line)
            table.append(f"<span style='background:#ffebe9;font-weight:bold'>{text}</span>" if line in failing
                         else text)
        parts.append("<pre style='font-size:11px;white-space:pre-wrap;overflow-wrap:anywhere'>" + "\n".join(table)
                     + "</pre>")
        image = self.plot_png()
        if image:
            parts.append(f"<img alt='error per step' style='max-width:100%;height:auto' "
                         f"src='data:image/png;base64,{base64.b64encode(image).decode()}'/>")
        return "".join(parts) + "</div>"

    def plot_png(self):
        """The plot as PNG bytes, or None (no plot for this report, or matplotlib is not installed)."""
        return None


def diagnosis_line(d):
    """The `diagnosis:` line of a diagnosis dict (parity.diagnosis): the bug, its fix and the evidence; several bugs
    that reproduce the port equally well, named together as one finding; or that no known bug reproduces the
    divergence, with the nearest only when it explains most of the error."""
    if d.get("id") is None:
        closest = d.get("closest")
        tail = (f"; the nearest, {closest['summary']} ({closest['id']}), explains {closest['explained']:.0%} of the "
                f"error but is not a match" if closest else "")
        return f"diagnosis: {d.get('summary', 'no known bug reproduces this')}{tail}"
    candidates = d.get("candidates") or []
    if d.get("ambiguous") and len(candidates) > 1:
        named = [f"{c['summary']} ({c['id']})" for c in candidates]
        one_of = ", ".join(named[:-1]) + f", or {named[-1]}"
        fixes = []
        for c in candidates:
            if c["fix"] not in [f for f, _ in fixes]:
                fixes.append((c["fix"], c["id"]))
        fix = fixes[0][0] if len(fixes) == 1 else "; ".join(f"{f} ({i})" for f, i in fixes)
        declare = "".join(f"; if {c['id']} is intended, it is a known variant of microgpt: declare it: \"variant\": "
                          f"{json.dumps(c['variant'])}" for c in candidates if c.get("variant"))
        return (f"diagnosis: one of: {one_of} (indistinguishable from this trace: {d['evidence']}); fix: {fix}"
                f"{declare}")
    alternatives = d.get("alternatives") or []
    also = f"; also reproduces it: {', '.join(a['id'] for a in alternatives)}" if alternatives else ""
    declare = (f"; a known variant of microgpt: if intended, declare it: \"variant\": {json.dumps(d['variant'])}"
               if d.get("variant") else "")
    return f"diagnosis: {d['summary']} ({d['id']}); fix: {d['fix']}; {d['evidence']}{declare}{also}"


def png_of(write_plot, report):
    """write_plot(report, file-like) into bytes; None without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    buffer = io.BytesIO()
    write_plot(report, buffer)
    return buffer.getvalue()
