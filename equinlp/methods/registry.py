"""The method registry: method name -> how its aggregator is built, and which config fields it reads.

Every place that turns a method name into an aggregator goes through here: ``equinlp.wrap`` and the
paper-name aliases, ``from_pretrained`` (through ``equinlp.models.config.aggregator_from_config``),
``equinlp.apps.generate.build_method`` and the apps (bias, SCAN, vision, RL). Adding a method is one entry in :data:`METHODS`.

``base`` means the unwrapped model; it is not in :data:`METHODS` but apps accept it (:data:`BASE`).

A config records what built the aggregator (:func:`config_fields` reads it back from the aggregator), so a
saved wrapper rebuilds the same aggregator: ``Argmin(straight_through=False)`` stays ``False``, a
``WeightNet(hidden=32)`` stays 32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from equinlp.methods.aggregate import Aggregator, Argmin, Mean, Proxy, Relaxed, Weighted, WeightNet

BASE = "base"


@dataclass(frozen=True)
class Method:
    """One method of the formula ``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)``.

    Args:
        name: the config's ``method`` value.
        fields: the config fields :attr:`build` reads (besides ``relaxed_tokens``, which any method takes).
        build: ``(features, proxy, straight_through, weight_net_hidden, weight_net_dropout, weight_net) -> Aggregator``.
        describe: the config fields an aggregator of this method was built with.
    """

    name: str
    fields: tuple[str, ...]
    build: Callable[..., Aggregator]
    describe: Callable[[Aggregator], dict[str, Any]]


def _build_weighted(features, proxy, straight_through, weight_net_hidden, weight_net_dropout, weight_net) -> Aggregator:
    if weight_net is None:
        if features is None:
            raise ValueError("λ-equitune needs the feature width to build its default λ-net; pass features= or weight_net=")
        weight_net = WeightNet(features, weight_net_hidden, weight_net_dropout)
    return Weighted(weight_net)


def _describe_weighted(aggregator: Aggregator) -> dict[str, Any]:
    net = aggregator.weight_net
    if isinstance(net, WeightNet):
        return {"weight_net_hidden": net.hidden, "weight_net_dropout": net.dropout}
    return {}  # a custom λ-net: from_pretrained needs it again (weight_net=...)


METHODS: dict[str, Method] = {
    "equitune": Method("equitune", (), lambda *args: Mean(), lambda aggregator: {}),
    "equizero": Method(
        "equizero",
        ("proxy", "straight_through"),
        lambda features, proxy, straight_through, *rest: Argmin(proxy, straight_through),
        lambda aggregator: {"proxy": aggregator.proxy_name, "straight_through": aggregator.straight_through},
    ),
    "lambda": Method("lambda", ("weight_net_hidden", "weight_net_dropout"), _build_weighted, _describe_weighted),
}


def method_names(with_base: bool = False) -> tuple[str, ...]:
    """The registered method names, ``base`` first when ``with_base``."""
    return ((BASE,) if with_base else ()) + tuple(METHODS)


def check_method(name: str, with_base: bool = False) -> None:
    """Raise ``ValueError`` naming the choices if ``name`` is not a method."""
    if name not in method_names(with_base):
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(method_names(with_base))}")


def make_aggregator(
    method: str,
    *,
    features: int | None = None,
    proxy: str | Proxy = "entropy",
    straight_through: bool = True,
    weight_net_hidden: int = 100,
    weight_net_dropout: float = 0.5,
    weight_net: nn.Module | None = None,
    general_tokens: torch.Tensor | list[int] | None = None,
) -> Aggregator:
    """The aggregator of ``method``; ``general_tokens`` (non-empty) gives the relaxed variant.

    Args:
        features: the λ-net's input width (only ``lambda`` without ``weight_net`` needs it).
        proxy: equizero's proxy, a name from ``PROXIES`` or a callable ``[G, B, ..., V] -> [G, B, ...]``.
    """
    check_method(method)
    aggregator = METHODS[method].build(features, proxy, straight_through, weight_net_hidden, weight_net_dropout, weight_net)
    if general_tokens is not None and len(general_tokens):
        aggregator = Relaxed(aggregator, general_tokens)
    return aggregator


def config_fields(aggregator: Aggregator) -> dict[str, Any]:
    """The config fields that rebuild ``aggregator``: ``method``, its own fields, ``relaxed_tokens``."""
    inner = aggregator.inner if isinstance(aggregator, Relaxed) else aggregator
    check_method(inner.method)
    relaxed = aggregator.token_ids.tolist() if isinstance(aggregator, Relaxed) else []
    return {"method": inner.method, **METHODS[inner.method].describe(inner), "relaxed_tokens": relaxed}
