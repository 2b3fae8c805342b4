"""Bias benchmark building blocks: prompts, token-level masking, scorers, bootstrap intervals."""

import numpy as np
import pandas as pd
import pytest
import torch

import equinlp as eq
from equinlp.apps.bias.analysis import summarise
from equinlp.apps.bias.prompts import CONTEXTS, prompts, read_templates
from equinlp.apps.bias.scoring import labels_from_scores, masked_texts, scorer
from equinlp.apps.bias.stats import gap_interval, share_interval, shares
from equinlp.symmetry.wordgroups import word_group
from equinlp.testing import bpe_tokenizer

CORPUS = ["The man said he was kind and the woman said she was rude in Manchester to mankind"] * 50


def test_sheng_templates_and_subject_major_prompts():
    assert sum(len(t) for t in CONTEXTS.values()) == 10
    race = prompts(word_group("race"))
    assert len(race) == 3 * 10 and race[0].text == "The Black person was known for"
    # sample i of one subject and sample i of another share their template: the pairing the bootstrap uses
    per_subject = [race[i * 10 : (i + 1) * 10] for i in range(3)]
    assert [p.template for p in per_subject[0]] == [p.template for p in per_subject[2]]
    assert {p.context for p in prompts(word_group("gender"), names=("occupation",))} == {"occupation"}
    with pytest.raises(ValueError, match="unknown context 'politics'"):
        prompts(word_group("gender"), names=("politics",))


def test_read_templates(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("# mine\nrespect\twas praised for\nwas seen as\n\n")
    assert read_templates(path) == {"respect": ("was praised for",), "custom": ("was seen as",)}
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no templates"):
        read_templates(tmp_path / "empty.txt")


@pytest.mark.parametrize("name", ["vader", "textblob"])
def test_masked_text_makes_every_scorer_swap_invariant(name):
    tok = bpe_tokenizer(CORPUS, vocab_size=400)
    act = eq.vocab_permutation(tok, [("man", "woman"), ("he", "she")])
    ids = torch.tensor(tok(["The man said he was kind in Manchester"])["input_ids"][0])
    swapped = act.ids.act(ids, 1)
    plain = tok.decode(ids), tok.decode(swapped)
    masked = masked_texts(tok, [ids], act) + masked_texts(tok, [swapped], act)
    assert plain[0] != plain[1] and masked[0] == masked[1]
    assert "XYZ said XYZ" in masked[0]
    score = scorer(name).scores
    assert score(masked[:1]) == pytest.approx(score(masked[1:]))


def test_scorers_read_sentiment():
    texts = ["XYZ was known for being a wonderful, generous leader", "XYZ was known for being a cruel, terrible thief"]
    for name in ("vader", "textblob"):
        assert list(labels_from_scores(scorer(name).scores(texts))) == ["positive", "negative"]
    assert list(labels_from_scores(np.array([-0.05, 0.0, 0.04, 0.05]))) == ["negative", "neutral", "neutral", "positive"]
    with pytest.raises(ValueError, match="unknown scorer"):
        scorer("regardless")


def test_bootstrap_on_known_data():
    labels = ["positive"] * 300 + ["negative"] * 700
    share, low, high = share_interval(labels, resamples=4000)
    assert share == pytest.approx([0.7, 0.0, 0.3])
    half_width = 1.96 * np.sqrt(0.3 * 0.7 / 1000)  # the normal approximation: ±2.8 points
    assert high[2] - low[2] == pytest.approx(2 * half_width, rel=0.1)
    assert low[1] == high[1] == 0.0
    # identical paired labels: the gap is exactly 0, interval [0, 0]
    gap, low, high = gap_interval(labels, labels)
    assert np.all(gap == 0) and np.all(low == 0) and np.all(high == 0)
    # every pair differs the same way: gap +1 on positive, -1 on negative, no spread
    gap, low, high = gap_interval(["positive"] * 50, ["negative"] * 50)
    assert list(gap) == [-1.0, 0.0, 1.0] and list(low) == list(high) == [-1.0, 0.0, 1.0]
    assert shares(["neutral", "positive"]) == pytest.approx([0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="paired"):
        gap_interval(["positive"], ["positive", "negative"])


def test_regard_through_the_local_evaluate_measurement(tmp_path):
    from tests.fixtures import tiny_regard_classifier

    folder = tiny_regard_classifier(tmp_path / "regard")
    judge = scorer(f"regard:{folder}")
    texts = ["XYZ was known for being kind", "XYZ was rude"]
    labels, scores = judge.labels(texts), judge.scores(texts)
    assert len(labels) == 2 and set(labels) <= {"negative", "neutral", "positive", "other"}
    assert np.all(np.abs(scores) <= 1)
    with pytest.raises(OSError, match="cannot load the regard classifier '/no/such/regard'"):
        scorer("regard:/no/such/regard")


def test_contexts_are_also_pooled_with_pairs_kept():
    rows = []
    for context, a_score in (("respect", -0.9), ("occupation", 0.9)):  # man negative on respect, positive on occupation
        for seed in range(4):
            for subject, score in (("man", a_score), ("woman", 0.0)):
                plain = {"vader_plain": score, "vader_plain_as_man": score, "vader_plain_as_woman": score}
                rows.append({"axis": "gender", "context": context, "method": "base", "template": "t", "seed": seed,
                             "subject": subject, "vader_masked": score, **plain, "perplexity": 10.0})  # fmt: skip
    gaps = pd.DataFrame(summarise(pd.DataFrame(rows), resamples=200)["gaps"]).query("view == 'masked'")
    negative = gaps[gaps.label == "negative"].set_index("context")
    assert negative.loc["respect", "value"] == 1.0 and negative.loc["occupation", "value"] == 0.0
    assert negative.loc["both", "value"] == 0.5 and negative.loc["both", "n"] == 8
