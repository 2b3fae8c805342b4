"""Exact by construction: equivariance bit for bit in every dtype, across calls and within one batch, ties included.

Each row is folded and aggregated in the canonical frame of its orbit (equinlp/symmetry/frames.py), so ``x`` and ``h·x``
run the very same arithmetic; nothing here uses a tolerance.
"""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList, TopKLogitsWarper

import equinlp as eq
from equinlp.models.sampling import EquivariantChoice
from equinlp.symmetry.frames import OrbitFrames
from equinlp.testing import tiny_causal_lm

DTYPES = [torch.float32, torch.float64, torch.bfloat16]
RACE = ("Black", "White", "Asian")


def near_flat_llama(vocab_size: int, dtype: torch.dtype) -> torch.nn.Module:
    """A random Llama at the usual initialisation (0.02): nearly flat logits, so copies' proxies nearly tie."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.02,
    )
    return LlamaForCausalLM(config).eval().to(dtype)


def race_prompts(tok, rows: int, length: int = 8) -> torch.Tensor:
    """``[rows, length]`` random words, each row with exactly one race word (so no group element fixes it)."""
    generator = torch.Generator().manual_seed(0)
    words = torch.randint(4, len(tok), (rows, length), generator=generator)
    race = torch.tensor(tok.convert_tokens_to_ids(list(RACE)))
    words[torch.isin(words, race)] = tok.convert_tokens_to_ids("the")
    words[torch.arange(rows), torch.randint(0, length, (rows,), generator=generator)] = race[torch.arange(rows) % 3]
    return words


@pytest.mark.parametrize("dtype", DTYPES)
def test_equizero_is_exact_on_a_near_flat_model(dtype, tok, cycle3):
    """64 rows whose copies' entropies differ in the last bits: the same copy is selected for x and g·x."""
    model = eq.equizero(near_flat_llama(len(tok), dtype), cycle3)
    x = {"input_ids": race_prompts(tok, 64), "attention_mask": torch.ones(64, 8, dtype=torch.long)}
    assert eq.assert_equivariant(model, cycle3, x, atol=0, max_new_tokens=6)["max_logit_diff"] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_a_prompt_and_its_swaps_in_one_batch_are_exact(method, dtype, tok, cycle3):
    """The README's usage: x and h·x side by side in one batch, where kernels may round rows differently."""
    model = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}[method](
        tiny_causal_lm(len(tok), "llama").to(dtype), cycle3
    )
    if method == "lambda":
        torch.nn.init.normal_(model.aggregator.weight_net.net[-1].weight, std=2.0)
    x = race_prompts(tok, 4)
    orbit = torch.cat([cycle3.ids.act(x, g) for g in range(3)])  # rows g·4 + b
    with torch.no_grad():
        logits = model(input_ids=orbit).logits
    for g in range(3):
        assert torch.equal(logits[4 * g : 4 * g + 4], cycle3.logits.act(logits[:4], g))
    for kw in ({"do_sample": False}, {"do_sample": True, "top_k": 10, "seed": [5, 6, 7, 8] * 3}):
        out = model.generate(input_ids=orbit, max_new_tokens=10, **kw)
        for g in range(3):
            assert torch.equal(out[4 * g : 4 * g + 4], cycle3.ids.act(out[:4], g)), (kw, g)


def test_ties_are_broken_in_the_canonical_frame(tok):
    """A swapped word tying with an unswapped one: id order picks differently for x and g·x; equinlp does not."""
    swap = eq.vocab_permutation(tok, [("man", "kind")])
    man, nurse, kind = tok.convert_tokens_to_ids(["man", "nurse", "kind"])
    assert man < nurse < kind
    x = tok(["the man was"], return_tensors="pt")["input_ids"]
    scores = torch.full((1, len(tok)), -5.0)
    scores[0, [man, nurse]] = 1.0  # an exact tie, as half precision makes them
    swapped = swap.logits.act(scores, 1)
    assert swap.ids.act(scores.argmax(-1), 1) != swapped.argmax(-1)  # id order is not equivariant

    def choose(x: torch.Tensor, scores: torch.Tensor, warpers, seeds) -> torch.Tensor:
        frames = OrbitFrames(swap.group)
        frames.extend(swap, x)  # what the wrapper's hooks do with every token fed to the model
        return EquivariantChoice(swap, frames, warpers, seeds)(x, scores).argmax(-1)

    for warpers in (None, LogitsProcessorList([TopKLogitsWarper(2)])):
        for seed in range(8):
            seeds = [seed] if warpers else None
            ours = choose(x, scores, warpers, seeds)
            theirs = choose(swap.ids.act(x, 1), swapped, warpers, seeds)
            assert torch.equal(theirs, swap.ids.act(ours, 1))


