"""``equinlp vision report``: accuracy tables (mean and bootstrap 95% interval over seeds) and curves.

CNN runs (``equinlp vision run``) give one row per dataset × architecture × method, with the zero-shot
(epoch 0) and final accuracy, and a figure in the style of the paper's: top-1 against fine-tuning epochs,
one panel per architecture. CLIP runs (``equinlp vision clip``) give top-1 / top-5 per method and a curve
against fine-tuning steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from equinlp.results import interval, load_runs
from equinlp.vision.wrap import METHODS

LABELS = {"base": "base", "equitune": "equitune", "equizero": "equizero", "lambda": "λ-equitune"}
_ORDER = {m: i for i, m in enumerate(METHODS)}


def _by_method(column: pd.Series) -> pd.Series:
    return column.map(_ORDER) if column.name == "method" else column


def cnn_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset × arch × method: seeds, zero-shot and final top-1 (%) as ``mean [low, high]``, and the gain."""
    rows = []
    for (dataset, arch, method), group in runs.groupby(["dataset", "arch", "method"], sort=False):
        row = {"dataset": dataset, "arch": arch, "method": method, "seeds": len(group)}
        for column, name in (("zero_shot", "epoch 0"), ("final", "final")):
            mean, low, high = interval(100 * group[column])
            row[name] = f"{mean:.1f} [{low:.1f}, {high:.1f}]"
        row["epochs"] = int(group["curve"].iloc[0][-1]["epoch"])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["dataset", "arch", "method"], key=_by_method)


def clip_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model × dataset × group × method: zero-shot and final top-1 / top-5 (%)."""
    rows = []
    for _, run in runs.iterrows():
        first, last = run["curve"][0], run["curve"][-1]
        rows.append(
            {
                "model": run["model"],
                "dataset": run["dataset"],
                "group": run["group"],
                "method": run["method"],
                "zero-shot top-1": round(first["top1"], 2),
                "zero-shot top-5": round(first["top5"], 2),
                "steps": last["step"],
                "final top-1": round(last["top1"], 2),
                "final top-5": round(last["top5"], 2),
            }
        )
    return pd.DataFrame(rows).sort_values(["model", "dataset", "group", "method"], key=_by_method)


def plot_cnn(runs: pd.DataFrame, path: str | Path) -> None:
    """Top-1 against fine-tuning epochs, one panel per dataset × arch; bands = bootstrap 95% over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(zip(runs["dataset"], runs["arch"], runs["group"], strict=True)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (dataset, arch, group_name) in zip(axes[0], panels, strict=True):
        here = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch)]
        for method in [m for m in METHODS if m in set(here["method"])]:
            group = here[here["method"] == method]
            epochs = [point["epoch"] for point in group["curve"].iloc[0]]
            acc = 100 * np.array([[point["accuracy"] for point in curve] for curve in group["curve"]])  # [seeds, E+1]
            bands = np.array([interval(acc[:, e]) for e in range(acc.shape[1])])
            ax.plot(epochs, bands[:, 0], marker="o", label=LABELS[method])
            ax.fill_between(epochs, bands[:, 1], bands[:, 2], alpha=0.2)
        seeds = f"{len(group)} seed" + ("s" if len(group) > 1 else "")
        ax.set(title=f"{arch}, {group_name}-{dataset} ({seeds})", xlabel="fine-tuning epoch", ylabel="top-1 (%)")
        ax.set_xticks(epochs)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_clip(runs: pd.DataFrame, path: str | Path) -> None:
    """Top-1 against training steps, one line per method (the paper's CLIP fine-tuning figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for _, run in runs.iterrows():
        ax.plot(
            [p["step"] for p in run["curve"]],
            [p["top1"] for p in run["curve"]],
            marker="o",
            label=f"{LABELS[run['method']]} ({run['model']}, {run['group']}-{run['dataset']})",
        )
    ax.set(xlabel="training steps", ylabel="top-1 (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_report(results: str | Path, plot_path: str | Path | None = None) -> pd.DataFrame:
    """Print the table for the runs under ``results`` and save the figure (default ``RESULTS/vision.png``)."""
    runs = load_runs(results)
    folder = Path(results)
    plot_path = Path(plot_path) if plot_path else folder / "vision.png"
    if "arch" in runs.columns:
        summary = cnn_table(runs)
        print("top-1 (%) on the rotated test set: mean [bootstrap 95% interval over seeds]; epoch 0 = before")
        print("fine-tuning (λ-equitune: after training its λ-net alone); final = after the last fine-tuning epoch")
        print(summary.to_string(index=False))
        plot_cnn(runs, plot_path)
    else:
        summary = clip_table(runs)
        print("CLIP top-1 / top-5 (%) on randomly transformed test images")
        print(summary.to_string(index=False))
        plot_clip(runs, plot_path)
    print(f"plot: {plot_path}")
    return summary
