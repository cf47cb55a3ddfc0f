"""The report every comparing command fills (`run`, `check`): its checks kept in a tally, the first divergence, the
verdict line, the per-quantity table (llm.c style) and the JSON document."""

import json
import math
import textwrap
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

from pure.variants import Variant

from .compare import Tol
from .formats import Case, ReportForms, json_safe
from .quantities import FAMILY_ORDER, RAISED, SAMPLES, describe, family

MODES = ("lockstep", "free")  # searched in this order for the first divergence
SIDE_WORDS = {"pure": "pure", "port": "the port"}  # how a reference is named in a sentence


def parse_modes(text):
    """'lockstep,free' -> ("lockstep", "free"), always in that order; ValueError for anything else."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"--modes must be lockstep, free or both, got {text!r}")
    return tuple(m for m in MODES if m in modes)


class Tally:
    """What a report keeps of its checks, in memory that does not grow with the run's length (a 1000-step run
    makes 142,000 checks): per (quantity, mode) the worst check (by share of allowance) and the largest max abs
    and max rel over the run; the worst share of its tolerance per family, mode and step (the plot); the count,
    the modes seen, and the failing checks of the earliest step that has any (all the first divergence is chosen
    from). Checks must be added in step order."""

    def __init__(self):
        self.worst, self.count, self.modes = {}, 0, set()
        self.peak = {}  # (quantity, mode) -> [max abs, max rel] over the run
        self.series = defaultdict(lambda: defaultdict(dict))  # mode -> family -> {step: worst ratio}
        self.failing = []

    def add(self, checks):
        for c in checks:
            self.count += 1
            self.modes.add(c.mode)
            key = (c.quantity, c.mode)
            w = self.worst.get(key)
            if w is None or (not c.ok and w.ok) or (c.ok == w.ok and c.ratio > w.ratio):
                self.worst[key] = c
            peak = self.peak.get(key)
            if peak is None:
                self.peak[key] = [c.max_abs, c.max_rel]
            else:
                peak[0], peak[1] = max(peak[0], c.max_abs), max(peak[1], c.max_rel)
            fam = family(c.quantity)
            if fam not in (SAMPLES, RAISED):
                by_step = self.series[c.mode][fam]
                by_step[c.step] = max(by_step.get(c.step, 0.0), c.ratio)
            if not c.ok and (not self.failing or c.step <= self.failing[0].step):
                if self.failing and c.step < self.failing[0].step:
                    self.failing = []
                self.failing.append(c)

    def series_by_family(self):
        """mode -> family -> sorted list of (step, the worst share of its allowance any quantity used)."""
        return {m: {f: sorted(d.items()) for f, d in fams.items()} for m, fams in self.series.items()}


def first_divergence(failing, quantities):
    """The earliest failing check: by step, then mode (lockstep first), then the quantities' search order."""
    if not failing:
        return None
    order = {q.name: i for i, q in enumerate(quantities)}
    order[SAMPLES] = len(order)
    order[RAISED] = -1  # nothing else of that step was computed
    c = min(failing, key=lambda c: (c.step, MODES.index(c.mode), order[c.quantity]))
    phases = {q.name: q.phase for q in quantities}
    phase = c.detail["phase"] if c.quantity == RAISED else phases.get(c.quantity, "samples")
    return {"step": c.step, "mode": c.mode, "quantity": c.quantity, "phase": phase, "description": describe(c.quantity),
            "position": c.position, "index": c.index, "max_abs": c.max_abs, "max_rel": c.max_rel, "ratio": c.ratio,
            "tol": c.tol.to_json(),
            "nonfinite": c.nonfinite, **({"detail": c.detail} if c.detail else {})}


