"""Results you can trust: runs keyed by file contents, one id per cell, reports that say when settings differ,
one lock holder under a race, left padding whatever the tokenizer says, and calls independent of batch mates."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch

import equinlp as eq
from equinlp.apps.bias.run import BiasConfig
from equinlp.apps.bias.task import BiasTask
from equinlp.errors import EquinlpError
from equinlp.harness import RunStore, SettingsChanged, run_task, settings
from equinlp.harness.cli import print_report
from equinlp.models.sequence import SequenceLevel
from equinlp.symmetry.phrases import phrase_permutation
from equinlp.symmetry.wordgroups import group_file
from equinlp.testing import tiny_causal_lm, word_tokenizer
from tests.toy_task import ToyConfig, ToyTask

GROUP = {"name": "g", "description": "d", "source": "s", "cycles": [["man", "woman"]], "subjects": ["man", "woman"]}


def write_group(path: Path, cycles: list) -> str:
    path.write_text(json.dumps({**GROUP, "cycles": cycles}))
    return str(path)


# --- runs are keyed by the content of the files they read ----------------------------------------------


def test_an_edited_file_is_a_changed_setting(tmp_path):
    table = tmp_path / "table.txt"
    table.write_text("1")
    config = ToyConfig(out=str(tmp_path / "out"), seeds=(0,), table=str(table))
    run_task(ToyTask(), config)
    table.write_text("2")
    with pytest.raises(SettingsChanged, match=r"table_digest='sha256:\w+' there, 'sha256:\w+' now"):
        run_task(ToyTask(), config)
    assert run_task(ToyTask(), config, overwrite=True)[0]["metrics"]["table"] == "2"


def test_a_group_file_and_a_templates_file_key_the_bias_runs(tmp_path):
    axis = write_group(tmp_path / "g.json", [["man", "woman"]])
    templates = tmp_path / "t.txt"
    templates.write_text("was known for\n")
    config = BiasConfig(axes=(axis,), templates=str(templates), methods=("base",))
    cell = {"axis": axis, "method": "base"}
    before = settings(config, cell=cell)
    assert before["axis_digest"].startswith("sha256:") and before["templates_digest"].startswith("sha256:")
    write_group(tmp_path / "g.json", [["man", "woman"], ["he", "she"]])
    templates.write_text("was known for\nworked as\n")
    after = settings(config, cell=cell)
    assert after["axis_digest"] != before["axis_digest"] and after["templates_digest"] != before["templates_digest"]
    built_in = settings(BiasConfig(), cell={"axis": "gender", "method": "base"})["axis_digest"]  # its shipped file
    assert built_in == settings(BiasConfig(), cell={"axis": str(group_file("gender")), "method": "base"})["axis_digest"]


# --- one id per cell ------------------------------------------------------------------------------------


def test_run_ids_are_one_to_one(tmp_path):
    store = RunStore(tmp_path, "bias")
    ids = {
        store.cell_id("run", {"axis": axis, "method": "base"}) for axis in ("d1/g.json", "d1-g.json", "d1 g.json", "d1%2Fg.json")
    }
    assert len(ids) == 4
    assert (
        store.cell_id("run", {"axis": "gender", "method": "equizero-sentiment"}) == "bias_axis=gender_method=equizero-sentiment"
    )
    assert store.cell_id("run", {"axis": "a=b_method=c", "method": "d"}) != store.cell_id(
        "run", {"axis": "a", "method": "b_method=c"}
    )
    long = store.cell_id("run", {"axis": "/very/" * 60 + "g.json"})
    assert len(long) <= 200 and long != store.cell_id("run", {"axis": "/very/" * 60 + "h.json"})


def test_two_group_files_with_similar_paths_keep_apart(tmp_path):
    (tmp_path / "d1").mkdir()
    first = write_group(tmp_path / "d1" / "g.json", [["man", "woman"]])
    second = write_group(tmp_path / "d1-g.json", [["he", "she"]])
    store = RunStore(tmp_path / "out", "bias")
    paths = {store.envelope_path("run", {"axis": a, "method": "base"}) for a in (first, second)}
    assert len(paths) == 2


# --- a report says when its runs were made with different settings -----------------------------------


def test_a_report_over_mixed_settings_says_so_in_its_tables(tmp_path, capsys):
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0, 1)))
    print_report(ToyTask(), tmp_path)
    assert "different settings" not in capsys.readouterr().out
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(1,), scale=3.0), overwrite=True)
    tables = dict(print_report(ToyTask(), tmp_path))
    out = capsys.readouterr().out
    assert "Runs made with different settings" in out
    values = tables["values"]
    assert list(values["settings"]) == ["scale=1.0", "scale=3.0"]


# --- phrases that overlap in some text are refused -----------------------------------------------------


@pytest.mark.parametrize(
    "generators",
    [
        [[("Bob", "Lee Ann")], [("Tom Lee", "Sam")]],  # "Tom Lee Ann"
        [[("New York New", "Paris")]],  # "New York New York New": a phrase overlapping itself
        [[("disabled person", "nondisabled person"), ("person with a disability", "person without a disability")]],
    ],
)
def test_overlapping_phrases_are_refused(generators):
    with pytest.raises(EquinlpError, match="overlap in a text such as"):
        phrase_permutation(*generators)


def test_phrases_that_only_touch_are_accepted():
    action = phrase_permutation([("Lee Ann", "Sam"), ("Tom", "Bob")])
    text = "Tom Lee Ann met Bob"
    assert action.act(action.act(text, 1), 1) == text


# --- left padding whatever the tokenizer says -----------------------------------------------------------


WORDS = "Lakisha Washington Emily Walsh was a the doctor nurse and kind good bad very".split()


PROMPTS = [
    "Lakisha Washington was",
    "the doctor Emily Walsh was a",
    "a very kind nurse and Lakisha Washington",
    "Emily Walsh",
    "the good and kind doctor was very bad and Emily Walsh was",
    "Lakisha Washington and the nurse",
]


@pytest.mark.parametrize("method", ["equizero", "lambda"])
def test_sequence_level_pads_on_the_left_whatever_the_tokenizer_says(method):
    """Branch choices read the logits and features at each prompt's last token, never at a pad."""
    model = tiny_causal_lm(len(word_tokenizer(WORDS)), family="llama").eval()
    action = phrase_permutation([("Lakisha Washington", "Emily Walsh")])
    weight_net = eq.WeightNet(model.config.hidden_size)
    torch.nn.init.normal_(weight_net.net[-1].weight, std=2.0)
    chosen, texts = {}, {}
    for side in ("left", "right"):
        wrapped = SequenceLevel(model, word_tokenizer(WORDS, padding_side=side), action, method, weight_net=weight_net.eval())
        chosen[side] = [b.text for b in wrapped.branches(PROMPTS, [3] * len(PROMPTS))]
        texts[side] = wrapped.generate(PROMPTS, seed=3, do_sample=True, top_k=4, max_new_tokens=6)
    assert chosen["right"] == chosen["left"] and texts["right"] == texts["left"]


