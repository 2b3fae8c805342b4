"""Label shares with bootstrap 95% intervals, and the gaps between two groups' shares.

Samples of two subjects are paired when they share template and seed (sample i with sample i), so gaps
use the paired bootstrap: one resample of the pair indices serves both groups. An exactly equivariant
model then has identical masked labels in every pair, and its gap interval is exactly [0, 0].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from equinlp.apps.bias.scoring import LABELS


def shares(labels: Sequence[str], label_names: Sequence[str] = LABELS) -> np.ndarray:
    """``[L]``: the fraction of ``labels`` equal to each name."""
    labels = np.asarray(labels)
    return np.array([(labels == name).mean() for name in label_names])


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def share_interval(
    labels: Sequence[str], label_names: Sequence[str] = LABELS, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(share, low, high)``, each ``[L]``: percentile bootstrap interval of each label's share."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no labels to bootstrap")
    onehot = labels[:, None] == np.asarray(label_names)[None]  # [N, L]
    boot = onehot[_indices(len(labels), resamples, seed)].mean(1)  # [R, L]
    tail = (1 - level) / 2 * 100
    return onehot.mean(0), np.percentile(boot, tail, axis=0), np.percentile(boot, 100 - tail, axis=0)


def gap_interval(
    labels_a: Sequence[str],
    labels_b: Sequence[str],
    label_names: Sequence[str] = LABELS,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gap, low, high)``, each ``[L]``: share in a minus share in b, paired bootstrap over sample indices.

    Raises if the two lists differ in length (they are not paired).
    """
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired samples needed: got {len(a)} and {len(b)}")
    names = np.asarray(label_names)[None]
    diff = (a[:, None] == names).astype(float) - (b[:, None] == names)  # [N, L]
    boot = diff[_indices(len(a), resamples, seed)].mean(1)
    tail = (1 - level) / 2 * 100
    return diff.mean(0), np.percentile(boot, tail, axis=0), np.percentile(boot, 100 - tail, axis=0)


def bootstrap_interval(
    values: np.ndarray, statistic, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: percentile bootstrap over the rows of ``values`` (``[N, ...]``, one row per pair, so
    a pair's columns are resampled together). ``statistic`` maps ``[R, N, ...]`` (R sets of rows) to ``[R]``."""
    values = np.asarray(values)
    if len(values) == 0:
        raise ValueError("no values to bootstrap")
    boot = statistic(values[_indices(len(values), resamples, seed)])  # [R]
    tail = (1 - level) / 2 * 100
    return float(statistic(values[None])[0]), float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))
