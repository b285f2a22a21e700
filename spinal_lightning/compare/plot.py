"""Plot of test accuracy against head parameters, one point per head."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_accuracy_against_head_params(
    rows: list[dict[str, Any]], results: list[dict[str, Any]], path: Path, title: str
) -> bool:
    """Draw each head's mean test accuracy (bar: standard deviation over seeds) and its single runs.

    Returns False, and writes nothing, when no head has a successful run.
    """
    plotted = [row for row in rows if row["test_acc_mean"] is not None and row["head_params"]]
    if not plotted:
        return False

    # Agg renders to files only, so the plot works without a display (servers, CI).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    figure, axes = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for row in plotted:
        seeds = [run for run in results if run["label"] == row["label"] and run["status"] == "ok"]
        axes.scatter(
            [row["head_params"]] * len(seeds),
            [100 * run["test_acc"] for run in seeds],
            s=14,
            alpha=0.45,
            color="grey",
            zorder=2,
        )
        axes.errorbar(
            row["head_params"],
            100 * row["test_acc_mean"],
            yerr=100 * row["test_acc_std"] if row["test_acc_std"] is not None else None,
            fmt="o",
            markersize=8,
            capsize=4,
            zorder=3,
            label=f"{row['label']} ({row['head_class']}, {row['runs_ok']} runs)",
        )
        axes.annotate(
            row["label"],
            (row["head_params"], 100 * row["test_acc_mean"]),
            textcoords="offset points",
            xytext=(8, 6),
        )

    counts = [row["head_params"] for row in plotted]
    if max(counts) / min(counts) > 20:
        axes.set_xscale("log")
    else:
        # Leave room for the labels beside the outermost points.
        span = max(max(counts) - min(counts), 0.1 * max(counts))
        axes.set_xlim(min(counts) - 0.3 * span, max(counts) + 0.5 * span)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))

    axes.margins(y=0.15)
    axes.set_xlabel("head parameters")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", title="mean ± std over seeds; grey: single runs", title_fontsize="small")
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
