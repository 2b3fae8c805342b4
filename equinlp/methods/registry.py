"""The method registry: one entry per method name, carrying everything the name means.

Every place that turns a method name into behaviour reads its entry here, at every level and in every app:

- the token level (``equinlp.wrap``, the paper-name functions, ``from_pretrained``, SCAN, vision, RL):
  :func:`build_aggregator` builds the aggregator from a config object (PEFT-style: the entry reads the fields
  it needs; an :class:`~equinlp.models.config.EquiConfig` or :class:`MethodSettings`), and :func:`describe`
  reads the config fields back from an aggregator, so a saved wrapper rebuilds the same one;
- the sequence level (:class:`~equinlp.models.sequence.SequenceLevel`): :attr:`Method.sequence_weights`, the
  weight of each branch of a prompt's orbit;
- the command lines: :attr:`Method.help`, and :data:`VARIANTS`, the bias benchmark's table names
  (``relaxed-equitune`` is equitune with ``relaxed_tokens``; ``equizero-sentiment`` is equizero over whole
  continuations scored by a judge).

``base`` is the trivial group: the identity action, one copy, which is the model itself bit for bit (a wrapper
of it samples with the same seeded sampler as the methods). ``canonical`` exists at the sequence level only.
Adding a method is one :func:`register_method` call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from equinlp.errors import EquinlpError, check_name
from equinlp.methods.proxies import Proxy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from equinlp.methods.aggregate import Aggregator, Argmin, Weighted

Builder = Callable[..., "Aggregator"]  # (config, *, features=None, proxy=None, weight_net=None) -> Aggregator
# (aggregator, order, logits [G, V], features [G, D]) -> [G] branch weights (logits/features None unless weighs_branches)
SequenceWeights = Callable[["Aggregator | None", int, "torch.Tensor | None", "torch.Tensor | None"], list[float]]


def aggregators() -> ModuleType:
    """``equinlp.methods.aggregate``, imported on first use: the names here load without torch (``--help`` stays light)."""
    from equinlp.methods import aggregate

    return aggregate


@dataclass(frozen=True)
class MethodSettings:
    """The method fields of a config and their defaults (``EquiConfig`` declares the same fields, for HF)."""

    method: str = "equitune"
    proxy: str | None = None
    straight_through: bool = True
    weight_net_hidden: int = 100
    weight_net_dropout: float = 0.5
    relaxed_tokens: tuple[int, ...] | list[int] = ()


COMMON_FIELDS = ("sampler", "relaxed_tokens")  # config fields every method takes


@dataclass(frozen=True)
class Method:
    """One method of the formula ``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)``.

    Args:
        name: the config's ``method`` value (lower case, as PEFT's ``register_peft_method`` asks).
        help: one line for the command lines.
        fields: the config fields :attr:`build` reads (besides :data:`COMMON_FIELDS`).
        build: ``(config, *, features=None, proxy=None, weight_net=None) -> Aggregator``, the token-level
            aggregator; None for a method that exists at the sequence level only.
        kind: the name of the aggregator class (in ``equinlp.methods.aggregate``) :func:`describe` recognises.
        describe: the config fields an aggregator of this method was built with.
        sequence_weights: ``(aggregator, order, logits [G, V], features [G, D]) -> [G]``, the weight of each
            branch of an orbit at the sequence level; None for a method without one.
        weighs_branches: ``sequence_weights`` reads the branches' next-token logits and features.
        trivial: the method runs under the trivial group (one copy: the model itself).
    """

    name: str
    help: str
    fields: tuple[str, ...] = ()
    build: Builder | None = None
    kind: str | None = None
    describe: Callable[[Aggregator], dict[str, Any]] = lambda aggregator: {}
    sequence_weights: SequenceWeights | None = None
    weighs_branches: bool = False
    trivial: bool = False

    @property
    def token_level(self) -> bool:
        return self.build is not None

    @property
    def needs_features(self) -> bool:
        """Whether the aggregator weighs copies by features of each transformed input (λ-equitune)."""
        return self.kind is not None and self.aggregator_class.needs_features

    @property
    def aggregator_class(self) -> type[Aggregator]:
        return getattr(aggregators(), self.kind)

    def settings(self, **settings: Any) -> dict[str, Any]:
        """The ``settings`` this method reads (its fields and :data:`COMMON_FIELDS`), None values dropped.

        So a command line can pass ``proxy=...`` for every method and only equizero's config records it.
        """
        keep = self.fields + COMMON_FIELDS
        return {key: value for key, value in settings.items() if key in keep and value is not None}


METHODS: dict[str, Method] = {}
NAME = re.compile(r"[a-z][a-z0-9_]*")


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS`; its name must be new, lower case, letters, digits and ``_``, not ending in ``_``."""
    name = method.name
    if not NAME.fullmatch(name) or name.endswith("_"):
        raise ValueError(f"method name {name!r}: use lower-case letters, digits and '_' (not last), e.g. 'equitune'")
    if name in METHODS:
        raise ValueError(f"method {name!r} is registered already")
    if method.build is not None and method.kind is None:
        raise ValueError(f"method {name!r}: a token-level method names the aggregator class it builds (kind=)")
    METHODS[name] = method
    return method


