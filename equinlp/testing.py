"""Equivariance checks users can call, and tiny offline models and tokenizers to call them on.

``assert_equivariant(model, action, inputs)`` checks, for every group element g, that the model's
logits on ``g·x`` are ``g`` applied to its logits on ``x`` (within ``atol``) and that greedy generation
from ``g·x`` is ``g`` applied to the generation from ``x``, token for token. It raises
``AssertionError`` with the element, the size and place of the largest difference, and the decoded
sequences when a tokenizer is given.

The builders make random models from configs in milliseconds, with no download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from equinlp.actions import TokenPermutation
from equinlp.wordlevel import BOS, EOS, PAD, SPECIALS
from equinlp.wordlevel import word_tokenizer as _word_tokenizer

WORDS = (
    "the man woman he she his her him person worked as a nurse doctor was known for being kind rude smart "
    "Black White Asian gay straight people and said that it good bad very who jump run walk look left right "
    "twice thrice after around opposite turn I_JUMP I_RUN I_WALK I_LOOK I_TURN_LEFT I_TURN_RIGHT"
).split()


def word_tokenizer(words: tuple[str, ...] | list[str] = WORDS, padding_side: str = "left") -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the test words (see :func:`equinlp.wordlevel.word_tokenizer`)."""
    return _word_tokenizer(words, padding_side)


