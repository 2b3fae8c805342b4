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

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it. Nothing is imported until a name is first used (PEP 562), so
# `import equinlp` and `equinlp --help` stay instant; the first use imports torch and transformers, and the
# first use of a wrapper (anything from equinlp.models) registers the wrappers with HF's Auto classes.
_SOURCES: dict[str, tuple[str, ...]] = {
    "equinlp.symmetry.actions": ("ImageTransform", "Invariant", "LinearAction", "TokenPermutation"),
    "equinlp.methods.aggregate": ("PROXIES", "Aggregator", "Argmin", "Mean", "Proxy", "Relaxed", "Weighted", "WeightNet"),
    "equinlp.models.config": ("EquiConfig",),
    "equinlp.methods.core": ("combine", "symmetrize"),
    "equinlp.models.loading": ("load_model",),
    "equinlp.symmetry.groups": ("Group", "cyclic", "dihedral", "from_permutations", "product", "trivial"),
    "equinlp.methods.registry": ("METHODS", "make_aggregator"),
    "equinlp.models": ("FAMILIES", "EquiModel", "feature_size", "from_pretrained", "wrap", "wrap_method"),
    "equinlp.models.sequence": ("SEQUENCE_METHODS", "SequenceLevel"),
    "equinlp.models.paper_methods": ("equitune", "equizero", "lambda_equitune"),
    "equinlp.symmetry.phrases": ("PhrasePermutation", "phrase_permutation"),
    "equinlp.testing": ("assert_equivariant", "check_equivariance", "equivariance_error"),
    "equinlp.symmetry.vocab": ("VocabularyError", "general_token_ids", "vocab_permutation", "vocab_permutation_pair"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use and cache the value here."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'equinlp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