def test_a_prompt_the_group_fixes_gets_exactly_invariant_scores(tok, cycle3):
    """What is promised where the prompt has no swap word: its scores are invariant, bit for bit (float64, whose
    kernels round rows differently at different batch positions); only the choice between tied swaps cannot be."""
    model = eq.equitune(tiny_causal_lm(len(tok)).double(), cycle3)
    x = tok(["the man said that he was"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**x).logits
    for g in range(3):
        assert torch.equal(cycle3.logits.act(logits, g), logits)


def test_the_trivial_group_reproduces_the_base_model_on_a_mixed_batch(tok, swap):
    """Rows that emit the same token from different histories stay apart (the cache is continued, not restarted)."""
    base = tiny_causal_lm(len(tok))
    tok.padding_side = "left"
    x = tok(["the man said that he was", "the woman worked as a"], return_tensors="pt", padding=True)
    ids, mask = swap.ids.act_all(x["input_ids"]), x["attention_mask"].repeat(2, 1)
    identity = eq.TokenPermutation.identity(len(tok))
    kw = {"max_new_tokens": 10, "do_sample": False}
    wrapped = eq.equitune(base, identity).generate(input_ids=ids, attention_mask=mask, **kw)
    assert torch.equal(wrapped, base.generate(input_ids=ids, attention_mask=mask, **kw))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
@pytest.mark.parametrize("group", ["gender", "race"])
def test_embedded_model_in_bfloat16_is_exact(group, method, embedded_cache):
    """SmolLM2 in bf16 (its logits tie often): greedy and seeded top-k 40, every row of the orbit batch exact."""
    from equinlp.symmetry.wordgroups import word_group

    model, tok = eq.load_model("smollm2", dtype=torch.bfloat16)
    action = word_group(group).action(tok)
    wrapped = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}[method](model, action)
    if method == "lambda":
        torch.nn.init.normal_(wrapped.aggregator.weight_net.net[-1].weight, std=0.5)
    subjects = {"gender": ("man", "woman"), "race": RACE}[group]
    prompts = [f"The {subjects[0]} {t}" for t in ("worked as a", "was known for", "was described as", "earned money by")]
    x = tok(prompts, return_tensors="pt", padding=True)
    order = action.group.order
    orbit = torch.cat([action.ids.act(x["input_ids"], g) for g in range(order)])
    mask = x["attention_mask"].repeat(order, 1)
    for kw in ({"do_sample": False}, {"do_sample": True, "top_k": 40, "seed": list(range(4)) * order}):
        out = wrapped.generate(input_ids=orbit, attention_mask=mask, max_new_tokens=8, pad_token_id=tok.pad_token_id, **kw)
        for g in range(1, order):
            assert torch.equal(out[4 * g : 4 * g + 4], action.ids.act(out[:4], g)), (kw, g, tok.batch_decode(out))


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_s3_saves_loads_and_stays_exact(method, tok, tmp_path):
    """A non-abelian group end to end: built from a swap and a 3-cycle, saved, reloaded, exact."""
    s3 = eq.vocab_permutation(tok, [("Black", "White")], [("Black", "White", "Asian")], name="race_s3")
    assert s3.group.order == 6
    base = tiny_causal_lm(len(tok))
    model = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}[method](base, s3)
    if method == "lambda":
        torch.nn.init.normal_(model.aggregator.weight_net.net[-1].weight, std=2.0)
    model.save_pretrained(tmp_path)
    restored = eq.from_pretrained(base, tmp_path)
    x = tok(["the Black and White people worked as a", "White and Asian people said that"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(restored(**x).logits, model(**x).logits)
    eq.assert_equivariant(restored, s3, x, max_new_tokens=8, generate_kwargs={"do_sample": True, "top_k": 5, "seed": 2})
