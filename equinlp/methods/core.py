"""The one formula, written once.

    M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x),   Σ_g w_g = 1

Shapes: the group axis is folded group-outer into the batch, ``[G·B, ...] <-> [G, B, ...]``; element 0 is
the identity. One batched call of the model runs every group copy.

Wrappers where a library owns the loop (HF ``generate``) feed this formula through hooks
(``equinlp.models``); everywhere else call :func:`symmetrize` directly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from equinlp.methods.aggregate import Aggregator
from equinlp.symmetry.actions import Action, unfold


def combine(
    outs: torch.Tensor,
    out_action: Action,
    aggregator: Aggregator,
    feats: torch.Tensor | None = None,
    share: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The formula's right-hand side given the model's outputs on every copy.

    When the output action only permutes the last axis (token logits) or does nothing (invariant outputs),
    the aggregator also gets each copy in its own frame, where equizero's proxy is computed: copy g of
    ``h·x`` then repeats, bit for bit, the arithmetic of copy ``g·h`` of ``x`` (aggregate.py).

    Args:
        outs: ``[G·B, ...]``, copy g is ``M(g x)``.
        feats: ``[G·B, ..., D]`` features of each ``g x``, for aggregators that need them.
        share: ``[G, B, ...] -> [G, B, ...]``, gives copies that hold the same input the same values; applied
            to what the aggregator computes per copy (proxies, λ), see ``OrbitFrames.share``.
    Returns:
        ``[B, ...]``.
    """
    order = out_action.group.order
    pulled = out_action.pull_back(outs)
    own = unfold(outs, order) if getattr(out_action, "moves_last_axis_only", False) else None
    return aggregator(pulled, unfold(feats, order) if feats is not None else None, own, share)


def symmetrize(
    fn: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
    in_action: Action,
    out_action: Action,
    aggregator: Aggregator,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Make ``fn`` equivariant: ``sym(g·x) == g·sym(x)`` for every g (up to ties in equizero).

    ``fn`` runs once, on every copy of the batch folded into one, ``[G·B, ...]``.

    Args:
        fn: ``[N, ...] -> [N, ...]``, any batched model; or ``[N, ...] -> ([N, ...], [N, D])``, its outputs and
            the features of each input, for ``Weighted`` (a backbone's ``features`` then ``head``:
            ``lambda x: (head(f := features(x)), f)``, which runs the backbone once for both).
        in_action, out_action: actions of one group on inputs and outputs (``Invariant`` for outputs
            that must not change).
        aggregator: ``Mean()``, ``Argmin(proxy)`` or ``Weighted(net)``.
    """
    if in_action.group != out_action.group:
        raise ValueError("input and output actions must be of the same group")

    def symmetric_fn(x: torch.Tensor) -> torch.Tensor:
        outs = fn(in_action.act_all(x))  # on [G·B, ...]
        outs, feats = outs if isinstance(outs, tuple) else (outs, None)
        if aggregator.needs_features and feats is None:
            raise ValueError(f"{type(aggregator).__name__} needs features: let fn return (outputs, features)")
        return combine(outs, out_action, aggregator, feats if aggregator.needs_features else None)

    return symmetric_fn
