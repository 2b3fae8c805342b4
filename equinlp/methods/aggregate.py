"""Aggregators: the weights ``w_g`` of the one formula ``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)``.

Each takes the pulled-back outputs ``outs: [G, B, ..., V]`` (copy g already mapped by g⁻¹) and, when it
needs them, features of each transformed input ``feats: [G, B, ..., D]``, and returns ``[B, ..., V]``.

- :class:`Mean` (equitune): ``w_g = 1/|G|``.
- :class:`Argmin` (equizero): ``w_g = 1`` for the copy with the smallest proxy loss; when training, the
  value is that copy and the gradient is the mean's (straight-through).
- :class:`Weighted` (λ-equitune): ``w_g = softmax_g(net(feats_g))``, i.e. ``λ = exp(net) > 0``
  normalised over the group. The last layer starts at zero, so λ-equitune starts as equitune.

Exact by construction, not by tolerance (floating point sums depend on their order):

- every aggregator gets the copies in their own frames too (``own``, before the pull-back), and equizero
  computes its proxy there. A proxy must not change when the vocabulary is permuted (entropy, max logit,
  max probability do not); then copy g of ``h·x`` runs exactly the arithmetic of copy ``g·h`` of ``x``,
  and the proxies of ``h·x`` are those of ``x``, permuted, bit for bit;
- copies are summed by :func:`symmetric_sum`, whose result does not depend on the order of the copies;
- copies whose proxies tie exactly are averaged: an input fixed by a group element h (a prompt with no
  swap word) gives tied copies g and g·h, and averaging them keeps the output h-invariant there, as
  equivariance demands. A first-index argmin would not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from equinlp.methods.proxies import PROXIES, Proxy, entropy, max_logit, max_prob, resolve_proxy  # noqa: F401 (re-exported)

Share = Callable[[torch.Tensor], torch.Tensor]  # [G, B, ...] -> [G, B, ...]: equal inputs, equal values (frames.py)


def _widened(x: torch.Tensor) -> torch.Tensor:
    """Half precision in float32, so a sum is rounded once, at the end."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _sorted_sum(x: torch.Tensor) -> torch.Tensor:
    """Two terms commute exactly; from three on they are sorted first, so the order is fixed by the values."""
    return (x.sort(dim=0).values if x.shape[0] > 2 else x).sum(0)


def symmetric_sum(x: torch.Tensor) -> torch.Tensor:
    """``[G, ...] -> [...]``: the sum over the group axis, the same bits whatever the order of the copies.

    Half precision is summed in float32 and rounded once.
    """
    return _sorted_sum(_widened(x)).to(x.dtype)


