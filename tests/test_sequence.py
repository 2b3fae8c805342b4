"""Sequence-level methods for phrase groups: continuation(g·x) == g·continuation(x) as text, for every g."""

import pytest
import torch

import equinlp as eq
from equinlp.models.sequence import SEQUENCE_METHODS, SequenceLevel
from equinlp.symmetry.phrases import phrase_permutation
from equinlp.testing import tiny_causal_lm, word_tokenizer

NAMES = [("Lakisha Washington", "Emily Walsh", "Latoya Robinson")]
SWAP = [("Lakisha Washington", "Emily Walsh")]
WORDS = "Lakisha Washington Emily Walsh Latoya Robinson met said was a the doctor nurse and kind good bad".split()
PROMPTS = ["Lakisha Washington was a", "Emily Walsh met Latoya Robinson and", "the doctor said"]
DECODINGS = {
    "greedy": {"do_sample": False},
    "sampling": {"do_sample": True, "top_k": 5},
    "beams": {"do_sample": False, "num_beams": 3},
}


@pytest.fixture(scope="module")
def lm():
    """A tiny Llama that writes names often, so that continuations carry phrases to map back."""
    tok = word_tokenizer(WORDS)
    model = tiny_causal_lm(len(tok), family="llama").eval()
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.convert_tokens_to_ids(WORDS[:6])] *= 3
    return model, tok


def orbit_outputs(wrapped, action, prompt, decoding, together):
    """Continuations of every g·prompt: in one call, or one call each."""
    orbit = action.orbit(prompt)
    seeds = [7] * len(orbit)
    if together:
        return orbit, wrapped.generate(orbit, seed=seeds, max_new_tokens=8, **decoding)
    return orbit, [wrapped.generate([p], seed=7, max_new_tokens=8, **decoding)[0] for p in orbit]


@pytest.mark.parametrize("together", [True, False], ids=["one call", "a call each"])
@pytest.mark.parametrize("decoding", DECODINGS)
@pytest.mark.parametrize("method", SEQUENCE_METHODS)
@pytest.mark.parametrize("generators", [[NAMES], [NAMES, SWAP]], ids=["Z3", "S3"])
def test_every_method_is_exactly_equivariant_as_text(lm, method, decoding, together, generators):
    model, tok = lm
    action = phrase_permutation(*generators)
    weight_net = None
    if method == "lambda":  # a λ-net away from its uniform start
        weight_net = eq.WeightNet(model.config.hidden_size)
        torch.nn.init.normal_(weight_net.net[-1].weight, std=2.0)
        weight_net.eval()
    wrapped = SequenceLevel(model, tok, action, method, weight_net=weight_net)
    for prompt in PROMPTS[:2] if len(generators) == 1 else PROMPTS[1:2]:  # prompts no element fixes (see below)
        orbit, outs = orbit_outputs(wrapped, action, prompt, DECODINGS[decoding], together)
        for g in range(action.group.order):
            assert outs[g] == action.act(outs[0], g), (method, decoding, g, orbit, outs)


def test_a_prompt_fixed_by_an_element_gets_equivariance_up_to_that_element(lm):
    """In S3, "Lakisha Washington was a" is fixed by the swap of the two other names: its swaps by g and by g·s are
    the same prompt and get one continuation, which can be g·out or g·s·out, not both. What holds: the output is a
    function of the prompt, and out(h·x) is h·s·out(x) for some s that fixes x."""
    model, tok = lm
    action = phrase_permutation(NAMES, SWAP)
    prompt = PROMPTS[0]
    stabilizer = [s for s in range(6) if action.act(prompt, s) == prompt]
    assert len(stabilizer) == 2
    orbit, outs = orbit_outputs(SequenceLevel(model, tok, action), action, prompt, DECODINGS["sampling"], True)
    mul = action.group.mul
    for h in range(6):
        assert outs[h] in {action.act(outs[0], int(mul[h, s])) for s in stabilizer}
        assert outs[h] == outs[orbit.index(orbit[h])]  # equal prompts, equal continuations


def test_continuations_carry_phrases_that_are_mapped_back(lm):
    model, tok = lm
    action = phrase_permutation(NAMES)
    orbit, outs = orbit_outputs(SequenceLevel(model, tok, action), action, PROMPTS[0], DECODINGS["sampling"], True)
    assert all(action.mentions(o) for o in outs) and len(set(outs)) == 3


def test_one_branch_is_one_decode_and_a_prompts_swaps_share_it(lm, monkeypatch):
    model, tok = lm
    action = phrase_permutation(NAMES)
    wrapped = SequenceLevel(model, tok, action, "equitune")
    decoded = []
    real = wrapped.decoder
    monkeypatch.setattr(wrapped, "decoder", lambda texts, seeds, kw: decoded.append(len(texts)) or real(texts, seeds, kw))
    wrapped.generate(action.orbit(PROMPTS[0]) + [PROMPTS[2]], seed=1, max_new_tokens=4)
    assert decoded == [2]  # the orbit's three prompts decode one branch; the other prompt its own


def test_canonical_decodes_the_orbits_least_prompt(lm):
    model, tok = lm
    action = phrase_permutation(NAMES)
    wrapped = SequenceLevel(model, tok, action, "canonical")
    (branch,) = wrapped.branches([PROMPTS[0]], [None])
    assert branch.text == min(action.orbit(PROMPTS[0]))


def test_equitune_draws_every_branch(lm):
    model, tok = lm
    action = phrase_permutation(NAMES)
    wrapped = SequenceLevel(model, tok, action, "equitune")
    drawn = {wrapped.branches([PROMPTS[0]], [seed])[0].text for seed in range(40)}
    assert drawn == set(action.orbit(PROMPTS[0]))  # a uniform mixture over the branches


def test_sampling_needs_seeds_and_methods_are_checked(lm):
    model, tok = lm
    action = phrase_permutation(NAMES)
    with pytest.raises(ValueError, match="needs a seed"):
        SequenceLevel(model, tok, action).generate(PROMPTS[:1], do_sample=True, max_new_tokens=2)
    with pytest.raises(ValueError, match="did you mean 'canonical'"):
        SequenceLevel(model, tok, action, "canonicl")


@pytest.mark.slow
@pytest.mark.parametrize("group", ["names", "disability"])
def test_embedded_model_multi_token_groups_are_exact(group, embedded_cache):
    """SmolLM2 on names and disability terms (several tokens each): every method with greedy, seeded top-k 40 and
    beam search, continuation(g·x) == g·continuation(x) as text (one call per orbit; and once one call per prompt)."""
    from equinlp.symmetry.wordgroups import word_group

    model, tok = eq.load_model("smollm2")
    action = word_group(group).action_at("auto", tok)
    assert isinstance(action, eq.PhrasePermutation)
    prompt = {"names": "Lakisha Washington worked as a", "disability": "The person with a disability was known for"}[group]
    decodings = [{"do_sample": False}, {"do_sample": True, "top_k": 40}, {"do_sample": False, "num_beams": 2}]
    cases = [(m, d, True) for m in SEQUENCE_METHODS for d in decodings] + [("equizero", decodings[1], False)]
    for method, decoding, together in cases:  # one call per orbit; once, one call per prompt
        orbit, outs = orbit_outputs(SequenceLevel(model, tok, action, method), action, prompt, decoding, together)
        for g in range(action.group.order):
            assert outs[g] == action.act(outs[0], g), (method, decoding, together, g, outs)
