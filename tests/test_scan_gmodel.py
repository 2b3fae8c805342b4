"""Gordon et al.'s G-equivariant seq2seq: equivariant layer by layer (up to rounding), exact in canonical frames,
on cyclic groups and a non-abelian one, and run through the same SCAN task as every other base model."""

import pytest
import torch
from test_scan_models import COMMANDS, assert_equivariant_scan

from equinlp.apps.scan.canonical import CanonicalSCAN
from equinlp.apps.scan.data import encode, scan_actions, tokenizers
from equinlp.apps.scan.gmodel import G_CELLS, GSeq2Seq, GSeq2SeqConfig
from equinlp.apps.scan.task import ScanConfig, ScanTask, base_cell
from equinlp.errors import EquinlpError
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.groups import from_permutations
from equinlp.testing import check_equivariance, equivariance_error

# Commands fixed by some element of the groups below (no verb of the group, or no direction): their
# teacher-forced log-probabilities must be exactly invariant under that element.
FIXED = [("walk twice", "I_WALK I_WALK"), ("turn left", "I_TURN_LEFT"), ("jump", "I_JUMP")]
# S3 moves three verbs: a command fixed by no element of it holds all three.
S3_COMMANDS = [
    ("jump and run after walk", "I_WALK I_JUMP I_RUN"),
    ("walk left twice and jump after run", "I_RUN I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK I_JUMP"),
]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    """One thread: tiny networks, and a shared machine."""


@pytest.fixture(scope="module")
def vocab():
    return tokenizers()


def s3_on_three_verbs(in_tok, out_tok) -> tuple[TokenPermutation, TokenPermutation]:
    """The non-abelian S3 permuting jump, run and walk (and their actions), from a 3-cycle and a swap."""
    n_in = len(in_tok)

    def generator(words: list[str], actions: list[str], images: list[int]) -> torch.Tensor:
        perm = torch.arange(n_in + len(out_tok))
        for side, offset, tok in ((words, 0, in_tok), (actions, n_in, out_tok)):
            ids = [tok.convert_tokens_to_ids(w) + offset for w in side]
            perm[ids] = torch.tensor([ids[i] for i in images])
        return perm

    verbs, actions = ["jump", "run", "walk"], ["I_JUMP", "I_RUN", "I_WALK"]
    group, tables = from_permutations([generator(verbs, actions, [1, 2, 0]), generator(verbs, actions, [1, 0, 2])], name="S3")
    return TokenPermutation(group, tables[:, :n_in]), TokenPermutation(group, tables[:, n_in:] - n_in)


def actions_for(group: str, in_tok, out_tok):
    return s3_on_three_verbs(in_tok, out_tok) if group == "S3" else scan_actions(group, in_tok, out_tok)


def g_model(cell, actions, in_tok, out_tok, dtype=torch.float64, **options) -> GSeq2Seq:
    """``options``: further :class:`GSeq2SeqConfig` fields (attention, encoder, ...)."""
    torch.manual_seed(0)
    model = GSeq2Seq(GSeq2SeqConfig(len(in_tok), len(out_tok), cell=cell, hidden=8, **options), *actions)
    for p in model.parameters():  # larger weights: clear-cut greedy choices
        torch.nn.init.normal_(p, std=0.5)
    return model.to(dtype).eval()


GROUPS = ["verb", "direction", "verb4", "S3"]


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("cell", sorted(G_CELLS))
def test_every_layer_commutes_with_the_group(cell, group, vocab):
    """The architecture itself (no frames): model(g·x) = g·model(x) up to float64 rounding only, so a wrong index
    in a group convolution, the embeddings or the readout shows as an O(1) error."""
    in_tok, out_tok = vocab
    actions = actions_for(group, in_tok, out_tok)
    model = g_model(cell, actions, in_tok, out_tok)
    batch = encode(COMMANDS + FIXED, in_tok, out_tok)
    x = (batch.src, batch.mask, batch.tgt_in)
    errors = equivariance_error(lambda *x: model(*x)[0], (actions[0].ids, None, actions[1].ids), actions[1].logits, x)
    assert 0 < max(errors.values()) < 1e-9 or max(errors.values()) == 0, errors


