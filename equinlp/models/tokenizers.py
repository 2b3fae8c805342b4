"""Word-level tokenizers built in code (SCAN's vocabularies, tests): no download, fixed ids."""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIALS = ("<pad>", "</s>", "<s>", "<unk>")  # ids 0, 1, 2, 3 in every word-level tokenizer
PAD, EOS, BOS, UNK = 0, 1, 2, 3


def word_tokenizer(words: Sequence[str], padding_side: str = "left") -> PreTrainedTokenizerFast:
    """A fast tokenizer over ``SPECIALS + words``, splitting on whitespace; unknown words become ``<unk>``."""
    vocab = {w: i for i, w in enumerate(dict.fromkeys((*SPECIALS, *words)))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", bos_token="<s>", unk_token="<unk>", padding_side=padding_side
    )
