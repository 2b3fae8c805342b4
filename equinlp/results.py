"""Reading run JSONs and summarising seeds: shared by the ``report`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def load_runs(results: str | Path) -> pd.DataFrame:
    """One row per run JSON under ``results`` (``runs/*.json``, or the folder itself)."""
    folder = Path(results)
    paths = sorted((folder / "runs").glob("*.json")) or sorted(folder.glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no run JSONs under {folder} (expected {folder / 'runs'}/*.json)")
    return pd.DataFrame([json.loads(p.read_text()) for p in paths])


def interval(values, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its percentile-bootstrap 95% interval over seeds."""
    values = np.asarray(values, dtype=float)
    means = values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))].mean(1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