def bpe_tokenizer(corpus: list[str], vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2 style, ``Ġword`` for a word after a space) trained on ``corpus``.

    Frequent words become single tokens, rare ones split into pieces: what the multi-token checks need.
    """
    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", bos_token="<s>", unk_token="<unk>", padding_side="left"
    )


def tiny_causal_lm(vocab_size: int, family: str = "gpt2", seed: int = 0, width: int = 32) -> torch.nn.Module:
    """A 2-layer random GPT-2 or Llama; ``initializer_range`` is large so greedy choices are clear-cut."""
    torch.manual_seed(seed)
    special = dict(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    if family == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size, n_positions=64, n_embd=width, n_layer=2, n_head=2, initializer_range=0.3, **special
        )
        model = GPT2LMHeadModel(config)
    elif family == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=width,
            intermediate_size=2 * width,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=64,
            initializer_range=0.3,
            **special,
        )
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(f"unknown tiny causal family {family!r}; choose gpt2 or llama")
    return model.eval()


def tiny_seq2seq(vocab_size: int, family: str = "t5", seed: int = 0, width: int = 32) -> torch.nn.Module:
    """A 2+2-layer random T5 or BART over one shared vocabulary."""
    torch.manual_seed(seed)
    if family == "t5":
        config = T5Config(
            vocab_size=vocab_size,
            d_model=width,
            d_kv=width // 2,
            d_ff=2 * width,
            num_layers=2,
            num_heads=2,
            pad_token_id=PAD,
            eos_token_id=EOS,
            decoder_start_token_id=PAD,
            initializer_factor=3.0,
        )
        model = T5ForConditionalGeneration(config)
    elif family == "bart":
        config = BartConfig(
            vocab_size=vocab_size,
            d_model=width,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=2 * width,
            decoder_ffn_dim=2 * width,
            max_position_embeddings=64,
            pad_token_id=PAD,
            bos_token_id=BOS,
            eos_token_id=EOS,
            decoder_start_token_id=EOS,
            forced_eos_token_id=None,
            init_std=0.3,
        )
        model = BartForConditionalGeneration(config)
    else:
        raise ValueError(f"unknown tiny seq2seq family {family!r}; choose t5 or bart")
    return model.eval()


def _describe(ids: torch.Tensor, tokenizer: Any) -> str:
    return repr(tokenizer.decode(ids)) if tokenizer is not None else str(ids.tolist())


def assert_equivariant(
    model: Any,
    action: TokenPermutation | tuple[TokenPermutation, TokenPermutation],
    inputs: dict[str, torch.Tensor],
    *,
    atol: float = 1e-5,
    generate: bool = True,
    max_new_tokens: int = 8,
    tokenizer: Any = None,
    generate_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Check ``model(g·x) == g·model(x)`` for every element g of the action's group.

    Args:
        model: a wrapped (or any) LM whose ``forward`` returns ``.logits`` and which has ``generate``.
        action: the action it should be equivariant under, or ``(in_action, out_action)``.
        inputs: ``input_ids`` ``[B, T]`` and optionally ``attention_mask``.
        generate_kwargs: passed to ``generate`` (default greedy); with ``do_sample=True`` each pair of
            calls is seeded alike, which checks seeded sampling sample by sample.
    Returns:
        ``{"max_logit_diff": ...}``.
    Raises:
        AssertionError naming the element and showing the difference.
    """
    in_action, out_action = action if isinstance(action, tuple) else (action, action)
    group = in_action.group
    seq2seq = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    kwargs = {"do_sample": False, "max_new_tokens": max_new_tokens, **(generate_kwargs or {})}
    x = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}

    def moved(batch: dict[str, torch.Tensor], g: int) -> dict[str, torch.Tensor]:
        return {**batch, "input_ids": in_action.ids.act(batch["input_ids"], g)}

    def run_generate(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        torch.manual_seed(0)
        return model.generate(**batch, **kwargs)

    generated = run_generate(x) if generate else None
    if seq2seq:  # decoder inputs: the generated targets (or one start token)
        start = model.config.decoder_start_token_id
        targets = generated if generated is not None else torch.full((x["input_ids"].shape[0], 1), start)
        logit_inputs = {**x, "decoder_input_ids": targets}
    else:  # the prompt plus the continuation, so swapped words appear in the outputs too
        logit_inputs = {"input_ids": generated} if generated is not None else x
        if generated is not None and "attention_mask" in x:
            pad = generated.shape[1] - x["attention_mask"].shape[1]
            logit_inputs["attention_mask"] = torch.cat(
                [x["attention_mask"], x["attention_mask"].new_ones(x["attention_mask"].shape[0], pad)], 1
            )

    with torch.no_grad():
        reference = model(**logit_inputs).logits
        worst = 0.0
        for g in range(1, group.order):
            batch = moved(logit_inputs, g)
            if seq2seq:
                batch["decoder_input_ids"] = out_action.ids.act(logit_inputs["decoder_input_ids"], g)
            got = model(**batch).logits
            expected = out_action.logits.act(reference, g)
            diff = (got - expected).abs()
            mask = batch.get("decoder_attention_mask", None if seq2seq else batch.get("attention_mask"))
            if mask is not None:
                diff = diff * mask[..., None]
            worst = max(worst, float(diff.max()))
            if float(diff.max()) > atol:
                b, t, v = (int(i) for i in torch.nonzero(diff == diff.max())[0])
                raise AssertionError(
                    f"not equivariant under {group.element_name(g)} (element {g} of {group.name}): logits differ by "
                    f"{float(diff.max()):.3g} > {atol:g} at batch {b}, position {t}, token {v}; "
                    f"input {_describe(batch['input_ids'][b], tokenizer)}"
                )
            if generated is not None:
                got_ids = run_generate(moved(x, g))
                expected_ids = out_action.ids.act(generated, g)
                if got_ids.shape != expected_ids.shape or not torch.equal(got_ids, expected_ids):
                    rows = [
                        i
                        for i in range(len(got_ids))
                        if got_ids.shape != expected_ids.shape or not torch.equal(got_ids[i], expected_ids[i])
                    ]
                    b = rows[0]
                    raise AssertionError(
                        f"generation not equivariant under {group.element_name(g)} (element {g} of {group.name}), "
                        f"row {b}:\n  generate(g·x) = {_describe(got_ids[b], tokenizer)}\n"
                        f"  g·generate(x) = {_describe(expected_ids[b], tokenizer)}"
                    )
    return {"max_logit_diff": worst}


def tiny_regard_classifier(folder: str | Path, words: tuple[str, ...] | list[str] = WORDS) -> Path:
    """Save a random 1-layer BERT text classifier with regard's labels (negative/neutral/positive/other) to ``folder``."""
    from transformers import BertConfig, BertForSequenceClassification

    labels = ("negative", "neutral", "positive", "other")
    tokenizer = word_tokenizer(["XYZ", *words], padding_side="right")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def tiny_clip(seed: int = 0, image_size: int = 32, words: tuple[str, ...] | list[str] = WORDS) -> tuple[torch.nn.Module, Any]:
    """A random 1-layer ``CLIPModel`` (patch 8, width 32) and a word-level tokenizer: ``(model, tokenizer)``."""
    from transformers import CLIPConfig, CLIPModel

    tokenizer = word_tokenizer(words, padding_side="right")
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=32,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    vision = dict(
        image_size=image_size, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    return model, tokenizer


def save_tiny_clip(folder: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """Save :func:`tiny_clip` with its tokenizer and a ``CLIPImageProcessor`` to ``folder`` (a loadable checkpoint)."""
    from transformers import CLIPImageProcessor

    model, tokenizer = tiny_clip(seed, image_size)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    size = {"shortest_edge": image_size}
    CLIPImageProcessor(size=size, crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return Path(folder)
