"""SCAN with an HF seq2seq model (a small T5 built from a config) through the core wrapper.

``HFSeq2Seq`` gives a wrapped HF model the interface the SCAN loops use: ``forward(src, mask, tgt_in)``
returns log-probabilities (EquiSeq2SeqLM's aggregated logits) and ``decode(src, mask)`` is HF ``generate``
(greedy, with the KV cache). T5 shares one vocabulary between encoder and decoder, so commands and actions
use one joint tokenizer and the two actions are two permutations of it over one group.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from equinlp.apps.scan.grammar import IN_WORDS, OUT_WORDS
from equinlp.models import wrap
from equinlp.models.tokenizers import BOS, EOS, PAD, word_tokenizer
from equinlp.symmetry.actions import TokenPermutation


def joint_tokenizer():
    return word_tokenizer((*IN_WORDS, *OUT_WORDS), padding_side="right")


def tiny_t5(vocab_size: int, width: int = 128) -> T5ForConditionalGeneration:
    """A 2+2-layer T5 trained from scratch (SCAN needs no pre-training); decoding starts at BOS."""
    config = T5Config(
        vocab_size=vocab_size, d_model=width, d_kv=width // 4, d_ff=2 * width, num_layers=2, num_heads=4,
        dropout_rate=0.1, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=BOS,
    )  # fmt: skip
    return T5ForConditionalGeneration(config)


class HFSeq2Seq(nn.Module):
    """An HF seq2seq model, wrapped by equinlp (``base``: the trivial group), with the SCAN loop interface."""

    def __init__(self, model: nn.Module, actions: tuple[TokenPermutation, TokenPermutation], method: str, proxy: str):
        super().__init__()
        self.wrapped = wrap(model, actions, method=method, proxy=proxy)
        self.aggregator = self.wrapped.aggregator

    token_inputs = {"src": "in", "tgt_in": "out"}  # forward's token inputs -> their action (testing.check_equivariance)

    @property
    def in_action(self) -> TokenPermutation:
        """The group's action on commands (the wrapper's)."""
        return self.wrapped.in_action

    @property
    def out_action(self) -> TokenPermutation:
        """The group's action on actions, and on the log-probabilities ``forward`` returns."""
        return self.wrapped.out_action

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.wrapped(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in).logits.log_softmax(-1)

    @torch.no_grad()
    def decode(self, src: torch.Tensor, mask: torch.Tensor, max_length: int = 50) -> torch.Tensor:
        out = self.wrapped.generate(input_ids=src, attention_mask=mask, max_new_tokens=max_length, do_sample=False)
        return out[:, 1:]  # drop the decoder start token
