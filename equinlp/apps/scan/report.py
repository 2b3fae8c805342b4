"""SCAN's table (method × split, mean and t-interval over seeds) and bar plot, from the harness's frame of runs.

The frame is :func:`~equinlp.harness.results.load_runs`'s: one row per (split, cell, method, seed) with the
metrics ``zero_shot`` and ``fine_tuned`` (fractions) and the run's ``config`` (its group).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equinlp.harness.results import format_interval, t_interval

METHOD_ORDER = ["base", "equitune", "equizero", "lambda"]
STAGES = {"zero_shot": "zero-shot", "fine_tuned": "fine-tuned"}
ROWS = ["split", "group", "cell", "method"]


def accuracies(runs: pd.DataFrame) -> pd.DataFrame:
    """Long format: one row per (split, group, cell, method, seed, stage) with ``accuracy`` in %."""
    frame = runs.assign(group=runs["config"].map(lambda config: config["group"]))  # also the base rows' run group
    frame = frame.melt(id_vars=[*ROWS, "seed"], value_vars=list(STAGES), var_name="stage", value_name="accuracy")
    frame["stage"] = frame["stage"].map(STAGES)
    frame["accuracy"] *= 100
    frame["method"] = pd.Categorical(frame["method"], [m for m in METHOD_ORDER if m in set(frame["method"])], ordered=True)
    return frame.sort_values([*ROWS, "stage", "seed"])


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """``mean [low, high] (n)`` cells: rows (split, group, cell, method), columns zero-shot / fine-tuned."""
    frame = accuracies(runs)
    cells = frame.groupby([*ROWS, "stage"], observed=True)["accuracy"].agg(lambda a: f"{format_interval(a)} ({len(a)})")
    wide = cells.unstack("stage")
    return wide.reindex(columns=[s for s in STAGES.values() if s in wide.columns])


def plot(runs: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bars per split and cell: methods on the axis, zero-shot and fine-tuned side by side (t-interval bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = accuracies(runs)
    stats = frame.groupby([*ROWS, "stage"], observed=True)["accuracy"].agg(lambda a: t_interval(a)).reset_index()
    panels = stats[["split", "group", "cell"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (split, group, cell) in zip(axes[0], panels, strict=True):
        part = stats[(stats.split == split) & (stats.group == group) & (stats.cell == cell)]
        methods = [m for m in METHOD_ORDER if m in set(part["method"])]
        for k, stage in enumerate(STAGES.values()):
            rows = part[part.stage == stage].set_index("method").reindex(methods)["accuracy"]
            mean = [m for m, _, _ in rows]
            error = [[0.0 if pd.isna(lo) else m - lo for m, lo, _ in rows], [0.0 if pd.isna(hi) else hi - m for m, _, hi in rows]]
            positions = [i + (k - 0.5) * 0.38 for i in range(len(methods))]
            ax.bar(positions, mean, 0.38, yerr=error, label=stage, capsize=3)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylim(0, 100)
        ax.set_title(f"{split} · {group} · {cell}")
        ax.set_ylabel("exact match (%)")
    axes[0][0].legend(loc="upper left", framealpha=0.9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
