"""The G-seq2seq training recipe: scaled attention, the reference's encoder, gate initialisation and teacher forcing
(each equivariant, exact in canonical frames), the learning-rate schedule and the validation hold-out (resume bit for
bit), and every option keyed so a rerun with another value is refused naming it."""

import json
import math

import pytest
import torch
from test_scan_gmodel import FIXED, actions_for, g_model
from test_scan_models import COMMANDS, assert_equivariant_scan
from test_scan_run import Interrupt

import equinlp.apps.scan.train as scan_train
from equinlp.apps.scan.canonical import CanonicalSCAN
from equinlp.apps.scan.data import encode, scan_actions, tokenizers
from equinlp.apps.scan.gmodel import GSeq2Seq, GSeq2SeqConfig
from equinlp.apps.scan.splits import scan_split
from equinlp.apps.scan.task import ScanConfig, ScanTask
from equinlp.apps.scan.train import TrainConfig, hold_out, learning_rate, train
from equinlp.harness import SettingsChanged, run_task
from equinlp.models.tokenizers import EOS
from equinlp.testing import check_equivariance, equivariance_error

REFERENCE = {"encoder": "shared-eos", "init": "reference", "attention": "dot"}


@pytest.fixture(autouse=True)
def _threads(one_thread):
    """One thread: bit-for-bit comparisons need the same reduction order."""


@pytest.fixture(scope="module")
def vocab():
    return tokenizers()


@pytest.mark.parametrize("group", ["verb4", "S3"])
@pytest.mark.parametrize("cell", ["ggru", "glstm"])
def test_the_reference_options_keep_every_layer_equivariant(cell, group, vocab):
    in_tok, out_tok = vocab
    actions = actions_for(group, in_tok, out_tok)
    model = g_model(cell, actions, in_tok, out_tok, **REFERENCE)
    batch = encode(COMMANDS + FIXED, in_tok, out_tok)
    x = (batch.src, batch.mask, batch.tgt_in)
    errors = equivariance_error(lambda *x: model(*x)[0], (actions[0].ids, None, actions[1].ids), actions[1].logits, x)
    assert max(errors.values()) < 1e-9, errors


@pytest.mark.parametrize("options", [{}, REFERENCE])
def test_canonical_frames_stay_exact_with_each_option_and_free_running_training(options, vocab):
    """Decoding and log-probabilities bit for bit; in training with teacher forcing 0 the model feeds its own
    argmax, and the framed log-probabilities are still exactly equivariant."""
    in_tok, out_tok = vocab
    actions = scan_actions("verb4", in_tok, out_tok)
    module = CanonicalSCAN(g_model("ggru", actions, in_tok, out_tok, torch.float32, **options, teacher_forcing=0.0))
    batch = encode(COMMANDS, in_tok, out_tok)
    assert_equivariant_scan(module, batch)
    module.train()
    x = (batch.src, batch.mask, batch.tgt_in)
    assert set(check_equivariance(module, x).values()) == {0.0}


def test_scaled_attention_divides_the_scores_by_the_square_root_of_their_size(vocab):
    in_tok, out_tok = vocab
    actions = scan_actions("verb4", in_tok, out_tok)
    config = GSeq2SeqConfig(len(in_tok), len(out_tok), hidden=8)
    assert config.attention == "scaled"  # the default
    torch.manual_seed(0)
    scaled = GSeq2Seq(config, *actions)
    torch.manual_seed(0)
    dot = GSeq2Seq(GSeq2SeqConfig(len(in_tok), len(out_tok), hidden=8, attention="dot"), *actions)
    assert scaled.attention_scale == 1 / math.sqrt(4 * 2 * 8) and dot.attention_scale == 1.0
    assert all(torch.equal(p, q) for p, q in zip(scaled.parameters(), dot.parameters(), strict=True))
    batch = encode(COMMANDS, in_tok, out_tok)
    assert not torch.equal(scaled(batch.src, batch.mask, batch.tgt_in)[0], dot(batch.src, batch.mask, batch.tgt_in)[0])


def test_the_shared_encoder_reads_the_command_and_eos_with_one_cell(vocab):
    in_tok, out_tok = vocab
    actions = scan_actions("direction", in_tok, out_tok)
    shared = GSeq2Seq(GSeq2SeqConfig(len(in_tok), len(out_tok), hidden=4, encoder="shared-eos"), *actions)
    two = GSeq2Seq(GSeq2SeqConfig(len(in_tok), len(out_tok), hidden=4), *actions)
    assert shared.backward_cell is None
    cell_size = sum(p.numel() for p in two.forward_cell.parameters())
    assert sum(p.numel() for p in two.parameters()) - sum(p.numel() for p in shared.parameters()) == cell_size
    batch = encode(COMMANDS, in_tok, out_tok)
    src, mask = shared._with_eos(batch.src, batch.mask)
    lengths = batch.mask.sum(1)
    assert src[torch.arange(len(src)), lengths].tolist() == [EOS] * len(src)
    assert torch.equal(mask.sum(1), lengths + 1) and torch.equal(src[:, :-1][batch.mask.bool()], batch.src[batch.mask.bool()])
    memory, _ = shared.encode(batch.src, batch.mask)
    assert memory.shape[1] == batch.src.shape[1] + 1


def test_the_reference_initialisation_draws_each_gate_from_its_own_fan(vocab):
    in_tok, out_tok = vocab
    actions = scan_actions("verb4", in_tok, out_tok)
    torch.manual_seed(0)
    model = GSeq2Seq(GSeq2SeqConfig(len(in_tok), len(out_tok), hidden=16, init="reference"), *actions)
    weight = model.forward_cell.state_conv.weight
    assert 1 / math.sqrt(3 * 16) < weight.abs().max() <= 1 / math.sqrt(16)