@pytest.mark.parametrize("cell", sorted(set(G_CELLS) - {"ggru"}))
def test_canonical_frames_make_it_exact(cell, vocab):
    """Bit for bit, float32 and float64: decoding token for token and the teacher-forced log-probabilities, including
    commands fixed by some element (exactly invariant there). The cells the matrix (test_equivariance_matrix.py, on
    ``ggru`` with every group) leaves, under S3."""
    in_tok, out_tok = vocab
    actions = actions_for("S3", in_tok, out_tok)
    for dtype in (torch.float32, torch.float64):
        module = CanonicalSCAN(g_model(cell, actions, in_tok, out_tok, dtype))
        assert_equivariant_scan(module, encode(S3_COMMANDS, in_tok, out_tok))
        fixed = encode(COMMANDS + FIXED, in_tok, out_tok)
        x = (fixed.src, fixed.mask, fixed.tgt_in)
        assert set(check_equivariance(module, x).values()) == {0.0}


def test_canonical_frames_change_only_rounding(vocab):
    """Running in the canonical frame is the same function as the model itself, up to rounding."""
    in_tok, out_tok = vocab
    actions = scan_actions("verb4", in_tok, out_tok)
    model = g_model("ggru", actions, in_tok, out_tok)
    batch = encode(COMMANDS + FIXED, in_tok, out_tok)
    direct = model(batch.src, batch.mask, batch.tgt_in)[0].log_softmax(-1)
    framed = CanonicalSCAN(model)(batch.src, batch.mask, batch.tgt_in)
    real = batch.tgt_in != 0
    assert torch.allclose(direct[real], framed[real], atol=1e-9)


def test_trailing_padding_columns_do_not_change_the_outputs(vocab):
    in_tok, out_tok = vocab
    model = g_model("glstm", scan_actions("verb", in_tok, out_tok), in_tok, out_tok)
    batch = encode(COMMANDS, in_tok, out_tok)
    padded = torch.nn.functional.pad(batch.tgt_in, (0, 5))
    short, long = model(batch.src, batch.mask, batch.tgt_in)[0], model(batch.src, batch.mask, padded)[0]
    assert torch.equal(short, long[:, : short.shape[1]])


def test_g_cells_run_as_base_only_and_pretrain_per_group():
    config = ScanConfig(cell="ggru", split="addprim_jump", group="verb4")
    assert config.methods == ("base",)
    assert ScanConfig(cell="gru").methods == ("base", "equitune", "equizero", "lambda")
    with pytest.raises(EquinlpError, match="--method base"):
        ScanConfig(cell="glstm", methods=("equitune",))
    assert base_cell(config, 0) == {"split": "addprim_jump", "cell": "ggru", "group": "verb4", "seed": 0}
    assert "group" not in base_cell(ScanConfig(cell="gru"), 0)  # a plain base does not depend on the group
    stages = ScanTask().plan(config)
    assert [len(s.cells) for s in stages] == [1, 1]


def test_a_g_cell_trains_and_evaluates_through_the_task(tmp_path):
    from equinlp.harness import load_runs, run_task

    config = ScanConfig(
        split="template_around_right", cell="grnn", g_hidden=4, pretrain_steps=3, finetune_steps=0, batch_size=16,
        test_limit=20, out=str(tmp_path),
    )  # fmt: skip
    run_task(ScanTask(), config)
    runs = load_runs(tmp_path, "scan")
    assert list(runs["cell"]) == ["grnn"] and list(runs["method"]) == ["base"]
    assert runs["zero_shot"].iloc[0] == runs["fine_tuned"].iloc[0]  # --finetune-steps 0: nothing more trained
    assert any(p.name.startswith("scan_pretrain_") and "group=direction" in p.name for p in (tmp_path / "runs").iterdir())


def test_a_rerun_with_another_width_is_refused_naming_it(tmp_path):
    from equinlp.harness import SettingsChanged, run_task

    settings = {
        "split": "template_around_right", "cell": "grnn", "pretrain_steps": 2, "finetune_steps": 0, "batch_size": 8,
        "test_limit": 8, "out": str(tmp_path),
    }  # fmt: skip
    run_task(ScanTask(), ScanConfig(**settings, g_hidden=4))
    with pytest.raises(SettingsChanged, match="g_hidden"):
        run_task(ScanTask(), ScanConfig(**settings, g_hidden=6))