def weighted_sum(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Σ_g w_g x_g`` as a :func:`symmetric_sum`; ``weights`` ``[G, B, ...]``, ``x`` ``[G, B, ..., V]``.

    A copy with weight 0 adds exactly 0, even where its value is infinite (a masked logit).
    """
    w = weights[..., None].to(x.dtype)
    return symmetric_sum(torch.where(w > 0, w * x, torch.zeros((), dtype=x.dtype, device=x.device)))


def symmetric_mean(x: torch.Tensor) -> torch.Tensor:
    """``[G, ...] -> [...]``: :func:`symmetric_sum` divided by G, rounded once."""
    return (_sorted_sum(_widened(x)) / x.shape[0]).to(x.dtype)


class Aggregator(nn.Module):
    """Base class. ``needs_features`` tells wrappers to collect features of each transformed input.

    ``forward(outs, feats=None, own=None, share=None)``: ``outs`` ``[G, B, ..., V]`` pulled back (copy g
    mapped by g⁻¹), ``own`` the same copies in their own frames (defaults to ``outs``; they are the same for
    invariant outputs), ``feats`` ``[G, B, ..., D]``; ``share`` gives copies that hold the same input the
    same per-copy values (a kernel may round one row differently at another batch position). Returns
    ``[B, ..., V]``.
    """

    needs_features = False

    def forward(
        self, outs: torch.Tensor, feats: torch.Tensor | None = None, own: torch.Tensor | None = None, share: Share | None = None
    ) -> torch.Tensor:
        raise NotImplementedError


class Mean(Aggregator):
    """equitune: the group average of the pulled-back outputs."""

    def forward(
        self, outs: torch.Tensor, feats: torch.Tensor | None = None, own: torch.Tensor | None = None, share: Share | None = None
    ) -> torch.Tensor:
        return symmetric_mean(outs)


class Argmin(Aggregator):
    """equizero: the copy whose proxy loss is smallest, per batch element (and position).

    Args:
        proxy: a name from :data:`PROXIES` or a callable ``[G, B, ..., V] -> [G, B, ...]``.
        straight_through: in training mode return ``mean + (selected - mean).detach()``.
    """

    def __init__(self, proxy: str | Proxy = "entropy", straight_through: bool = True) -> None:
        super().__init__()
        self.proxy_name = proxy if isinstance(proxy, str) else getattr(proxy, "__name__", "custom")
        self.proxy = resolve_proxy(proxy)
        self.straight_through = straight_through

    def weights(self, outs: torch.Tensor, share: Share | None = None) -> torch.Tensor:
        """``[G, B, ..., V] -> [G, B, ...]``: 1 on the copy with the smallest proxy loss, shared equally among
        exact ties. Pass the copies in their own frames (see the module docstring)."""
        with torch.no_grad():
            losses = self.proxy(outs)
            losses = share(losses) if share is not None else losses
            if losses.shape != outs.shape[:-1]:
                raise ValueError(f"proxy returned shape {tuple(losses.shape)}, expected {tuple(outs.shape[:-1])}")
            tied = losses == losses.min(0).values
            return tied.to(outs.dtype) / tied.sum(0)

    def forward(
        self, outs: torch.Tensor, feats: torch.Tensor | None = None, own: torch.Tensor | None = None, share: Share | None = None
    ) -> torch.Tensor:
        selected = weighted_sum(self.weights(outs if own is None else own, share), outs)
        if self.training and self.straight_through and outs.requires_grad:
            mean = symmetric_mean(outs)
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

    def __init__(self, weight_net: nn.Module) -> None:
        super().__init__()
        self.weight_net = weight_net

    def weights(self, feats: torch.Tensor, share: Share | None = None) -> torch.Tensor:
        """``[G, B, ..., D] -> [G, B, ...]``, positive and summing to 1 over the group axis.

        A softmax over the group whose normaliser is a :func:`symmetric_sum`, so permuting the copies
        permutes the weights exactly.
        """
        log_weights = self.weight_net(feats)
        log_weights = share(log_weights) if share is not None else log_weights
        log_weights = log_weights.to(torch.promote_types(log_weights.dtype, torch.float32))
        unnormalised = (log_weights - log_weights.max(0).values).exp()
        return unnormalised / symmetric_sum(unnormalised)

    def forward(
        self, outs: torch.Tensor, feats: torch.Tensor | None = None, own: torch.Tensor | None = None, share: Share | None = None
    ) -> torch.Tensor:
        if feats is None:
            raise ValueError("λ-equitune needs features of each transformed input")
        return weighted_sum(self.weights(feats, share), outs)


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
        self.needs_features = inner.needs_features

    @property
    def proxy_name(self) -> str | None:
        return getattr(self.inner, "proxy_name", None)

    def relax(self, combined: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``combined`` ``[B, ..., V]`` with the general tokens taken from ``identity``, the identity copy's output."""
        ids = self.token_ids.to(combined.device)
        return combined.index_copy(-1, ids, identity.index_select(-1, ids))

    def forward(
        self, outs: torch.Tensor, feats: torch.Tensor | None = None, own: torch.Tensor | None = None, share: Share | None = None
    ) -> torch.Tensor:
        return self.relax(self.inner(outs, feats, own, share), outs[0])

    def extra_repr(self) -> str:
        return f"general tokens={len(self.token_ids)}"


def select_best(scores, keys=None, candidates=None) -> tuple[torch.Tensor, list[bool]]:
    """Equizero over whole sequences: per column b of ``scores [G, B]`` (higher is better), the copy to keep.

    Ties of score are broken by ``keys[g][b]`` (the greatest; e.g. the masked text, which a swap does not change),
    then by the least g: list the copies in the orbit's canonical frame and every input of an orbit keeps the
    matching copy.

    Args:
        scores: ``[G, B]``, a tensor or an array.
        keys: ``G`` lists of ``B`` comparable values, or None.
        candidates: ``G`` lists of ``B`` hashable values, what each copy holds, or None.
    Returns:
        ``(best [B] long, unresolved)``: ``unresolved[b]`` says that the copies tied at the top hold different
        candidates (the least g's was kept); all False without ``candidates``.
    """
    scores = torch.as_tensor(scores)
    tied = scores == scores.max(0).values  # [G, B]
    order, width = tied.shape
    if keys is None and candidates is None:
        return tied.to(torch.uint8).argmax(0), [False] * width  # argmax: the first of equal maxima
    top = [[g for g in range(order) if tied[g, b]] for b in range(width)]
    if keys is not None:
        top = [[g for g in gs if keys[g][b] == max(keys[h][b] for h in gs)] for b, gs in enumerate(top)]
    unresolved = [candidates is not None and len({candidates[g][b] for g in gs}) > 1 for b, gs in enumerate(top)]
    return torch.tensor([gs[0] for gs in top], dtype=torch.long), unresolved
