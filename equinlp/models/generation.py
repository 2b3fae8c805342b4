"""``generate`` for the wrappers: HF owns decoding; equinlp vets the settings and makes the choice equivariant.

HF's loop runs unchanged inside the wrapper's folding hooks (models/base.py), with one processor added
last: :class:`~equinlp.models.sampling.EquivariantChoice`, which picks each token in a canonical frame
(greedy or sampling), so a prompt and its swap get swapped continuations, ties included.

Every generation setting goes through an allow-list (:data:`SETTINGS`): each one equinlp knows is either
harmless, moved into the canonical frame, checked (token sets must be closed under the group, stop strings
must not touch a swapped token) or refused with the reason. A setting that HF adds later is refused until
someone decides which it is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, LogitsProcessorList
from transformers.utils import ModelOutput

from equinlp.models.sampling import SAMPLING_WARPERS, EquivariantChoice, take_sampling_warpers
from equinlp.symmetry.actions import Invariant, TokenPermutation

if TYPE_CHECKING:
    from equinlp.models.base import EquiModel

Check = Callable[["EquiModel", Any, dict], "str | None"]  # (model, value, model kwargs) -> why it is refused, or None


def _fine(model: EquiModel, value: Any, model_kwargs: dict) -> str | None:
    return None


UNSET = "leave it unset (greedy decoding and sampling are made equivariant)"


def _refused(why: str) -> Check:
    return lambda model, value, model_kwargs: f"{why}; {UNSET}"


def _only(ok: Callable[[Any], bool], why: str) -> Check:
    return lambda model, value, model_kwargs: None if ok(value) else f"{why}; {UNSET}"


def _is_biased_sequence(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[0], (list, tuple)) and isinstance(v[1], (int, float))


def _sequences(value: Any) -> dict[tuple[int, ...], float | None]:
    """Token settings as ``{token sequence: bias or None}``: an id, a list of ids, a list of id lists, or
    ``sequence_bias`` as a dict ``{(ids): bias}`` or a list ``[[ids, bias], ...]``."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, int):
        return {(value,): None}
    if isinstance(value, dict):
        return {tuple(k) if isinstance(k, (tuple, list)) else (k,): float(v) for k, v in value.items()}
    value = list(value)
    if value and all(_is_biased_sequence(v) for v in value):
        return {tuple(ids): float(bias) for ids, bias in value}  # list-form sequence_bias
    if all(isinstance(v, int) for v in value):
        return {(v,): None for v in value}
    return {tuple(v): None for v in value}


def _closed(what: str) -> Check:
    """The generated-token set (or biased sequences) must be mapped onto itself by every group element."""

    def check(model: EquiModel, value: Any, model_kwargs: dict) -> str | None:
        table = model.out_action.table
        entries = _sequences(value)
        for seq, bias in entries.items():
            if max(seq, default=-1) >= table.shape[1]:
                continue  # beyond the vocabulary: HF's own check reports it
            for g in range(1, table.shape[0]):
                image = tuple(table[g, list(seq)].tolist())
                if image not in entries or entries[image] != bias:
                    return (
                        f"names {list(seq)} but not its image {list(image)} under element {g} (with the same {what}); "
                        "the group would treat a word and its swap differently. Close the set under the group "
                        "(name both the word and its swaps) or leave the swapped words out"
                    )
        return None

    return check


def _stop_strings(model: EquiModel, value: Any, model_kwargs: dict) -> str | None:
    tokenizer = model_kwargs.get("tokenizer")
    if tokenizer is None:
        return None  # HF refuses stop strings without a tokenizer
    strings = [value] if isinstance(value, str) else list(value)
    for token in model.out_action.moved.tolist():
        text = tokenizer.decode([token])
        for stop in strings:  # a match ends at the end of the text: a moved token takes part iff it lies inside the
            # stop string, or the stop string starts with one of its endings
            if text in stop or any(stop.startswith(text[i:]) for i in range(len(text))):
                return f"can match across the swapped token {text!r}; use stop strings that no swapped word can be part of"
    return None


def _same_vocabulary(model: EquiModel, value: Any, model_kwargs: dict) -> str | None:
    if torch.equal(model.in_action.table, model.out_action.table):
        return None
    return "compares generated tokens with source tokens, but the group acts differently on the two vocabularies; " + UNSET


UNEQUIVARIANT = "cannot be made equivariant by a token-permuting wrapper"
# Caches proven exact through the wrapper (tests/test_compile.py). A static cache sizes itself from the first
# keys it stores, the folded |G|·B rows, and with it HF compiles the decoding step (models/base.py keeps the
# hooks free of data-dependent branches).
CACHES = ("dynamic", "static")