@dataclass
class Report(ReportForms):
    """What one comparison (`parity run`, `parity check`) found. `reference` is the side torch_ref is compared with
    ("pure" or "port"), named so in the table, the verdict line and the plot; `quantities` are the rows, in the
    order the first divergence is searched.

    `ok` (agree), `verdict`, `verdict_line`, `first_divergence`, `diagnosis`, `checks` (every check when kept,
    else the worst of each quantity and mode), `to_dict()`, `to_json(path)`, `to_junit(path)`,
    `to_markdown(path)`, and in a notebook the table, the verdict and the plot."""

    reference: str
    quantities: list
    run: dict  # the run's facts: the JSON's "run"
    dtype: str = "float64"  # torch_ref's dtype
    model_config: object = None  # the pure.GPTConfig both sides ran
    data: str = ""  # where the documents came from
    samples: Optional[dict] = None  # mode -> {"pure": [...], "torch": [...]} (`run`; None where nothing is sampled)
    notes: list = field(default_factory=list)  # what the check could not do, and how to let it
    extra: dict = field(default_factory=dict)  # further JSON keys of the command (`check`: the trace, ...)
    keep_checks: bool = True  # False: memory stays flat over a long run (the CLI); only the tally is kept
    details: object = None  # a file-like object: every check is written there as a JSON line (--details)
    steps: int = 0  # steps compared
    seconds: float = 0.0
    checks: list = field(default_factory=list)  # every check when kept; after finish(), else the worst of each
    first_divergence: Optional[dict] = None
    diagnosis: Optional[dict] = None  # what bug reproduces the divergence (parity.diagnosis), or None
    title: str = "parity"  # "parity run", "parity check: TRACE": the JUnit suite and the summary's heading
    # None, or what could not be checked and what to add (a trace without gradients or weights): the verdict is
    # then "partial", however well the rest agrees
    unchecked: Optional[str] = None
    verdict_suffix: str = ""  # said at the end of an agree or partial verdict line (how the trace was judged)
    # A declared variant (parity.judge.variants): its deviations (the JSON's "variant"; None for microgpt itself) and
    # the sentences that make the verdict diverge on the declaration alone (an undeclared deviation, a
    # contradiction, --strict)
    variant: Optional[dict] = None
    declaration_errors: list = field(default_factory=list)
    capture: object = None  # parity.diagnosis.state.StepState of the first diverging step (not in the JSON)
    tally: Tally = field(default_factory=Tally)
    started: float = field(default_factory=time.perf_counter)

    def add(self, checks):
        self.tally.add(checks)
        if self.keep_checks:
            self.checks += checks
        if self.details is not None:
            for c in checks:
                self.details.write(json.dumps(json_safe(c.to_json()), allow_nan=False) + "\n")

    def finish(self):
        """The first divergence and the time taken: call once every check is in."""
        self.first_divergence = first_divergence(self.tally.failing, self.quantities)
        self.seconds = time.perf_counter() - self.started
        if not self.keep_checks:
            self.checks = list(self.tally.worst.values())
        return self

    @property
    def verdict(self):
        """"diverge" on any failing check; "partial" when all agrees but part of the run could not be checked;
        else "agree"."""
        if self.first_divergence is not None or self.declaration_errors:
            return "diverge"
        return "partial" if self.unchecked else "agree"

    @property
    def variant_words(self):
        """What an agreeing verdict adds: ` as a variant of microgpt: ...` (empty for microgpt itself)."""
        return f" as a variant of microgpt: {Variant.from_dict(self.variant).describe()}" if self.variant else ""

    @property
    def verdict_line(self):
        fd = self.first_divergence
        if self.declaration_errors:  # the port's terms first: they are wrong before any step is
            line = f"verdict: diverge: {'; '.join(self.declaration_errors)}"
            return line + (f"; and {self._divergence_line(fd)}" if fd is not None else "")
        if fd is None:
            counts = (f"{self.tally.count} checks over {self.steps} steps, modes "
                      f"{', '.join(m for m in MODES if m in self.tally.modes)}")
            suffix = f"; {self.verdict_suffix}" if self.verdict_suffix else ""
            if self.unchecked:
                return (f"verdict: partial: what the trace holds agrees ({counts}{suffix}){self.variant_words}; "
                        f"{self.unchecked}")
            return f"verdict: agree ({counts}{suffix}){self.variant_words}"
        return self._divergence_line(fd)

    def _divergence_line(self, fd):
        if fd["quantity"] == RAISED:
            if fd["detail"].get("worker"):  # the worker stopped: timed out, crashed, exited
                return f"first divergence: step {fd['step']} ({fd['mode']}), {fd['detail']['exception']}"
            where = f" (at {fd['detail']['where']})" if fd["detail"]["where"] else ""
            return (f"first divergence: step {fd['step']} ({fd['mode']}), the Value class raised in "
                    f"{fd['phase']}: {fd['detail']['exception']}{where}")
        at = f"step {fd['step']} ({fd['mode']}, {fd['phase']})"
        where = f", position {fd['position']}" if fd.get("position") is not None else ""
        if fd.get("position") is None and fd.get("index"):
            where = f", index {tuple(fd['index'])}"
        nf = fd.get("nonfinite")
        if nf:
            ref = SIDE_WORDS.get(self.reference, self.reference)
            side = {"ref": ref, "torch": "torch_ref", "both": f"{ref} and torch_ref"}[nf["side"]]
            value = nf["ref"] if nf["side"] != "torch" else nf["torch"]
            return (f"first divergence: {at}, {fd['description']}{where}: "
                    f"{side} has a non-finite value ({value}; {self.reference} {nf['ref']}, torch_ref {nf['torch']})")
        suffix = f"; {self.verdict_suffix}" if self.verdict_suffix else ""
        return (f"first divergence: {at}, {fd['description']}{where}, "
                f"max abs {fd['max_abs']:.1e} (tol {Tol(**fd['tol'])}){suffix}")

    def to_dict(self):
        """The --json document."""
        doc = {
            "verdict": self.verdict,
            "first_divergence": self.first_divergence,
            "diagnosis": self.diagnosis,
            "verdict_line": self.verdict_line,
            "variant": self.variant,
            "declaration_errors": list(self.declaration_errors),
            "run": self.run,
            "model_config": self.model_config.to_dict() if self.model_config else None,
            "data": self.data,
            "seconds": round(self.seconds, 3),
        }
        if self.samples is not None:
            doc["samples"] = self.samples
        doc.update({
            "n_checks": self.tally.count,
            # the worst check of each quantity and mode over the run, with the step it happened at
            "checks": [c.to_json() for c in self.tally.worst.values()],
            "series": self.tally.series_by_family(),  # mode -> family -> [[step, worst share of tolerance]]
        })
        doc.update(self.extra)
        return doc

    def table(self, width=100):
        return format_table(self, width)

    def failing_rows(self):
        """The table's header and its failing rows; [] when none fails."""
        lines = self.table().splitlines()
        failing = {c.quantity for c in self.tally.worst.values() if not c.ok}
        rows = [line for line in lines[3:] if line.split(" ", 1)[0] in failing]
        return lines[:3] + rows if rows else []

    def cases(self):
        """One JUnit case per quantity family and mode (and the samples, a raised Value class)."""
        groups = {}
        for (q, mode), c in self.tally.worst.items():
            groups.setdefault((mode, family(q)), []).append(c)
        out = []
        for (mode, fam), checks in groups.items():
            bad = [c for c in checks if not c.ok]
            text = "\n".join(f"{c.quantity}: step {c.step}, max abs {c.max_abs:.3g}, used {format_used(c.ratio)} of "
                             f"tol {c.tol}" for c in bad)
            out.append(Case(f"{mode}.{fam}", not bad, self.message() if bad else "", text))
        if self.declaration_errors or self.variant:
            text = "\n".join(self.declaration_errors)
            out.insert(0, Case("declaration", not self.declaration_errors,
                               self.message() if self.declaration_errors else "", text))
        return out

    def plot_png(self):
        from .formats import png_of
        from .plot import write_plot

        return png_of(write_plot, self) if self.tally.series else None


