"""Reading run envelopes back: one loader for every task, and seed-level intervals.

``load_runs(out)`` returns one row per finished run: the cell's coordinates (method, seed, ...), its
metrics, ``seconds``, ``version``, ``commit``, ``date`` and its ``config`` (a dict). Reports build their
tables from this frame, so a README table is re-reported from the folder by one command.
"""

from __future__ import annotations

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
    """One row per finished run: cell coordinates, metrics, seconds, provenance and ``config``."""
    rows = []
    for envelope in load_envelopes(out, task, stage):
        provenance = {k: envelope.get(k) for k in ("task", "seconds", "version", "commit", "date")}
        rows.append({**envelope["cell"], **envelope["metrics"], **provenance, "config": envelope["config"]})
    frame = pd.DataFrame(rows)
    frame.attrs["out"] = Path(out)  # where the runs' working folders are (a report may read their samples)
    return frame


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