# Every GenerationConfig field equinlp knows. Anything else set to a non-None value is refused.
SETTINGS: dict[str, Check] = {
    **dict.fromkeys(
        (
            "max_length",
            "max_new_tokens",
            "min_length",
            "min_new_tokens",
            "max_time",
            "early_stopping",
            "length_penalty",
            "use_cache",
            "output_attentions",
            "output_hidden_states",
            "output_scores",
            "output_logits",
            "return_dict_in_generate",
            "renormalize_logits",
            "remove_invalid_values",
            "low_memory",
            "compile_config",
            "disable_compile",
            "transformers_version",
            "_from_model_config",
            "do_sample",
            "num_return_sequences",
            # sequence-level processors that read the generated ids in the same frame as the scores
            "repetition_penalty",
            "no_repeat_ngram_size",
            "exponential_decay_length_penalty",
            # assisted decoding's defaults: inert without an assistant (refused below)
            "is_assistant",
            "num_assistant_tokens",
            "num_assistant_tokens_schedule",
            "assistant_confidence_threshold",
            "assistant_lookbehind",
            "target_lookbehind",
            "max_matching_ngram_size",
        ),  # fmt: skip
        _fine,
    ),
    **dict.fromkeys(SAMPLING_WARPERS, _fine),
    **dict.fromkeys(("eos_token_id", "pad_token_id", "bos_token_id", "decoder_start_token_id"), _closed("role")),
    **dict.fromkeys(("forced_bos_token_id", "forced_eos_token_id"), _closed("role")),
    **dict.fromkeys(("suppress_tokens", "begin_suppress_tokens", "bad_words_ids"), _closed("role")),
    "sequence_bias": _closed("bias"),
    "stop_strings": _stop_strings,
    "encoder_repetition_penalty": _same_vocabulary,
    "encoder_no_repeat_ngram_size": _same_vocabulary,
    "num_beams": _only(lambda v: v == 1, "is beam search: HF reorders the cache by beam, but it holds |G|·B copies"),
    "num_beam_groups": _only(lambda v: v == 1, "is group beam search"),
    "diversity_penalty": _only(lambda v: v == 0, "is for group beam search"),
    "penalty_alpha": _only(lambda v: v == 0, "is contrastive search"),
    "guidance_scale": _only(lambda v: v == 1, "is classifier-free guidance, which runs the model outside the wrapper"),
    "cache_implementation": _only(lambda v: v in CACHES, f"is a cache equinlp has not checked (it checks {CACHES})"),
    "use_mtp": _only(lambda v: not v, "is multi-token prediction"),
    "token_healing": _only(lambda v: not v, "re-tokenizes the prompt outside the wrapper"),
    "watermarking_config": _refused("biases a green list drawn from hashed token ids, " + UNEQUIVARIANT),
    **dict.fromkeys(
        (
            "cache_config",
            "max_cache_len",
            "prefill_chunk_size",
            "continuous_batching_config",
            "dola_layers",
            "constraints",
            "force_words_ids",
            "prompt_lookup_num_tokens",
            "assistant_early_exit",
            "speculation_type",
            "assistant_ensemble_weight",
        ),
        _refused(UNEQUIVARIANT + " (not supported)"),
    ),  # fmt: skip
}
REFUSED_INPUTS = {
    "assistant_model": "assisted decoding",
    "prefix_allowed_tokens_fn": "a prefix_allowed_tokens_fn (a function of token ids equinlp cannot check)",
    "negative_prompt_ids": "classifier-free guidance (negative_prompt_ids)",
    "cache": "passing a cache (the wrapper's cache holds |G|·B rows)",
    "past_key_values": "passing past_key_values (the wrapper's cache holds |G|·B rows)",
    "inputs_embeds": "passing inputs_embeds (a token permutation acts on token ids)",
    "decoder_inputs_embeds": "passing decoder_inputs_embeds (a token permutation acts on token ids)",
}


def check_generation(model: EquiModel, config: GenerationConfig, model_kwargs: dict) -> None:
    """Raise ``ValueError`` naming the first setting that would make generation non-equivariant."""
    for key, what in REFUSED_INPUTS.items():
        if model_kwargs.get(key) is not None:
            raise ValueError(f"{what} cannot be made equivariant by {type(model).__name__}; {UNSET}")
    for name, value in config.to_dict().items():
        if value is None:
            continue
        check = SETTINGS.get(name)
        why = check(model, value, model_kwargs) if check else f"is not one equinlp knows to keep equivariant; {UNSET}"
        if why:
            raise ValueError(f"generation setting {name}={value!r} {why}")


