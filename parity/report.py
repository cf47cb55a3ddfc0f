"""Reporting: the per-quantity table (llm.c style), the JSON report, and the error-per-step plot."""

import io
import json
import math
import textwrap
from collections import defaultdict
from pathlib import Path

from pure.outputs import atomic_write_bytes

from .quantities import ENGINE, family

FAMILY_ORDER = ["activation", "logits", "loss", "act_grad", "param_grad", "adam_m", "adam_v", "param", "samples"]


class Tally:
    """What a report keeps of its checks, in memory that does not grow with the run's length (a 1000-step run
    makes 142,000 checks): the worst check per (quantity, mode), the worst share of its tolerance per family,
    mode and step (the plot), the count, the modes seen, and the failing checks of the earliest step that has
    any (all that the first divergence is chosen from). Checks must be added in step order."""

    def __init__(self):
        self.worst, self.count, self.modes = {}, 0, set()
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
            fam = family(c.quantity)
            if fam not in ("samples", ENGINE):
                by_step = self.series[c.mode][fam]
                by_step[c.step] = max(by_step.get(c.step, 0.0), c.ratio)
            if not c.ok and (not self.failing or c.step <= self.failing[0].step):
                if self.failing and c.step < self.failing[0].step:
                    self.failing = []
                self.failing.append(c)

    def series_by_family(self):
        """mode -> family -> sorted list of (step, the worst share of its allowance any quantity used)."""
        return {m: {f: sorted(d.items()) for f, d in fams.items()} for m, fams in self.series.items()}


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
            if mode == m and q not in ("samples", ENGINE):
                seen.setdefault(family(q), c.tol)
        # \xa0 keeps each "family atol/rtol" on one line (textwrap splits only at ASCII white space)
        parts = [f"{fam}\xa0{seen[fam].atol:.0e}/{seen[fam].rtol:.0e}" for fam in FAMILY_ORDER if fam in seen]
        wrapped = textwrap.wrap(f"tolerances ({m}, atol/rtol): " + ", ".join(parts), width, subsequent_indent="    ")
        lines += [line.replace("\xa0", " ") for line in wrapped]
    return lines


def format_table(report, quantities, width=100):
    """One row per quantity: in each mode, the worst max abs and max rel over all steps, the share of its
    allowance atol + rtol * |pure| that the worst element used (the margin, whichever term decided), and OK
    or FAIL; then the tolerances each family was judged by."""
    worst = report.tally.worst
    modes = [m for m in ("lockstep", "free") if any(k[1] == m for k in worst)]
    names = [q for q, _ in quantities] + (["samples"] if any(q == "samples" for q, _ in worst) else [])
    if any(q == ENGINE for q, _ in worst):
        names.insert(0, ENGINE)
    name_width = max(len(n) for n in names) + 2
    cell = 9 + 9 + 10 + 6
    group = "".join(f"{' ' + m + ' ':-^{cell - 1}} " for m in modes)
    cols = "".join(f"{'max abs':>9}{'max rel':>9}{'used':>10}{'':6}" for _ in modes)
    lines = [f"{'':<{name_width}}{group}", f"{'quantity':<{name_width}}{cols}", "-" * (name_width + cell * len(modes))]
    for q in names:
        cells = ""
        for m in modes:
            c = worst.get((q, m))
            if c is None:
                cells += f"{'-':>9}{'-':>9}{'-':>10}{'':6}"
            elif q == ENGINE:
                cells += f"{'raised in ' + c.detail['phase']:>28}{'FAIL':>6}"
            elif q == "samples":
                cells += f"{int(c.max_abs):>9}{'differ':>9}{'':>10}{'OK' if c.ok else 'FAIL':>6}"
            elif c.nonfinite:
                cells += f"{'nan/inf':>9}{'':>9}{format_used(c.ratio):>10}{'FAIL':>6}"
            else:
                cells += (f"{c.max_abs:>9.1e}{c.max_rel:>9.1e}{format_used(c.ratio):>10}"
                          f"{'OK' if c.ok else 'FAIL':>6}")
        lines.append(f"{q:<{name_width}}{cells}")
    ref = getattr(report, "reference_name", "pure")
    lines.append(f"used: the worst element's |torch - {ref}| as a share of its allowance atol + rtol * |{ref}| "
                 "(FAIL above 100%)")
    lines += _tolerance_legend(worst, modes, width)
    return "\n".join(line.rstrip() for line in lines)


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


def write_json(report, path):
    write_json_doc(report.to_json(), path)


def plot_formats():
    """The file extensions matplotlib can write here (".png", ".svg", ".pdf", ...): --plot's format follows them."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return {"." + ext for ext in FigureCanvasAgg.get_supported_filetypes()}


PLOT_MAX_POINTS = 250  # per line: longer runs are drawn as the worst value of each bin of consecutive steps


def _binned(points, max_points=PLOT_MAX_POINTS):
    """(steps, values) with at most max_points entries: each the last step and the worst value of its bin."""
    per_bin = max(1, math.ceil(len(points) / max_points))
    steps, values = [], []
    for i in range(0, len(points), per_bin):
        chunk = points[i:i + per_bin]
        steps.append(chunk[-1][0])
        values.append(max(v for _, v in chunk))
    return steps, values, per_bin


def write_plot(report, path, series=None):
    """Each quantity family's worst error per step as a share of its own tolerance (log scale; above 1 fails),
    one panel per mode. Exact agreement (0) is marked on the bottom edge; long runs are binned (worst per bin).
    The format follows the file's extension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = series if series is not None else report.tally.series_by_family()
    modes = [m for m in ("lockstep", "free") if m in series]
    positive = [v for m in modes for pts in series[m].values() for _, v in pts if 0 < v < math.inf]
    floor = 10.0 ** math.floor(math.log10(min(positive))) / 10 if positive else 1e-6
    top = max([3.0] + [v * 3 for v in positive])
    colors = dict(zip(FAMILY_ORDER, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, len(modes), figsize=(6.4 * len(modes), 4.8), sharey=True, squeeze=False)
    binned_by = 1
    for ax, mode in zip(axes[0], modes):
        for fam in FAMILY_ORDER:
            if fam not in series[mode]:
                continue
            steps, values, per_bin = _binned(series[mode][fam])
            binned_by = max(binned_by, per_bin)
            shown = [min(v, top) if v > 0 else math.nan for v in values]  # inf (non-finite) is drawn at the top
            ax.plot(steps, shown, color=colors[fam], lw=1.2, label=fam, marker="." if len(steps) <= 80 else None,
                    ms=3)
            exact = [s for s, v in zip(steps, values) if v == 0]
            ax.plot(exact, [floor] * len(exact), ls="none", marker="|", ms=7, color=colors[fam])
        ax.axhline(1.0, color="crimson", ls="--", lw=1.4)
        ax.text(0.01, 1.15, "tolerance: fail above", color="crimson", fontsize=8, transform=ax.get_yaxis_transform())
        ax.set_yscale("log")
        ax.set_ylim(floor / 2, top)
        ax.set_title(f"{mode}: torch_ref ({report.run.dtype}) vs {getattr(report, 'reference_name', 'pure')}",
                     fontsize=10)
        ax.set_xlabel("step" + (f" (worst of each {binned_by} steps)" if binned_by > 1 else ""))
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("worst |error| / tolerance\n(| on the bottom edge: exactly equal)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("\n".join(textwrap.wrap(report.verdict_line(), 130)), fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
