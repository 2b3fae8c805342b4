"""Equizero's proxy losses: ``[..., V] -> [...]`` scores of each copy's output, lower is preferred.

No module-level torch import (the functions use tensor methods only), so the command lines can list the names
(:data:`PROXIES`) without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from equinlp.errors import check_name

if TYPE_CHECKING:
    import torch

Proxy = Callable[["torch.Tensor"], "torch.Tensor"]


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
    return PROXIES[check_name("proxy", proxy, PROXIES, hint="or pass a callable")]
