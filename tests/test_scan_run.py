"""SCAN on the harness, end to end on tiny schedules: pre-train, evaluate, fine-tune, report; settings, flags,
an exact resume after Ctrl-C, checkpoints without pickle, and two processes splitting the cells."""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import equinlp.apps.scan.train as scan_train
from equinlp.apps.scan.data import encode, scan_actions, tokenizers
from equinlp.apps.scan.equi import build
from equinlp.apps.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.apps.scan.report import plot, table
from equinlp.apps.scan.splits import scan_split
from equinlp.apps.scan.task import ScanConfig, ScanTask
from equinlp.apps.scan.train import TrainConfig, train
from equinlp.cli import build_parser, main
from equinlp.harness import SettingsChanged, load_runs, run_task
from equinlp.harness.cli import add_run_command, config_from_args
from equinlp.harness.options import flag, settings_fields
from equinlp.harness.state import load_state

TINY = {"pretrain_steps": 6, "lambda_steps": 4, "finetune_steps": 10, "batch_size": 32, "save_every": 4, "test_limit": 24}


@pytest.fixture(autouse=True)
def _threads(one_thread):
    """One thread: bit-for-bit comparisons between runs need the same reduction order."""


def tiny(out, **changes) -> ScanConfig:
    return ScanConfig(**{**TINY, "out": str(out), **changes})


def metrics(out) -> dict:
    runs = load_runs(out, "scan")
    return {(r.method, r.seed): (r.zero_shot, r.fine_tuned, r.finetune_loss) for r in runs.itertuples()}


class Interrupt:
    """Patches ``step_loss`` to raise KeyboardInterrupt after the ``at``-th loss is computed (mid-step: the
    step's dropout draws are spent, the weights not yet updated)."""

    def __init__(self, monkeypatch, at: int) -> None:
        self.calls, self.at, self.real = 0, at, scan_train.step_loss
        monkeypatch.setattr(scan_train, "step_loss", self)

    def __call__(self, module, batch):
        self.calls += 1
        loss = self.real(module, batch)
        if self.calls == self.at:
            raise KeyboardInterrupt
        return loss


@pytest.mark.slow
def test_tiny_run_equizero_beats_the_base_model_on_add_jump(tmp_path, monkeypatch):
    out = tmp_path / "results"
    config = ScanConfig(methods=("base", "equizero"), pretrain_steps=300, finetune_steps=20, test_limit=400, out=str(out))
    envelopes = run_task(ScanTask(), config)
    accuracy = {e["cell"]["method"]: e["metrics"] for e in envelopes}
    assert accuracy["base"]["zero_shot"] < 0.02  # the plain model cannot compose 'jump'
    assert accuracy["equizero"]["zero_shot"] > accuracy["base"]["zero_shot"] + 0.1
    envelope = json.loads((out / "runs" / "scan_split=addprim_jump_cell=gru_method=equizero_seed=0.json").read_text())
    assert envelope["config"]["group"] == "verb" and {"version", "commit", "date"} <= set(envelope)
    assert {"split", "cell", "method", "seed"} == set(envelope["cell"])
    runs = load_runs(out, "scan")
    assert table(runs).shape == (2, 2) and plot(runs, out / "scan.png").exists()
    # a second run keeps the finished results without loading anything
    monkeypatch.setattr(ScanTask, "setup", lambda *_: pytest.fail("nothing should load"))
    again = run_task(ScanTask(), config)
    assert [e["metrics"] for e in again] == [e["metrics"] for e in envelopes]


@pytest.mark.slow
def test_a_changed_group_is_refused_naming_it_and_overwrite_recomputes(tmp_path, monkeypatch):
    """The old run key (split, cell, method, stage, seed) left the group out: a verb4 rerun reused verb's results."""
    run_task(ScanTask(), tiny(tmp_path, methods=("equitune",)))
    with pytest.raises(SettingsChanged, match=r"group='verb' there, 'verb4' now.*--overwrite"):
        run_task(ScanTask(), tiny(tmp_path, methods=("equitune",), group="verb4"))
    pretrained = []
    monkeypatch.setattr(ScanTask, "pretrain", lambda *a: pretrained.append(a))
    (envelope,) = run_task(ScanTask(), tiny(tmp_path, methods=("equitune",), group="verb4"), overwrite=True)
    assert envelope["config"]["group"] == "verb4"
    assert pretrained == []  # the base model does not depend on the group: kept


@pytest.mark.slow
def test_interrupted_fine_tuning_resumes_bit_for_bit_without_pickle(tmp_path, monkeypatch):
    """Ctrl-C mid-step in fine-tuning, then a rerun, equals the uninterrupted run (it gave 65.5% vs 67.0% before:
    the RNG was saved after the half-done step). The checkpoint is safetensors + JSON and loads without pickle."""
    config = {"methods": ("lambda",)}
    run_task(ScanTask(), tiny(tmp_path / "straight", **config))
    interrupt = Interrupt(monkeypatch, at=TINY["pretrain_steps"] + TINY["lambda_steps"] + 7)  # 7th fine-tuning step
    with pytest.raises(KeyboardInterrupt):
        run_task(ScanTask(), tiny(tmp_path / "resumed", **config))
    checkpoint = tmp_path / "resumed" / "work" / "scan_split=addprim_jump_cell=gru_method=lambda_seed=0" / "checkpoint"
    assert sorted(p.name for p in (checkpoint / "finetune").iterdir()) == ["state.json", "tensors.safetensors"]
    assert len(load_state(checkpoint / "finetune")["losses"]) == 6  # the steps done before the interrupted one
    monkeypatch.setattr(scan_train, "step_loss", interrupt.real)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a checkpoint was unpickled"))
    run_task(ScanTask(), tiny(tmp_path / "resumed", **config))
    assert metrics(tmp_path / "resumed") == metrics(tmp_path / "straight")
    assert not checkpoint.exists()  # removed once the run finished


