"""``equinlp rl report``: a table of returns (mean and 95% t-interval over seeds) and learning curves.

Both read :func:`~equinlp.harness.results.load_runs`' frame of ``run`` envelopes: one row per env ×
method × seed with ``zero_shot``, ``final``, ``mean_over_curve`` and ``curve`` (``[{"step", "return"}]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from equinlp.apps.rl.qnet import METHODS
from equinlp.harness.results import format_interval, t_interval

LEGEND = (
    "returns: mean [95% t-interval over seeds]; zero-shot = the variant of the pre-trained DQN before further\n"
    "training; final = mean of the last three evaluations; mean_over_curve = area under the curve / steps"
)
COLUMNS = ("zero_shot", "final", "mean_over_curve")


def _method_order(column: pd.Series) -> pd.Series:
    return column.map({m: i for i, m in enumerate(METHODS)}) if column.name == "method" else column


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per env × method: seeds, and zero-shot / final / mean-over-curve returns as ``mean [low, high]``."""
    rows = []
    for (env, method), group in runs.groupby(["env", "method"], sort=False):
        row = {"env": env, "method": method, "seeds": len(group)}
        row.update({column: format_interval(group[column]) for column in COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["env", "method"], key=_method_order).set_index(["env", "method"])


def plot(runs: pd.DataFrame, path: str | Path) -> None:
    """Mean return against environment steps, one panel per environment, bands = 95% t-intervals over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(runs["env"]))
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        here = runs[runs["env"] == env]
        for method in [m for m in METHODS if m in set(here["method"])]:
            group = here[here["method"] == method]
            steps = [point["step"] for point in group["curve"].iloc[0]]
            returns = np.array([[point["return"] for point in curve] for curve in group["curve"]])  # [seeds, T]
            bands = np.array([t_interval(returns[:, t]) for t in range(returns.shape[1])])  # [T, 3]
            ax.plot(steps, bands[:, 0], label=method)
            ax.fill_between(steps, bands[:, 1], bands[:, 2], alpha=0.2)
        seeds = here["seed"].nunique()
        ax.set(title=f"{env} ({seeds} seeds)", xlabel="environment steps after pre-training", ylabel="greedy return")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
