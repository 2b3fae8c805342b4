"""A tiny end-to-end `bias run` + `bias report`: files, resume, and the equivariant methods' exact zero gaps."""

import json

import pandas as pd
import pytest
import torch

from equinlp.bias.cli import _flat
from equinlp.bias.generate import Decoding
from equinlp.bias.report import excludes_zero, load
from equinlp.bias.run import BiasConfig, read_samples, run
from equinlp.cli import build_parser, main
from equinlp.testing import tiny_causal_lm, tiny_regard_classifier, word_tokenizer
from equinlp.wordgroups import word_group

TEMPLATE_WORDS = "The person was known for described as regarded thought of well-known worked had a job part-time earned money by"
OTHER_WORDS = "started working good bad kind cruel great terrible nurse doctor and"
GROUP_WORDS = [w for name in ("gender", "race2") for c in word_group(name).cycles for w in c] + ["his", "her", "him", "hers"]
WORDS = list(dict.fromkeys([*TEMPLATE_WORDS.split(), *OTHER_WORDS.split(), *GROUP_WORDS]))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bias")
    regard = tiny_regard_classifier(out / "regard", WORDS)
    tok = word_tokenizer(WORDS)
    torch.manual_seed(0)
    model = tiny_causal_lm(len(tok)).eval()
    config = BiasConfig(
        axes=("gender", "race2"),
        methods=("base", "equitune", "relaxed-equitune", "equizero-sentiment"),
        samples=10,
        regard_model=str(regard),
        out=str(out),
        decoding=Decoding(new_tokens=6, top_k=5, batch_size=16),
    )
    first = run(config, model, tok, log=lambda *_: None)
    scored = {p.name: p.stat().st_mtime_ns for p in (out / "scored").glob("*.csv")}
    again = []
    second = run(config, model, tok, log=again.append)  # resumes: nothing left to generate or score
    assert second == first  # the kept scores summarise to the same results
    assert {p.name: p.stat().st_mtime_ns for p in (out / "scored").glob("*.csv")} == scored
    return out, again


def test_run_writes_samples_scores_and_results(results):
    out, again = results
    lines = (out / "samples" / "gender_equitune.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * 10  # 2 subjects × 2 contexts × 10 samples (2 seeds × 5 templates)
    assert {"prompt", "continuation", "seed", "template", "subject"} <= set(json.loads(lines[0]))
    assert any("samples kept" in line for line in again)
    assert (out / "scored" / "race2_base.csv").exists()
    tables = load(out)
    assert set(tables["gaps"]["method"]) == {"base", "equitune", "relaxed-equitune", "equizero-sentiment"}
    assert (tables["fluency"]["perplexity_median"] > 1).all()


@pytest.mark.parametrize("method", ["equitune", "equizero-sentiment"])
def test_equivariant_gaps_are_exactly_zero_masked_and_equal_the_floor_plain(results, method):
    tables = load(results[0])
    gaps = tables["gaps"].query("method == @method")
    masked = gaps[gaps.view == "masked"]
    assert set(masked["scorer"]) == {"vader", "textblob", "regard"}
    assert (masked[["value", "low", "high"]] == 0).all().all()
    plain = gaps[(gaps.view == "plain") & (gaps.scorer == "vader")].set_index(["axis", "context", "a", "b", "label"])
    floor = tables["floors"].query("method == @method").set_index(["axis", "context", "a", "b", "label"])
    assert plain["value"].to_dict() == floor.loc[plain.index, "value"].to_dict()
    assert excludes_zero(tables).query("method == @method").empty


def test_report_prints_tables_and_saves_the_plot(results, capsys):
    out, _ = results
    assert main(["bias", "report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "label shares" in printed and "floor" in printed and "perplexity" in printed
    assert (out / "bias.png").stat().st_size > 10_000


def test_a_line_cut_short_is_dropped_and_regenerated(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"subject": "man", "context": "respect", "template": "t", "seed": 0}\n{"subject": "wo')
    assert [row["subject"] for row in read_samples(path)] == ["man"]


def test_cli_help_and_bad_input(capsys):
    with pytest.raises(SystemExit):
        main(["bias", "run", "--help"])
    assert "paired" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown methods"):
        BiasConfig(methods=("fairest",))
    argv = ["bias", "run", "--axis", "race", "--methods", "base,equitune", "equizero-sentiment"]
    args = build_parser(argv).parse_args(argv)
    assert _flat(args.methods) == ("base", "equitune", "equizero-sentiment") and _flat(args.axes) == ("race",)
    with pytest.raises(SystemExit):
        build_parser(["bias"]).parse_args(["bias", "run", "--methods", "base,fair"])
    assert "unknown ['fair']" in capsys.readouterr().err


def test_ctrl_c_keeps_finished_batches_and_a_rerun_completes(tmp_path, monkeypatch):
    import equinlp.bias.run as bias_run

    tok = word_tokenizer(WORDS)
    model = tiny_causal_lm(len(tok)).eval()
    config = BiasConfig(axes=("race2",), methods=("equitune",), contexts=("respect",), samples=10, out=str(tmp_path),
                        decoding=Decoding(new_tokens=3, top_k=5, batch_size=4))  # fmt: skip
    real, calls = bias_run.generate, []

    def interrupted_on_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bias_run, "generate", interrupted_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        bias_run.generate_axis(config, "race2", "equitune", model, tok, log=lambda *_: None)
    path = tmp_path / "samples" / "race2_equitune.jsonl"
    assert len(read_samples(path)) == 8  # two batches of 4 kept
    monkeypatch.setattr(bias_run, "generate", real)
    bias_run.generate_axis(config, "race2", "equitune", model, tok, log=lambda *_: None)
    rows = read_samples(path)
    assert len(rows) == 2 * 10 and len({(r["subject"], r["template"], r["seed"]) for r in rows}) == 20


def test_kept_scores_read_back_empty_continuations_and_missing_perplexities(tmp_path):
    from equinlp.bias.run import _scored_already

    samples = pd.DataFrame(
        {
            "subject": ["man", "woman"],
            "context": ["respect"] * 2,
            "template": ["t"] * 2,
            "seed": [0, 0],
            "prompt": ["The man was", "The woman was"],
            "continuation": ["", " NA"],
        }  # fmt: skip
    )
    path = tmp_path / "scored.csv"
    samples.assign(perplexity=[float("nan"), 3.5]).to_csv(path, index=False)
    kept = _scored_already(path, samples, BiasConfig(out=str(tmp_path)))
    assert kept["continuation"].tolist() == ["", " NA"] and kept["perplexity"].dtype == float
    assert kept["perplexity"].isna().tolist() == [True, False]
    assert _scored_already(path, samples.assign(continuation=["", " other"]), BiasConfig(out=str(tmp_path))) is None


def test_equizero_sentiment_can_maximise_a_regard_classifier(tmp_path):
    """`--proxy-scorer regard:MODEL` is advertised: the config accepts it and the run uses the classifier."""
    regard = tiny_regard_classifier(tmp_path / "regard", WORDS)
    tok = word_tokenizer(WORDS)
    config = BiasConfig(
        axes=("race2",), methods=("equizero-sentiment",), contexts=("respect",), samples=5, out=str(tmp_path / "out"),
        proxy_scorer=f"regard:{regard}", decoding=Decoding(new_tokens=4, top_k=5, batch_size=16),
    )  # fmt: skip
    run(config, tiny_causal_lm(len(tok)).eval(), tok, log=lambda *_: None)
    assert (tmp_path / "out" / "results.json").exists()
    with pytest.raises(ValueError, match="or regard:MODEL"):
        BiasConfig(proxy_scorer="regardless")
