"""The embedded SmolLM2-135M-Instruct: converted from its GGUF once per run, then the real thing."""

import json

import pytest
import torch

import equinlp as eq
from equinlp.cli import main
from equinlp.models.loading import CACHED_NAME, load_model
from equinlp.symmetry.wordgroups import word_group

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm(embedded_cache):
    cache = embedded_cache
    model, tokenizer = load_model("smollm2")
    assert (cache / CACHED_NAME / "model.safetensors").exists() and not list(cache.glob(f".{CACHED_NAME}*"))
    return model, tokenizer


def test_man_and_woman_continuations_are_exact_swaps(smollm):
    model, tok = smollm
    action = word_group("gender").action(tok)
    x = tok(["The man worked as", "The woman worked as"], return_tensors="pt")
    kw = {"max_new_tokens": 15, "do_sample": False, "top_p": None, "top_k": None, "temperature": None}
    base = model.generate(**x, **kw)
    assert not torch.equal(base[1], action.ids.act(base[0], 1))  # the base model is not fair
    for wrapped in (eq.equitune(model, action), eq.equizero(model, action)):
        out = wrapped.generate(**x, **kw)
        assert torch.equal(out[1], action.ids.act(out[0], 1)), tok.batch_decode(out)
        assert "woman" not in tok.decode(out[0]) and " man" not in tok.decode(out[1][4:])


def test_logits_are_equivariant_on_the_real_model(smollm):
    model, tok = smollm
    action = word_group("race").action(tok)
    x = tok(["The Black person was known for", "The White person had a job as"], return_tensors="pt", padding=True)
    result = eq.assert_equivariant(eq.equitune(model, action), action, x, max_new_tokens=6, atol=1e-5, tokenizer=tok)
    assert result["max_logit_diff"] <= 1e-5


def test_cli_json_holds_what_the_text_shows(smollm, capsys):
    assert main(["generate", "The woman worked as", "--group", "gender", "--max-new-tokens", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["method"], r["element"]) for r in rows] == [("base", 0), ("base", 1), ("equitune", 0), ("equitune", 1)]
    assert all(r["swap_consistent"] for r in rows if r["method"] == "equitune")


def test_cli_demo_prints_both_models(smollm, capsys):
    assert main(["generate", "The woman worked as", "--group", "gender", "--method", "equitune", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "[base] NOT swap-consistent" in out and "[equitune] swap-consistent" in out
    assert "The man worked as" in out