# Settings whose HF processor reads the token ids beside the scores (the ids are in each row's own frame). Every
# other processor HF builds from a setting allowed above acts on score values, or on a set of tokens the group
# maps onto itself (an EOS, suppressed tokens): the same in either frame.
READ_TOKEN_IDS = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "encoder_repetition_penalty",
    "encoder_no_repeat_ngram_size",
    "sequence_bias",
    "bad_words_ids",
)


def _scores_read_in_row_frames(config: GenerationConfig, logits_processor: LogitsProcessorList | None) -> bool:
    """Whether anything besides the token choice reads the scores in each row's own frame: the caller's
    processors, one of HF's that reads token ids, or ``output_logits``. Else the wrapper leaves the scores in the
    canonical frames where the choice is made, and skips mapping them to the rows' frames and back each step."""
    reading = any(getattr(config, key, None) is not None for key in READ_TOKEN_IDS)
    return bool(logits_processor) or bool(config.output_logits) or reading


def _batch_size(model: EquiModel, model_kwargs: dict) -> int:
    for key in (model.base.main_input_name, "input_ids", "attention_mask", "decoder_input_ids"):
        if isinstance(model_kwargs.get(key), torch.Tensor):
            return model_kwargs[key].shape[0]
    return 1


def generate(
    model: EquiModel,
    inputs: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    logits_processor: LogitsProcessorList | None = None,
    seed: int | list[int] | None = None,
    **kwargs: Any,
) -> Any:
    """HF ``generate`` on the symmetrized model: greedy or sampling, any stopping criteria or streamer.

    Each token is chosen in its row's canonical frame (:mod:`equinlp.models.sampling`), so the continuation
    of ``g·x`` is ``g`` applied to the continuation of ``x``, ties included, greedy or sampled. ``seed`` (an
    int for every row, or one per row) makes each row's draw independent of the rest of the batch; without
    it sampling follows torch's global generator (``torch.manual_seed``). With ``num_return_sequences=n``,
    rows ``b·n + k`` take seed ``seed_b + k``. ``sampler="hf"`` (at wrapping) restores HF's sampler, which
    is equivariant in distribution only.

    ``output_scores`` returns the processed scores each token was chosen from (for
    ``compute_transition_scores``); hidden states and attentions are the identity copy's.

    What is exact: within one call, always (every row against every other, in every dtype). Across calls, when
    the prompt's orbit is computed with the same shapes (the same padding and batch mates): in float32 that
    holds in practice, but in bfloat16/float16 another padding or batch composition rounds differently, so
    ``x`` decoded alone and ``g·x`` decoded beside a longer prompt may differ. ``batch_independent=True``
    removes that: each prompt's orbit is decoded in a sub-batch of its own, without padding, so a row's
    tokens depend on its prompt and seed only, in any dtype (a prompt and its swap fold into the same
    canonical rows). It costs one ``generate`` per prompt (``python -m benchmarks.batch_independent``).

    Raises:
        ValueError: a setting the wrapper cannot make equivariant (beam search, assisted or contrastive
            decoding, caches other than dynamic and static, watermarking, token sets the group does not map
            onto themselves, ...).
    """
    if kwargs.pop("batch_independent", False):
        return _generate_apart(model, inputs, generation_config, logits_processor, seed, kwargs)
    if inputs is not None:
        kwargs[model.base.main_input_name] = inputs
    config = copy.deepcopy(generation_config or model.base.generation_config)
    model_kwargs = config.update(**kwargs)
    check_generation(model, config, model_kwargs)
    copies = config.num_return_sequences or 1
    if copies > 1 and not config.do_sample:
        raise ValueError(f"num_return_sequences={copies} needs do_sample=True (greedy decoding returns one sequence)")
    batch = _batch_size(model, model_kwargs)
    if copies > 1:  # expanded here, so that the choice below sees one row per sequence
        model_kwargs = {
            k: v.repeat_interleave(copies, 0) if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == batch else v
            for k, v in model_kwargs.items()
        }
        config.num_return_sequences = 1
    seeds = None
    if seed is not None:
        if not config.do_sample:
            raise ValueError("seed= is for sampling (do_sample=True); greedy decoding draws nothing")
        rows = [seed] * batch if isinstance(seed, int) else list(seed)
        if len(rows) != batch:
            raise ValueError(f"{len(rows)} seeds for a batch of {batch} prompts; pass one int or one seed per prompt")
        seeds = [s + k for s in rows for k in range(copies)]
    hf_sampler = config.do_sample and model.equi_config.sampler == "hf"
    if hf_sampler and seeds is not None:
        raise ValueError("seed= needs the equivariant sampler; with sampler='hf' use torch.manual_seed")
    choice = None
    canonical = not hf_sampler and not _scores_read_in_row_frames(config, logits_processor)
    with model._folding(decoding=True, canonical_scores=canonical) as frames:  # model.out_action: on the model's device
        if not hf_sampler:
            warpers = take_sampling_warpers(config) if config.do_sample else None
            choice = EquivariantChoice(model.out_action, frames, warpers, seeds, canonical, bool(config.output_scores))
            logits_processor = LogitsProcessorList([*(logits_processor or []), choice])
        out = model.base.generate(generation_config=config, logits_processor=logits_processor, **model_kwargs)
    if isinstance(out, ModelOutput):
        if choice is not None and out.get("scores") is not None:
            out.scores = tuple(choice.scores)
        for key in ("encoder_hidden_states", "encoder_attentions"):
            if out.get(key) is not None:
                out[key] = tuple(x[: batch * copies] for x in out[key])
    return out


