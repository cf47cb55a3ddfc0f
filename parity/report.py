"""Reporting: the per-quantity table (llm.c style), the JSON report, and the error-per-step plot."""

import io
import json
import math
from collections import defaultdict
from pathlib import Path

from pure.outputs import atomic_write_bytes

from .quantities import family

FAMILY_ORDER = ["activation", "logits", "loss", "act_grad", "param_grad", "adam_m", "adam_v", "param", "samples"]


def worst_by_quantity(checks):
    """(quantity, mode) -> the check with the largest max_abs (a failing one first)."""
    worst = {}
    for c in checks:
        key = (c.quantity, c.mode)
        w = worst.get(key)
        if w is None or (not c.ok and w.ok) or (c.ok == w.ok and c.max_abs > w.max_abs):
            worst[key] = c
    return worst


def format_table(report, quantities):
    """One row per quantity: in each mode, the worst max abs / max rel over all steps, the tolerance
    (atol/rtol) it was judged by, and OK or FAIL."""
    worst = worst_by_quantity(report.checks)
    modes = [m for m in ("lockstep", "free") if any(k[1] == m for k in worst)]
    names = [q for q, _ in quantities] + ["samples"]
    width = max(len(n) for n in names) + 2
    cell = 11 + 9 + 14 + 6
    group = "".join(f"{' ' + m + ' ':-^{cell - 2}}  " for m in modes)
    cols = "".join(f"{'max abs':>11}{'max rel':>9}{'atol/rtol':>14}{'':>6}" for _ in modes)
    lines = [f"{'':<{width}}{group}", f"{'quantity':<{width}}{cols}", "-" * (width + cell * len(modes))]
    for q in names:
        cells = ""
        for m in modes:
            c = worst.get((q, m))
            if c is None:
                cells += f"{'-':>11}{'-':>9}{'':>14}{'':>6}"
            elif q == "samples":
                cells += f"{int(c.max_abs):>11}{'differ':>9}{'equal strings':>14}{'OK' if c.ok else 'FAIL':>6}"
            else:
                tol = f"{c.tol.atol:.0e}/{c.tol.rtol:.0e}"
                cells += f"{c.max_abs:>11.2e}{c.max_rel:>9.1e}{tol:>14}{'OK' if c.ok else 'FAIL':>6}"
        lines.append(f"{q:<{width}}{cells}")
    return "\n".join(lines)


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


def series_by_family(checks):
    """mode -> family -> list of (step, worst max_rel over that family's quantities)."""
    acc = defaultdict(lambda: defaultdict(dict))
    for c in checks:
        fam = family(c.quantity)
        if fam == "samples":
            continue
        cur = acc[c.mode][fam].get(c.step, 0.0)
        acc[c.mode][fam][c.step] = max(cur, c.max_rel)
    return {m: {f: sorted(d.items()) for f, d in fams.items()} for m, fams in acc.items()}


def plot_formats():
    """The file extensions matplotlib can write here (".png", ".svg", ".pdf", ...): --plot's format follows them."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return {"." + ext for ext in FigureCanvasAgg.get_supported_filetypes()}


def write_plot(report, path):
    """Max relative error per step for each quantity family, log scale, one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = series_by_family(report.checks)
    modes = [m for m in ("lockstep", "free") if m in series]
    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 4.5), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for fam in FAMILY_ORDER:
            if fam in series[mode]:
                steps, rel = zip(*series[mode][fam])
                ax.plot(steps, [max(r, 1e-18) for r in rel], label=fam, lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{mode}: pure vs torch_ref ({report.run.dtype})")
        ax.set_xlabel("step")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("max relative error (floored at 1e-18)")
    axes[0][-1].legend(fontsize=8, loc="upper left")
    fig.suptitle(report.verdict_line(), fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
