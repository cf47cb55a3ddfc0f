"""The error-per-step plot: each quantity family's worst error per step as a share of its tolerance."""

import io
import math
import textwrap
from pathlib import Path

from pure.outputs import atomic_write_bytes

from .quantities import FAMILY_ORDER


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


EXACT_STAGGER = 1.35  # each family's "exactly equal" marks sit this factor above the previous family's


def figure(report, series=None):
    """The matplotlib figure of write_plot (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = series if series is not None else report.tally.series_by_family()
    modes = [m for m in ("lockstep", "free") if m in series]
    positive = [v for m in modes for pts in series[m].values() for _, v in pts if 0 < v < math.inf]
    floor = 10.0 ** math.floor(math.log10(min(positive))) / 10 if positive else 1e-6
    lowest = floor / EXACT_STAGGER ** len(FAMILY_ORDER)  # the exact marks of every family fit above this
    top = max([3.0] + [v * 3 for v in positive])
    colors = dict(zip(FAMILY_ORDER, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, len(modes), figsize=(6.4 * len(modes), 4.8), sharey=True, squeeze=False)
    binned_by = 1
    for ax, mode in zip(axes[0], modes):
        for k, fam in enumerate(FAMILY_ORDER):
            if fam not in series[mode]:
                continue
            steps, values, per_bin = _binned(series[mode][fam])
            binned_by = max(binned_by, per_bin)
            shown = [min(v, top) if v > 0 else math.nan for v in values]  # inf (non-finite) is drawn at the top
            ax.plot(steps, shown, color=colors[fam], lw=1.2, label=fam, marker="." if len(steps) <= 80 else None,
                    ms=3)
            exact = [s for s, v in zip(steps, values) if v == 0]
            # staggered per family, so that families agreeing exactly at the same step do not hide each other
            ax.plot(exact, [lowest * EXACT_STAGGER ** k] * len(exact), ls="none", marker="|", ms=7, color=colors[fam])
        ax.axhline(1.0, color="crimson", ls="--", lw=1.4)
        ax.text(0.01, 1.15, "tolerance: fail above", color="crimson", fontsize=8, transform=ax.get_yaxis_transform())
        ax.set_yscale("log")
        ax.set_ylim(lowest / 2, top)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers, even on a 3-step run
        ax.set_title(f"{mode}: torch_ref ({report.dtype}) vs {report.reference}", fontsize=10)
        ax.set_xlabel("step" + (f" (worst of each {binned_by} steps)" if binned_by > 1 else ""))
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("worst |error| / tolerance\n(| at the bottom: exactly equal)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("\n".join(textwrap.wrap(report.verdict_line, 130)), fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def write_plot(report, path, series=None):
    """Each quantity family's worst error per step as a share of its own tolerance (log scale; above 1 fails),
    one panel per mode. Exact agreement (0) is marked on the bottom edge; long runs are binned (worst per bin).
    The format follows the file's extension; `path` may also be a binary file object (PNG)."""
    import matplotlib.pyplot as plt

    fig = figure(report, series)
    to_file = isinstance(path, (str, Path))
    buffer = io.BytesIO() if to_file else path
    try:
        fig.savefig(buffer, format=(Path(path).suffix.lstrip(".").lower() or "png") if to_file else "png", dpi=110)
    finally:
        plt.close(fig)
    if to_file:
        atomic_write_bytes(path, buffer.getvalue())
