"""End to end on a tiny schedule: pre-train, evaluate, fine-tune, report; resume and Ctrl-C."""

import json

import pytest
import torch

from equinlp.cli import main
from equinlp.scan.data import encode, scan_actions, tokenizers
from equinlp.scan.equi import build
from equinlp.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.scan.report import load_results, plot, table
from equinlp.scan.run import RunConfig, run
from equinlp.scan.splits import scan_split
from equinlp.scan.train import TrainConfig, train


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUINLP_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(2)


def test_tiny_run_equizero_beats_the_base_model_on_add_jump(tmp_path, cache):
    out = tmp_path / "results"
    config = RunConfig(
        split="addprim_jump", methods=("base", "equizero"), pretrain_steps=300, finetune_steps=20, test_limit=400, out=str(out)
    )
    records = run(config, log=lambda *_: None)
    accuracy = {(r["method"], r["stage"]): r["accuracy"] for r in records}
    assert accuracy[("base", "zero-shot")] < 0.02  # the plain model cannot compose 'jump'
    assert accuracy[("equizero", "zero-shot")] > accuracy[("base", "zero-shot")] + 0.1
    record = json.loads((out / "addprim_jump_gru_equizero_zero-shot_seed0.json").read_text())
    assert {"split", "method", "cell", "seed", "accuracy", "stage", "group"} <= set(record) and record["group"] == "verb"
    frame = load_results(out)
    assert table(frame).shape == (2, 2) and plot(frame, out / "scan.png").exists()
    # a second run keeps the finished results instead of recomputing them
    again = run(config, log=lambda *_: None)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in records]


def _tiny_training(steps, checkpoint, interrupt_at=None):
    in_tok, out_tok = tokenizers()
    data = encode(scan_split("addprim_jump")["train"][:512], in_tok, out_tok)
    torch.manual_seed(0)
    model = AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok)))
    module = build("equitune", model, scan_actions("verb", in_tok, out_tok))
    if interrupt_at is not None:
        calls = {"n": 0}
        forward = module.forward

        def interrupting(*args):
            calls["n"] += 1
            if calls["n"] > interrupt_at:
                raise KeyboardInterrupt
            return forward(*args)

        module.forward = interrupting
    train(module, list(module.parameters()), data, TrainConfig(steps, batch_size=32, save_every=4), checkpoint)
    return model


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, cache):
    straight = _tiny_training(12, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _tiny_training(12, tmp_path / "b", interrupt_at=7)
    assert json.loads((tmp_path / "b" / "progress.json").read_text())["step"] == 7
    resumed = _tiny_training(12, tmp_path / "b")
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_cli_export_writes_the_official_format(tmp_path, capsys):
    assert main(["scan", "export", "--split", "template_around_right", "--out", str(tmp_path)]) == 0
    assert "test: " in capsys.readouterr().out
    assert sum(1 for _ in (tmp_path / "test.txt").open()) == 4476


def test_t5_cell_runs_end_to_end(tmp_path, cache):
    config = RunConfig(
        split="addprim_jump", cell="t5", methods=("base", "equizero"), pretrain_steps=20, finetune_steps=2, test_limit=40,
        out=str(tmp_path / "results"),
    )  # fmt: skip
    records = run(config, log=lambda *_: None)
    assert {(r["method"], r["stage"]) for r in records} == {
        (m, s) for m in ("base", "equizero") for s in ("zero-shot", "fine-tuned")
    }
    assert all(r["cell"] == "t5" and 0.0 <= r["accuracy"] <= 1.0 for r in records)