def test_teacher_forcing_draws_once_per_training_batch_and_never_in_evaluation(vocab):
    in_tok, out_tok = vocab
    actions = scan_actions("verb4", in_tok, out_tok)
    forced = g_model("ggru", actions, in_tok, out_tok, teacher_forcing=1.0)
    free = g_model("ggru", actions, in_tok, out_tok, teacher_forcing=0.0)
    batch = encode(COMMANDS, in_tok, out_tok)
    x = (batch.src, batch.mask, batch.tgt_in)
    assert torch.equal(forced(*x)[0], free(*x)[0])  # evaluation: always teacher-forced
    free.train()
    state = torch.get_rng_state()
    free_logits = free(*x)[0]
    assert not torch.equal(torch.get_rng_state(), state)  # one draw decided the batch
    forced_logits = forced.train()(*x)[0]
    assert torch.equal(free_logits[:, 0], forced_logits[:, 0]) and not torch.equal(free_logits, forced_logits)


def test_the_schedule_is_a_function_of_the_step():
    rates = {
        s: [learning_rate(step, TrainConfig(4, lr=2.0, schedule=s)) for step in range(4)]
        for s in ("constant", "linear", "cosine")
    }
    assert rates["constant"] == [2.0] * 4
    assert rates["linear"] == [2.0, 1.5, 1.0, 0.5]
    assert rates["cosine"][0] == 2.0 and rates["cosine"][2] == pytest.approx(1.0)


def _g_training(steps: int, checkpoint, schedule: str = "linear", validation: bool = False):
    in_tok, out_tok = tokenizers()
    data = encode(scan_split("template_around_right")["train"][:320], in_tok, out_tok)
    data, held_out = hold_out(data, 0.2 if validation else 0.0)
    torch.manual_seed(0)
    config = GSeq2SeqConfig(len(in_tok), len(out_tok), hidden=4, teacher_forcing=0.5)
    model = GSeq2Seq(config, *scan_actions("direction", in_tok, out_tok))
    module = CanonicalSCAN(model)
    settings = TrainConfig(steps, batch_size=16, lr=3e-2, save_every=4, schedule=schedule, validate_every=3)
    trained = train(module, list(model.parameters()), data, settings, checkpoint, validation=held_out)
    return model, trained


@pytest.mark.parametrize(("schedule", "validation", "at"), [("linear", False, 7), ("cosine", True, 5), ("linear", True, 8)])
def test_an_interrupted_g_training_resumes_bit_for_bit(tmp_path, monkeypatch, schedule, validation, at):
    """Schedule, teacher-forcing draws and the best validated weights all continue exactly where they stopped."""
    straight, expected = _g_training(10, tmp_path / "a", schedule, validation)
    interrupt = Interrupt(monkeypatch, at=at)
    with pytest.raises(KeyboardInterrupt):
        _g_training(10, tmp_path / "b", schedule, validation)
    monkeypatch.setattr(scan_train, "step_loss", interrupt.real)
    resumed, trained = _g_training(10, tmp_path / "b", schedule, validation)
    assert trained == expected
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters(), strict=True))
    if validation:
        assert expected.best_step in (3, 6, 9, 10) and expected.validation is not None


def test_the_validation_hold_out_is_fixed_and_disjoint():
    in_tok, out_tok = tokenizers()
    data = encode(scan_split("template_around_right")["train"][:100], in_tok, out_tok)
    kept, held_out = hold_out(data, 0.2)
    assert (len(kept), len(held_out)) == (80, 20)
    assert sorted(torch.cat([kept.src, held_out.src]).tolist()) == sorted(data.src.tolist())  # every row once
    assert torch.equal(hold_out(data, 0.2)[1].src, held_out.src)
    assert hold_out(data, 0.0)[1] is None


SETTINGS = {
    "split": "template_around_right", "cell": "grnn", "g_hidden": 4, "pretrain_steps": 2, "finetune_steps": 0,
    "batch_size": 8, "test_limit": 8,
}  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value"),
    [("g_attention", "dot"), ("g_encoder", "shared-eos"), ("g_init", "reference"), ("g_teacher_forcing", 0.5),
     ("schedule", "cosine"), ("validation", 0.1)],
)  # fmt: skip
def test_a_rerun_with_another_recipe_option_is_refused_naming_it(tmp_path, option, value):
    run_task(ScanTask(), ScanConfig(**SETTINGS, out=str(tmp_path)))
    with pytest.raises(SettingsChanged, match=option):
        run_task(ScanTask(), ScanConfig(**SETTINGS, **{option: value}, out=str(tmp_path)))


def test_runs_from_before_scaled_attention_count_as_dot_products(tmp_path):
    """An envelope without ``g_attention`` was trained unscaled: today's default (scaled) does not reuse it."""
    run_task(ScanTask(), ScanConfig(**SETTINGS, out=str(tmp_path)))
    for path in (tmp_path / "runs").glob("*.json"):
        envelope = json.loads(path.read_text())
        del envelope["config"]["g_attention"]
        path.write_text(json.dumps(envelope))
    run_task(ScanTask(), ScanConfig(**SETTINGS, g_attention="dot", out=str(tmp_path)))  # reused as it was
    with pytest.raises(SettingsChanged, match="g_attention"):
        run_task(ScanTask(), ScanConfig(**SETTINGS, out=str(tmp_path)))