def method(name: str) -> Method:
    """The entry of ``name``; an unknown name is an error with the closest match."""
    return METHODS[check_name("method", name, METHODS)]


def token_methods() -> tuple[str, ...]:
    """The methods with a token-level aggregator, ``base`` first (what SCAN, vision, RL and ``EquiConfig`` take)."""
    return tuple(name for name, entry in METHODS.items() if entry.token_level)


def sequence_methods() -> tuple[str, ...]:
    """The methods with sequence-level branch weights (``SequenceLevel``); ``base`` decodes the prompt itself."""
    return tuple(name for name, entry in METHODS.items() if entry.sequence_weights is not None)


def method_names(with_base: bool = False) -> tuple[str, ...]:
    """The token-level method names; ``base`` (first) only ``with_base``."""
    return tuple(name for name in token_methods() if with_base or not METHODS[name].trivial)


def build_aggregator(
    config: Any, *, features: int | None = None, proxy: Proxy | None = None, weight_net: nn.Module | None = None
) -> Aggregator:
    """The aggregator ``config`` describes (an ``EquiConfig``, a :class:`MethodSettings`, any object with those fields).

    Args:
        features: the λ-net's input width (only ``lambda`` without ``weight_net`` needs it).
        proxy: a custom equizero proxy ``[G, B, ..., V] -> [G, B, ...]`` that the config cannot name.
        weight_net: a custom λ-net the config cannot name.
    """
    entry = method(config.method)
    if entry.build is None:
        choices = ", ".join(token_methods())
        raise EquinlpError(f"{entry.name} exists at the sequence level only; at the token level choose from {choices}")
    aggregator = entry.build(config, features=features, proxy=proxy, weight_net=weight_net)
    general = getattr(config, "relaxed_tokens", ())
    return aggregators().Relaxed(aggregator, general) if general is not None and len(general) else aggregator


def make_aggregator(method: str, *, proxy: str | Proxy | None = None, features: int | None = None,
                    weight_net: nn.Module | None = None, general_tokens: Any = None, **settings: Any) -> Aggregator:  # fmt: skip
    """:func:`build_aggregator` from keyword settings: ``make_aggregator("equizero", proxy="max_prob")``.

    ``proxy``: a name from ``PROXIES`` or a callable; ``general_tokens`` (non-empty): the relaxed variant;
    ``settings``: ``straight_through``, ``weight_net_hidden``, ``weight_net_dropout``.
    """
    named = proxy if isinstance(proxy, str) else None
    relaxed = () if general_tokens is None else general_tokens
    config = MethodSettings(method, proxy=named, relaxed_tokens=relaxed, **settings)
    return build_aggregator(config, features=features, proxy=None if named else proxy, weight_net=weight_net)


def method_of(aggregator: Aggregator) -> Method:
    """The entry whose aggregator class ``aggregator`` (or the aggregator it relaxes) is."""
    inner = aggregator.inner if isinstance(aggregator, aggregators().Relaxed) else aggregator
    for entry in METHODS.values():
        if not entry.trivial and entry.kind is not None and type(inner) is entry.aggregator_class:
            return entry
    raise ValueError(f"{type(inner).__name__} is no registered method's aggregator ({', '.join(method_names())})")


def describe(aggregator: Aggregator) -> dict[str, Any]:
    """The config fields that rebuild ``aggregator``: ``method``, its own fields, ``relaxed_tokens``."""
    entry = method_of(aggregator)
    relaxed_class = aggregators().Relaxed
    inner = aggregator.inner if isinstance(aggregator, relaxed_class) else aggregator
    relaxed = aggregator.token_ids.tolist() if isinstance(aggregator, relaxed_class) else []
    return {"method": entry.name, **entry.describe(inner), "relaxed_tokens": relaxed}


# --- the methods ------------------------------------------------------------------------------------


