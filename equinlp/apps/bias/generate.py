"""Generating continuations of demographic prompts with each method, batched and seeded per sample.

Methods (named as in ``equinlp generate``):

- ``base``: the model itself (wrapped with the trivial group, which is the model bit for bit, so that it
  samples with the same seeded sampler as the others);
- ``equitune`` / ``relaxed-equitune``: group averaging of the next-token logits (EquiGPT2 / R-EquiGPT2:
  the relaxed one takes the general words, his/her/him, from the identity copy);
- ``equizero`` / ``relaxed-equizero``: per step, the copy with the lowest proxy (entropy by default);
- ``lambda`` / ``relaxed-lambda``: λ-equitune, the copies weighted by a λ-net on their features. The λ-net
  comes from ``Decoding.lambda_net`` (a folder written by ``EquiModel.save_pretrained`` of a λ-equitune
  model, e.g. after fine-tuning); without one it is the λ-net at initialisation, which is uniform, so
  the samples equal equitune's;
- ``equizero-sentiment``: every copy writes its own continuation and the one whose demographic-masked
  text a scorer rates most positive is mapped back by g⁻¹. The score of masked text is swap-invariant,
  so the choice is equivariant; this is the proxy "that scores each branch's continuation".

Sample i of every subject uses seed i, so with an equivariant method the continuations for "The man …"
and "The woman …" are exact word swaps of each other: the pairing the bootstrap relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from equinlp.apps.bias.scoring import masked_texts
from equinlp.errors import EquinlpError, check_name
from equinlp.harness.options import option, validate
from equinlp.methods.aggregate import PROXIES, Weighted
from equinlp.models import feature_size, wrap_method
from equinlp.models.config import config_for
from equinlp.models.paper_methods import equitune
from equinlp.models.saving import load_parts
from equinlp.models.sequence import SEQUENCE_METHODS, SequenceLevel, decode_texts
from equinlp.models.text import encode_prompts
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.phrases import PhrasePermutation

METHODS = (
    "base",
    "canonical",
    "equitune",
    "relaxed-equitune",
    "equizero",
    "relaxed-equizero",
    "lambda",
    "relaxed-lambda",
    "equizero-sentiment",
)


@dataclass
class Decoding:
    """The paper's decoding by default: top-k 40 sampling, 15 new tokens, stop at a newline."""

    max_new_tokens: int = option(15, "tokens per continuation (the paper: 15)", at_least=1, flags=("--new-tokens",))
    top_k: int = option(40, "top-k sampling (the paper: 40)", at_least=1)
    do_sample: bool = option(True, "sample with --top-k (--no-do-sample: greedy decoding)")
    batch_size: int = option(32, "prompts per generate call; a setting, since batches are computed whole", at_least=1)
    proxy: str = option(
        "entropy", "equizero's per-step proxy loss", choices=tuple(PROXIES), used_by={"method": ("equizero", "relaxed-equizero")}
    )
    lambda_net: str | None = option(
        None,
        "for lambda / relaxed-lambda: a folder written by EquiModel.save_pretrained of a λ-equitune model (e.g. "
        "fine-tuned); without it the λ-net is at initialisation (uniform weights: the same samples as equitune)",
        used_by={"method": ("lambda", "relaxed-lambda")},
        reads=True,
    )

    def __post_init__(self) -> None:
        validate(self)


def lambda_weight_net(model, folder: str | None):
    """The λ-net saved in ``folder`` (by ``EquiModel.save_pretrained`` of a λ-equitune model), or None."""
    if folder is None:
        return None
    _, _, _, aggregator = load_parts(folder, features=feature_size(model))
    inner = getattr(aggregator, "inner", aggregator)
    if not isinstance(inner, Weighted):
        raise ValueError(f"{folder} holds a {inner.method} model, not λ-equitune: it has no λ-net")
    return inner.weight_net


def method_model(
    method: str,
    model,
    action: TokenPermutation,
    general_tokens: Sequence[int] = (),
    proxy: str = "entropy",
    lambda_net: str | None = None,
):
    """The wrapped model that generates for ``method`` (``equizero-sentiment`` decodes with ``base``)."""
    check_name("method", method, METHODS)
    if method == "canonical":
        raise EquinlpError("canonical decodes one branch at the sequence level: it needs a phrase-level group (--level phrase)")
    relaxed = method.startswith("relaxed-")
    if relaxed and not len(general_tokens):
        raise ValueError(f"{method} needs general words (the word group lists none)")
    if method in ("base", "equizero-sentiment"):
        return equitune(model, TokenPermutation.identity(action.vocab_size))
    name = method.removeprefix("relaxed-")  # a registered method (equinlp.methods.registry)
    moved = set(action.moved.tolist())  # the paper's general words the group swaps (he/she for gender) stay swapped
    general = [int(i) for i in general_tokens if int(i) not in moved] if relaxed else []
    config = config_for(name, proxy=proxy, relaxed_tokens=general)
    net = lambda_weight_net(model, lambda_net) if name == "lambda" else None
    return wrap_method(model, action, config, weight_net=net)  # in eval mode: the λ-net's dropout off


