"""The relaxed variant (R-EquiGPT2): general words from the identity copy, the rest as the inner method."""

from pathlib import Path

import pytest
import torch

import equinlp as eq
from equinlp.symmetry.vocab import VocabularyError
from equinlp.symmetry.wordgroups import word_group, word_group_names
from equinlp.testing import tiny_causal_lm, word_tokenizer

PROMPTS = ["the man said that his", "the woman said that her"]


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_general_tokens_come_from_the_identity_copy(method, tok, swap):
    torch.manual_seed(0)
    base = tiny_causal_lm(len(tok)).eval()
    general = eq.general_token_ids(tok, ["his", "her", "him"])
    build = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}[method]
    strict, relaxed = build(base, swap).eval(), build(base, swap, general_tokens=general).eval()
    relaxed.aggregator.inner.load_state_dict(strict.aggregator.state_dict())  # the same λ-net
    x = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        full, loose, plain = strict(**x).logits, relaxed(**x).logits, base(**x).logits
    others = torch.ones(full.shape[-1], dtype=torch.bool)
    others[general] = False
    assert torch.equal(loose[..., others], full[..., others])  # equivariant where it can be
    torch.testing.assert_close(loose[..., general], plain[..., general], atol=1e-6, rtol=0)
    assert not torch.allclose(full[..., general], plain[..., general])  # so the test can fail


def test_relaxed_survives_save_and_load(tmp_path, tok, swap):
    base = tiny_causal_lm(len(tok)).eval()
    general = eq.general_token_ids(tok, ["his", "her"])
    model = eq.equizero(base, swap, proxy="max_prob", general_tokens=general).eval()
    model.save_pretrained(tmp_path)
    restored = eq.from_pretrained(base, tmp_path).eval()
    assert isinstance(restored.aggregator, eq.Relaxed) and restored.equi_config.relaxed_tokens == general
    x = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(model(**x).logits, restored(**x).logits)


def test_general_words_must_be_tokens(tok):
    with pytest.raises(VocabularyError, match="'theirs' is not a single token"):
        eq.general_token_ids(tok, ["his", "theirs"])


@pytest.mark.parametrize("name", word_group_names())
def test_general_words_are_never_swapped(name):
    """A word is either moved by the group or general (from the identity copy), never both (he/she for gender)."""
    group = word_group(name)
    swapped = {w for cycles in (group.cycles, *group.more_generators) for cycle in cycles for w in cycle}
    assert not swapped & set(group.general_words)


@pytest.mark.parametrize("name", ["gender", "race", "race2", "orientation"])
def test_relaxed_methods_run_on_every_paper_axis(name):
    """The reference's R-EquiGPT2 runs took he, she, his, her, him as general words on every axis."""
    from types import SimpleNamespace

    from equinlp.apps.bias.generate import Decoding
    from equinlp.apps.bias.run import BiasCell

    group = word_group(name)
    swapped = [w for cycle in group.cycles for w in cycle]
    tok = word_tokenizer(["the", "person", "was", "known", "for", "said", "that", *swapped, *group.general_words])
    torch.manual_seed(0)
    base = tiny_causal_lm(len(tok)).eval()
    config = SimpleNamespace(decoding=Decoding(max_new_tokens=4, top_k=5, batch_size=2))
    prompts = [f"the {word} person said that" for word in swapped[:2]]
    cell = BiasCell(config, name, "relaxed-equitune", base, tok, None, group, group.action(tok))
    texts, ids, _ = cell._continue_tokens(prompts, [0, 0])
    assert len(texts) == 2 and all(len(row) <= 4 for row in ids)  # cut at EOS or a newline


def test_the_docs_name_each_groups_general_words():
    page = " ".join((Path(__file__).parents[1] / "docs" / "apps" / "bias.md").read_text().split())  # breaks as spaces
    for name in ("gender", "race", "orientation"):
        assert ", ".join(word_group(name).general_words) in page, name
