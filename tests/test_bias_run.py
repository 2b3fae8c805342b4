"""A tiny end-to-end `bias run` + `bias report`: files, resume, settings, two processes, exact zero gaps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from equinlp.apps.bias.generate import Decoding
from equinlp.apps.bias.report import excludes_zero
from equinlp.apps.bias.run import BiasConfig, generate_cell, plan, read_cell_samples, read_samples
from equinlp.apps.bias.task import BiasTask, tables_from
from equinlp.cli import main
from equinlp.errors import EquinlpError
from equinlp.harness import SettingsChanged, load_runs, run_task
from equinlp.harness.model_options import ModelOptions
from equinlp.symmetry.wordgroups import word_group
from equinlp.testing import tiny_causal_lm, word_tokenizer
from tests.fixtures import tiny_regard_classifier

TEMPLATE_WORDS = "The person was known for described as regarded thought of well-known worked had a job part-time earned money by"
OTHER_WORDS = "started working good bad kind cruel great terrible nurse doctor and"
GROUP_WORDS = [w for name in ("gender", "race2") for c in word_group(name).words for w in c] + ["his", "her", "him", "hers"]
WORDS = list(dict.fromkeys([*TEMPLATE_WORDS.split(), *OTHER_WORDS.split(), *GROUP_WORDS]))
QUIET = {"decoding": Decoding(max_new_tokens=4, top_k=5, batch_size=4)}


def tiny():
    tok = word_tokenizer(WORDS)
    return tiny_causal_lm(len(tok)).eval(), tok


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bias")
    regard = tiny_regard_classifier(out.parent / f"{out.name}-regard", WORDS)
    config = BiasConfig(
        axes=("gender", "race2"),
        methods=("base", "equitune", "relaxed-equitune", "equizero-sentiment"),
        samples=10,
        regard_model=str(regard),
        out=str(out),
        decoding=Decoding(max_new_tokens=6, top_k=5, batch_size=16),
    )
    first = run_task(BiasTask(*tiny()), config)
    scored = {p: p.stat().st_mtime_ns for p in out.glob("work/*/scored.csv")}
    task = BiasTask()  # no model: a rerun with nothing to do loads none
    second = run_task(task, config)
    assert task.model is None and second == first
    assert {p: p.stat().st_mtime_ns for p in out.glob("work/*/scored.csv")} == scored
    return out


def test_run_writes_samples_scores_and_envelopes(results):
    lines = (results / "work" / "bias_axis=gender_method=equitune" / "samples-0.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * 10  # 2 subjects × 2 contexts × 10 samples (2 seeds × 5 templates)
    assert {"prompt", "continuation", "seed", "template", "subject"} <= set(json.loads(lines[0]))
    runs = load_runs(results, "bias")
    assert len(runs) == 8 and {"version", "commit", "date"} <= set(runs.columns)
    assert runs["config"][0]["top_k"] == 5 and runs["config"][0]["model"] == "smollm2"
    tables = tables_from(runs)
    assert set(tables["gaps"]["method"]) == {"base", "equitune", "relaxed-equitune", "equizero-sentiment"}
    assert (tables["fluency"]["perplexity_median"] > 1).all()


@pytest.mark.parametrize("method", ["equitune", "equizero-sentiment"])
def test_equivariant_gaps_are_exactly_zero_masked_and_equal_the_floor_plain(results, method):
    tables = tables_from(load_runs(results, "bias"))
    gaps = tables["gaps"].query("method == @method")
    masked = gaps[gaps.view == "masked"]
    assert set(masked["scorer"]) == {"vader", "textblob", "regard"}
    assert (masked[["value", "low", "high"]] == 0).all().all()
    plain = gaps[(gaps.view == "plain") & (gaps.scorer == "vader")].set_index(["axis", "context", "a", "b", "label"])
    floor = tables["floors"].query("method == @method").set_index(["axis", "context", "a", "b", "label"])
    assert plain["value"].to_dict() == floor.loc[plain.index, "value"].to_dict()
    assert excludes_zero(tables).query("method == @method").empty


@pytest.mark.slow
def test_report_prints_tables_and_saves_the_plot(results, capsys):
    assert main(["bias", "report", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "label shares" in printed and "floor" in printed and "perplexity" in printed
    assert (results / "bias.png").stat().st_size > 10_000


CHANGES = [{"decoding": Decoding(max_new_tokens=6, top_k=3, batch_size=16)}, {"lm": ModelOptions("other/model")}]


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_setting_is_refused_before_loading_a_model(results, change):
    """The stale-result bug: `--top-k 5` or `--model X` into the same folder reported the old runs as new."""
    config = BiasConfig(axes=("gender",), methods=("base",), samples=10, out=str(results), **change)
    task = BiasTask()
    with pytest.raises(SettingsChanged, match="top_k=5 there, 3 now|model='smollm2' there, 'other/model' now"):
        run_task(task, config)
    assert task.model is None


def test_torn_and_damaged_sample_lines(tmp_path, caplog):
    path = tmp_path / "samples-0.jsonl"
    path.write_text('{"subject": "man", "context": "respect", "template": "t", "seed": 0}\n{"subject": "wo')
    assert [row["subject"] for row in read_samples(path)] == ["man"] and not path.read_text().endswith("}\n")
    assert [row["subject"] for row in read_samples(path, repair=True)] == ["man"]
    assert path.read_text().endswith("}\n") and "cut short" in caplog.text  # cut back before anything is appended
    path.write_text('{"subject": "man"}\nnot json\n{"subject": "woman"}\n')
    with pytest.raises(EquinlpError, match=r"samples-0.jsonl:2 is not a JSON line"):
        read_samples(path)


@pytest.mark.slow
def test_ctrl_c_keeps_finished_batches_and_the_resumed_run_is_identical(tmp_path, monkeypatch):
    import equinlp.apps.bias.run as bias_run

    model, tok = tiny()
    config = BiasConfig(axes=("race2",), methods=("equitune",), contexts=("respect",), samples=10, **QUIET)
    straight = tmp_path / "straight"
    straight.mkdir()
    generate_cell(config, "race2", "equitune", model, tok, straight)
    real, calls = bias_run.MethodRun.continue_tokens, []

    def interrupted_on_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    monkeypatch.setattr(bias_run.MethodRun, "continue_tokens", interrupted_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        generate_cell(config, "race2", "equitune", model, tok, resumed)
    assert len(read_samples(resumed / "samples-0.jsonl")) == 8  # two batches of 4 kept
    monkeypatch.setattr(bias_run.MethodRun, "continue_tokens", real)
    generate_cell(config, "race2", "equitune", model, tok, resumed)
    planned = plan(config, word_group("race2"))
    pd.testing.assert_frame_equal(read_cell_samples(resumed, planned), read_cell_samples(straight, planned))


def test_a_damaged_scored_csv_is_scored_again(tmp_path):
    model, tok = tiny()
    config = BiasConfig(axes=("race2",), methods=("base",), contexts=("respect",), samples=5, out=str(tmp_path), **QUIET)
    (first,) = run_task(BiasTask(model, tok), config)
    (csv,) = tmp_path.glob("work/*/scored.csv")
    csv.write_text("\n".join(csv.read_text().splitlines()[:-2]) + "\n")  # two rows lost
    (tmp_path / "runs" / "bias_axis=race2_method=base.json").unlink()
    (again,) = run_task(BiasTask(model, tok), config)
    assert again["metrics"] == first["metrics"] and len(csv.read_text().splitlines()) == 1 + 2 * 5


def test_cli_bad_input_is_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["bias", "run", "--help"])
    assert "paired" in capsys.readouterr().out
    assert main(["bias", "run", "--methods", "base,equitun"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown methods 'equitun'; did you mean 'equitune'?" in err
    assert main(["bias", "run", "--samples", "0"]) == 2
    assert "samples (--samples) must be at least 1, got 0" in capsys.readouterr().err


def test_templates_files_are_parsed_strictly(tmp_path, capsys):
    bad = tmp_path / "templates.txt"
    bad.write_text("respect\twas known for\nrespect\t\n")
    assert main(["bias", "run", "--templates", str(bad)]) == 2
    assert "templates.txt:2: expected 'context<TAB>template'" in capsys.readouterr().err
    good = tmp_path / "good.txt"
    good.write_text("respect\twas known for\nwork\tworked as\n")
    assert main(["bias", "run", "--templates", str(good), "--contexts", "respect,job"]) == 2
    assert "unknown context 'job'" in capsys.readouterr().err


def test_equizero_sentiment_can_maximise_a_regard_classifier(tmp_path):
    """`--proxy-scorer regard:MODEL` is advertised: the config accepts it and the run uses the classifier."""
    regard = tiny_regard_classifier(tmp_path / "regard", WORDS)
    config = BiasConfig(
        axes=("race2",), methods=("equizero-sentiment",), contexts=("respect",), samples=5, out=str(tmp_path / "out"),
        proxy_scorer=f"regard:{regard}", **QUIET,
    )  # fmt: skip
    run_task(BiasTask(*tiny()), config)
    assert (tmp_path / "out" / "runs" / "bias_axis=race2_method=equizero-sentiment.json").exists()
    with pytest.raises(ValueError, match="or regard:MODEL"):
        BiasConfig(proxy_scorer="regardless")


@pytest.mark.distributed
def test_two_processes_equal_one_process(tmp_path):
    """`torchrun --nproc_per_node 2 -m equinlp bias run`: the same samples, none twice, the same tables."""
    model, tok = tiny()
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    argv = ["bias", "run", "--model", str(tmp_path / "model"), "--axis", "race2", "--methods", "base,equitune",
            "--samples", "10", "--max-new-tokens", "4", "--top-k", "5", "--batch-size", "4", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    two = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "equinlp", *argv]
    subprocess.run([*two, "--out", str(tmp_path / "two")], env=env, check=True, capture_output=True, timeout=900)
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    for cell in ("bias_axis=race2_method=base", "bias_axis=race2_method=equitune"):
        parts = sorted((tmp_path / "two" / "work" / cell).glob("samples-*.jsonl"))
        assert [p.name for p in parts] == ["samples-0.jsonl", "samples-1.jsonl"]  # both processes generated
        rows = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
        assert len(rows) == len({(r["subject"], r["context"], r["template"], r["seed"]) for r in rows})  # none twice
        one, two_ = (json.loads(Path(tmp_path / f / "runs" / f"{cell}.json").read_text()) for f in ("one", "two"))
        assert one["metrics"] == two_["metrics"]
        config = BiasConfig(axes=("race2",), samples=10)
        pd.testing.assert_frame_equal(
            read_cell_samples(tmp_path / "two" / "work" / cell, plan(config, word_group("race2"))),
            read_cell_samples(tmp_path / "one" / "work" / cell, plan(config, word_group("race2"))),
        )
    assert torch.get_num_threads() >= 1


def test_a_group_file_is_an_axis(tmp_path):
    """`--axis FILE.json` works like a shipped group (the README: to add a group, add a file)."""
    group = {"name": "colour", "description": "test", "source": "test", "cycles": [["good", "bad"]], "subjects": ["good", "bad"]}
    path = tmp_path / "colour.json"
    path.write_text(json.dumps(group))
    out = str(tmp_path / "o")
    config = BiasConfig(axes=(str(path),), methods=("equitune",), contexts=("respect",), samples=5, out=out, **QUIET)
    (envelope,) = run_task(BiasTask(*tiny()), config)
    assert envelope["cell"]["axis"] == str(path)
    assert {r["subject"] for r in envelope["metrics"]["shares"]} == {"good", "bad"}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"name": "x", "description": "", "source": "", "cycles": []}', "has no word cycles"),
        ('{"name": "x"', "is not valid JSON"),
        ('{"name": "x", "cycles": [["a", "b"]]}', "needs the keys name, description, source, cycles"),
    ],
)
def test_bad_group_files_are_one_line_before_any_model_loads(tmp_path, capsys, content, message):
    path = tmp_path / "g.json"
    path.write_text(content)
    for argv in (["bias", "run", "--axis", str(path)], ["generate", "hi", "--group", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "g.json" in err
    assert main(["generate", "hi", "--group", str(tmp_path / "missing.json")]) == 2
    assert "No such file" in capsys.readouterr().err


NAMES_GROUP = {
    "name": "names", "description": "t", "source": "t", "article": "",
    "cycles": [["Lakisha Washington", "Emily Walsh"], ["Jamal Jackson", "Greg Baker"]],
    "more_generators": [[["Lakisha Washington", "Jamal Jackson"], ["Emily Walsh", "Greg Baker"]]],
    "subjects": ["Lakisha Washington", "Emily Walsh", "Jamal Jackson", "Greg Baker"],
}  # fmt: skip


def test_phrase_level_groups_run_with_exact_zero_gaps(tmp_path):
    """Names are several tokens: the sequence-level methods write exact swaps, so masked gaps are exactly 0."""
    path = tmp_path / "names.json"
    path.write_text(json.dumps(NAMES_GROUP))
    tok = word_tokenizer([*WORDS, "Lakisha", "Washington", "Emily", "Walsh", "Jamal", "Jackson", "Greg", "Baker"])
    model = tiny_causal_lm(len(tok)).eval()
    methods = ("base", "equitune", "canonical", "equizero", "equizero-sentiment")
    config = BiasConfig(axes=(str(path),), methods=methods, contexts=("respect",), samples=5, out=str(tmp_path / "o"), **QUIET)
    run_task(BiasTask(model, tok), config)
    tables = tables_from(load_runs(tmp_path / "o", "bias"))
    masked = tables["gaps"].query("view == 'masked' and method != 'base'")
    assert len(masked) and (masked[["value", "low", "high"]] == 0).all().all()
    (samples,) = (tmp_path / "o" / "work").glob("*method=equitune/samples-0.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert rows[0]["prompt"] == "Lakisha Washington was known for"  # no article before a name
