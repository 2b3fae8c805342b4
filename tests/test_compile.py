"""HF's fast decoding path through the wrapper: a static cache of |G|·B rows, and the step compiled.

The static cache must give the dynamic cache's tokens bit for bit (greedy and seeded sampling, every method,
an abelian and a non-abelian group), and the compiled step must trace in one graph per hook and per forward
(``fullgraph=True``: a graph break raises), compiled once per shape, never once per step. Compilation uses
dynamo's ``eager`` backend: it traces exactly what inductor would (graph breaks, guards, recompiles) without a
C++ compiler; CUDA graphs themselves need a GPU (benchmarks/perf_generate.py --compile).
"""

import pytest
import torch
from torch._dynamo.utils import counters
from transformers import CompileConfig

import equinlp as eq
from equinlp.models.sequence import SequenceLevel
from equinlp.symmetry.phrases import phrase_permutation
from equinlp.testing import tiny_causal_lm, tiny_seq2seq

METHODS = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}
GREEDY = {"do_sample": False}
SEEDED = {"do_sample": True, "top_k": 10, "seed": [3, 4], "num_return_sequences": 2}


def compiled(**more) -> dict:
    """Generate keywords that make HF compile the decoding step on a CPU, a graph break being an error."""
    config = CompileConfig(backend="eager", fullgraph=True, dynamic=False)
    config._compile_all_devices = True  # HF compiles on accelerators only, unless told
    return {"cache_implementation": "static", "compile_config": config, **more}


def wrapped(tok, action, method: str, dtype: torch.dtype = torch.float32, family: str = "llama"):
    model = METHODS[method](tiny_causal_lm(len(tok), family).to(dtype), action)
    if method == "lambda":
        torch.nn.init.normal_(model.aggregator.weight_net.net[-1].weight, std=2.0)  # weights that differ per copy
    return model


def prompts(tok):
    """Two rows that no element of Z2 (gender) or S3 (race) fixes: each holds a gender word and two race words."""
    rows = ["the Black man said that the White nurse", "the Asian woman and the Black doctor said she"]
    return tok(rows, return_tensors="pt", padding=True)


@pytest.mark.parametrize(
    "method, group, dtype",
    [("equitune", "swap", torch.float32), ("equizero", "s3", torch.bfloat16), ("lambda", "s3", torch.float32)],
    ids=["equitune-Z2-float32", "equizero-S3-bfloat16", "lambda-S3-float32"],
)
def test_static_cache_gives_the_dynamic_cache_tokens_and_is_equivariant(method, group, dtype, request, tok):
    action = request.getfixturevalue(group)
    model, x = wrapped(tok, action, method, dtype), prompts(tok)
    for kw in (GREEDY, SEEDED):
        dynamic = model.generate(**x, max_new_tokens=6, **kw)
        static = model.generate(**x, max_new_tokens=6, cache_implementation="static", **kw)
        assert torch.equal(static, dynamic), kw
    eq.assert_equivariant(model, action, x, max_new_tokens=6, generate_kwargs={"cache_implementation": "static"})
    sampled = {**SEEDED, "num_return_sequences": 1, "cache_implementation": "static"}
    eq.assert_equivariant(model, action, x, max_new_tokens=6, generate_kwargs=sampled)


def graphs_compiled(model, x, **kw) -> int:
    """How many graphs dynamo compiles for one generate call, from a clean slate (a graph break raises)."""
    torch._dynamo.reset()
    counters.clear()
    model.generate(**x, **compiled(**kw))
    return counters["stats"]["unique_graphs"]


def test_compiled_step_is_one_graph_per_piece_and_compiles_once_not_per_step(tok, s3):
    """equizero on S3, whose hooks hold the most logic: fold, forward and combine each trace in one graph, and
    six decoding steps compile nothing more; the same shapes again (the swapped prompts) recompile nothing."""
    model, x = wrapped(tok, s3, "equizero"), prompts(tok)
    dynamic = model.generate(**x, max_new_tokens=7, do_sample=False)
    assert graphs_compiled(model, x, max_new_tokens=7, do_sample=False) == 3  # the pre-hook, the forward, the hook
    assert not counters["graph_break"]
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert torch.equal(model.generate(**x, max_new_tokens=7, do_sample=False, **compiled()), dynamic)
        eq.assert_equivariant(model, s3, x, max_new_tokens=7, generate_kwargs=compiled())
    torch._dynamo.reset()


def test_compiled_seeded_sampling_is_the_eager_sample_and_equivariant(tok, swap):
    """λ-equitune (per-copy weights) with num_return_sequences: the compiled draw is the eager draw, token for
    token, and g·x draws g of it."""
    model, x = wrapped(tok, swap, "lambda"), prompts(tok)
    try:
        eager = model.generate(**x, max_new_tokens=6, **SEEDED)
        assert torch.equal(model.generate(**x, max_new_tokens=6, **compiled(**SEEDED)), eager)
        moved = {"input_ids": swap.ids.act(x["input_ids"], 1), "attention_mask": x["attention_mask"]}
        assert torch.equal(model.generate(**moved, max_new_tokens=6, **compiled(**SEEDED)), swap.ids.act(eager, 1))
    finally:
        torch._dynamo.reset()


def test_compiled_seq2seq_gives_the_eager_tokens(tok, swap):
    """The encoder runs eagerly (its hook starts the frames); the compiled decoder steps continue them."""
    model = eq.equizero(tiny_seq2seq(len(tok)), swap)
    x = prompts(tok)
    try:
        eager = model.generate(**x, max_new_tokens=6, do_sample=False)
        assert torch.equal(model.generate(**x, max_new_tokens=6, do_sample=False, **compiled()), eager)
    finally:
        torch._dynamo.reset()


def test_sequence_level_runs_on_the_static_compiled_path(tok):
    """The phrase-level methods decode through plain HF generate (greedy) or the trivial group's wrapper
    (seeded sampling): both take a static cache and a compiled step, with the eager texts."""
    action = phrase_permutation([("man", "woman")])
    sequence = SequenceLevel(tiny_causal_lm(len(tok), "llama"), tok, action, method="equizero")
    texts = ["the man said that", "the woman said that"]
    try:
        for kw in ({"do_sample": False}, {"do_sample": True, "top_k": 10}):
            eager = sequence.generate(texts, seed=1, max_new_tokens=5, **kw)
            assert sequence.generate(texts, seed=1, max_new_tokens=5, **kw, **compiled()) == eager
            with torch._dynamo.config.patch(error_on_recompile=True):  # a second call reuses the compiled step
                assert sequence.generate(texts, seed=1, max_new_tokens=5, **kw, **compiled()) == eager
            assert eager[1] == action.act(eager[0], 1)
    finally:
        torch._dynamo.reset()


def test_perf_generate_compile_table_reads_the_two_targets():
    """``--compile`` rows become one line per cell: the four variants' ms per token, compiled / compiled floor
    (the ≤ 1.10 target) and the speed-up over eager equinlp (the ≥ 3× target)."""
    from benchmarks.perf_generate import table

    ms = {"floor": 27.0, "floor-compiled": 5.0, "equinlp": 27.5, "equinlp-compiled": 5.5}
    rows = [{"model": "m", "variant": v, "order": 2, "batch": 8, "ms_per_token": t, "peak_mib": 100.0 + t} for v, t in ms.items()]
    line = table(rows).loc[("m", 2, 8)]
    assert line["equinlp-compiled ms/tok"] == 5.5
    assert line["compiled / compiled floor"] == 1.1
    assert line["speed-up vs eager equinlp"] == 5.0
    assert line["memory / compiled floor"] == round(105.5 / 105.0, 3)
