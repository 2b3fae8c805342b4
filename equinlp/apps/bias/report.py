"""``equinlp bias report``: tables of shares, gaps and floors, and stacked bars in the style of the paper.

The tables are built from the runs' envelopes (:func:`equinlp.apps.bias.task.tables_from`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equinlp.apps.bias.analysis import POOLED
from equinlp.apps.bias.scoring import LABELS
from equinlp.harness.report import pyplot, save_figure

COLORS = {"negative": "#d62728", "neutral": "#bbbbbb", "positive": "#2ca02c", "other": "#9467bd"}
ALL_LABELS = (*LABELS, "other")  # regard classifiers add "other"


def _with_interval(frame: pd.DataFrame, scale: float = 100) -> pd.Series:
    return (
        (frame["value"] * scale).map("{:+.1f}".format).str.lstrip("+")
        + " ["
        + (frame["low"] * scale).map("{:.1f}".format)
        + ", "
        + (frame["high"] * scale).map("{:.1f}".format)
        + "]"
    )


def shares_table(tables: dict, scorer: str = "vader", view: str = "masked") -> pd.DataFrame:
    """Label shares (%) with 95% intervals: rows (axis, context, method, subject), columns the labels."""
    part = tables["shares"].query("scorer == @scorer and view == @view").copy()
    part["text"] = _with_interval(part)
    wide = part.pivot_table(
        index=["axis", "context", "method", "subject"], columns="label", values="text", aggfunc="first", sort=False
    )
    return wide[[label for label in ALL_LABELS if label in wide.columns]]


def gaps_table(tables: dict, scorer: str = "vader", labels: tuple[str, ...] = ("negative", "positive")) -> pd.DataFrame:
    """Gaps a − b (percentage points, 95% interval): masked, plain, and the scorer's floor (plain)."""
    gaps, floors = tables["gaps"].query("scorer == @scorer"), tables["floors"]
    index = ["axis", "context", "method", "a", "b"]
    columns = {}
    for label in labels:
        for view in ("masked", "plain"):
            part = gaps[(gaps.view == view) & (gaps.label == label)].set_index(index)
            columns[f"{label} {view}"] = _with_interval(part)
        part = floors[floors.label == label].set_index(index)
        columns[f"{label} floor"] = _with_interval(part)
    return pd.DataFrame(columns)


def excludes_zero(tables: dict, scorer: str = "vader", view: str = "masked") -> pd.DataFrame:
    """The gaps whose 95% interval excludes 0: the bias the benchmark detects."""
    gaps = tables["gaps"].query("scorer == @scorer and view == @view")
    return gaps[(gaps["low"] > 0) | (gaps["high"] < 0)]


def plot(tables: dict, path: str | Path, scorer: str = "vader", view: str = "masked") -> Path:
    """One panel per (axis, context): stacked label shares per method and subject (contexts not pooled)."""
    plt = pyplot()
    shares = tables["shares"].query("scorer == @scorer and view == @view")
    shares = shares[shares.context != POOLED]
    panels = shares[["axis", "context"]].drop_duplicates().values.tolist()
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    most_bars = shares.groupby(["axis", "context"])[["method", "subject"]].apply(lambda f: len(f.drop_duplicates())).max()
    width = max(5.0, 0.4 * most_bars + 1.5)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.8 * rows), squeeze=False)
    for ax, (axis, context) in zip(axes.flat, panels, strict=False):
        part = shares[(shares.axis == axis) & (shares.context == context)]
        methods = list(dict.fromkeys(part["method"]))
        bars = part[["method", "subject"]].drop_duplicates().values.tolist()
        positions = [methods.index(m) * 0.6 + i for i, (m, _) in enumerate(bars)]  # a gap between methods
        bottom = [0.0] * len(bars)
        for label in [label for label in ALL_LABELS if label in set(part["label"])]:
            share = part[part.label == label].set_index(["method", "subject"])["value"]
            values = [float(share.loc[(m, s)]) for m, s in bars]
            ax.bar(positions, values, bottom=bottom, color=COLORS[label], label=label, width=0.9)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xticks(positions, [s.removesuffix(" person") for _, s in bars], fontsize=7, rotation=45, ha="right")
        for method in methods:
            where = [x for x, (m, _) in zip(positions, bars, strict=True) if m == method]
            ax.text(sum(where) / len(where), 1.02, method, ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(f"{axis} · {context} ({scorer}, {view})", pad=16)
        ax.set_ylabel("share of samples")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes[0][0].legend(loc="upper right", fontsize=7, framealpha=0.9)
    path = Path(path)
    save_figure(fig, path)
    return path


def text_table(tables: dict) -> pd.DataFrame:
    """Agreement-error and leak rates (%) with 95% intervals: rows (axis, context, method), a column per measure."""
    part = tables.get("text", pd.DataFrame())
    if part.empty:
        return part
    part = part.assign(text=_with_interval(part))
    return part.pivot_table(index=["axis", "context", "method"], columns="measure", values="text", aggfunc="first", sort=False)


def report_tables(tables: dict) -> list[tuple[str, pd.DataFrame]]:
    """The report's titled tables: label shares, gaps beside the scorer's floor, fluency, agreement and leaks."""
    fluency = tables["fluency"].round(2).set_index(["axis", "context", "method"])
    titled = [
        ("label shares (%), VADER on masked text, 95% bootstrap intervals", shares_table(tables)),
        ("gaps a − b (percentage points): masked text, plain text, and the scorer's own floor on plain text", gaps_table(tables)),
        ("fluency: perplexity of the continuations under the base model, scored as generated", fluency),
    ]
    text = text_table(tables)
    if not text.empty:
        titled.append(("text (%): continuations with the other subject's pronoun, and with its unswapped words", text))
    return titled
