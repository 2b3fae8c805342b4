"""symmetrize(): the formula outside HF, on a tiny CNN under image groups (invariant and equivariant)."""

import pytest
import torch
from torch import nn

import equinlp as eq
from equinlp.symmetry.actions import ImageTransform, Invariant


def tiny_cnn(classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, classes)).double()


def aggregators(features: int):
    net = eq.WeightNet(features, hidden=16, dropout=0.0).double()
    nn.init.normal_(net.net[-1].weight)
    return {"equitune": eq.Mean(), "equizero": eq.Argmin("entropy"), "lambda": eq.Weighted(net)}


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
@pytest.mark.parametrize("kind", ["rot90", "mirror", "rot180", "d4"])
def test_symmetrized_cnn_is_invariant(kind, method):
    action = ImageTransform(kind)
    cnn = tiny_cnn()
    with_features = lambda x: (cnn(x), x.flatten(1)[:, :32])  # noqa: E731 - features: any function of the input
    model = eq.symmetrize(with_features, action, Invariant(action.group), aggregators(32)[method])
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    reference = model(x)
    assert not torch.allclose(cnn(action.act(x, 1)), cnn(x))  # the CNN alone is not invariant
    for g in range(action.group.order):
        assert torch.allclose(model(action.act(x, g)), reference, atol=1e-10)


def test_symmetrized_map_is_equivariant():
    action = ImageTransform("d4")
    conv = nn.Conv2d(2, 2, 3, padding=1).double()
    model = eq.symmetrize(conv, action, action, eq.Mean())
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    for g in range(action.group.order):
        assert torch.allclose(model(action.act(x, g)), action.act(model(x), g), atol=1e-10)


def test_symmetrize_refuses_mismatched_groups_and_missing_features():
    with pytest.raises(ValueError, match="same group"):
        eq.symmetrize(tiny_cnn(), ImageTransform("rot90"), Invariant(eq.cyclic(2)), eq.Mean())
    action = ImageTransform("rot90")
    model = eq.symmetrize(tiny_cnn(), action, Invariant(action.group), eq.Weighted(eq.WeightNet(4)))
    with pytest.raises(ValueError, match="needs features"):
        model(torch.randn(2, 3, 8, 8, dtype=torch.float64))


def test_symmetrize_runs_the_backbone_once_on_the_folded_batch():
    action = ImageTransform("d4")
    cnn, calls = tiny_cnn(), []
    cnn.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    model = eq.symmetrize(lambda x: (cnn(x), x.flatten(1)[:, :32]), action, Invariant(action.group), aggregators(32)["lambda"])
    model(torch.randn(3, 3, 8, 8, dtype=torch.float64))
    assert calls == [8 * 3]