@cache
def _newline_ids(tokenizer) -> frozenset[int]:
    return frozenset(i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i]))


def cut(tokenizer, ids: Sequence[int]) -> list[int]:
    """A continuation up to (not including) its first newline, end-of-sequence or padding token."""
    stop = _newline_ids(tokenizer) | {tokenizer.eos_token_id, tokenizer.pad_token_id}
    out = []
    for i in ids:
        if int(i) in stop:
            break
        out.append(int(i))
    return out


def _sample(wrapped, tokenizer, texts: Sequence[str], seeds: Sequence[int], decoding: Decoding, action=None):
    """``(prompt ids [B, P], continuations [N, L])``; with ``action`` every row is run as all |G| copies."""
    batch = encode_prompts(tokenizer, texts, next(wrapped.parameters()).device, padding_side="left")
    ids, mask, seeds = batch["input_ids"], batch["attention_mask"], list(seeds)
    if action is not None:
        order = action.group.order
        ids, mask, seeds = action.ids.act_all(ids), mask.repeat(order, 1), seeds * order
    kwargs = {"max_new_tokens": decoding.max_new_tokens, "do_sample": decoding.do_sample, "pad_token_id": tokenizer.pad_token_id}
    if decoding.do_sample:
        kwargs.update(top_k=decoding.top_k, seed=seeds)
    with torch.no_grad():
        out = wrapped.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return batch["input_ids"], out[:, ids.shape[1] :].cpu()


def select_by_score(tokenizer, action: TokenPermutation, prompts: torch.Tensor, copies: torch.Tensor, scorer) -> tuple:
    """Pick, per prompt, the pulled-back copy whose masked prompt + continuation scores highest.

    Args:
        prompts: ``[B, P]`` prompt ids (identity frame).
        copies: ``[G·B, L]`` continuations, copy g generated from ``g·prompt``.
    Returns:
        ``(continuations: list of B id lists, scores [G, B], unresolved: list of B flags, True where different
        texts tied exactly)``. Ties of score are broken by the masked text (also swap-invariant); texts that still tie
        differ only in swapped words, and the identity copy's is kept.
    """
    order = action.group.order
    pulled = action.ids.pull_back(copies)  # [G, B, L]
    B = prompts.shape[0]
    candidates = [[cut(tokenizer, pulled[g, b].tolist()) for b in range(B)] for g in range(order)]
    texts = masked_texts(tokenizer, [prompts[b].tolist() + candidates[g][b] for g in range(order) for b in range(B)], action)
    scores = np.asarray(scorer.scores(texts)).reshape(order, B)
    chosen, unresolved = [], []
    for b in range(B):
        best = max(range(order), key=lambda g: (scores[g, b], texts[g * B + b]))
        tied = [g for g in range(order) if scores[g, b] == scores[best, b] and texts[g * B + b] == texts[best * B + b]]
        unresolved.append(len({tuple(candidates[g][b]) for g in tied}) > 1)
        if unresolved[-1]:
            best = 0 if 0 in tied else best
        chosen.append(candidates[best][b])
    return chosen, scores, unresolved


def generate(
    method: str,
    model,
    tokenizer,
    action: TokenPermutation,
    texts: Sequence[str],
    seeds: Sequence[int],
    decoding: Decoding | None = None,
    general_tokens: Sequence[int] = (),
    scorer=None,
) -> tuple[list[list[int]], list[bool]]:
    """Continuations (token ids, cut at the first newline) of ``texts``, sample i seeded by ``seeds[i]``.

    Returns ``(continuations, unresolved)``: per sample, whether equizero-sentiment met an exact tie between
    different texts (always False for the other methods). Batches of ``decoding.batch_size`` prompts.
    """
    decoding = decoding or Decoding()
    if method == "equizero-sentiment" and scorer is None:
        raise ValueError("equizero-sentiment needs a scorer (e.g. equinlp.apps.bias.scoring.scorer('vader'))")
    wrapped = method_model(method, model, action, general_tokens, decoding.proxy, decoding.lambda_net)
    results, unresolved = [], []
    for start in range(0, len(texts), decoding.batch_size):
        chunk, chunk_seeds = texts[start : start + decoding.batch_size], seeds[start : start + decoding.batch_size]
        if method == "equizero-sentiment":
            prompts, copies = _sample(wrapped, tokenizer, chunk, chunk_seeds, decoding, action)
            chosen, _, ties = select_by_score(tokenizer, action, prompts.cpu(), copies, scorer)
            results += chosen
            unresolved += ties
        else:
            _, out = _sample(wrapped, tokenizer, chunk, chunk_seeds, decoding)
            results += [cut(tokenizer, row.tolist()) for row in out]
            unresolved += [False] * len(chunk)
    return results, unresolved


