"""The relaxed variant (R-EquiGPT2): general words from the identity copy, the rest as the inner method."""

import pytest
import torch

import equinlp as eq
from equinlp.testing import tiny_causal_lm
from equinlp.vocab import VocabularyError

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
