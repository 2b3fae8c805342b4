"""``equinlp rl report``: a table of returns (mean and 95% t-interval over seeds) and learning curves.

Both read :func:`~equinlp.harness.results.load_runs`' frame of ``run`` envelopes: one row per env ×
method × seed with ``zero_shot``, ``final``, ``mean_over_curve`` and ``curve`` (``[{"step", "return"}]``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equinlp.harness.report import interval_table, plot_bands, pyplot, save_figure

LEGEND = (
    "returns: mean [95% t-interval over seeds]; zero-shot = the variant of the pre-trained DQN before further\n"
    "training; final = mean of the last three evaluations; mean_over_curve = area under the curve / steps"
)
COLUMNS = ("zero_shot", "final", "mean_over_curve")


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per env × method: seeds, and zero-shot / final / mean-over-curve returns as ``mean [low, high]``."""
    return interval_table(runs, ["env", "method"], {column: column for column in COLUMNS})


def plot(runs: pd.DataFrame, path: str | Path) -> None:
    """Mean return against environment steps, one panel per environment, bands = 95% t-intervals over seeds."""
    plt = pyplot()
    envs = list(dict.fromkeys(runs["env"]))
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        here = runs[runs["env"] == env]
        plot_bands(ax, here, "step", "return")
        seeds = here["seed"].nunique()
        ax.set(title=f"{env} ({seeds} seeds)", xlabel="environment steps after pre-training", ylabel="greedy return")
        ax.legend()
    save_figure(fig, path)
