"""EquiConfig: what a wrapper adds to a base model, as an HF config (``model_type="equinlp"``).

It is the single source of truth for a wrapper: the method registry (``equinlp.methods.registry``) builds the
aggregator from it, ``save_pretrained`` writes it as the folder's ``config.json``, and because it is a
``PreTrainedConfig`` registered with ``AutoConfig`` (see ``equinlp.models.hf``), HF tooling
(``AutoConfig``, ``AutoModelForCausalLM``, ``pipeline``, lm-eval's ``HFLM``) recognises the folder.
"""

from __future__ import annotations

import json
from dataclasses import field
from pathlib import Path
from typing import Any

from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig

from equinlp.methods.aggregate import Aggregator, Proxy
from equinlp.methods.registry import METHODS, check_method, make_aggregator

SAMPLERS = ("equivariant", "hf")
CONFIG_NAME = "config.json"
LEGACY_CONFIG_NAME = "equinlp_config.json"


@strict
class EquiConfig(PreTrainedConfig):
    r"""
    Args:
        method (`str`, defaults to `"equitune"`): a name from ``equinlp.methods.registry.METHODS``.
        proxy (`str`, *optional*): equizero's proxy (entropy, max_logit, max_prob; a custom callable's name).
        straight_through (`bool`, defaults to `True`): equizero: the mean's gradient when training.
        weight_net_hidden (`int`, defaults to 100): λ-net hidden width.
        weight_net_dropout (`float`, defaults to 0.5): λ-net dropout (training only).
        sampler (`str`, defaults to `"equivariant"`): ``equivariant`` (seeded sampling picks swapped tokens
            for swapped prompts) or ``hf`` (``torch.multinomial``).
        family (`str`): the model family the wrapper was built for (``causal`` | ``seq2seq``).
        base_model_name_or_path (`str`): where the base model came from.
        base_fine_tuned (`bool`): whether the saved folder holds the base weights (in ``base/``).
        group_description (`list[str]`): the swap cycles, for reading.
        relaxed_tokens (`list[int]`): general-word token ids taken from the identity copy (relaxed variant).
    """

    model_type = "equinlp"

    method: str = "equitune"
    proxy: str | None = None
    straight_through: bool = True
    weight_net_hidden: int = 100
    weight_net_dropout: float | int = 0.5
    sampler: str = "equivariant"
    family: str = ""
    base_model_name_or_path: str = ""
    base_fine_tuned: bool = False
    group_description: list[str] = field(default_factory=list)
    relaxed_tokens: list[int] = field(default_factory=list)

    def __post_init__(self, **kwargs) -> None:
        check_method(self.method)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose from {SAMPLERS}")
        super().__post_init__(**kwargs)

    def save(self, directory: str | Path) -> None:
        """Write ``config.json`` in ``directory``."""
        self.save_pretrained(directory)

    @classmethod
    def load(cls, directory: str | Path) -> EquiConfig:
        """Read ``config.json`` of a folder written by ``save_pretrained``; a clear error for any other folder."""
        path = Path(directory) / CONFIG_NAME
        legacy = Path(directory) / LEGACY_CONFIG_NAME
        if not path.exists() and legacy.exists():  # folders written before EquiConfig became an HF config
            return cls(**json.loads(legacy.read_text()))
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: not a folder written by save_pretrained")
        model_type = json.loads(path.read_text()).get("model_type")
        if model_type != cls.model_type:
            raise ValueError(f"{path} has model_type {model_type!r}, not {cls.model_type!r}: not a folder written by equinlp")
        return cls.from_pretrained(directory)


def aggregator_from_config(
    config: EquiConfig, features: int | None = None, proxy: Proxy | None = None, weight_net: nn.Module | None = None
) -> Aggregator:
    """Rebuild the aggregator a config describes. ``proxy``/``weight_net``: a custom callable / λ-net it cannot name."""
    return make_aggregator(
        config.method,
        features=features,
        proxy=proxy or config.proxy or "entropy",
        straight_through=config.straight_through,
        weight_net_hidden=config.weight_net_hidden,
        weight_net_dropout=config.weight_net_dropout,
        weight_net=weight_net,
        general_tokens=config.relaxed_tokens,
    )


COMMON_FIELDS = ("sampler", "relaxed_tokens")  # settings every method takes


def config_for(method: str, **settings: Any) -> EquiConfig:
    """An ``EquiConfig`` for ``method`` from settings, keeping only those it reads (and ``COMMON_FIELDS``).

    So a command line can pass ``proxy=...`` for every method and only equizero's config records it.
    """
    check_method(method)
    keep = METHODS[method].fields + COMMON_FIELDS
    return EquiConfig(method=method, **{k: v for k, v in settings.items() if k in keep and v is not None})
