"""Q-networks, plain and wrapped by the core.

``EquivariantQ`` computes ``Q_G(s) = Σ_g w_g(s) · g⁻¹ Q(g·s)`` (``core.symmetrize``; its actions are declared as
``in_action`` on states and ``out_action`` on Q-values): the network runs on every transformed state in one
batch, and copy g's Q-values are mapped back by the action permutation g⁻¹, so that ``Q_G(g·s)[g·a] == Q_G(s)[a]``
and the greedy policy commutes with the symmetry.

- ``equitune``: ``w_g = 1/|G|``;
- ``equizero``: the copy with the largest max Q (the ``max_q`` proxy; entropy and max_prob also work).
  Its TD gradient flows through the selected copy only: the update is the one a plain DQN would make on
  the transformed transition. (The straight-through estimator used for LMs sends the mean's gradient
  to every copy towards the selected copy's target, which made the grid world's Q-learning collapse.)
- ``lambda``: λ-equitune, ``w_g = softmax_g(λ-net(features of g·s))`` on the network's last hidden layer.
"""

from __future__ import annotations

import torch
from torch import nn

from equinlp.apps.rl.config import METHODS, RL_PROXIES
from equinlp.apps.rl.envs import Symmetry
from equinlp.errors import check_name
from equinlp.methods import registry
from equinlp.methods.aggregate import PROXIES
from equinlp.methods.core import symmetrize


class QNetwork(nn.Module):
    """An MLP ``[B, D] -> [B, A]``; ``features`` is its last hidden layer ``[B, H]``."""

    def __init__(self, state_dim: int, n_actions: int, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        self.body = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_actions)

    def features(self, states: torch.Tensor) -> torch.Tensor:
        return self.body(states)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(states))


class EquivariantQ(nn.Module):
    """A Q-network made equivariant under ``symmetry`` by ``method`` (``[B, D] -> [B, A]``).

    Args:
        net: the (pre-trained) :class:`QNetwork`; its weights are shared, not copied.
        proxy: equizero's proxy, a key of ``RL_PROXIES`` (``max_q``: the copy with the largest max Q).
        lambda_hidden: width of the λ-net (no dropout, so that acting is deterministic).
    """

    def __init__(self, net: QNetwork, symmetry: Symmetry, method: str, proxy: str = "max_q", lambda_hidden: int = 64):
        super().__init__()
        check_name("equivariant method", method, registry.method_names())
        check_name("proxy", proxy, RL_PROXIES)
        self.net = net
        self.method = method
        self.in_action = symmetry.state_action()  # on states
        self.out_action = symmetry.action_permutation().logits  # on Q-values
        proxy_fn = PROXIES[RL_PROXIES[proxy]]
        settings = dict(straight_through=False, weight_net_hidden=lambda_hidden, weight_net_dropout=0.0)
        self.aggregator = registry.make_aggregator(method, features=net.hidden, proxy=proxy_fn, **settings)

    def _q_and_features(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, D] -> ([N, A] Q-values, [N, H] last hidden layer)``."""
        feats = self.net.features(states)
        return self.net.head(feats), feats

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return symmetrize(self._q_and_features, self.in_action, self.out_action, self.aggregator)(states)


def build_q(net: QNetwork, symmetry: Symmetry, method: str, proxy: str = "max_q") -> nn.Module:
    """``base`` (the trivial group, whose one copy is the network itself, bit for bit) is the bare network; the
    others wrap it."""
    return net if registry.method(check_name("method", method, METHODS)).trivial else EquivariantQ(net, symmetry, method, proxy)
