"""HF generate options through the wrapper: each one made equivariant, or refused with the reason."""

import pytest
import torch

import equinlp as eq
from equinlp.models.generation import SETTINGS
from equinlp.testing import tiny_causal_lm, tiny_seq2seq

PROMPTS = ["the man said that he was", "the woman worked as a"]


@pytest.fixture
def x(tok):
    tok.padding_side = "left"
    return tok(PROMPTS, return_tensors="pt", padding=True)


def ids(tok, *words):
    return tok.convert_tokens_to_ids(list(words))


def test_a_setting_equinlp_does_not_know_is_refused(model, x, monkeypatch):
    """An allow-list: a setting HF adds later is refused until someone classifies it."""
    monkeypatch.delitem(SETTINGS, "no_repeat_ngram_size")
    with pytest.raises(ValueError, match="no_repeat_ngram_size=2 is not one equinlp knows"):
        model.generate(**x, max_new_tokens=3, no_repeat_ngram_size=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"watermarking_config": {"bias": 2.0}}, "watermarking_config"),
        ({"num_beams": 2}, "beam search"),
        ({"guidance_scale": 1.5}, "classifier-free guidance"),
        ({"token_healing": True}, "token_healing"),
        ({"cache_implementation": "quantized"}, "a cache equinlp has not checked"),
        ({"num_return_sequences": 2}, "num_return_sequences"),
    ],
)
def test_settings_that_cannot_be_equivariant_are_refused(model, x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.generate(**x, max_new_tokens=3, **kwargs)


@pytest.mark.parametrize(
    "setting",
    [
        lambda man, woman: {"bad_words_ids": [[man], [woman]]},
        lambda man, woman: {"suppress_tokens": [man, woman]},
        lambda man, woman: {"sequence_bias": {(man,): -2.0, (woman,): -2.0}},
        lambda man, woman: {"sequence_bias": [[[man], -2.0], [[woman], -2.0]]},  # HF's list form
        lambda man, woman: {"eos_token_id": [man, woman]},
    ],
)
def test_token_sets_closed_under_the_group_are_equivariant(setting, model, tok, swap, x):
    kw = setting(*ids(tok, "man", "woman"))
    eq.assert_equivariant(model, swap, x, generate_kwargs=kw, tokenizer=tok)


@pytest.mark.parametrize(
    "setting",
    [
        lambda man, woman: {"sequence_bias": [[[man], -2.0]]},
        lambda man, woman: {"sequence_bias": {(man,): -2.0, (woman,): -1.0}},  # closed, but biased unequally
        lambda man, woman: {"suppress_tokens": [woman]},
        lambda man, woman: {"forced_eos_token_id": man},
    ],
)
def test_token_sets_not_closed_are_refused(setting, model, tok, x):
    with pytest.raises(ValueError, match="but not its image"):
        model.generate(**x, max_new_tokens=3, **setting(*ids(tok, "man", "woman")))


def test_stop_strings_equivariant_or_refused():
    """HF matches stop strings on text: allowed when no swapped word can take part in a match."""
    from equinlp.testing import bpe_tokenizer

    tok = bpe_tokenizer(["the man said that he was kind. the woman worked as a nurse, and she was rude."] * 50)
    swap = eq.vocab_permutation(tok, [("man", "woman"), ("he", "she")])
    model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    x = tok(PROMPTS, return_tensors="pt", padding=True)
    eq.assert_equivariant(model, swap, x, generate_kwargs={"stop_strings": ["kind", "."], "tokenizer": tok}, tokenizer=tok)
    for stop in ("woman", "an kind", "she said"):  # a swapped word, or the end of one, inside the stop string
        with pytest.raises(ValueError, match="can match across the swapped token"):
            model.generate(**x, max_new_tokens=3, stop_strings=stop, tokenizer=tok)


def test_encoder_penalties_on_one_vocabulary_are_equivariant_and_on_two_refused(model, tok, swap, x):
    kw = {"encoder_repetition_penalty": 1.5, "encoder_no_repeat_ngram_size": 2}
    eq.assert_equivariant(model, swap, x, generate_kwargs=kw, tokenizer=tok)
    pair = eq.vocab_permutation_pair(tok, [("jump", "run")], tok, [("I_JUMP", "I_RUN")])
    seq2seq = eq.equitune(tiny_seq2seq(len(tok)), pair)
    src = tok(["jump twice"], return_tensors="pt")
    for key, value in kw.items():
        with pytest.raises(ValueError, match="acts differently on the two vocabularies"):
            seq2seq.generate(**src, max_new_tokens=3, **{key: value})


@pytest.mark.parametrize("seed", [None, 4])
def test_num_return_sequences_with_sampling(seed, model, tok, swap, x):
    kw = {"do_sample": True, "top_k": 10, "num_return_sequences": 3, **({"seed": seed} if seed is not None else {})}
    out = model.generate(**x, max_new_tokens=6, **kw)
    assert out.shape[0] == 6
    if seed is not None:  # rows b·3 + k: the swapped prompts' samples are the samples, swapped
        moved = {**x, "input_ids": swap.ids.act(x["input_ids"], 1)}
        swapped = model.generate(**moved, max_new_tokens=6, **kw)
        assert torch.equal(swapped, swap.ids.act(out, 1))
        assert len({tuple(row.tolist()) for row in out[:3]}) > 1  # three different samples of one prompt


def test_num_return_sequences_through_a_pipeline(model, tok):
    from transformers import pipeline

    generator = pipeline("text-generation", model=model, tokenizer=tok)
    outs = generator("the man said that", max_new_tokens=4, do_sample=True, top_k=5, num_return_sequences=3)
    assert len(outs) == 3


def test_seeded_generation_without_input_ids(model, tok):
    """Generation from the BOS token alone (batch 1), seeded."""
    out = model.generate(do_sample=True, top_k=5, seed=3, max_new_tokens=5, bos_token_id=tok.bos_token_id)
    again = model.generate(input_ids=torch.tensor([[tok.bos_token_id]]), do_sample=True, top_k=5, seed=3, max_new_tokens=5)
    assert torch.equal(out, again)


def test_output_scores_are_the_processed_scores(model, x):
    """Not the sampler's one-hot: compute_transition_scores gives each chosen token's log-probability."""
    out = model.generate(
        **x, max_new_tokens=5, do_sample=True, top_k=10, seed=1, output_scores=True, return_dict_in_generate=True
    )
    assert all(torch.isfinite(s).sum(-1).ge(2).all() for s in out.scores)  # top-k keeps 10 finite scores
    transition = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    chosen = out.sequences[:, -5:]
    expected = torch.stack([s.log_softmax(-1).gather(1, chosen[:, [t]])[:, 0] for t, s in enumerate(out.scores)], 1)
    assert torch.isfinite(transition).all() and torch.allclose(transition, expected)


def test_hidden_states_have_one_row_per_prompt(model, x):
    with torch.no_grad():
        out = model(**x, output_hidden_states=True, output_attentions=True)
    assert all(h.shape[0] == 2 for h in out.hidden_states) and all(a.shape[0] == 2 for a in out.attentions)
    gen = model.generate(**x, max_new_tokens=3, output_hidden_states=True, return_dict_in_generate=True)
    assert all(h.shape[0] == 2 for step in gen.hidden_states for h in step)


def test_hidden_states_are_each_rows_own_copy(model, tok, swap, x):
    """The identity copy's hidden states: the base model's own, for every row."""
    base = model.unwrap()
    with torch.no_grad():
        ours = model(**x, output_hidden_states=True).hidden_states[-1]
        theirs = base(**x, output_hidden_states=True).hidden_states[-1]
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_return_dict_false_gives_a_tuple(model, x):
    with torch.no_grad():
        out = model(**x, return_dict=False)
        reference = model(**x).logits
    assert isinstance(out, tuple) and torch.equal(out[0], reference)
    labels = x["input_ids"]
    with torch.no_grad():
        loss, logits = model(**x, labels=labels, return_dict=False)[:2]
    assert loss.ndim == 0 and torch.equal(logits, reference)


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_frames_are_extended_once_per_step(family, tok, swap, x, monkeypatch):
    """The token choice reads the wrapper's frames: one ``extend`` per forward (and one for a seq2seq source)."""
    from equinlp.symmetry.frames import OrbitFrames

    model = eq.equitune(tiny_causal_lm(len(tok)) if family == "causal" else tiny_seq2seq(len(tok)), swap)
    extends, forwards = [], []
    extend = OrbitFrames.extend
    monkeypatch.setattr(OrbitFrames, "extend", lambda self, *args: extends.append(1) or extend(self, *args))
    model.unwrap().register_forward_pre_hook(lambda module, args: forwards.append(1))
    model.generate(**x, max_new_tokens=6, min_new_tokens=6)
    assert len(forwards) == 6 and len(extends) == 6 + (family == "seq2seq")


class Recorder:
    """A caller's logits processor: keeps the scores it is given, changes nothing."""

    def __init__(self):
        self.seen = []

    def __call__(self, input_ids, scores):
        self.seen.append(scores.clone())
        return scores


@pytest.fixture
def orbit(tok, swap):
    """A prompt and its swap, unpadded: the second row's canonical frame is not its own."""
    ids = tok(["the man said that he was"], return_tensors="pt")["input_ids"]
    ids = torch.cat([ids, swap.ids.act(ids, 1)])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.mark.parametrize("kw", [{"do_sample": False}, {"do_sample": True, "top_k": 10, "seed": 2}])
def test_scores_stay_canonical_unless_something_reads_them(kw, model, orbit, monkeypatch):
    """Without a processor that reads them, the scores are not mapped to the rows' frames and back; with one,
    it sees each row's own frame (the wrapper's forward), and the tokens are the same either way."""
    from equinlp.symmetry.frames import OrbitFrames

    calls = []
    for name in ("to_canonical", "from_canonical"):
        original = getattr(OrbitFrames, name)
        monkeypatch.setattr(OrbitFrames, name, lambda self, *a, _f=original, _n=name: calls.append(_n) or _f(self, *a))
    fast = model.generate(**orbit, max_new_tokens=5, **kw)
    assert calls == []
    recorder = Recorder()
    slow = model.generate(**orbit, max_new_tokens=5, logits_processor=[recorder], **kw)
    assert torch.equal(fast, slow) and calls.count("to_canonical") == 5
    with torch.no_grad():
        first = model(**orbit).logits[:, -1]
    assert torch.equal(recorder.seen[0], first)


def test_output_scores_are_the_same_on_both_paths(model, orbit):
    kw = {"max_new_tokens": 4, "output_scores": True, "return_dict_in_generate": True, "do_sample": True, "top_k": 10}
    fast = model.generate(**orbit, seed=3, **kw)
    slow = model.generate(**orbit, seed=3, logits_processor=[Recorder()], **kw)
    assert torch.equal(fast.sequences, slow.sequences)
    assert all(torch.equal(a, b) for a, b in zip(fast.scores, slow.scores, strict=True))
    greedy = model.generate(**orbit, **{**kw, "do_sample": False, "top_k": None})
    with torch.no_grad():
        first = model(**orbit).logits[:, -1]
    assert torch.equal(greedy.scores[0], first)


def test_sampling_warpers_are_hfs_in_hfs_order(model):
    """``SAMPLING_WARPERS`` against what HF builds for a config with every warper on: same classes, same order."""
    from transformers import GenerationConfig

    from equinlp.models.sampling import SAMPLING_WARPERS, take_sampling_warpers

    values = {"temperature": 0.7, "top_h": 0.5, "top_k": 10, "top_p": 0.9, "min_p": 0.05, "typical_p": 0.9,
              "epsilon_cutoff": 3e-4, "eta_cutoff": 3e-4}  # fmt: skip
    assert set(values) == set(SAMPLING_WARPERS)
    hf = model.unwrap()._get_logits_processor(GenerationConfig(do_sample=True, **values), device="cpu")
    ours = take_sampling_warpers(GenerationConfig(do_sample=True, **values))
    assert [type(w) for w in ours] == [type(w) for w in hf]
    scores = torch.randn(3, 50)
    for a, b in zip(ours, hf, strict=True):
        assert torch.equal(a(None, scores.clone()), b(None, scores.clone()))