def format_used(ratio):
    """The share of the allowance the worst element used, as a percentage: '0.44%', '3e-05%', '1.5e+04%'."""
    if not math.isfinite(ratio):
        return "non-finite"
    return f"{ratio * 100:.2g}%"


def _tolerance_legend(worst, modes, width):
    """One wrapped line per mode: each family's atol/rtol, as judged in this report."""
    lines = []
    for m in modes:
        seen = {}
        for (q, mode), c in worst.items():
            if mode == m and q not in (SAMPLES, RAISED):
                seen.setdefault(family(q), c.tol)
        # \xa0 keeps each "family atol/rtol" on one line (textwrap splits only at ASCII white space)
        parts = [f"{fam}\xa0{seen[fam].atol:.0e}/{seen[fam].rtol:.0e}" for fam in FAMILY_ORDER if fam in seen]
        wrapped = textwrap.wrap(f"tolerances ({m}, atol/rtol): " + ", ".join(parts), width, subsequent_indent="    ")
        lines += [line.replace("\xa0", " ") for line in wrapped]
    return lines


def format_table(report, width=100):
    """One row per quantity: in each mode, the largest max abs and max rel over all steps, the share of its
    allowance atol + rtol * |ref| that the worst element used (the margin, whichever term decided), and OK or
    FAIL, with the tolerance a failing row was judged by; then the tolerances of each family."""
    worst, peak = report.tally.worst, report.tally.peak
    modes = [m for m in MODES if any(k[1] == m for k in worst)]
    names = [q.name for q in report.quantities] + ([SAMPLES] if any(q == SAMPLES for q, _ in worst) else [])
    if any(q == RAISED for q, _ in worst):
        names.insert(0, RAISED)
    name_width = max(len(n) for n in names) + 2
    cell = 9 + 9 + 10 + 6
    group = "".join(f"{' ' + m + ' ':-^{cell - 1}} " for m in modes)
    cols = "".join(f"{'max abs':>9}{'max rel':>9}{'used':>10}{'':6}" for _ in modes)
    lines = [f"{'':<{name_width}}{group}", f"{'quantity':<{name_width}}{cols}", "-" * (name_width + cell * len(modes))]
    for q in names:
        cells, tol = "", None
        for m in modes:
            c = worst.get((q, m))
            if c is None:
                cells += f"{'-':>9}{'-':>9}{'-':>10}{'':6}"
            elif q == RAISED:
                verb = "stopped" if c.detail.get("worker") else "raised"
                cells += f"{verb + ' in ' + c.detail['phase']:>28}{'FAIL':>6}"
            elif q == SAMPLES:
                cells += f"{int(c.max_abs):>9}{'differ':>9}{'':>10}{'OK' if c.ok else 'FAIL':>6}"
            elif c.nonfinite:
                cells += f"{'nan/inf':>9}{'':>9}{format_used(c.ratio):>10}{'FAIL':>6}"
            else:
                max_abs, max_rel = peak[(q, m)]
                cells += (f"{max_abs:>9.1e}{max_rel:>9.1e}{format_used(c.ratio):>10}"
                          f"{'OK' if c.ok else 'FAIL':>6}")
            if c is not None and not c.ok and q not in (SAMPLES, RAISED):
                tol = tol or c.tol
        lines.append(f"{q:<{name_width}}{cells}" + (f" tol {tol.atol:.0e}/{tol.rtol:.0e}" if tol else ""))
    ref = report.reference
    lines.append(f"used: the worst element's |torch - {ref}| as a share of its allowance atol + rtol * |{ref}| "
                 "(FAIL above 100%; a failing row ends with its tol atol/rtol)")
    lines += _tolerance_legend(worst, modes, width)
    return "\n".join(line.rstrip() for line in lines)


def write_json(report, path):
    report.to_json(path)
