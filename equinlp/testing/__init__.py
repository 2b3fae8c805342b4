"""Equivariance checks users can call, and tiny offline models and tokenizers to call them on.

- :mod:`equinlp.testing.checks`: ``equivariance_error`` (any function, any action), ``check_equivariance`` (any
  wrapper, under the actions it declares) and ``assert_equivariant`` (language models: logits and greedy generation).
- :mod:`equinlp.testing.tiny`: random GPT-2/Llama/T5/BART models and word-level or BPE tokenizers, no download.
"""

from equinlp.models.tokenizers import BOS, EOS, PAD, SPECIALS
from equinlp.testing.checks import TOLERANCE, assert_equivariant, check_equivariance, equivariance_error
from equinlp.testing.tiny import WORDS, bpe_tokenizer, tiny_causal_lm, tiny_seq2seq, with_bos, word_tokenizer

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SPECIALS",
    "TOLERANCE",
    "WORDS",
    "assert_equivariant",
    "bpe_tokenizer",
    "check_equivariance",
    "equivariance_error",
    "tiny_causal_lm",
    "tiny_seq2seq",
    "with_bos",
    "word_tokenizer",
]
