"""``equinlp rl report``: a table of returns (mean and bootstrap 95% interval over seeds) and learning curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from equinlp.results import interval, load_runs
from equinlp.rl.qnet import METHODS

__all__ = ["interval", "load_runs", "plot", "print_report", "table"]


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per env × method: seeds, and zero-shot / final / mean-over-curve returns as ``mean [low, high]``."""
    rows = []
    for (env, method), group in runs.groupby(["env", "method"], sort=False):
        row = {"env": env, "method": method, "seeds": len(group)}
        for column in ("zero_shot", "final", "mean_over_curve"):
            mean, low, high = interval(group[column])
            row[column] = f"{mean:.2f} [{low:.2f}, {high:.2f}]"
        rows.append(row)
    order = {m: i for i, m in enumerate(METHODS)}
    return pd.DataFrame(rows).sort_values(["env", "method"], key=lambda c: c.map(order) if c.name == "method" else c)


def plot(runs: pd.DataFrame, path: str | Path) -> None:
    """Mean return against environment steps, one panel per environment, bands = bootstrap 95% intervals."""
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
            bands = np.array([interval(returns[:, t]) for t in range(returns.shape[1])])
            ax.plot(steps, bands[:, 0], label=method)
            ax.fill_between(steps, bands[:, 1], bands[:, 2], alpha=0.2)
        ax.set(title=f"{env} ({len(group)} seeds)", xlabel="environment steps after pre-training", ylabel="greedy return")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_report(results: str | Path, plot_path: str | Path | None = None) -> pd.DataFrame:
    runs = load_runs(results)
    summary = table(runs)
    print("returns: mean [bootstrap 95% interval over seeds]; zero-shot = the variant of the pre-trained DQN before")
    print("further training; final = mean of the last three evaluations; mean_over_curve = area under the curve / steps")
    print(summary.to_string(index=False))
    folder = Path(results) if Path(results).is_dir() else Path(results).parent
    plot_path = Path(plot_path) if plot_path else folder / "rl.png"
    plot(runs, plot_path)
    print(f"plot: {plot_path}")
    return summary
