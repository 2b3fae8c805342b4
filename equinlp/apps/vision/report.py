"""Vision's tables and figures, built from :func:`~equinlp.harness.results.load_runs`' frame.

CNN runs (``equinlp vision run``) give one row per dataset × architecture × method, with the zero-shot
(epoch 0) and final accuracy as the mean and 95% t-interval over seeds, and a figure in the style of the
paper's: top-1 against fine-tuning epochs, one panel per architecture. CLIP runs (``equinlp vision clip``)
give top-1 / top-5 per method and a curve against fine-tuning steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from equinlp.apps.vision.wrap import METHODS
from equinlp.harness import format_interval, t_interval

LABELS = {"base": "base", "equitune": "equitune", "equizero": "equizero", "lambda": "λ-equitune"}
_ORDER = {m: i for i, m in enumerate(METHODS)}
CNN_TITLE = (
    "top-1 (%) on the rotated test set: mean [95% t-interval over seeds]; epoch 0 = before fine-tuning\n"
    "(λ-equitune: after training its λ-net alone); final = after the last fine-tuning epoch"
)


def _by_method(column: pd.Series) -> pd.Series:
    return column.map(_ORDER) if column.name == "method" else column


def _with_settings(runs: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """``runs`` with columns for the settings ``names`` (read from each run's ``config``)."""
    return runs.assign(**{name: [config[name] for config in runs["config"]] for name in names})


def cnn_tables(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per dataset × arch × method: seeds, zero-shot and final top-1 (%) as ``mean [low, high]``; the
    pre-trained networks' upright accuracy."""
    runs = _with_settings(runs, ("dataset", "group"))
    rows = []
    for (dataset, group, arch, method), here in runs.groupby(["dataset", "group", "arch", "method"], sort=False):
        row = {"dataset": dataset, "group": group, "arch": arch, "method": method, "seeds": len(here)}
        for column, name in (("zero_shot", "epoch 0"), ("final", "final")):
            row[name] = format_interval(here[column], digits=1, scale=100)
        row["epochs"] = int(here["curve"].iloc[0][-1]["epoch"])
        rows.append(row)
    keys = ["dataset", "group", "arch", "method"]
    table = pd.DataFrame(rows).sort_values(keys, key=_by_method).set_index(keys)
    upright = runs.groupby(["dataset", "arch"])["upright"].first().mul(100).round(1).to_frame("upright top-1 (%)")
    return [(CNN_TITLE, table), ("the pre-trained networks on the upright test set", upright)]


def clip_tables(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per model × dataset × group × method: zero-shot and final top-1 / top-5 (%)."""
    runs = _with_settings(runs, ("model", "dataset", "group"))
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
    keys = ["model", "dataset", "group", "method"]
    table = pd.DataFrame(rows).sort_values(keys, key=_by_method).set_index(keys)
    return [("CLIP top-1 / top-5 (%) on randomly transformed test images", table)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cnn(runs: pd.DataFrame, path: str | Path) -> None:
    """Top-1 against fine-tuning epochs, one panel per dataset × arch; bands = 95% t-intervals over seeds."""
    plt = _pyplot()
    runs = _with_settings(runs, ("dataset", "group"))
    panels = list(dict.fromkeys(zip(runs["dataset"], runs["arch"], runs["group"], strict=True)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (dataset, arch, group_name) in zip(axes[0], panels, strict=True):
        here = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch) & (runs["group"] == group_name)]
        for method in [m for m in METHODS if m in set(here["method"])]:
            group = here[here["method"] == method]
            epochs = [point["epoch"] for point in group["curve"].iloc[0]]
            acc = 100 * np.array([[point["accuracy"] for point in curve] for curve in group["curve"]])  # [seeds, E+1]
            bands = np.array([t_interval(acc[:, e]) for e in range(acc.shape[1])])
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
    plt = _pyplot()
    runs = _with_settings(runs, ("model", "dataset", "group"))
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