def _tiny_training(steps: int, checkpoint: Path) -> AttnSeq2Seq:
    in_tok, out_tok = tokenizers()
    data = encode(scan_split("addprim_jump")["train"][:512], in_tok, out_tok)
    torch.manual_seed(0)
    model = AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok)))
    module = build("equitune", model, scan_actions("verb", in_tok, out_tok))
    train(module, list(module.parameters()), data, TrainConfig(steps, batch_size=32, save_every=4), checkpoint)
    return model


@pytest.mark.parametrize("at", [3, 7])  # before the first periodic checkpoint, and after it
def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch, at):
    straight = _tiny_training(12, tmp_path / "a")
    interrupt = Interrupt(monkeypatch, at=at)
    with pytest.raises(KeyboardInterrupt):
        _tiny_training(12, tmp_path / "b")
    monkeypatch.setattr(scan_train, "step_loss", interrupt.real)
    resumed = _tiny_training(12, tmp_path / "b")
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)


def test_an_interrupt_inside_the_update_keeps_the_last_whole_checkpoint(tmp_path, monkeypatch):
    straight = _tiny_training(12, tmp_path / "a")
    step, calls = torch.optim.Adam.step, {"n": 0}

    def interrupted_update(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # weights half-written: nothing to save from this step
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupted_update)
    with pytest.raises(KeyboardInterrupt):
        _tiny_training(12, tmp_path / "b")
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    resumed = _tiny_training(12, tmp_path / "b")
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters(), strict=True))


def parse_run(*argv: str) -> ScanConfig:
    return config_from_args(ScanConfig, build_parser(["scan", "run", *argv]).parse_args(["scan", "run", *argv]))


def test_every_setting_has_a_flag_and_quick_yields_to_flags():
    run = add_run_command(argparse.ArgumentParser().add_subparsers(), ScanTask())
    flags = {s for action in run._actions for s in action.option_strings}
    assert {flag(f.name) for f in settings_fields(ScanConfig)} <= flags
    assert {"--lr", "--batch-size", "--finetune-lr", "--method"} <= flags and "--resume" not in flags
    config = parse_run("--quick", "--lr", "0.01", "--batch-size", "16", "--pretrain-steps", "7", "--method", "base")
    assert (config.lr, config.batch_size, config.pretrain_steps, config.finetune_steps) == (0.01, 16, 7, 150)
    assert config.methods == ("base",) and config.group == "verb"
    assert parse_run("--split", "template_around_right").group == "direction"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--test-limit", "0"], r"test_limit \(--test-limit\) must be at least 1, got 0"),
        (["--pretrain-steps", "-5"], r"pretrain_steps \(--pretrain-steps\) must be at least 1"),
        (["--batch-size", "0"], r"batch_size \(--batch-size\) must be at least 1"),
        (["--lr", "0"], r"lr \(--lr\) must be greater than 0"),
        (["--group", "verbs"], r"unknown group 'verbs'; did you mean 'verb'\?"),
        (["--method", "equitun"], r"unknown methods 'equitun'; did you mean 'equitune'\?"),
    ],
)
def test_bad_settings_are_one_line_before_anything_loads(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(ScanTask, "setup", lambda *_: pytest.fail("refused after loading"))
    assert main(["scan", "run", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("equinlp: error: ")
    assert re.search(message, err), err


def test_report_names_the_folder_without_runs(tmp_path, capsys):
    assert main(["scan", "report", str(tmp_path)]) == 2
    assert "no scan runs under" in capsys.readouterr().err


def test_cli_export_writes_the_official_format(tmp_path, capsys):
    assert main(["scan", "export", "--split", "template_around_right", "--out", str(tmp_path)]) == 0
    assert "test: " in capsys.readouterr().out
    assert sum(1 for _ in (tmp_path / "test.txt").open()) == 4476


@pytest.mark.slow
def test_t5_cell_runs_end_to_end(tmp_path):
    config = tiny(tmp_path, cell="t5", methods=("base", "equizero"), pretrain_steps=4, finetune_steps=2, test_limit=16)
    envelopes = run_task(ScanTask(), config)
    assert {e["cell"]["method"] for e in envelopes} == {"base", "equizero"}
    assert all(e["cell"]["cell"] == "t5" and 0.0 <= e["metrics"]["fine_tuned"] <= 1.0 for e in envelopes)


@pytest.mark.distributed
def test_two_processes_split_the_cells_and_match_one(tmp_path):
    """torchrun, 2 CPU processes: each cell trains in one process (no DDP sync across cells), same results as one."""
    argv = ["scan", "run", "--method", "base", "equitune", "--pretrain-steps", "4", "--finetune-steps", "3"]
    argv += ["--batch-size", "32", "--test-limit", "16", "--threads", "1"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "equinlp"]
    subprocess.run([*launch, *argv, "--out", str(tmp_path / "two")], env=env, check=True, capture_output=True, timeout=600)
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    assert metrics(tmp_path / "two") == metrics(tmp_path / "one")
    assert sorted(p.name for p in (tmp_path / "two" / "runs").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "runs").iterdir()
    )
