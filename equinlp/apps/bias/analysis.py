"""From scored samples to the numbers of the report: shares, gaps and floors with 95% bootstrap intervals.

Views: ``masked`` scores text whose demographic words are XYZ (the benchmark's measure: a swap cannot
change it); ``plain`` scores the text as written. The floor is what the scorer alone makes of a swap:
each sample scored plain as written and with its subject swapped to the other subject, compared
pairwise. An exactly equivariant model's plain gap equals that floor; its masked gap is exactly 0.
Text measures (:mod:`equinlp.apps.bias.agreement`): the rate of agreement errors and of leaks per method,
subjects pooled, with bootstrap intervals.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from equinlp.apps.bias.scoring import LABELS, labels_from_scores
from equinlp.apps.bias.stats import gap_interval, share_interval

VIEWS = ("masked", "plain")
TEXT_MEASURES = ("agreement_error", "leak")
PAIR_KEY = ["context", "template", "seed"]
POOLED = "both"  # the context label of all contexts pooled


def _records(kind_values: dict, labels: tuple[str, ...], estimate, low, high) -> list[dict]:
    rows = zip(labels, estimate, low, high, strict=True)
    return [{**kind_values, "label": name, "value": float(e), "low": float(lo), "high": float(hi)} for name, e, lo, hi in rows]


def _labels(values: pd.Series) -> np.ndarray:
    """Scores are thresholded (VADER's ±0.05); label columns (a regard classifier's) are used as they are."""
    if pd.api.types.is_numeric_dtype(values):
        return labels_from_scores(values.to_numpy())
    return np.asarray(values, dtype=str)


def summarise(frame: pd.DataFrame, resamples: int = 2000, seed: int = 0) -> dict:
    """``{"shares": [...], "gaps": [...], "floors": [...], "fluency": [...], "text": [...]}``, each a list of records.

    With several contexts, the records also hold context ``"both"``: every context's samples pooled, each
    pair still paired (its template is prefixed with its context, so the pair keys stay unique).
    """
    if frame["context"].nunique() > 1:
        pooled = frame.assign(context=POOLED, template=frame["context"] + ": " + frame["template"])  # pair keys stay unique
        frame = pd.concat([frame, pooled], ignore_index=True)
    shares, gaps, floors, fluency, text = [], [], [], [], []
    for (axis, context, method), cell in frame.groupby(["axis", "context", "method"], sort=False):
        subjects = list(dict.fromkeys(cell["subject"]))
        by_subject = {s: cell[cell["subject"] == s].set_index(PAIR_KEY).sort_index() for s in subjects}
        where = {"axis": axis, "context": context, "method": method}
        scorer_names = [c.removesuffix("_masked") for c in cell.columns if c.endswith("_masked")]
        for scorer_name in scorer_names:
            for view in VIEWS:
                column = f"{scorer_name}_{view}"
                labels = {s: _labels(by_subject[s][column]) for s in subjects}
                names = LABELS + (("other",) if any("other" in set(v) for v in labels.values()) else ())
                for s in subjects:
                    where_s = {**where, "scorer": scorer_name, "view": view, "subject": s, "n": len(labels[s])}
                    shares += _records(where_s, names, *share_interval(labels[s], names, resamples=resamples, seed=seed))
                for a, b in combinations(subjects, 2):
                    common = by_subject[a].index.intersection(by_subject[b].index)
                    la, lb = _labels(by_subject[a].loc[common, column]), _labels(by_subject[b].loc[common, column])
                    where_ab = {**where, "scorer": scorer_name, "view": view, "a": a, "b": b, "n": len(common)}
                    gaps += _records(where_ab, names, *gap_interval(la, lb, names, resamples=resamples, seed=seed))
        for a, b in combinations(subjects, 2):
            own = by_subject[a]
            la, lb = labels_from_scores(own["vader_plain"].to_numpy()), labels_from_scores(own[f"vader_plain_as_{b}"].to_numpy())
            where_ab = {**where, "scorer": "vader", "view": "plain", "a": a, "b": b, "n": len(own)}
            floors += _records(where_ab, LABELS, *gap_interval(la, lb, resamples=resamples, seed=seed))
        for measure in [m for m in TEXT_MEASURES if m in cell.columns]:
            flags = np.where(cell[measure].astype(bool), "yes", "no")
            where_m = {**where, "measure": measure, "n": len(flags)}
            text += _records(where_m, ("yes",), *share_interval(flags, ("yes",), resamples=resamples, seed=seed))
        fluency.append(
            {
                **where,
                "perplexity_median": float(cell["perplexity"].median()),
                "perplexity_mean": float(cell["perplexity"].mean()),
                "empty": int(cell["perplexity"].isna().sum()),
                "unresolved_ties": int(cell.get("unresolved_tie", pd.Series(dtype=bool)).sum()),
                "n": len(cell),
            }
        )
    return {"shares": shares, "gaps": gaps, "floors": floors, "fluency": fluency, "text": text}
