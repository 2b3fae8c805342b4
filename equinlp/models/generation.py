"""``generate`` for the wrappers: HF owns decoding; equinlp checks the settings and makes sampling equivariant.

HF's loop runs unchanged inside the wrapper's folding hooks (models/base.py). Settings that would treat a
word and its swap differently are refused here, with the fix in the message.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig

from equinlp.models.sampling import equivariant_sampling

if TYPE_CHECKING:
    from equinlp.models.base import EquiModel

SUPPORTED_CACHES = (None, "dynamic")
TOKEN_LIST_SETTINGS = ("bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias", "force_words_ids")
SPECIAL_TOKEN_SETTINGS = (
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "decoder_start_token_id",
    "forced_bos_token_id",
    "forced_eos_token_id",
)


def _flat_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, torch.Tensor):
        return value.flatten().tolist()
    if isinstance(value, dict):
        value = list(value)
    return [i for v in value for i in _flat_ids(v)]


def generate(
    model: EquiModel,
    inputs: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    logits_processor: Any = None,
    seed: int | list[int] | None = None,
    **kwargs: Any,
) -> Any:
    """HF ``generate`` on the symmetrized model: greedy or sampling, any stopping criteria or streamer.

    Sampling uses :class:`~equinlp.models.sampling.RankGumbelSampler` unless the wrapper was built with
    ``sampler="hf"``, so a seeded sample for ``g·x`` is ``g`` applied to the sample for ``x``. ``seed``
    (an int for every row, or one per row) makes each row's draw independent of the rest of the batch;
    without it sampling follows torch's global generator (``torch.manual_seed``).
    Raises ``ValueError`` for decoding the wrapper cannot make equivariant (beam search, assisted or
    contrastive decoding, static caches, special or banned tokens that the group moves).
    """
    if inputs is not None:
        kwargs[model.base.main_input_name] = inputs
    config = copy.deepcopy(generation_config or model.base.generation_config)
    model_kwargs = config.update(**kwargs)
    check_generation(model, config, model_kwargs)
    if config.do_sample and model.equi_config.sampler == "equivariant":
        seeds = None
        if seed is not None:  # one per row, each expanded over num_return_sequences (rows b·n + k)
            rows = [seed] * kwargs[model.base.main_input_name].shape[0] if isinstance(seed, int) else list(seed)
            seeds = [s + k for s in rows for k in range(config.num_return_sequences or 1)]
        logits_processor = equivariant_sampling(config, logits_processor, seeds)
    elif seed is not None:
        raise ValueError("seed= is for equivariant sampling (do_sample=True); use torch.manual_seed otherwise")
    with model._folding():
        return model.base.generate(generation_config=config, logits_processor=logits_processor, **model_kwargs)


def check_generation(model: EquiModel, config: GenerationConfig, model_kwargs: dict) -> None:
    def refuse(what: str) -> None:
        raise ValueError(f"{what} cannot be made equivariant by {type(model).__name__}; use greedy decoding or sampling")

    if (config.num_beams or 1) > 1:
        refuse(f"beam search (num_beams={config.num_beams}): HF reorders the cache by beam, but it holds G·B copies;")
    if config.penalty_alpha and (config.top_k or 0) > 1:
        refuse("contrastive search (penalty_alpha)")
    if model_kwargs.get("assistant_model") is not None or config.prompt_lookup_num_tokens:
        refuse("assisted decoding")
    if config.cache_implementation not in SUPPORTED_CACHES:
        refuse(f"cache_implementation={config.cache_implementation!r} (pre-sized for batch B, not G·B);")
    for key in ("past_key_values", "cache", "inputs_embeds", "decoder_inputs_embeds"):
        if model_kwargs.get(key) is not None:
            refuse(f"passing {key}")
    moved = set(model.out_action.moved.tolist())
    for name in SPECIAL_TOKEN_SETTINGS + TOKEN_LIST_SETTINGS:
        hit = sorted(moved.intersection(_flat_ids(getattr(config, name, None))))
        if hit:
            raise ValueError(
                f"generation setting {name} names token ids {hit} that the group moves; it would treat a word "
                "and its swap differently and break equivariance"
            )
