"""``OUT/report.html``: one self-contained page (no network; it opens from disk) with the report's tables, its
figure, and a browser of every pair of samples side by side.

The pairs travel as JSON inside the page and are drawn a page of rows at a time, so 10,000 pairs stay quick. A
Content-Security-Policy ``default-src 'none'`` forbids any request; the page's own script and style are inline
and the figure is a ``data:`` image. Text from the samples is put in the page as JSON and drawn as DOM text,
never as HTML.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import pandas as pd

from equinlp.apps.bias.agreement import others
from equinlp.apps.bias.counterfactual import METRICS, VIEWS
from equinlp.files import write_text_atomic
from equinlp.symmetry.phrases import surface
from equinlp.symmetry.wordgroups import WordGroup, word_group

PAIR_COLUMNS = ["axis", "method", "context", "template", "seed", "a", "b", "prompt_a", "prompt_b", "text_a", "text_b", "mapped_b"]
METRIC_COLUMNS = [f"{metric}_{view}" for metric in METRICS for view in VIEWS]


def _template() -> str:
    return resources.files("equinlp.apps.bias").joinpath("report_page.html").read_text(encoding="utf-8")


def _json_for_script(data: dict) -> str:
    """JSON that cannot end its ``<script>`` element early (``</`` and ``<!--`` are escaped)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def swap_words(axes, groups: Mapping[str, WordGroup] | None = None) -> dict[str, list[str]]:
    """``{axis: every word or phrase its word group moves, in every form it acts on}``, for highlighting
    (``groups``: the runs' own groups, by axis; default: the axes' groups today)."""
    out = {}
    for axis in axes:
        group = (groups or {}).get(axis) or word_group(axis)
        out[axis] = sorted({surface(phrase) for phrase in group.phrase_action().phrases})  # plurals, capitals, role words
    return out


def agreement_words(axes, groups: Mapping[str, WordGroup] | None = None) -> dict[str, dict[str, list[str]]]:
    """``{axis: {subject: every other subject's pronouns}}``: in a text of that subject, one of them is an agreement
    error (as :mod:`equinlp.apps.bias.agreement` counts them). Groups that list no ``pronouns`` have none."""
    out = {}
    for axis in axes:
        pronouns = dict(getattr((groups or {}).get(axis) or word_group(axis), "pronouns", ()) or ())
        out[axis] = {s: sorted(others(pronouns, s)) for s in pronouns}
    return out


def pairs_data(pairs: pd.DataFrame, groups: Mapping[str, WordGroup] | None = None) -> dict:
    """The page's data: ``columns``, ``rows`` (lists, one per pair), ``metrics`` (the sortable columns), and per axis
    the words to mark: ``swap_words`` and ``agreement_words``."""
    metrics = [c for c in METRIC_COLUMNS if c in pairs.columns]
    frame = pairs.reindex(columns=PAIR_COLUMNS + metrics)
    frame[metrics] = frame[metrics].astype(float).round(4)
    frame = frame.astype(object).where(frame.notna(), None)
    axes = sorted(set(frame["axis"]))
    return {
        "columns": list(frame.columns),
        "rows": frame.values.tolist(),
        "metrics": metrics,
        "swap_words": swap_words(axes, groups),
        "agreement_words": agreement_words(axes, groups),
    }


def _tables_html(tables: list[tuple[str, pd.DataFrame]]) -> str:
    parts = []
    for title, table in tables:
        body = table.to_html(escape=True, na_rep="", border=0)
        parts.append(f'<details><summary>{html.escape(title)}</summary><div class="scroll">{body}</div></details>')
    return "\n".join(parts)


def _figure_html(figure: Path | None) -> str:
    if figure is None or not Path(figure).exists():
        return ""
    data = base64.b64encode(Path(figure).read_bytes()).decode()
    return f'<p><img class="figure" alt="label shares per method and subject" src="data:image/png;base64,{data}"></p>'


def write_page(path: str | Path, tables: list[tuple[str, pd.DataFrame]], pairs: pd.DataFrame, figure: Path | None = None,
               intro: str = "", groups: Mapping[str, WordGroup] | None = None) -> Path:  # fmt: skip
    """Write the page atomically: ``tables`` (titled frames), the ``figure`` PNG inline, and every row of ``pairs``
    (:func:`equinlp.apps.bias.counterfactual.score_pairs`) in the browser."""
    data = pairs_data(pairs, groups)
    headers = "".join(f"<th>{html.escape(m.replace('_', ' '))}</th>" for m in data["metrics"])
    page = (
        _template()
        .replace("__INTRO__", html.escape(intro))
        .replace("__TABLES__", _tables_html(tables))
        .replace("__FIGURE__", _figure_html(figure))
        .replace("__METRIC_HEADERS__", headers)
        .replace("__DATA__", _json_for_script(data))  # last: the data may hold any text
    )
    return write_text_atomic(path, page)
