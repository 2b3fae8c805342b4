"""equinlp: group-equivariant wrappers for pretrained models (Basu et al., NeurIPS 2023).

    import equinlp as eq
    act = eq.vocab_permutation(tokenizer, [("man", "woman"), ("he", "she")])
    m = eq.equitune(model, act)                      # or eq.equizero(model, act, proxy="entropy")
    out = m.generate(**tokenizer(prompts, return_tensors="pt", padding=True), max_new_tokens=15)
    eq.assert_equivariant(m, act, inputs)

The three methods are one formula, ``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)``, with different weights; the
functions below are its paper names.
"""

from __future__ import annotations

from torch import nn

from equinlp.actions import ImageTransform, Invariant, LinearAction, TokenPermutation
from equinlp.aggregate import PROXIES, Aggregator, Argmin, Mean, Proxy, Relaxed, Weighted, WeightNet
from equinlp.config import EquiConfig
from equinlp.core import combine, symmetrize
from equinlp.embedded import load_model
from equinlp.groups import Group, cyclic, dihedral, from_permutations, product, trivial
from equinlp.models import FAMILIES, EquiModel, feature_size, from_pretrained, wrap
from equinlp.testing import assert_equivariant
from equinlp.vocab import VocabularyError, general_token_ids, vocab_permutation, vocab_permutation_pair

__version__ = "0.1.0"


def _relaxed(aggregator: Aggregator, general_tokens) -> Aggregator:
    return aggregator if general_tokens is None or len(general_tokens) == 0 else Relaxed(aggregator, general_tokens)


def equitune(model: nn.Module, action, *, sampler: str = "equivariant", general_tokens=None) -> EquiModel:
    """equitune (group averaging): ``M_G(x) = (1/|G|) Σ_g g⁻¹ M(g x)``.

    ``general_tokens`` (ids, e.g. from :func:`general_token_ids`) gives the relaxed variant (R-EquiGPT2):
    those tokens take the identity copy's logits.
    """
    return wrap(model, action, _relaxed(Mean(), general_tokens), EquiConfig(sampler=sampler))


def equizero(
    model: nn.Module,
    action,
    proxy: str | Proxy = "entropy",
    *,
    straight_through: bool = True,
    sampler: str = "equivariant",
    general_tokens=None,
) -> EquiModel:
    """equizero: ``g*⁻¹ M(g* x)`` with ``g* = argmin_g proxy(g⁻¹ M(g x))``; straight-through when training."""
    aggregator = _relaxed(Argmin(proxy, straight_through), general_tokens)
    return wrap(model, action, aggregator, EquiConfig(sampler=sampler, straight_through=straight_through))


def lambda_equitune(
    model: nn.Module,
    action,
    weight_net: nn.Module | None = None,
    *,
    hidden: int = 100,
    dropout: float = 0.5,
    sampler: str = "equivariant",
    general_tokens=None,
) -> EquiModel:
    """λ-equitune: ``Σ_g λ(g x) g⁻¹ M(g x) / Σ_g λ(g x)``, λ a small positive network on features of ``g x``.

    The default λ-net is the paper's MLP on the LM head's input; it starts uniform (= equitune).
    """
    net = weight_net or WeightNet(feature_size(model), hidden, dropout)
    config = EquiConfig(sampler=sampler, weight_net_hidden=hidden, weight_net_dropout=dropout)
    return wrap(model, action, _relaxed(Weighted(net), general_tokens), config)


__all__ = [
    "PROXIES",
    "Aggregator",
    "Argmin",
    "EquiConfig",
    "EquiModel",
    "FAMILIES",
    "Group",
    "ImageTransform",
    "Invariant",
    "LinearAction",
    "Mean",
    "Relaxed",
    "TokenPermutation",
    "VocabularyError",
    "WeightNet",
    "Weighted",
    "assert_equivariant",
    "combine",
    "cyclic",
    "dihedral",
    "equitune",
    "equizero",
    "from_permutations",
    "from_pretrained",
    "general_token_ids",
    "lambda_equitune",
    "load_model",
    "product",
    "symmetrize",
    "trivial",
    "vocab_permutation",
    "vocab_permutation_pair",
    "wrap",
]