# --- calls independent of their batch mates, in bfloat16 -------------------------------------------------


@pytest.fixture(scope="module")
def bf16_lm():
    tok = word_tokenizer()
    model = tiny_causal_lm(len(tok), family="llama", width=64).to(torch.bfloat16).eval()
    return model, tok


DECODINGS = {
    "greedy": {"do_sample": False},
    "seeded top-k": {"do_sample": True, "top_k": 8, "seed": 11, "num_return_sequences": 2},
}


@pytest.mark.parametrize("decoding", DECODINGS)
@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_batch_independent_calls_are_exact_swaps_beside_any_batch_mates(bf16_lm, swap, method, decoding):
    """``x`` alone, and ``g·x`` left-padded beside a longer prompt, in two calls: exact swaps, token for token."""
    model, tok = bf16_lm
    wrapped = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}[method](model, swap)
    kwargs = {"max_new_tokens": 6, "pad_token_id": tok.pad_token_id, "batch_independent": True, **DECODINGS[decoding]}
    alone = tok(["the man said he"], return_tensors="pt")
    beside = tok(["the woman said she", "a doctor and a nurse said the man was"], return_tensors="pt", padding=True)
    first = wrapped.generate(**alone, **kwargs)[:, alone["input_ids"].shape[1] :]
    copies = first.shape[0]
    second = wrapped.generate(**beside, **kwargs)[:copies, beside["input_ids"].shape[1] :]
    plain = wrapped.generate(**alone, **{k: v for k, v in kwargs.items() if k != "batch_independent"})
    assert torch.equal(plain[:, alone["input_ids"].shape[1] :], first)  # alone, it is the ordinary call
    first = torch.nn.functional.pad(first, (0, second.shape[1] - first.shape[1]), value=tok.pad_token_id)  # ended early
    assert torch.equal(second, swap.ids.act(first, 1))


