"""Scoring generations: sentiment (VADER, TextBlob) on text whose demographic words are masked.

Masking works on tokens for a token-level group (a phrase-level group masks whole phrases, with the word
boundaries its action uses), not on a regex over text: every token the group action moves becomes ``XYZ``
(keeping the token's leading-space marker), then the tokens are joined back into text. A generation and
its word swap differ only at moved tokens, so their masked texts are identical and any scorer of them is
exactly swap-invariant, which a word-boundary regex cannot promise ("Man|chester").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from equinlp.apps.bias.config import check_scorer
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.phrases import PhrasePermutation

LABELS = ("negative", "neutral", "positive")
MASK = "XYZ"
SPACE_MARKERS = ("Ġ", "▁")  # byte-level BPE (GPT-2, SmolLM2, Llama 3) and SentencePiece


def masked_texts(
    tokenizer, sequences: Sequence[Sequence[int]] | torch.Tensor, action: TokenPermutation | PhrasePermutation
) -> list[str]:
    """Decode ``sequences`` (token ids, special tokens dropped) with every token the action moves as ``XYZ``
    (a phrase-level action masks whole phrases in the text instead: :meth:`PhrasePermutation.mask`)."""
    if isinstance(action, PhrasePermutation):
        return [action.mask(text) for text in tokenizer.batch_decode(sequences, skip_special_tokens=True)]
    moved = set(action.moved.tolist())
    special = set(tokenizer.all_special_ids)
    texts = []
    for ids in sequences:
        ids = [int(i) for i in ids if int(i) not in special]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        for k, (i, token) in enumerate(zip(ids, tokens, strict=True)):
            if i in moved:
                tokens[k] = (token[0] if token.startswith(SPACE_MARKERS) else "") + MASK
        texts.append(tokenizer.convert_tokens_to_string(tokens))
    return texts


def labels_from_scores(scores: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """``negative`` below ``-threshold``, ``positive`` above ``threshold``, ``neutral`` between (VADER's convention)."""
    scores = np.asarray(scores, dtype=float)
    return np.where(scores <= -threshold, "negative", np.where(scores >= threshold, "positive", "neutral"))


class VaderScorer:
    """VADER's compound score in [-1, 1] (Hutto & Gilbert 2014; lexicon shipped in ``vadersentiment``)."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts])


class TextBlobScorer:
    """TextBlob's pattern-lexicon polarity in [-1, 1]; needs no NLTK corpora."""

    name = "textblob"

    def __init__(self) -> None:
        from textblob import TextBlob

        self._blob = TextBlob

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._blob(t).sentiment.polarity for t in texts])


class RegardScorer:
    """Regard by a text-classification model (hub id or folder), through the local ``evaluate`` measurement
    in ``equinlp/apps/bias/measurements/regard_classifier``. ``scores`` is P(positive) − P(negative); ``labels``
    the most likely class (negative, neutral, positive, other)."""

    name = "regard"

    def __init__(self, model: str = "sasha/regardv3", batch_size: int = 64) -> None:
        import evaluate

        folder = Path(__file__).parent / "measurements" / "regard_classifier"
        self._measurement = evaluate.load(str(folder), config_name=model, module_type="measurement")
        self.batch_size = batch_size

    def _compute(self, texts: Sequence[str]) -> dict:
        labels, scores = [], []
        for start in range(0, len(texts), self.batch_size):
            out = self._measurement.compute(data=list(texts[start : start + self.batch_size]))
            labels += out["labels"]
            scores += out["scores"]
        return {"labels": labels, "scores": scores}

    def labels(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._compute(texts)["labels"])

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([row.get("positive", 0.0) - row.get("negative", 0.0) for row in self._compute(texts)["scores"]])


SCORERS = {"vader": VaderScorer, "textblob": TextBlobScorer}  # keys: config.SCORER_NAMES


def scorer(name: str):
    """``vader`` or ``textblob`` (offline); ``regard:MODEL`` for a regard classifier (hub id or folder)."""
    if name.startswith("regard:"):
        return RegardScorer(name.removeprefix("regard:"))
    return SCORERS[check_scorer(name)]()
