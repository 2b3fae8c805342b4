"""SCAN vocabularies (word-level tokenizers built in code), the paper's groups, and tensors for training.

Groups act on both vocabularies at once (one group, two actions): ``verb`` swaps jump↔run with
I_JUMP↔I_RUN (add-jump), ``direction`` swaps left↔right with the turn actions (around-right), and
``verb4`` cycles all four verbs (jump→run→walk→look) with their actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from equinlp.apps.scan.config import DEFAULT_GROUP, GROUPS  # noqa: F401 (DEFAULT_GROUP re-exported)
from equinlp.apps.scan.grammar import IN_WORDS, OUT_WORDS, Example
from equinlp.errors import check_name
from equinlp.models.text import encode_prompts
from equinlp.models.tokenizers import BOS, EOS, PAD, word_tokenizer
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.vocab import vocab_permutation_pair


def tokenizers():
    """``(in_tokenizer, out_tokenizer)``: 4 specials + 13 command words, 4 specials + 6 actions."""
    return word_tokenizer(IN_WORDS, padding_side="right"), word_tokenizer(OUT_WORDS, padding_side="right")


def scan_actions(group: str, in_tok, out_tok) -> tuple[TokenPermutation, TokenPermutation]:
    """The input and output actions of a named SCAN group (``trivial`` for the base model)."""
    if group == "trivial":
        return tuple(TokenPermutation.identity(len(t)) for t in (in_tok, out_tok))
    check_name("SCAN group", group, ["trivial", *sorted(GROUPS)])
    in_cycles, out_cycles = GROUPS[group]
    return vocab_permutation_pair(in_tok, in_cycles, out_tok, out_cycles, name=group)


@dataclass
class Encoded:
    """``src``/``mask`` ``[N, S]``; ``tgt_in`` ``[N, T]`` (BOS + actions); ``tgt_out`` ``[N, T]`` (actions + EOS, -100 pad)."""

    src: torch.Tensor
    mask: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, index) -> Encoded:
        return Encoded(self.src[index], self.mask[index], self.tgt_in[index], self.tgt_out[index])

    def to(self, device) -> Encoded:
        return Encoded(*(t.to(device) for t in (self.src, self.mask, self.tgt_in, self.tgt_out)))


def encode(examples: list[Example], in_tok, out_tok) -> Encoded:
    src = encode_prompts(in_tok, [c for c, _ in examples])
    actions = out_tok([a for _, a in examples], add_special_tokens=False)["input_ids"]
    width = max(len(a) for a in actions) + 1
    tgt_in = torch.full((len(actions), width), PAD)
    tgt_out = torch.full((len(actions), width), -100)
    for i, a in enumerate(actions):
        tgt_in[i, : len(a) + 1] = torch.tensor([BOS, *a])
        tgt_out[i, : len(a) + 1] = torch.tensor([*a, EOS])
    return Encoded(src["input_ids"], src["attention_mask"], tgt_in, tgt_out)