def _uniform(aggregator: Aggregator | None, order: int, logits=None, features=None) -> list[float]:
    return [1.0 / order] * order


def _least_proxy(aggregator: Argmin, order: int, logits: torch.Tensor, features=None) -> list[float]:
    """All on the branch whose proxy of the next-token scores is lowest; ties: the least j (canonical frame)."""
    proxy = aggregator.proxy(logits)
    best = int((proxy == proxy.min()).nonzero()[0])
    return [float(j == best) for j in range(order)]


def _softmax_lambda(aggregator: Weighted, order: int, logits, features: torch.Tensor) -> list[float]:
    return aggregator.weights(features[:, None])[:, 0].tolist()


def _on_canonical(aggregator: Aggregator | None, order: int, logits=None, features=None) -> list[float]:
    return [1.0] + [0.0] * (order - 1)


def _build_weighted(config: Any, *, features=None, proxy=None, weight_net=None) -> Aggregator:
    if weight_net is None:
        if features is None:
            raise ValueError("λ-equitune needs the feature width to build its default λ-net; pass features= or weight_net=")
        weight_net = aggregators().WeightNet(features, config.weight_net_hidden, config.weight_net_dropout)
    return aggregators().Weighted(weight_net)


def _describe_weighted(aggregator: Weighted) -> dict[str, Any]:
    net = aggregator.weight_net
    if isinstance(net, aggregators().WeightNet):
        return {"weight_net_hidden": net.hidden, "weight_net_dropout": net.dropout}
    return {}  # a custom λ-net: from_pretrained needs it again (weight_net=...)


register_method(Method(
    "base",
    "the model itself (the trivial group: one copy, the identity action)",
    build=lambda config, **_: aggregators().Mean(),
    kind="Mean",
    trivial=True,
))  # fmt: skip
register_method(Method(
    "equitune",
    "group averaging: the mean of the copies (Basu et al. 2023)",
    build=lambda config, **_: aggregators().Mean(),
    kind="Mean",
    sequence_weights=_uniform,
))  # fmt: skip
register_method(Method(
    "equizero",
    "the copy with the lowest proxy loss (entropy, max_logit, max_prob)",
    fields=("proxy", "straight_through"),
    build=lambda config, *, proxy=None, **_: aggregators().Argmin(proxy or config.proxy or "entropy", config.straight_through),
    kind="Argmin",
    describe=lambda aggregator: {"proxy": aggregator.proxy_name, "straight_through": aggregator.straight_through},
    sequence_weights=_least_proxy,
    weighs_branches=True,
))  # fmt: skip
register_method(Method(
    "lambda",
    "λ-equitune: the copies weighted by a learnt λ-net on their features",
    fields=("weight_net_hidden", "weight_net_dropout"),
    build=_build_weighted,
    kind="Weighted",
    describe=_describe_weighted,
    sequence_weights=_softmax_lambda,
    weighs_branches=True,
))  # fmt: skip
register_method(Method(
    "canonical",
    "decode the orbit's canonical prompt only (a canonicalizer; sequence level)",
    sequence_weights=_on_canonical,
))  # fmt: skip


# --- the bias benchmark's table names ---------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A table name for a method with settings, as the bias benchmark records its runs.

    Args:
        method: the registered method.
        relaxed: the general words take the identity copy's logits (``relaxed_tokens``; R-EquiGPT2).
        scored: every copy decodes its own continuation (with ``base``'s sampler) and the best-scored one by a
            judge of the whole text is mapped back: equizero over whole sequences (``equizero-sentiment``).
    """

    name: str
    method: str
    relaxed: bool = False
    scored: bool = False

    @property
    def entry(self) -> Method:
        return METHODS[self.method]


def _variants() -> dict[str, Variant]:
    table = [Variant("base", "base"), Variant("canonical", "canonical")]
    for name in method_names():
        table += [Variant(name, name), Variant(f"relaxed-{name}", name, relaxed=True)]
    table.append(Variant("equizero-sentiment", "equizero", scored=True))
    return {variant.name: variant for variant in table}


VARIANTS: dict[str, Variant] = _variants()


def variant(name: str) -> Variant:
    """The :data:`VARIANTS` entry of a table name; an unknown one is an error with the closest match."""
    return VARIANTS[check_name("method", name, VARIANTS)]


def variants_reading(field: str) -> tuple[str, ...]:
    """The table names whose method reads config ``field`` at the token or sequence level (judged runs read none)."""
    return tuple(v.name for v in VARIANTS.values() if field in v.entry.fields and not v.scored)
