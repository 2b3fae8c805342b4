"""SCAN's table (method × split, mean and t-interval over seeds) and bar plot, from the harness's frame of runs.

The frame is :func:`~equinlp.harness.results.load_runs`'s: one row per (split, cell, method, seed) with the
metrics ``zero_shot`` and ``fine_tuned`` (fractions) and the run's ``config`` (its group).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equinlp.harness.report import interval_table, ordered_methods, pyplot, save_figure, with_settings
from equinlp.harness.results import t_interval

STAGES = {"zero_shot": "zero-shot", "fine_tuned": "fine-tuned"}
ROWS = ["split", "group", "cell", "method"]


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """``mean [low, high] (n)`` cells: rows (split, group, cell, method), columns zero-shot / fine-tuned."""
    runs = with_settings(runs, ("group",))  # also the base rows' run group
    return interval_table(runs, ROWS, STAGES, scale=100, seeds=False, counts=True, columns_name="stage")


def plot(runs: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bars per split and cell: methods on the axis, zero-shot and fine-tuned side by side (t-interval bars)."""
    plt = pyplot()
    runs = with_settings(runs, ("group",))
    panels = runs[["split", "group", "cell"]].drop_duplicates().sort_values(["split", "group", "cell"]).values.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (split, group, cell) in zip(axes[0], panels, strict=True):
        part = runs[(runs.split == split) & (runs.group == group) & (runs.cell == cell)]
        methods = ordered_methods(part["method"])
        for k, (metric, stage) in enumerate(STAGES.items()):
            bands = [t_interval(100 * part.loc[part["method"] == method, metric]) for method in methods]
            mean = [m for m, _, _ in bands]
            below = [0.0 if pd.isna(lo) else m - lo for m, lo, _ in bands]
            error = [below, [0.0 if pd.isna(hi) else hi - m for m, _, hi in bands]]
            positions = [i + (k - 0.5) * 0.38 for i in range(len(methods))]
            ax.bar(positions, mean, 0.38, yerr=error, label=stage, capsize=3)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylim(0, 100)
        ax.set_title(f"{split} · {group} · {cell}")
        ax.set_ylabel("exact match (%)")
    axes[0][0].legend(loc="upper left", framealpha=0.9)
    path = Path(path)
    save_figure(fig, path)
    return path