def _generate_apart(model: EquiModel, inputs, generation_config, logits_processor, seed, kwargs: dict) -> torch.Tensor:
    """``generate`` one prompt at a time, each without padding, stacked as one call would return them.

    Returns ``LongTensor[B·n, T + L]`` for a causal LM (the prompts as given, padding included, then each
    continuation padded at its end to the longest) or ``[B·n, L]`` for seq2seq; ``n = num_return_sequences``.
    """
    ids = inputs if inputs is not None else kwargs.pop(model.base.main_input_name, None)
    mask = kwargs.pop("attention_mask", None)
    config = generation_config or model.base.generation_config
    if not isinstance(ids, torch.Tensor):
        raise ValueError("batch_independent=True needs the prompts' token ids (input_ids)")
    batched = sorted(k for k, v in kwargs.items() if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == len(ids))
    if batched:
        raise ValueError(f"batch_independent=True takes input_ids and attention_mask only, not {', '.join(batched)}")
    if kwargs.get("return_dict_in_generate", config.return_dict_in_generate):
        raise ValueError("batch_independent=True returns token ids only; leave return_dict_in_generate unset")
    mask = torch.ones_like(ids) if mask is None else mask
    seeds = list(seed) if isinstance(seed, list | tuple) else [seed] * len(ids)
    if len(seeds) != len(ids):
        raise ValueError(f"{len(seeds)} seeds for a batch of {len(ids)} prompts; pass one int or one seed per prompt")
    continuations = []
    for row, row_mask, row_seed in zip(ids, mask, seeds, strict=True):
        prompt = row[row_mask.bool()][None]  # [1, T_b], no padding
        out = generate(
            model, prompt, generation_config, logits_processor, row_seed, attention_mask=torch.ones_like(prompt), **kwargs
        )
        continuations.append(out if model.family == "seq2seq" else out[:, prompt.shape[1] :])
    width = max(c.shape[1] for c in continuations)
    pad = _pad_id(kwargs.get("pad_token_id", config.pad_token_id), kwargs.get("eos_token_id", config.eos_token_id))
    out = torch.cat([torch.nn.functional.pad(c, (0, width - c.shape[1]), value=pad) for c in continuations])
    if model.family == "seq2seq":
        return out
    return torch.cat([ids.repeat_interleave(len(out) // len(ids), 0), out], dim=1)


def _pad_id(pad: int | None, eos: int | list[int] | None) -> int:
    if pad is not None:
        return int(pad)
    if eos is not None:
        return int(eos[0] if isinstance(eos, list) else eos)
    return 0


def generate_each_copy(
    model: Any, action: TokenPermutation, input_ids: torch.Tensor, attention_mask: torch.Tensor, seed=None, **kwargs
) -> torch.Tensor:
    """Every copy ``g·x`` of a batch decoded on its own by ``model`` (nothing aggregated), mapped back by ``g⁻¹``.

    The group is folded into the batch as the wrappers fold it (:meth:`~TokenPermutation.act_all` on the ids, the
    mask invariant), so one ``generate`` call decodes all |G|·B copies; copy g of row b is seeded by ``seed[b]``.
    Equizero over whole sequences then picks one copy per row (:func:`~equinlp.methods.aggregate.select_best`).

    Args:
        input_ids, attention_mask: ``[B, P]`` left-padded prompts.
        seed: one seed per row (sampling), or None.
    Returns:
        ``[G, B, L]``: the new tokens of copy g, mapped back to the prompts' frame, on the CPU.
    """
    order = action.group.order
    ids, mask = action.ids.act_all(input_ids), Invariant(action.group).act_all(attention_mask)  # [G·B, P]
    if seed is not None:
        kwargs["seed"] = list(seed) * order
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return action.ids.pull_back(out[:, ids.shape[1] :].cpu())
