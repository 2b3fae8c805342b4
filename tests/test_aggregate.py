import torch

from equinlp.methods.aggregate import Argmin, Mean, Weighted, WeightNet, entropy


def test_mean_and_argmin_pick_what_they_should():
    outs = torch.tensor([[[0.0, 0.0, 0.0]], [[5.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]]])  # [G=3, B=1, V=3]
    assert torch.allclose(Mean()(outs), outs.mean(0))
    picked = Argmin("entropy").eval()(outs)
    assert torch.equal(picked, outs[1])  # the most peaked copy has the lowest entropy
    assert torch.equal(Argmin("max_prob").eval()(outs), outs[1])


def test_argmin_averages_exact_ties():
    outs = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]], [[0.0, 0.0]]])  # copies 0 and 1 tie on entropy
    assert torch.allclose(Argmin("entropy").eval()(outs), torch.tensor([[1.0, 1.0]]))


def test_equizero_straight_through_gradient_is_the_means():
    outs = torch.randn(3, 2, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 5, dtype=torch.float64)
    agg = Argmin("entropy").train()
    value = agg(outs)
    chosen = entropy(outs.detach()).argmin(0)
    assert torch.allclose(value, outs[chosen, torch.arange(2)])  # the value is the selected copy
    (value * weights).sum().backward()
    assert torch.allclose(outs.grad, (weights / 3).expand(3, 2, 5))  # the gradient is the mean's


def test_weighted_starts_uniform_and_its_gradients_are_right():
    net = WeightNet(4, hidden=8, dropout=0.0).double()
    agg = Weighted(net)
    outs = torch.randn(3, 2, 5, dtype=torch.float64)
    feats = torch.randn(3, 2, 4, dtype=torch.float64)
    assert torch.allclose(agg(outs, feats), outs.mean(0))  # zero last layer: λ-equitune == equitune
    torch.nn.init.normal_(net.net[-1].weight)
    w = agg.weights(feats)
    assert (w > 0).all() and torch.allclose(w.sum(0), torch.ones(2, dtype=torch.float64))
    params = [p for p in net.parameters()]
    assert torch.autograd.gradcheck(lambda o, f: agg(o, f), (outs.requires_grad_(), feats.requires_grad_()))
    loss = agg(outs, feats).square().sum()
    loss.backward()
    assert all(p.grad is not None for p in params)
