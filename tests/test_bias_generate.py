"""Generations of the equivariant methods for swapped prompts are exact word swaps, sample by sample."""

import numpy as np
import pytest
import torch

import equinlp as eq
from equinlp.apps.bias.generate import Decoding, generate, lambda_weight_net, select_by_score
from equinlp.apps.bias.scoring import scorer
from equinlp.testing import tiny_causal_lm, word_tokenizer

PROMPTS = ["the man worked as", "the woman was known for", "the man said that he"]
SEEDS = [0, 1, 2]


def swapped(tok, swap, texts):
    return [tok.decode(swap.ids.act(torch.tensor(tok(t)["input_ids"]), 1), skip_special_tokens=True) for t in texts]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_causal_lm(len(word_tokenizer())).eval()


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda", "equizero-sentiment"])
@pytest.mark.parametrize("do_sample", [False, True])
def test_swapped_prompts_give_swapped_continuations(method, do_sample, model, tok, swap):
    decoding = Decoding(max_new_tokens=8, do_sample=do_sample, top_k=5, batch_size=2)
    args = dict(decoding=decoding, scorer=scorer("vader"))
    ours, _ = generate(method, model, tok, swap, PROMPTS, SEEDS, **args)
    theirs, _ = generate(method, model, tok, swap, swapped(tok, swap, PROMPTS), SEEDS, **args)
    assert [swap.ids.act(torch.tensor(c, dtype=torch.long), 1).tolist() for c in ours] == theirs


def test_the_base_model_is_not_swap_consistent(model, tok, swap):
    decoding = Decoding(max_new_tokens=8, top_k=5)
    ours, _ = generate("base", model, tok, swap, PROMPTS, SEEDS, decoding)
    theirs, _ = generate("base", model, tok, swap, swapped(tok, swap, PROMPTS), SEEDS, decoding)
    assert [swap.ids.act(torch.tensor(c, dtype=torch.long), 1).tolist() for c in ours] != theirs


def test_sentiment_selection_takes_the_best_scoring_copy(tok, swap):
    class Words:  # +1 for "kind", -1 for "rude": a known, swap-invariant score
        def scores(self, texts):
            return np.array([t.count("kind") - t.count("rude") for t in texts], dtype=float)

    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompts = torch.tensor([ids("the man was")])
    copies = torch.tensor([ids("rude"), ids("kind")])  # copy 0 (identity) rude, copy 1 (swapped) kind
    chosen, scores, unresolved = select_by_score(tok, swap, prompts, swap.ids.pull_back(copies), Words())
    assert chosen == [ids("kind")] and scores.tolist() == [[-1.0], [1.0]] and unresolved == [False]
    # copies that differ only in swapped words tie exactly: counted, and the identity copy kept
    copies = torch.tensor([ids("he"), ids("he")])  # pulled back: "he" and "she"
    chosen, _, unresolved = select_by_score(tok, swap, prompts, swap.ids.pull_back(copies), Words())
    assert chosen == [ids("he")] and unresolved == [True]


def test_relaxed_methods_need_general_words(model, tok, swap):
    with pytest.raises(ValueError, match="needs general words"):
        generate("relaxed-equitune", model, tok, swap, PROMPTS, SEEDS)
    out, _ = generate("relaxed-equitune", model, tok, swap, PROMPTS, SEEDS, general_tokens=eq.general_token_ids(tok, ["his"]))
    assert len(out) == 3
    with pytest.raises(ValueError, match="unknown method"):
        generate("fair", model, tok, swap, PROMPTS, SEEDS)


def test_lambda_loads_a_saved_lambda_net_and_stays_equivariant(model, tok, swap, tmp_path):
    trained = eq.lambda_equitune(model, swap)
    torch.manual_seed(1)
    torch.nn.init.normal_(trained.aggregator.weight_net.net[-1].weight, std=5.0)  # far from uniform
    trained.save_pretrained(tmp_path / "lambda")
    decoding = Decoding(max_new_tokens=8, top_k=5, batch_size=2, lambda_net=str(tmp_path / "lambda"))
    ours, _ = generate("lambda", model, tok, swap, PROMPTS, SEEDS, decoding)
    theirs, _ = generate("lambda", model, tok, swap, swapped(tok, swap, PROMPTS), SEEDS, decoding)
    assert [swap.ids.act(torch.tensor(c, dtype=torch.long), 1).tolist() for c in ours] == theirs
    short = Decoding(max_new_tokens=8, top_k=5, batch_size=2)
    untrained, _ = generate("lambda", model, tok, swap, PROMPTS, SEEDS, short)
    assert ours != untrained  # the saved λ-net was used
    assert untrained == generate("equitune", model, tok, swap, PROMPTS, SEEDS, short)[0]
    eq.equitune(model, swap).save_pretrained(tmp_path / "mean")
    assert not lambda_weight_net(model, str(tmp_path / "lambda")).training  # read for generation: no dropout
    with pytest.raises(ValueError, match="not λ-equitune"):
        generate("lambda", model, tok, swap, PROMPTS, SEEDS, Decoding(lambda_net=str(tmp_path / "mean")))
