"""Prompts are tokenized with the tokenizer's defaults (its <bos>) on every path that feeds or scores a model."""

import pytest
import torch

from equinlp.apps.bias.fluency import perplexities
from equinlp.apps.bias.generate import Decoding
from equinlp.apps.bias.run import BiasConfig, generate_cell, score_cell
from equinlp.apps.generate import GenerateConfig, _token_orbit
from equinlp.apps.scan.data import encode
from equinlp.models.sequence import SequenceLevel, decode_texts
from equinlp.models.text import continuation_ids, encode_prompts, prompt_ids
from equinlp.models.tokenizers import BOS, PAD
from equinlp.symmetry.wordgroups import word_group
from equinlp.testing import tiny_causal_lm, with_bos, word_tokenizer

TEXT_WORDS = "The person was known for described as regarded thought of well-known worked had a job part-time earned money by"
GROUP_WORDS = [w for c in word_group("gender").words for w in c] + ["his", "her", "him", "hers"]
WORDS = list(dict.fromkeys([*TEXT_WORDS.split(), "nurse", "kind", "and", *GROUP_WORDS]))


@pytest.fixture
def bos_tiny():
    tok = with_bos(word_tokenizer(WORDS))
    return tiny_causal_lm(len(tok)).eval(), tok


def first_tokens(model) -> list[torch.Tensor]:
    """Records the first position of every row the model reads in its first forward of each call."""
    seen: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[1] > 1:  # a prompt, not one cached decoding step
            seen.append(ids.clone())

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def starts_with_bos(rows: torch.Tensor) -> bool:
    """Every row's first non-padding token is BOS (left or right padding)."""
    return all(int(row[row != PAD][0]) == BOS for row in rows)


def test_prompts_get_the_tokenizers_bos_and_continuations_do_not():
    tok = with_bos(word_tokenizer(WORDS))
    assert prompt_ids(tok, "The man")[0] == BOS
    assert encode_prompts(tok, ["The man", "The woman was"])["input_ids"][:, 0].tolist() == [PAD, BOS]  # left padded
    assert BOS not in continuation_ids(tok, " was known for")


def test_generate_command_feeds_the_prompt_with_bos(bos_tiny):
    model, tok = bos_tiny
    seen = first_tokens(model)
    action = word_group("gender").action(tok)
    config = GenerateConfig(method="equitune", max_new_tokens=3, level="token")
    orbit, _, consistent = _token_orbit(model, tok, action, "The man was known for", "equitune", config)
    assert seen and all(starts_with_bos(ids) for ids in seen)
    assert orbit == ["The man was known for", "The woman was known for"] and consistent  # <bos> not shown


def test_sequence_level_methods_feed_bos(bos_tiny):
    model, tok = bos_tiny
    seen = first_tokens(model)
    action = word_group("gender").phrase_action()
    SequenceLevel(model, tok, action, "equizero").generate(["The man was known for"], max_new_tokens=2)
    decode_texts(model, tok, ["The woman worked as", "The man was"], [None, None], {"max_new_tokens": 2})
    assert len(seen) >= 2 and all(starts_with_bos(ids) for ids in seen)


def test_bias_fluency_scores_the_text_as_generated_with_bos(bos_tiny, tmp_path):
    model, tok = bos_tiny
    config = BiasConfig(
        axes=("gender",), methods=("base",), contexts=("respect",), samples=5, out=str(tmp_path),
        decoding=Decoding(max_new_tokens=3, top_k=5, batch_size=8),
    )  # fmt: skip
    generate_cell(config, "gender", "base", model, tok, tmp_path)
    seen = first_tokens(model)
    frame = score_cell(config, "gender", "base", model, tok, tmp_path)
    assert seen and all(starts_with_bos(ids) for ids in seen)
    first = frame.iloc[0]
    expected = perplexities(model, [prompt_ids(tok, first["prompt"])], [continuation_ids(tok, first["continuation"])])
    assert first["perplexity"] == pytest.approx(expected[0], nan_ok=True)
    assert not frame["vader_plain"].isna().any() and "<s>" not in " ".join(frame["continuation"])


def test_scan_sources_are_encoded_with_the_tokenizers_defaults():
    in_tok, out_tok = with_bos(word_tokenizer(["jump", "twice"])), word_tokenizer(["I_JUMP"])
    encoded = encode([("jump twice", "I_JUMP I_JUMP")], in_tok, out_tok)
    assert encoded.src[0, 0] == BOS