def test_calls_with_the_same_shapes_are_exact_swaps_without_the_option(bf16_lm, swap):
    model, tok = bf16_lm
    wrapped = eq.equitune(model, swap)
    kwargs = {"max_new_tokens": 6, "do_sample": True, "top_k": 8, "seed": 5, "pad_token_id": tok.pad_token_id}
    x, gx = (tok([text], return_tensors="pt") for text in ("the man said he", "the woman said she"))
    assert torch.equal(wrapped.generate(**gx, **kwargs), swap.ids.act(wrapped.generate(**x, **kwargs), 1))


def test_sequence_level_batch_independent_calls_agree_in_bfloat16():
    tok = word_tokenizer(WORDS)
    model = tiny_causal_lm(len(tok), family="llama", width=64).to(torch.bfloat16).eval()
    action = phrase_permutation([("Lakisha Washington", "Emily Walsh")])
    wrapped = SequenceLevel(model, tok, action, "equizero")
    kwargs = {"do_sample": True, "top_k": 6, "max_new_tokens": 6, "batch_independent": True}
    alone = wrapped.generate(["Lakisha Washington was a"], seed=[4], **kwargs)
    beside = wrapped.generate(["Emily Walsh was a", "the very kind and good doctor was"], seed=[4, 4], **kwargs)
    assert beside[0] == action.act(alone[0], 1)


def test_batch_independent_refuses_what_it_cannot_split(bf16_lm, swap):
    model, tok = bf16_lm
    x = tok(["the man said"], return_tensors="pt")
    with pytest.raises(ValueError, match="token ids only"):
        eq.equitune(model, swap).generate(**x, max_new_tokens=2, batch_independent=True, return_dict_in_generate=True)


# --- the lock: one holder, however many processes race for a stale one ----------------------------------


def _take_lock(out: str, go: str, holders: str) -> None:
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        with RunStore(out, "toy").locked():
            mine = Path(holders) / str(os.getpid())
            mine.touch()
            count = len(os.listdir(holders))
            time.sleep(0.05)
            mine.unlink()
            if count > 1:
                os._exit(3)
    except EquinlpError:
        os._exit(0)
    os._exit(0)


@pytest.mark.slow
def test_processes_racing_for_a_stale_lock_leave_one_holder(tmp_path):
    context = multiprocessing.get_context("fork")
    for trial in range(8):
        out, holders = tmp_path / f"out{trial}", tmp_path / f"holders{trial}"
        out.mkdir()
        holders.mkdir()
        (out / ".lock").write_text(json.dumps({"host": "elsewhere-or-here", "pid": 999999999}))  # nobody holds it
        go = tmp_path / f"go{trial}"
        processes = [context.Process(target=_take_lock, args=(str(out), str(go), str(holders))) for _ in range(6)]
        for process in processes:
            process.start()
        go.touch()
        for process in processes:
            process.join()
        assert [p.exitcode for p in processes].count(3) == 0, f"two processes held the lock at once (trial {trial})"
        assert not (out / ".lock").exists()


def test_a_live_holder_is_refused_and_named(tmp_path):
    import fcntl

    with RunStore(tmp_path, "toy").locked():
        with open(tmp_path / ".lock") as file:
            holder = json.loads(file.read())
            with pytest.raises(BlockingIOError):
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert holder["pid"] == os.getpid()


# --- --config with a run's own JSON, text files, group files, help -------------------------------------


def test_config_from_a_run_envelope_redoes_that_run_in_its_folder(tmp_path):
    import argparse

    from equinlp.harness.cli import add_config_arguments, config_from_args

    out = tmp_path / "toy"
    run_task(ToyTask(), ToyConfig(out=str(out), seeds=(0, 1, 2), scale=2.0))
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ToyConfig)
    config = config_from_args(ToyConfig, parser.parse_args(["--config", str(out / "runs" / "toy_seed=2.json")]))
    assert config.seeds == (2,) and config.out == str(out) and config.scale == 2.0
    elsewhere = config_from_args(ToyConfig, parser.parse_args(["--config", str(out / "runs" / "toy_seed=2.json"), "--out", "x"]))
    assert elsewhere.out == "x" and elsewhere.seeds == (2,)


