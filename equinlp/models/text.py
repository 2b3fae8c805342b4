"""One way to turn prompts into model inputs, and continuations into ids to score: the tokenizer's defaults.

A prompt is tokenized as HF's text-generation pipeline does, with the tokenizer's own special tokens
(``<bos>`` for Gemma and Llama; nothing for GPT-2 and SmolLM2), because that is what the model was trained
to see. A continuation follows its prompt, so it gets no special tokens of its own. Every path that feeds
a prompt to a model or scores a text goes through these functions: ``equinlp generate``, the bias
benchmark's generation and fluency, the sequence-level methods and SCAN's HF path.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import BatchEncoding


def encode_prompts(tokenizer, texts: Sequence[str], device=None, padding_side: str | None = None) -> BatchEncoding:
    """``input_ids`` / ``attention_mask`` ``[B, T]`` for ``texts``, special tokens as the tokenizer adds them by
    default, padded on ``padding_side`` (``"left"`` for a causal LM's prompts, whatever the tokenizer says;
    default: the tokenizer's side)."""
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, padding_side=padding_side or tokenizer.padding_side)
    return batch.to(device) if device is not None else batch


def prompt_ids(tokenizer, text: str) -> list[int]:
    """One prompt's ids, with the tokenizer's default special tokens (the same ids :func:`encode_prompts` gives)."""
    return tokenizer(text)["input_ids"]


def continuation_ids(tokenizer, text: str) -> list[int]:
    """The ids of text that follows a prompt: no special tokens."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def decode_text(tokenizer, ids: Sequence[int]) -> str:
    """Text as a reader sees it: special tokens (``<bos>``, padding) left out."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)
