"""Vision's tables and figures, built from :func:`~equinlp.harness.results.load_runs`' frame.

CNN runs (``equinlp vision run``) give one row per dataset × architecture × method, with the zero-shot
(epoch 0) and final accuracy as the mean and 95% t-interval over seeds, and a figure in the style of the
paper's: top-1 against fine-tuning epochs, one panel per architecture. CLIP runs (``equinlp vision clip``)
give top-1 / top-5 per method and a curve against fine-tuning steps.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equinlp.harness.report import interval_table, plot_bands, pyplot, save_figure, sort_rows, with_settings

LABELS = {"base": "base", "equitune": "equitune", "equizero": "equizero", "lambda": "λ-equitune"}
CNN_TITLE = (
    "top-1 (%) on the rotated test set: mean [95% t-interval over seeds]; epoch 0 = before fine-tuning\n"
    "(λ-equitune: after training its λ-net alone); final = after the last fine-tuning epoch"
)


def cnn_tables(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per dataset × arch × method: seeds, zero-shot and final top-1 (%) as ``mean [low, high]``; the
    pre-trained networks' upright accuracy."""
    runs = with_settings(runs, ("dataset", "group"))
    epochs = {"epochs": lambda here: int(here["curve"].iloc[0][-1]["epoch"])}
    metrics = {"zero_shot": "epoch 0", "final": "final"}
    table = interval_table(runs, ["dataset", "group", "arch", "method"], metrics, digits=1, scale=100, extra=epochs)
    upright = runs.groupby(["dataset", "arch"])["upright"].first().mul(100).round(1).to_frame("upright top-1 (%)")
    return [(CNN_TITLE, table), ("the pre-trained networks on the upright test set", upright)]


def clip_tables(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per model × dataset × group × method: zero-shot and final top-1 / top-5 (%)."""
    runs = with_settings(runs, ("model", "dataset", "group"))
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
    table = sort_rows(pd.DataFrame(rows), keys)
    return [("CLIP top-1 / top-5 (%) on randomly transformed test images", table)]


def plot_cnn(runs: pd.DataFrame, path: str | Path) -> None:
    """Top-1 against fine-tuning epochs, one panel per dataset × arch; bands = 95% t-intervals over seeds."""
    plt = pyplot()
    runs = with_settings(runs, ("dataset", "group"))
    panels = list(dict.fromkeys(zip(runs["dataset"], runs["arch"], runs["group"], strict=True)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (dataset, arch, group_name) in zip(axes[0], panels, strict=True):
        here = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch) & (runs["group"] == group_name)]
        epochs = plot_bands(ax, here, "epoch", "accuracy", LABELS.get, scale=100, marker="o")
        seeds = here["seed"].nunique()
        ax.set(title=f"{arch}, {group_name}-{dataset} ({seeds} seed{'s' * (seeds > 1)})", xlabel="fine-tuning epoch")
        ax.set(ylabel="top-1 (%)")
        ax.set_xticks(epochs)
        ax.legend()
    save_figure(fig, path)


def plot_clip(runs: pd.DataFrame, path: str | Path) -> None:
    """Top-1 against training steps, one line per method (the paper's CLIP fine-tuning figure)."""
    plt = pyplot()
    runs = with_settings(runs, ("model", "dataset", "group"))
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
    save_figure(fig, path)
