"""EquiConfig: what a wrapper adds to a base model, as an HF config (``model_type="equinlp"``).

It is the single source of truth for a wrapper: the method registry builds the aggregator from it
(``equinlp.methods.registry.build_aggregator``; the method fields and their defaults are those of
``MethodSettings``), ``save_pretrained`` writes it as the folder's ``config.json``, and because it is a
``PreTrainedConfig`` registered with ``AutoConfig`` (see ``equinlp.models.hf``), HF tooling
(``AutoConfig``, ``AutoModelForCausalLM``, ``pipeline``, lm-eval's ``HFLM``) recognises the folder.
"""

from __future__ import annotations

import json
from dataclasses import field
from pathlib import Path

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from equinlp.errors import EquinlpError
from equinlp.methods.registry import method, token_methods

SAMPLERS = ("equivariant", "hf")
CONFIG_NAME = "config.json"


@strict
class EquiConfig(PreTrainedConfig):
    r"""
    Args:
        method (`str`, defaults to `"equitune"`): a token-level name from ``equinlp.methods.registry.METHODS``
            (``base``: the trivial group).
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
        if not method(self.method).token_level:
            raise EquinlpError(f"{self.method} exists at the sequence level only; a wrapper takes {', '.join(token_methods())}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose from {SAMPLERS}")
        super().__post_init__(**kwargs)

    @classmethod
    def load(cls, directory: str | Path) -> EquiConfig:
        """Read ``config.json`` of a folder written by ``save_pretrained``; a clear error for any other folder."""
        path = Path(directory) / CONFIG_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: not a folder written by save_pretrained")
        model_type = json.loads(path.read_text()).get("model_type")
        if model_type != cls.model_type:
            raise ValueError(f"{path} has model_type {model_type!r}, not {cls.model_type!r}: not a folder written by equinlp")
        return cls.from_pretrained(directory)
