"""The bias report's page in a real browser (headless Chromium): every pair is there, filters hide what they
should, it stays a page of rows at 10,000 pairs, and it makes no network request.

Chromium comes from the system's package manager (`make setup` installs it); where it is missing these tests
are skipped with the command that installs it.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from equinlp.apps.bias import html_report
from equinlp.apps.bias.counterfactual import METRICS, VIEWS
from equinlp.apps.bias.html_report import write_page
from equinlp.symmetry.wordgroups import WordGroup

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed: apt-get install chromium")


def make_pairs(n: int) -> pd.DataFrame:
    """``n`` pairs over two axes and two methods; base pairs differ after mapping back, equitune pairs do not."""
    rows = []
    for i in range(n):
        method = "equitune" if i % 2 else "base"
        axis = "gender" if i % 4 < 2 else "race"
        a, b = ("man", "woman") if axis == "gender" else ("Black person", "White person")
        text_a = f" so he worked as a nurse number {i} <b>&amp;</b>"
        mapped = text_a if method == "equitune" else f" so she had a job as a doctor number {i}"
        rows.append(
            {
                "axis": axis,
                "method": method,
                "context": ("respect", "occupation")[i % 3 == 0],
                "template": "was known for",
                "seed": i,
                "a": a,
                "b": b,
                "prompt_a": f"The {a} was known for",
                "prompt_b": f"The {b} was known for",
                "text_a": text_a,
                "text_b": text_a.replace(" he ", " she "),
                "mapped_b": mapped,
            }  # fmt: skip
        )
    pairs = pd.DataFrame(rows)
    for metric in METRICS:
        for view in VIEWS:
            pairs[f"{metric}_{view}"] = [(i % 7) / 7 for i in range(n)]
    return pairs


def render(page, tmp_path, address: str = "") -> str:
    """The page's DOM after its script ran, in headless Chromium (its own profile, no sandbox as root)."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000", "--dump-dom", f"{page.resolve().as_uri()}{address}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'data-ready="1"' in dom, "the page's script did not finish"
    return dom


def status(dom: str) -> tuple[int, int]:
    """``(matching, total)`` pairs, as the page's status line reports them."""
    tag = re.search(r'<span id="status"[^>]*>', dom).group(0)
    return int(re.search(r'data-matching="(\d+)"', tag).group(1)), int(re.search(r'data-total="(\d+)"', tag).group(1))


def shown(dom: str) -> list[str]:
    """The ``pair`` cells of the rows drawn."""
    return re.findall(r'<tr class="pair[^"]*"><td class="key">([^<]*)</td>', dom)


@pytest.fixture
def page(tmp_path):
    tables = [("gaps", pd.DataFrame({"value": [0.0]}, index=["man | woman"]))]
    return write_page(tmp_path / "report.html", tables, make_pairs(40), intro="test")


def test_the_page_is_one_file_that_asks_for_nothing_outside(page):
    text = page.read_text()
    assert "default-src 'none'" in text
    assert not re.search(r"https?://|src=\"(?!data:)|<link", text)


@needs_chromium
def test_every_pair_is_there_and_text_stays_text(page, tmp_path):
    dom = render(page, tmp_path)
    assert status(dom) == (40, 40)
    assert len(shown(dom)) == 40  # one page of 50 rows holds them all
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in dom  # the samples' text is drawn as text, not parsed as HTML
    assert '<mark class="swap">he</mark>' in dom and '<mark class="diff">' in dom
    assert "data-blocked" not in dom  # the content policy blocked no request: the page made none


@needs_chromium
@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("#method=equitune", 20),
        ("#axis=race&method=base", 10),
        ("#context=occupation", 14),  # i % 3 == 0 for i < 40
        ("#differ=1", 20),  # base pairs differ once mapped back; equitune pairs do not
        ("#template=was%20known%20for&differ=1&method=equitune", 0),
    ],
)
def test_filters_hide_what_they_should(page, tmp_path, address, expected):
    dom = render(page, tmp_path, address)
    assert status(dom) == (expected, 40)
    assert len(shown(dom)) == expected


@needs_chromium
def test_sorting_by_a_metric(page, tmp_path):
    dom = render(page, tmp_path, "#sort=bleu_plain&descending=1&method=base")
    seeds = [int(re.search(r"seed (\d+)", key).group(1)) for key in shown(dom)]
    values = [(seed % 7) / 7 for seed in seeds]
    assert values == sorted(values, reverse=True) and len(seeds) == 20


@needs_chromium
def test_ten_thousand_pairs_draw_one_page_of_rows(tmp_path):
    page = write_page(tmp_path / "report.html", [], make_pairs(10_000))
    dom = render(page, tmp_path, "#page=3")
    assert status(dom) == (10_000, 10_000)
    assert len(shown(dom)) == 50 and "page 4 of 200" in dom


@needs_chromium
@pytest.mark.parametrize(("folder", "pairs"), [("bias", 7_500), ("bias_groups", 10_000)])
def test_the_committed_reports_render_every_pair(tmp_path, folder, pairs):
    page = Path(__file__).parents[1] / "reports" / folder / "report.html"
    assert not re.search(r"https?://", page.read_text())
    dom = render(page, tmp_path)
    assert status(dom) == (pairs, pairs) and len(shown(dom)) == 50
    assert "data-blocked" not in dom


@needs_chromium
def test_phrases_and_agreement_errors_are_marked(tmp_path, monkeypatch):
    pronouns = (("man", ("he", "him")), ("woman", ("she", "her")))
    cycles = (("man", "woman"), ("Lakisha Washington", "Greg Baker"))
    group = WordGroup(name="g", description="", source="", cycles=cycles, pronouns=pronouns)
    monkeypatch.setattr(html_report, "word_group", lambda axis: group)
    pairs = make_pairs(1).assign(
        text_a=" so she met Lakisha Washington", text_b=" so he met Greg Baker", mapped_b=" so she met Lakisha Washington"
    )
    dom = render(html_report.write_page(tmp_path / "report.html", [], pairs), tmp_path)
    assert '<mark class="swap">Lakisha Washington</mark>' in dom  # a phrase of two words, marked whole
    assert dom.count('<mark class="agree">she</mark>') == 2  # the man's text and b's mapped into it
    assert dom.count('<mark class="agree">he</mark>') == 1  # the woman's text: the swap of an error is one too
    assert '<mark class="swap">man</mark>' in dom  # in the prompt
