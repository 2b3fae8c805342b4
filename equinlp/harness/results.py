"""Reading run envelopes back: one loader for every task, and seed-level intervals.

``load_runs(out)`` returns one row per finished run: the cell's coordinates (method, seed, ...), its
metrics, ``seconds``, ``version``, ``commit``, ``date`` and its ``config`` (a dict). Reports build their
tables from this frame, so a README table is re-reported from the folder by one command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from equinlp.errors import EquinlpError
from equinlp.harness.store import RUNS, read_json


def load_envelopes(out: str | Path, task: str | None = None, stage: str = "run") -> list[dict]:
    """The envelopes under ``out/runs`` (of ``task`` and ``stage``), in file-name order."""
    folder = Path(out)
    paths = sorted((folder / RUNS).glob("*.json"))
    envelopes = [read_json(path, "run result") for path in paths]
    for path, envelope in zip(paths, envelopes, strict=True):
        if not isinstance(envelope, dict) or "metrics" not in envelope or "task" not in envelope:
            raise EquinlpError(f"{path} is not an equinlp run envelope (an older version's?); move it away")
    chosen = [e for e in envelopes if (task is None or e["task"] == task) and e["stage"] == stage]
    if not chosen:
        tasks = sorted({e["task"] for e in envelopes})
        found = f" (it holds runs of: {', '.join(tasks)})" if tasks else ""
        command = f"equinlp {task} run --out {folder}" if task else "a run"
        raise EquinlpError(f"no {task or ''} runs under {folder / RUNS}{found}; start one with `{command}`")
    return chosen


def load_runs(out: str | Path, task: str | None = None, stage: str = "run") -> pd.DataFrame:
    """One row per finished run: cell coordinates, metrics, seconds, provenance and ``config``; ``attrs["cells"]``
    holds each row's coordinates as a dict."""
    rows, cells = [], []
    for envelope in load_envelopes(out, task, stage):
        provenance = {k: envelope.get(k) for k in ("task", "seconds", "version", "commit", "date")}
        rows.append({**envelope["cell"], **envelope["metrics"], **provenance, "config": envelope["config"]})
        cells.append(envelope["cell"])
    runs = pd.DataFrame(rows)
    runs.attrs["cells"] = cells  # each row's coordinates, as a dict
    runs.attrs["out"] = Path(out)  # where the runs' working folders are (a report may read their samples)
    return runs


COMPARED = ("method", "seed")  # the coordinates a report sets side by side


def mixed_settings(runs: pd.DataFrame) -> pd.DataFrame | None:
    """The settings that differ between runs a report compares, one row per run with its cell and those settings;
    None when there are none.

    Runs are compared within their experiment: the runs that share every coordinate but ``method`` and ``seed``
    (one axis, one split and cell, one architecture, one environment), among the runs that record the setting.
    A setting that follows the experiment (SCAN's group, set by the split) is not mixed.
    """
    configs, coordinates = list(runs["config"]), runs.attrs["cells"]
    cells = list(dict.fromkeys(key for cell in coordinates for key in cell))
    names = sorted({name for config in configs for name in config} - {f"{key}_digest" for key in cells})
    experiments: dict[str, list[dict]] = {}
    for cell, config in zip(coordinates, configs, strict=True):
        where = json.dumps({k: v for k, v in cell.items() if k not in COMPARED}, sort_keys=True)
        experiments.setdefault(where, []).append(config)

    def differs(name: str) -> bool:
        return any(len({json.dumps(c[name], sort_keys=True) for c in group if name in c}) > 1 for group in experiments.values())

    differing = [name for name in names if differs(name)]
    if not differing:
        return None
    rows = [{**cell, **{n: config.get(n, "") for n in differing}} for cell, config in zip(coordinates, configs, strict=True)]
    mixed = pd.DataFrame(rows)
    mixed.attrs["cell_columns"] = cells
    return mixed


def mark_mixed(tables: list[tuple[str, pd.DataFrame]], mixed: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Every table whose rows name runs (by a cell column such as ``method``) gains a ``settings`` column: the
    differing settings of the runs behind each row (``top_k=5``), so no row hides how it was made."""
    settings = [c for c in mixed.columns if c not in _cell_columns(mixed)]
    marked = []
    for title, table in tables:
        coordinates = _coordinates(table, _cell_columns(mixed))
        keys = list(coordinates.columns)
        if not keys:
            marked.append((title, table))
            continue
        notes = []
        for _, row in coordinates.iterrows():
            behind = mixed[(mixed[keys].astype(str) == row[keys].astype(str).to_numpy()).all(axis=1)]
            notes.append(" / ".join(sorted({_note(run, settings) for _, run in behind.iterrows()})))
        table = table.copy()
        column = ("settings", *[""] * (table.columns.nlevels - 1)) if table.columns.nlevels > 1 else "settings"
        table[column] = notes
        marked.append((title, table))
    return marked


def _coordinates(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Each row's run coordinates found in the table, in its index levels or its columns: ``[rows, keys]``."""
    found = table.index.to_frame(index=False)
    found = found[[n for n in found.columns if n in names]]
    for name in names:
        if table.columns.nlevels == 1 and name in table.columns and name not in found:
            found[name] = table[name].to_numpy()
    return found


def _cell_columns(mixed: pd.DataFrame) -> list[str]:
    return list(mixed.attrs["cell_columns"])


def _note(run: pd.Series, settings: list[str]) -> str:
    return ", ".join(f"{name}={run[name]}" for name in settings if run[name] != "")


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean over seeds and its Student-t interval (NaN bounds for one seed).

    With 3 to 5 seeds a percentile bootstrap is too narrow (it can never leave the range of the seeds);
    the t-interval is the standard small-sample interval for a mean.
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def format_interval(values, digits: int = 2, scale: float = 1.0) -> str:
    """``mean [low, high]`` of :func:`t_interval` (just the mean for one seed)."""
    mean, low, high = (scale * v for v in t_interval(values))
    if np.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
