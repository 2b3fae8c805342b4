"""The generic report: method × metric tables of seed means and t-intervals, method order, one matplotlib set-up.

A task declares its metrics (``Task.metrics``: name → higher is better); :func:`interval_table` turns the runs of
:func:`~equinlp.harness.results.load_runs` into one row per experiment and method with ``mean [low, high]`` over
seeds per metric, methods in the registry's order (:func:`method_rank`). Apps extend it only with their domain
columns and tables (SCAN's group, vision's epochs, bias's gaps and floors) and their figures, drawn on
:func:`pyplot` (the Agg back-end, chosen once here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from equinlp.harness.results import COMPARED, format_interval, t_interval


def method_rank(method: str) -> int:
    """A method's place in every report: the registry's order, ``base`` first; other names (bias's ``canonical``,
    ``relaxed-*``) after them."""
    from equinlp.methods.registry import method_names

    order = method_names(with_base=True)
    return order.index(method) if method in order else len(order)


def ordered_methods(methods: Iterable[str]) -> list[str]:
    """The distinct ``methods`` in report order (unregistered names in order of appearance, after the rest)."""
    return sorted(dict.fromkeys(methods), key=method_rank)


def sort_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame`` sorted by ``keys`` (methods in report order, the other keys by value) and indexed by them."""
    by_method = lambda column: column.map(method_rank) if column.name == "method" else column  # noqa: E731
    return frame.sort_values(keys, key=by_method, kind="stable").set_index(keys)


def with_settings(runs: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """``runs`` with a column for each setting in ``names``, read from each run's ``config``."""
    return runs.assign(**{name: [config[name] for config in runs["config"]] for name in names})


def interval_table(
    runs: pd.DataFrame,
    keys: list[str],
    metrics: Mapping[str, str],
    *,
    digits: int = 2,
    scale: float = 1.0,
    seeds: bool = True,
    counts: bool = False,
    extra: Mapping[str, Callable[[pd.DataFrame], Any]] | None = None,
    columns_name: str | None = None,
) -> pd.DataFrame:
    """One row per ``keys`` (``method`` among them), sorted with methods in report order.

    Columns: ``seeds`` (the number of runs, when ``seeds``), then for each metric ``name → label`` the
    ``mean [low, high]`` of ``scale × value`` over the runs (``counts``: followed by `` (n)``), then each ``extra``
    column ``label → f(runs of the row)``. ``columns_name`` names the column axis (SCAN's ``stage``).
    """
    rows = []
    for values, here in runs.groupby(keys, sort=False):
        row = dict(zip(keys, values, strict=True))
        if seeds:
            row["seeds"] = len(here)
        for name, label in metrics.items():
            cell = format_interval(here[name].astype(float) * scale, digits)
            row[label] = f"{cell} ({len(here)})" if counts else cell
        row.update({label: compute(here) for label, compute in (extra or {}).items()})
        rows.append(row)
    table = sort_rows(pd.DataFrame(rows), keys)
    table.columns.name = columns_name
    return table


def best_methods(runs: pd.DataFrame, metrics: Mapping[str, bool]) -> pd.DataFrame | None:
    """The best method of each experiment for each metric the task declares (``name → higher is better``).

    An experiment is the runs that share every coordinate but ``method`` and ``seed``. A cell names the method
    with the best seed mean (the highest, or the lowest where lower is better), then the methods that these seeds
    cannot tell apart from it (``≈``: their 95% t-intervals overlap), or ``(1 seed)`` where there is no interval.
    Columns are named ``zero_shot ↑`` (higher is better) or ``finetune_loss ↓`` (lower is better); a metric no
    method changes is left out. None when the runs compare fewer than two methods on any such metric.
    """
    names = [name for name in metrics if name in runs.columns and pd.api.types.is_numeric_dtype(runs[name])]
    if not names or "method" not in runs.columns or runs["method"].nunique() < 2:
        return None
    keys = [key for key in dict.fromkeys(k for cell in runs.attrs["cells"] for k in cell) if key not in COMPARED]
    experiments = list(runs.groupby(keys, sort=False)) if keys else [(("all runs",), runs)]
    # a metric no method changes (vision's upright accuracy, the pre-trained network's) has no best method
    names = [name for name in names if any(here.groupby("method")[name].mean().nunique() > 1 for _, here in experiments)]
    if not names:
        return None
    rows = []
    for values, here in experiments:
        row = dict(zip(keys or ["experiment"], values, strict=True))
        row.update({f"{name} {'↑' if metrics[name] else '↓'}": _best(here, name, metrics[name]) for name in names})
        rows.append(row)
    return pd.DataFrame(rows).set_index(keys or ["experiment"])


def _best(runs: pd.DataFrame, metric: str, higher: bool) -> str:
    """``"lambda ≈ equitune, equizero"``: the best method by seed mean, and those whose intervals overlap its own."""
    recorded = {method: values.dropna() for method, values in runs.groupby("method", sort=False)[metric]}
    intervals = {method: t_interval(values) for method, values in recorded.items() if len(values)}
    if len(intervals) == 1:
        return f"{next(iter(intervals))} (the only method)"  # the others do not record it here
    if len({mean for mean, _, _ in intervals.values()}) == 1:
        return "all equal"
    sign = 1 if higher else -1
    best = min(intervals, key=lambda method: (-sign * intervals[method][0], method_rank(method)))
    _, low, high = intervals[best]
    if np.isnan(low):
        return f"{best} (1 seed)"
    close = [m for m in ordered_methods(intervals) if m != best and intervals[m][1] <= high and intervals[m][2] >= low]
    return f"{best} ≈ {', '.join(close)}" if close else best


def curve_bands(runs: pd.DataFrame, x: str, y: str, scale: float = 1.0) -> tuple[list, np.ndarray]:
    """``(x values, [T, 3] mean/low/high)``: the t-interval over runs at each point of their ``curve`` (same x's)."""
    points = [point[x] for point in runs["curve"].iloc[0]]
    values = scale * np.array([[point[y] for point in curve] for curve in runs["curve"]])  # [runs, T]
    return points, np.array([t_interval(values[:, t]) for t in range(values.shape[1])])


def plot_bands(ax, runs: pd.DataFrame, x: str, y: str, label: Callable[[str], str] = str, scale: float = 1.0, **style) -> list:
    """One line per method (report order) with its t-interval band over seeds; returns the x values."""
    points: list = []
    for method in ordered_methods(runs["method"]):
        points, bands = curve_bands(runs[runs["method"] == method], x, y, scale)
        ax.plot(points, bands[:, 0], label=label(method), **style)
        ax.fill_between(points, bands[:, 1], bands[:, 2], alpha=0.2)
    return points


def pyplot():
    """``matplotlib.pyplot`` on the Agg back-end (files only, no display): every report's figures are drawn with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """Lay out, write (120 dpi) and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
