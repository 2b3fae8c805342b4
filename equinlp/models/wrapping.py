"""Wrapping a model: its family's wrapper class, from a method config or an aggregator; loading a saved one.

Importing this module imports every family (``causal_lm``, ``seq2seq``), and each registers itself with HF's Auto
classes (``equinlp.models.hf``).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from torch import nn

from equinlp.methods import registry
from equinlp.methods.aggregate import Aggregator, Proxy
from equinlp.models.base import FAMILIES, EquiModel
from equinlp.models.causal_lm import EquiCausalLM  # noqa: F401 (importing a family registers it; equinlp.models re-exports)
from equinlp.models.config import EquiConfig
from equinlp.models.saving import feature_size
from equinlp.models.seq2seq import EquiSeq2SeqLM  # noqa: F401 (as above)
from equinlp.symmetry.actions import TokenPermutation

ActionArg = TokenPermutation | tuple[TokenPermutation, TokenPermutation]


def family_of(model: nn.Module) -> type[EquiModel]:
    """The wrapper class for ``model``; a clear error for a wrapped model or an unsupported one."""
    if isinstance(model, EquiModel):
        raise ValueError("the model is already wrapped; call .unwrap() first")
    for cls in FAMILIES.values():
        if cls.accepts(model):
            return cls
    raise ValueError(f"no equinlp wrapper accepts {type(model).__name__}; supported families: {sorted(FAMILIES)}")


def wrap(
    model: nn.Module,
    action: ActionArg,
    aggregator: Aggregator | None = None,
    config: EquiConfig | None = None,
    *,
    method: str | None = None,
    proxy: str | Proxy | None = None,
    weight_net: nn.Module | None = None,
    **settings: Any,
) -> EquiModel:
    """Wrap ``model`` so that it is equivariant under ``action`` (or ``(in_action, out_action)``).

    Say what to wrap with in one of three ways:

    - ``aggregator``: a hand-built one (``Mean()``, ``Argmin(...)``, ``Weighted(...)``, maybe ``Relaxed``); the
      config's method fields are read from it (``equinlp.methods.registry.describe``), ``config`` (optional)
      gives the rest (``sampler``, ...);
    - ``config`` alone: an :class:`EquiConfig`; the aggregator is built from it (``build_aggregator``);
    - ``method``: a registered name and its ``settings`` (``proxy``, ``straight_through``, ``weight_net_hidden``,
      ``weight_net_dropout``, ``relaxed_tokens``, ``sampler``); those the method does not read are dropped.
      ``base`` wraps with the trivial group (the identity action): the model itself, decoded by the wrapper.

    ``proxy`` (a callable) and ``weight_net`` (a module) supply what a config cannot name. The config is built
    here, once; the wrapper keeps it as given. Returns the wrapper in eval mode (and the base with it).
    """
    cls = family_of(model)  # refuse what cannot be wrapped before reading its feature width
    if method is not None and (aggregator is not None or config is not None):
        raise ValueError("wrap with a method name, or with an aggregator and/or a config, not both")
    if method is not None:
        named = proxy if isinstance(proxy, str) else None
        config = EquiConfig(method=method, **registry.method(method).settings(proxy=named, **settings))
        proxy = None if named else proxy
    elif settings:
        raise TypeError(f"settings {sorted(settings)} need method=")
    trivial = False
    if aggregator is None:
        config = config or EquiConfig()
        trivial = registry.method(config.method).trivial
        aggregator = registry.build_aggregator(config, features=feature_size(model), proxy=proxy, weight_net=weight_net)
        reads_proxy = proxy is not None and "proxy" in registry.method(config.method).fields
        fields = {"proxy": aggregator.proxy_name} if reads_proxy else {}  # the config names the proxy passed
    else:
        fields = registry.describe(aggregator)
    in_action, out_action = _actions(action, trivial)
    return cls(model, in_action, out_action, aggregator, _wrapper_config(cls, model, in_action, config, fields))


def wrap_method(model: nn.Module, action: ActionArg, config: EquiConfig, **build: Any) -> EquiModel:
    """``wrap(model, action, config=config, **build)``: ``build`` is ``proxy`` (a callable) or ``weight_net`` (a module)."""
    return wrap(model, action, config=config, **build)


def _actions(action: ActionArg, trivial: bool) -> tuple[TokenPermutation, TokenPermutation]:
    """``(in_action, out_action)``; for a trivial method, the identity on the same vocabularies."""
    in_action, out_action = action if isinstance(action, tuple) else (action, action)
    if not isinstance(in_action, TokenPermutation) or not isinstance(out_action, TokenPermutation):
        raise TypeError(f"language models need TokenPermutation actions, got {type(in_action).__name__}")
    if trivial:
        return TokenPermutation.identity(in_action.vocab_size), TokenPermutation.identity(out_action.vocab_size)
    return in_action, out_action


def _wrapper_config(cls: type[EquiModel], model: nn.Module, in_action: TokenPermutation, config: EquiConfig | None,
                    fields: dict[str, Any]) -> EquiConfig:  # fmt: skip
    """The wrapper's config: ``config``'s settings, the method ``fields`` read from a hand-built aggregator, and
    what the wrapper is (family, group, class, where the base came from)."""
    config = copy.deepcopy(config) if config is not None else EquiConfig()
    wrapper = {"family": cls.family, "group_description": list(in_action.description), "architectures": [cls.__name__]}
    for key, value in {**fields, **wrapper}.items():
        setattr(config, key, value)
    config.base_model_name_or_path = config.base_model_name_or_path or getattr(model.config, "_name_or_path", "") or ""
    return config


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
