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

from equinlp.actions import ImageTransform, Invariant, TokenPermutation
from equinlp.aggregate import PROXIES, Aggregator, Argmin, Mean, Proxy, Weighted, WeightNet
from equinlp.config import EquiConfig
from equinlp.core import combine, symmetrize
from equinlp.embedded import load_model
from equinlp.groups import Group, cyclic, dihedral, from_permutations, product, trivial
from equinlp.models import FAMILIES, EquiModel, feature_size, from_pretrained, wrap
from equinlp.testing import assert_equivariant
from equinlp.vocab import VocabularyError, vocab_permutation, vocab_permutation_pair

__version__ = "0.1.0"


def equitune(model: nn.Module, action, *, sampler: str = "equivariant") -> EquiModel:
    """equitune (group averaging): ``M_G(x) = (1/|G|) Σ_g g⁻¹ M(g x)``."""
    return wrap(model, action, Mean(), EquiConfig(sampler=sampler))


def equizero(
    model: nn.Module, action, proxy: str | Proxy = "entropy", *, straight_through: bool = True, sampler: str = "equivariant"
) -> EquiModel:
    """equizero: ``g*⁻¹ M(g* x)`` with ``g* = argmin_g proxy(g⁻¹ M(g x))``; straight-through when training."""
    return wrap(model, action, Argmin(proxy, straight_through), EquiConfig(sampler=sampler, straight_through=straight_through))


def lambda_equitune(
    model: nn.Module,
    action,
    weight_net: nn.Module | None = None,
    *,
    hidden: int = 100,
    dropout: float = 0.5,
    sampler: str = "equivariant",
) -> EquiModel:
    """λ-equitune: ``Σ_g λ(g x) g⁻¹ M(g x) / Σ_g λ(g x)``, λ a small positive network on features of ``g x``.

    The default λ-net is the paper's MLP on the LM head's input; it starts uniform (= equitune).
    """
    net = weight_net or WeightNet(feature_size(model), hidden, dropout)
    config = EquiConfig(sampler=sampler, weight_net_hidden=hidden, weight_net_dropout=dropout)
    return wrap(model, action, Weighted(net), config)


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
    "Mean",
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
    "lambda_equitune",
    "load_model",
    "product",
    "symmetrize",
    "trivial",
    "vocab_permutation",
    "vocab_permutation_pair",
    "wrap",
]
