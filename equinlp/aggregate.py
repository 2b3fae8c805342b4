"""Aggregators: the weights ``w_g`` of the one formula ``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)``.

Each takes the pulled-back outputs ``outs: [G, B, ..., V]`` (copy g already mapped by g⁻¹) and, when it
needs them, features of each transformed input ``feats: [G, B, ..., D]``, and returns ``[B, ..., V]``.

- :class:`Mean` (equitune): ``w_g = 1/|G|``.
- :class:`Argmin` (equizero): ``w_g = 1`` for the copy with the smallest proxy loss; when training, the
  value is that copy and the gradient is the mean's (straight-through).
- :class:`Weighted` (λ-equitune): ``w_g = softmax_g(net(feats_g))``, i.e. ``λ = exp(net) > 0``
  normalised over the group. The last layer starts at zero, so λ-equitune starts as equitune.

A proxy must not change when the vocabulary is permuted (entropy, max logit, max probability do not),
otherwise equizero is not equivariant. Copies whose proxies tie (within a relative 1e-6) are averaged:
an input fixed by a group element h (a prompt with no swap word) gives tied copies g and g·h, and
averaging them is what keeps the output h-invariant there, as equivariance demands. A first-index
argmin would not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Proxy = Callable[[torch.Tensor], torch.Tensor]


def entropy(outs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of ``softmax(outs)`` over the last axis: ``[..., V] -> [...]``."""
    logp = outs.float().log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def max_logit(outs: torch.Tensor) -> torch.Tensor:
    """Minus the largest raw score: picks the copy with the highest logit."""
    return -outs.float().amax(-1)


def max_prob(outs: torch.Tensor) -> torch.Tensor:
    """Minus the largest probability: picks the most confident copy (the paper's CLIP/SCAN 'top1')."""
    return -outs.float().log_softmax(-1).amax(-1)


PROXIES: dict[str, Proxy] = {"entropy": entropy, "max_logit": max_logit, "max_prob": max_prob}


def resolve_proxy(proxy: str | Proxy) -> Proxy:
    if callable(proxy):
        return proxy
    if proxy not in PROXIES:
        raise ValueError(f"unknown proxy {proxy!r}; choose from {sorted(PROXIES)} or pass a callable")
    return PROXIES[proxy]


class Aggregator(nn.Module):
    """Base class. ``needs_features`` tells wrappers to collect features of each transformed input."""

    needs_features = False
    method = "base"

    def forward(self, outs: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class Mean(Aggregator):
    """equitune: the group average of the pulled-back outputs."""

    method = "equitune"

    def forward(self, outs: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        return outs.mean(0)


class Argmin(Aggregator):
    """equizero: the copy whose proxy loss is smallest, per batch element (and position).

    Args:
        proxy: a name from :data:`PROXIES` or a callable ``[G, B, ..., V] -> [G, B, ...]``.
        straight_through: in training mode return ``mean + (selected - mean).detach()``.
    """

    method = "equizero"

    def __init__(self, proxy: str | Proxy = "entropy", straight_through: bool = True) -> None:
        super().__init__()
        self.proxy_name = proxy if isinstance(proxy, str) else getattr(proxy, "__name__", "custom")
        self.proxy = resolve_proxy(proxy)
        self.straight_through = straight_through

    def weights(self, outs: torch.Tensor) -> torch.Tensor:
        """``[G, B, ...]``: 1 on the copy with the smallest proxy loss (shared equally among exact ties)."""
        with torch.no_grad():
            losses = self.proxy(outs)
            if losses.shape != outs.shape[:-1]:
                raise ValueError(f"proxy returned shape {tuple(losses.shape)}, expected {tuple(outs.shape[:-1])}")
            best = losses.min(0).values
            tied = (losses <= best + 1e-6 * best.abs().clamp(min=1.0)).to(outs.dtype)
            return tied / tied.sum(0)

    def forward(self, outs: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        selected = (self.weights(outs)[..., None] * outs).sum(0)
        if self.training and self.straight_through and outs.requires_grad:
            mean = outs.mean(0)
            return mean + (selected - mean).detach()
        return selected

    def extra_repr(self) -> str:
        return f"proxy={self.proxy_name!r}, straight_through={self.straight_through}"


class WeightNet(nn.Module):
    """The paper's λ-network: ``Linear(d, h) → ReLU → Dropout → Linear(h, h) → Dropout → Linear(h, 1)``.

    The last layer is zero-initialised, so every group element starts with the same weight.
    Shapes: ``[..., D] -> [...]`` (an unnormalised log-weight).
    """

    def __init__(self, in_features: int, hidden: int = 100, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_features, self.hidden, self.dropout = in_features, hidden, dropout
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats.to(self.net[0].weight.dtype)).squeeze(-1)


class Weighted(Aggregator):
    """λ-equitune: ``Σ_g softmax_g(weight_net(feats_g)) · outs_g``.

    Args:
        weight_net: maps features ``[G, B, ..., D]`` to log-weights ``[G, B, ...]``.
    """

    needs_features = True
    method = "lambda"

    def __init__(self, weight_net: nn.Module) -> None:
        super().__init__()
        self.weight_net = weight_net

    def weights(self, feats: torch.Tensor) -> torch.Tensor:
        """``[G, B, ..., D] -> [G, B, ...]``, positive and summing to 1 over the group axis."""
        log_weights = self.weight_net(feats)
        return log_weights.softmax(0, dtype=torch.promote_types(log_weights.dtype, torch.float32))

    def forward(self, outs: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        if feats is None:
            raise ValueError("λ-equitune needs features of each transformed input")
        w = self.weights(feats).to(outs.dtype)
        return (w[..., None] * outs).sum(0)


class Relaxed(Aggregator):
    """The paper's relaxed variant (R-EquiGPT2): ``inner``'s output, except that the "general word" tokens
    (his / her / him, which no permutation can map one-to-one) take the identity copy's output.

    Equivariant on every other token; deliberately not on ``token_ids``.

    Args:
        inner: ``Mean()``, ``Argmin(...)`` or ``Weighted(...)``.
        token_ids: ``LongTensor[K]``, positions on the last (vocabulary) axis.
    """

    def __init__(self, inner: Aggregator, token_ids: torch.Tensor | list[int]) -> None:
        super().__init__()
        if isinstance(inner, Relaxed):
            raise ValueError("already relaxed")
        self.inner = inner
        self.register_buffer("token_ids", torch.as_tensor(token_ids, dtype=torch.long).flatten())
        self.method = inner.method
        self.needs_features = inner.needs_features

    @property
    def proxy_name(self) -> str | None:
        return getattr(self.inner, "proxy_name", None)

    def forward(self, outs: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        combined = self.inner(outs, feats)
        ids = self.token_ids.to(outs.device)
        return combined.index_copy(-1, ids, outs[0].index_select(-1, ids))

    def extra_repr(self) -> str:
        return f"general tokens={len(self.token_ids)}"
