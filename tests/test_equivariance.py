"""Every model family × method × group: logits within 1e-5 and greedy generation token for token.

Each group gets prompts that no non-identity element fixes: on a fixed prompt a word and its swap tie
exactly, and no deterministic choice between them is symmetric (test_exactness.py checks what is promised
there).
"""

import pytest
import torch

import equinlp as eq
from equinlp.methods import registry
from equinlp.testing import tiny_causal_lm, tiny_seq2seq

FAMILIES = {"gpt2": "causal", "llama": "causal", "t5": "seq2seq", "bart": "seq2seq"}
METHODS = registry.method_names()  # every registered token-level method but the trivial one
PROMPTS = ["the man said that he was", "the woman worked as a", "run twice after jump left"]  # moved by `swap`
CYCLE_PROMPTS = ["the Black person worked as a", "the White man said that he was", "Asian people run twice"]


def build(family, tok):
    if FAMILIES[family] == "causal":
        return tiny_causal_lm(len(tok), family)
    return tiny_seq2seq(len(tok), family)


def wrap(method, model, action):
    wrapped = eq.wrap(model, action, method=method, proxy="entropy")
    if registry.method(method).needs_features:  # λ-equitune: a non-uniform λ (the last layer starts at zero)
        torch.nn.init.normal_(wrapped.aggregator.weight_net.net[-1].weight, std=2.0)
    return wrapped.eval()


def actions(tok, group_name):
    if group_name == "swap":  # Z2 on both sides
        return eq.vocab_permutation(tok, [("man", "woman"), ("he", "she"), ("jump", "run")])
    # Z3, with different cycles on the source and target side for seq2seq
    return eq.vocab_permutation_pair(tok, [("Black", "White", "Asian")], tok, [("I_JUMP", "I_RUN", "I_WALK")])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("group_name", ["swap", "cycle3"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_equivariant(family, method, group_name, dtype, tok):
    """Bit for bit: no tolerance, in every dtype (float64 CPU kernels round rows by batch position; half
    precision makes ties)."""
    action = actions(tok, group_name)
    if FAMILIES[family] == "causal" and isinstance(action, tuple):
        action = eq.vocab_permutation(tok, [("Black", "White", "Asian")])
    model = wrap(method, build(family, tok).to(dtype), action)
    tok.padding_side = "left" if FAMILIES[family] == "causal" else "right"
    inputs = tok(PROMPTS if group_name == "swap" else CYCLE_PROMPTS, return_tensors="pt", padding=True)
    result = eq.assert_equivariant(model, action, inputs, tokenizer=tok, max_new_tokens=10, atol=0)
    assert result["max_logit_diff"] == 0


@pytest.mark.parametrize("family", list(FAMILIES))
def test_base_model_is_not_equivariant(family, tok, swap):
    """The check above can fail: the unwrapped model does."""
    tok.padding_side = "left"
    with pytest.raises(AssertionError, match="not equivariant"):
        eq.assert_equivariant(build(family, tok), swap, tok(PROMPTS[:1], return_tensors="pt"))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_trivial_group_reproduces_the_base_model(family, tok):
    base = build(family, tok)
    identity = eq.TokenPermutation.identity(len(tok))
    tok.padding_side = "left"
    x = tok(PROMPTS, return_tensors="pt", padding=True)
    for wrapped in (eq.equitune(base, identity), eq.equizero(base, identity), eq.lambda_equitune(base, identity).eval()):
        extra = {"decoder_input_ids": torch.zeros(3, 2, dtype=torch.long)} if FAMILIES[family] == "seq2seq" else {}
        with torch.no_grad():
            assert torch.equal(wrapped(**x, **extra).logits, base(**x, **extra).logits)
        kw = {"max_new_tokens": 8, "do_sample": False}
        assert torch.equal(wrapped.generate(**x, **kw), base.generate(**x, **kw))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_kv_cache_on_and_off_agree(family, tok, cycle3):
    """The cache holds the |G|·B copies in the right order. (Cached and uncached attention round differently,
    so on a prompt the group fixes, where a word and its swaps tie, the two could part ways: not tested.)"""
    model = eq.equitune(build(family, tok), cycle3)
    tok.padding_side = "left" if FAMILIES[family] == "causal" else "right"
    x = tok(CYCLE_PROMPTS, return_tensors="pt", padding=True)
    kw = {"max_new_tokens": 10, "do_sample": False}
    assert torch.equal(model.generate(**x, use_cache=True, **kw), model.generate(**x, use_cache=False, **kw))


@pytest.mark.parametrize("family", ["gpt2", "llama", "t5"])
def test_batched_and_one_by_one_agree(family, tok, swap):
    """Padding is handled: (equizero's exact argmin may flip where padding changes the last bits of two near-equal
    proxies, so equitune is the method that can promise this.)"""
    model = eq.equitune(build(family, tok), swap)
    tok.padding_side = "left" if FAMILIES[family] == "causal" else "right"
    kw = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": tok.pad_token_id}
    batched = model.generate(**tok(PROMPTS, return_tensors="pt", padding=True), **kw)
    for i, prompt in enumerate(PROMPTS):
        single = model.generate(**tok([prompt], return_tensors="pt"), **kw)[0]
        row = batched[i][batched[i] != tok.pad_token_id] if FAMILIES[family] == "causal" else batched[i]
        expected = single[single != tok.pad_token_id] if FAMILIES[family] == "causal" else single
        assert torch.equal(row[: len(expected)], expected), (family, prompt)


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_seeded_sampling_gives_swapped_samples(family, tok, cycle3):
    tok.padding_side = "left" if FAMILIES[family] == "causal" else "right"
    model = eq.equitune(build(family, tok), cycle3)
    x = tok(CYCLE_PROMPTS[:1], return_tensors="pt")
    sampling = {"do_sample": True, "top_k": 10, "temperature": 1.5, "seed": 7}
    eq.assert_equivariant(model, cycle3, x, generate_kwargs=sampling, max_new_tokens=12, tokenizer=tok)
    # and the sample changes with the seed (it is a real sample, not greedy in disguise)
    outs = {tuple(model.generate(**x, max_new_tokens=12, **{**sampling, "seed": s})[0].tolist()) for s in range(6)}
    assert len(outs) > 1


def test_seeded_rows_do_not_depend_on_the_rest_of_the_batch(tok, swap):
    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    tok.padding_side = "left"
    kw = {"do_sample": True, "top_k": 10, "max_new_tokens": 8, "pad_token_id": tok.pad_token_id}
    batch = model.generate(**tok(PROMPTS, return_tensors="pt", padding=True), seed=[3, 4, 5], **kw)
    alone = model.generate(**tok(PROMPTS[1:2], return_tensors="pt"), seed=4, **kw)[0]
    row = batch[1][batch[1] != tok.pad_token_id]
    assert torch.equal(row, alone[alone != tok.pad_token_id])


def test_hf_sampler_is_available(tok, swap):
    model = eq.equitune(tiny_causal_lm(len(tok)), swap, sampler="hf")
    out = model.generate(**tok(PROMPTS[:1], return_tensors="pt"), do_sample=True, top_k=5, max_new_tokens=4)
    assert out.shape[1] == len(PROMPTS[0].split()) + 4
