import pytest
import torch

import equinlp as eq
from equinlp.symmetry.actions import ImageTransform, Invariant, TokenPermutation


@pytest.fixture(params=["cycle3", "s3"])
def action(request):
    return request.getfixturevalue(request.param)


def test_s3_is_built_from_word_cycles(s3, tok):
    group, table = s3.group, s3.table
    assert group.order == 6 and not torch.equal(group.mul, group.mul.T)  # non-abelian
    words = tok.convert_tokens_to_ids(["Black", "White", "Asian"])
    images = {tuple(table[g, words].tolist()) for g in range(6)}
    assert len(images) == 6  # all 3! orders of the three words, each once
    identity = torch.arange(s3.vocab_size)
    for g in range(6):
        assert torch.equal(table[group.inv[g]][table[g]], identity)  # inverses, 3-cycles included
        for h in range(6):
            assert torch.equal(table[group.mul[g, h]], table[g][table[h]])  # closed: apply h, then g
    a, b = "(Black White)", "(Black White Asian)"  # elements are named by the word cycles that generate them
    assert {group.element_name(g) for g in range(6)} == {"e", a, b, f"{a}·{b}", f"{b}·{a}", f"{b}·{b}"}


def test_token_action_is_a_homomorphism(action):
    group = action.group
    ids = torch.randint(0, action.vocab_size, (3, 7))
    logits = torch.randn(3, 7, action.vocab_size)
    for g in range(group.order):
        for h in range(group.order):
            gh = int(group.mul[g, h])
            assert torch.equal(action.ids.act(action.ids.act(ids, h), g), action.ids.act(ids, gh))
            assert torch.equal(action.logits.act(action.logits.act(logits, h), g), action.logits.act(logits, gh))


def test_logit_action_moves_scores_with_their_tokens(cycle3, tok):
    black, white = tok.convert_tokens_to_ids(["Black", "White"])
    z = torch.zeros(cycle3.vocab_size)
    z[black] = 1.0
    assert cycle3.logits.act(z, 1)[white] == 1.0  # the score of 'Black' becomes the score of 'White'
    assert cycle3.ids.act(torch.tensor([black]), 1).item() == white


def test_pull_back_inverts_act_all(action):
    G = action.group.order
    logits = torch.randn(2, 5, action.vocab_size)
    copies = torch.cat([action.logits.act(logits, g) for g in range(G)])  # [G·B, T, V]
    assert torch.equal(action.logits.act_all(logits), copies)
    pulled = action.logits.pull_back(copies)
    assert pulled.shape == (G, 2, 5, action.vocab_size)
    assert all(torch.equal(pulled[g], logits) for g in range(G))
    ids = torch.randint(0, action.vocab_size, (2, 5))
    assert all(torch.equal(p, ids) for p in action.ids.pull_back(action.ids.act_all(ids)))


def test_table_that_is_not_a_homomorphism_raises():
    table = torch.tensor([[0, 1, 2], [1, 2, 0]])  # a 3-cycle is not an involution: not a Z2 action
    with pytest.raises(ValueError, match="homomorphism"):
        TokenPermutation(eq.cyclic(2), table)


def test_resized_pads_with_fixed_points_and_refuses_cutting_moved_ids(swap):
    bigger = swap.resized(swap.vocab_size + 5)
    assert bigger.vocab_size == swap.vocab_size + 5 and torch.equal(bigger.moved, swap.moved)
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        swap.resized(int(swap.moved.max()))


@pytest.mark.parametrize("kind", ["rot90", "rot180", "mirror", "d4", "trivial"])
def test_image_action_is_a_homomorphism(kind):
    action = ImageTransform(kind)
    x = torch.randn(2, 3, 5, 5)
    group = action.group
    for g in range(group.order):
        for h in range(group.order):
            assert torch.equal(action.act(action.act(x, h), g), action.act(x, int(group.mul[g, h])))
    assert all(torch.equal(p, x) for p in action.pull_back(action.act_all(x)))


def test_mirror_is_a_mirror_and_rot180_is_not():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert torch.equal(ImageTransform("mirror").act(x, 1), x.flip(-1))  # one axis only
    assert torch.equal(ImageTransform("rot180").act(x, 1), x.flip(-1).flip(-2))  # the paper's "flip"
    assert not torch.equal(ImageTransform("mirror").act(x, 1), ImageTransform("rot180").act(x, 1))


def test_invariant_and_unknown_image_group():
    action = Invariant(eq.cyclic(3))
    y = torch.randn(2, 4)
    assert action.act_all(y).shape == (6, 4) and torch.equal(action.pull_back(action.act_all(y))[2], y)
    with pytest.raises(ValueError, match="unknown image group"):
        ImageTransform("rot45")