def cut_text(text: str) -> str:
    """A text continuation up to (not including) its first newline."""
    return text.split("\n", 1)[0]


def generate_phrases(
    method: str,
    model,
    tokenizer,
    action: PhrasePermutation,
    texts: Sequence[str],
    seeds: Sequence[int],
    decoding: Decoding,
    scorer=None,
) -> tuple[list[str], list[bool]]:
    """Continuations (text, cut at the first newline) for a phrase-level group, at the sequence level.

    ``base`` decodes each prompt with the plain model; ``equitune``, ``equizero``, ``lambda`` and ``canonical`` decode
    one branch per prompt (:class:`~equinlp.models.sequence.SequenceLevel`); ``equizero-sentiment`` decodes every
    branch and keeps the one whose masked text scores best. Returns ``(continuations, unresolved ties)``.
    """
    kwargs = {"max_new_tokens": decoding.max_new_tokens, "do_sample": decoding.do_sample}
    if decoding.do_sample:
        kwargs["top_k"] = decoding.top_k
    ties = [False] * len(texts)
    if method == "base":
        outs = decode_texts(model, tokenizer, texts, seeds, kwargs)
    elif method in SEQUENCE_METHODS:
        net = lambda_weight_net(model, decoding.lambda_net) if method == "lambda" else None
        outs = SequenceLevel(model, tokenizer, action, method, decoding.proxy, net).generate(texts, seed=list(seeds), **kwargs)
    elif method == "equizero-sentiment":
        if scorer is None:
            raise ValueError("equizero-sentiment needs a scorer (e.g. equinlp.apps.bias.scoring.scorer('vader'))")
        outs, ties = _best_scored_branch(model, tokenizer, action, texts, seeds, kwargs, scorer)
    else:
        raise EquinlpError(f"{method} works on single tokens; for the phrase-level group {action.name!r} choose from "
                           f"base, {', '.join(SEQUENCE_METHODS)}, equizero-sentiment")  # fmt: skip
    return [cut_text(o) for o in outs], ties


def _best_scored_branch(model, tokenizer, action: PhrasePermutation, texts, seeds, kwargs, scorer) -> tuple[list, list]:
    """Every branch ``j·c`` of each prompt's orbit decoded with the prompt's seed and mapped back; the one whose
    masked prompt + continuation scores highest is kept (ties: the masked text, then the least j, all in the
    orbit's canonical frame, so a prompt's swaps keep the matching branch)."""
    order, group = action.group.order, action.group
    frames = [action.canonical(t) for t in texts]
    unique = list(dict.fromkeys((c, seed) for (c, _), seed in zip(frames, seeds, strict=True)))
    items = [(action.act(c, j), seed) for c, seed in unique for j in range(order)]
    decoded = decode_texts(model, tokenizer, [t for t, _ in items], [s for _, s in items], kwargs)
    branches = {key: decoded[i * order : (i + 1) * order] for i, key in enumerate(unique)}
    candidates = []  # per prompt, branch j's continuation mapped back by (j·k)⁻¹
    for (c, k), seed in zip(frames, seeds, strict=True):
        back = [int(group.inv[group.mul[j, k]]) for j in range(order)]
        candidates.append([cut_text(action.act(d, back[j])) for j, d in enumerate(branches[(c, seed)])])
    masked = [action.mask(text) + action.mask(t) for text, options in zip(texts, candidates, strict=True) for t in options]
    scores = np.asarray(scorer.scores(masked)).reshape(len(texts), order)
    chosen, unresolved = [], []
    for b, options in enumerate(candidates):
        best = max(range(order), key=lambda j: (scores[b, j], masked[b * order + j]))
        tied = [j for j in range(order) if scores[b, j] == scores[b, best] and masked[b * order + j] == masked[b * order + best]]
        unresolved.append(len({options[j] for j in tied}) > 1)
        chosen.append(options[min(tied)])
    return chosen, unresolved
