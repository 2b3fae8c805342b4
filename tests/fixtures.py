"""Application fixtures for the tests: a tiny regard classifier and a tiny CLIP, saved as loadable folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from equinlp.testing import BOS, EOS, PAD, WORDS, word_tokenizer


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


CLIP_WORDS = ("a", "photo", "of", "the", "apple", "aquarium", "fish", "baby", ".")  # the test CIFAR's prompts


def clip_tokenizer(words: tuple[str, ...] | list[str]) -> Any:
    """A word-level tokenizer as CLIP's reads a prompt: punctuation split off, and EOS last, where CLIP's text
    tower pools (without it every prompt would pool at its first token, and every class look alike)."""
    from tokenizers import pre_tokenizers, processors

    tokenizer = word_tokenizer(list(dict.fromkeys([*words, *CLIP_WORDS])), padding_side="right")
    backend = tokenizer.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    eos = (tokenizer.eos_token, tokenizer.eos_token_id)
    backend.post_processor = processors.TemplateProcessing(single=f"$A {eos[0]}", special_tokens=[eos])
    return tokenizer


def tiny_clip(seed: int = 0, image_size: int = 32, words: tuple[str, ...] | list[str] = WORDS) -> tuple[torch.nn.Module, Any]:
    """A random 1-layer ``CLIPModel`` (patch 8, width 32) and a word-level tokenizer: ``(model, tokenizer)``."""
    from transformers import CLIPConfig, CLIPModel

    tokenizer = clip_tokenizer(words)
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
