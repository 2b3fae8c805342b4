"""Tiny offline models and tokenizers, built from configs in milliseconds with no download."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
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

from equinlp.models.tokenizers import BOS, EOS, PAD, SPECIALS
from equinlp.models.tokenizers import word_tokenizer as _word_tokenizer

WORDS = (
    "the man woman he she his her him person worked as a nurse doctor was known for being kind rude smart "
    "Black White Asian gay straight people and said that it good bad very who jump run walk look left right "
    "twice thrice after around opposite turn I_JUMP I_RUN I_WALK I_LOOK I_TURN_LEFT I_TURN_RIGHT"
).split()


def word_tokenizer(words: tuple[str, ...] | list[str] = WORDS, padding_side: str = "left") -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the test words (see :func:`equinlp.models.tokenizers.word_tokenizer`)."""
    return _word_tokenizer(words, padding_side)


def with_bos(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """``tokenizer`` made to put its BOS token before every text by default, as Gemma's and Llama's do."""
    bos = (tokenizer.bos_token, tokenizer.bos_token_id)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos[0]} $A", pair=f"{bos[0]} $A $B", special_tokens=[bos]
    )
    return tokenizer


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


# --- the generic check (e3nn's equivariance_error), and the LM check on top of it -----------------------