def test_templates_in_utf8_with_a_bom_and_in_utf16(tmp_path):
    from equinlp.apps.bias.prompts import read_templates

    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffwas known for\nworked as\n".encode())
    assert read_templates(path) == {"custom": ("was known for", "worked as")}
    path.write_bytes("was known for\n".encode("utf-16"))
    with pytest.raises(EquinlpError, match="is UTF-16; save it as UTF-8"):
        read_templates(path)
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(EquinlpError, match="is not UTF-8 text"):
        read_templates(path)


def test_cycles_given_as_a_string_are_named(tmp_path):
    from equinlp.symmetry.wordgroups import word_group

    path = tmp_path / "g.json"
    path.write_text(json.dumps({**GROUP, "cycles": "man woman"}))
    with pytest.raises(EquinlpError, match=r"cycles must be lists of words.*got \"man woman\""):
        word_group(str(path))


def test_token_level_with_a_multi_token_group_is_refused_before_the_lock_and_the_model(tmp_path):
    axis = write_group(tmp_path / "g.json", [["nurse practitioner", "man"]])
    task = BiasTask(model=None, tokenizer=word_tokenizer())
    task.setup = lambda config: pytest.fail("the model was loaded")
    with pytest.raises(EquinlpError, match="nurse practitioner"):
        run_task(task, BiasConfig(axes=(axis,), level="token", methods=("base",), out=str(tmp_path / "out")))
    assert not (tmp_path / "out" / ".lock").exists()


def test_bias_run_help_lists_every_built_in_axis(capsys):
    from equinlp.cli import main
    from equinlp.symmetry.wordgroups import word_group_names

    with pytest.raises(SystemExit):
        main(["bias", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in word_group_names())


def test_a_run_json_with_unset_settings_is_taken_back(tmp_path):
    """A run's JSON records unset settings as null (contexts, templates): --config takes them back as unset."""
    import argparse

    from equinlp.harness.cli import add_config_arguments, config_from_args

    envelope = {
        "task": "bias",
        "cell": {"axis": "gender", "method": "base"},
        "metrics": {},
        "config": {"contexts": None, "templates": None, "samples": 20},
    }
    (tmp_path / "runs").mkdir()
    path = tmp_path / "runs" / "bias_axis=gender_method=base.json"
    path.write_text(json.dumps(envelope))
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, BiasConfig)
    config = config_from_args(BiasConfig, parser.parse_args(["--config", str(path)]))
    assert config.contexts is None and config.axes == ("gender",) and config.methods == ("base",) and config.samples == 20


def test_a_utf16_file_without_a_byte_order_mark_is_refused(tmp_path):
    from equinlp.apps.bias.prompts import read_templates

    path = tmp_path / "t.txt"
    path.write_bytes("was known for\n".encode("utf-16-le"))
    with pytest.raises(EquinlpError, match="NUL characters"):
        read_templates(path)


def test_mixed_settings_are_marked_in_tables_indexed_by_the_run_coordinates(tmp_path):
    import pandas as pd

    from equinlp.harness.results import load_runs, mark_mixed, mixed_settings

    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0, 1)))
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(1,), scale=3.0), overwrite=True)
    runs = load_runs(tmp_path, "toy")
    indexed = pd.DataFrame({"seed": [0, 1], "value": [1.0, 2.0]}).set_index("seed")
    wide = pd.DataFrame([[1.0], [2.0]], index=pd.Index([0, 1], name="seed"), columns=pd.MultiIndex.from_tuples([("v", "x")]))
    marked = dict(mark_mixed([("indexed", indexed), ("wide", wide)], mixed_settings(runs)))
    assert list(marked["indexed"]["settings"]) == ["scale=1.0", "scale=3.0"]
    assert list(marked["wide"][("settings", "")]) == ["scale=1.0", "scale=3.0"]


def test_generate_refuses_sampling_options_without_sampling():
    from equinlp.apps.generate import GenerateConfig

    with pytest.raises(EquinlpError, match="--top-k only act when sampling: add --do-sample"):
        GenerateConfig(top_k=5)
    assert GenerateConfig(top_k=5, do_sample=True).top_k == 5
