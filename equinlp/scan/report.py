"""Gather SCAN result JSONs into a table (method × split, mean ± std over seeds) and a bar plot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

METHOD_ORDER = ["base", "equitune", "equizero", "lambda"]
STAGES = ["zero-shot", "fine-tuned"]


def load_results(results_dir: str | Path) -> pd.DataFrame:
    rows = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))]
    if not rows:
        raise FileNotFoundError(f"no result JSONs in {results_dir}; run `equinlp scan run --out {results_dir}` first")
    for row in rows:  # the run's group, also for its base rows (whose own action is trivial)
        row["group"] = row.get("config", {}).get("group", row.get("group", ""))
    frame = pd.DataFrame(rows)[["split", "group", "cell", "method", "stage", "seed", "accuracy"]]
    frame["accuracy"] *= 100
    return frame


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows (split, group, cell, method); columns per stage: mean, std and number of seeds (accuracy in %)."""
    stats = frame.groupby(["split", "group", "cell", "method", "stage"])["accuracy"].agg(["mean", "std", "count"]).reset_index()
    stats["method"] = pd.Categorical(stats["method"], [m for m in METHOD_ORDER if m in set(stats["method"])], ordered=True)
    return stats.sort_values(["split", "group", "cell", "method", "stage"])


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """``mean ± std (n)`` cells: rows (split, group, cell, method), columns zero-shot / fine-tuned."""
    stats = summary(frame)
    std = stats["std"].fillna(0.0)
    stats["cell_text"] = (
        stats["mean"].map("{:.2f}".format) + " ± " + std.map("{:.2f}".format) + stats["count"].map(" ({})".format)
    )
    wide = stats.pivot_table(
        index=["split", "group", "cell", "method"], columns="stage", values="cell_text", aggfunc="first", observed=True
    )
    return wide.reindex(columns=[s for s in STAGES if s in wide.columns])


def plot(frame: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bars per split and cell: methods on the axis, zero-shot and fine-tuned side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summary(frame)
    panels = stats[["split", "group", "cell"]].drop_duplicates().values.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (split, group, cell) in zip(axes[0], panels, strict=True):
        part = stats[(stats.split == split) & (stats.group == group) & (stats.cell == cell)]
        methods = [m for m in METHOD_ORDER if m in set(part["method"])]
        for k, stage in enumerate(STAGES):
            rows = part[part.stage == stage].set_index("method").reindex(methods)
            positions = [i + (k - 0.5) * 0.38 for i in range(len(methods))]
            ax.bar(positions, rows["mean"], 0.38, yerr=rows["std"].fillna(0), label=stage, capsize=3)
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
