"""Wrapping a model: its family's wrapper class, from a method config or an aggregator; loading a saved one.

Importing this module imports every family (``causal_lm``, ``seq2seq``), and each registers itself with HF's Auto
classes (``equinlp.models.hf``).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from equinlp.methods.aggregate import Aggregator, Proxy
from equinlp.models.base import FAMILIES, EquiModel
from equinlp.models.causal_lm import EquiCausalLM
from equinlp.models.config import EquiConfig, aggregator_from_config
from equinlp.models.saving import feature_size
from equinlp.models.seq2seq import EquiSeq2SeqLM
from equinlp.symmetry.actions import TokenPermutation

__all__ = [
    "FAMILIES",
    "EquiCausalLM",
    "EquiModel",
    "EquiSeq2SeqLM",
    "family_of",
    "feature_size",
    "from_pretrained",
    "wrap",
    "wrap_method",
]

ActionArg = TokenPermutation | tuple[TokenPermutation, TokenPermutation]


def family_of(model: nn.Module) -> type[EquiModel]:
    """The wrapper class for ``model``; a clear error for a wrapped model or an unsupported one."""
    if isinstance(model, EquiModel):
        raise ValueError("the model is already wrapped; call .unwrap() first")
    for cls in FAMILIES.values():
        if cls.accepts(model):
            return cls
    raise ValueError(f"no equinlp wrapper accepts {type(model).__name__}; supported families: {sorted(FAMILIES)}")


def wrap(model: nn.Module, action: ActionArg, aggregator: Aggregator, config: EquiConfig | None = None) -> EquiModel:
    """Wrap ``model`` so that it is equivariant under ``action`` (or ``(in_action, out_action)``).

    Args:
        model: any ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` (the base model).
        action: a ``TokenPermutation``, or ``(in_action, out_action)`` over the same group.
        aggregator: how copies combine (``Mean()``, ``Argmin(...)``, ``Weighted(...)``, maybe ``Relaxed``);
            the config's method fields are read from it (``equinlp.methods.registry.config_fields``).
        config: other settings (``sampler``, ...).

    Returns the wrapper in eval mode (and the base with it).
    """
    in_action, out_action = action if isinstance(action, tuple) else (action, action)
    if not isinstance(in_action, TokenPermutation) or not isinstance(out_action, TokenPermutation):
        raise TypeError(f"language models need TokenPermutation actions, got {type(in_action).__name__}")
    return family_of(model)(model, in_action, out_action, aggregator, config)


def wrap_method(model: nn.Module, action: ActionArg, config: EquiConfig, **build: Any) -> EquiModel:
    """Wrap ``model`` with the aggregator ``config`` describes (``equinlp.methods.registry.aggregator_from_config``).

    ``build``: ``proxy`` (a callable) or ``weight_net`` (a module) that the config cannot name.
    """
    family_of(model)  # refuse what cannot be wrapped before reading its feature width
    return wrap(model, action, aggregator_from_config(config, feature_size(model), **build), config)


def from_pretrained(
    base: nn.Module | str | None,
    directory: str | os.PathLike,
    proxy: Proxy | None = None,
    weight_net: nn.Module | None = None,
    base_kwargs: dict | None = None,
) -> EquiModel:
    """Rebuild a wrapper written by ``save_pretrained`` (or a Trainer checkpoint of one), in eval mode.

    Args:
        base: the base model, or a hub id / path to load it from, or None for the one named in the
            folder's config. If the folder holds fine-tuned base weights, those are loaded.
        directory: the folder.
        proxy: the equizero proxy, needed only if it was a custom callable.
        weight_net: the λ-net module, needed only if it was a custom one.
        base_kwargs: keyword arguments for the base model's ``from_pretrained`` (``dtype``, ``device_map``).
    """
    return EquiModel.from_pretrained(directory, base=base, proxy=proxy, weight_net=weight_net, **(base_kwargs or {}))
