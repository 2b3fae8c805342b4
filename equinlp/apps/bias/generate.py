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
from typing import Any

import numpy as np
import torch

from equinlp.apps.bias.config import METHODS, Decoding  # noqa: F401 (re-exported)
from equinlp.apps.bias.scoring import masked_texts
from equinlp.errors import EquinlpError
from equinlp.methods.aggregate import Weighted, select_best
from equinlp.methods.registry import VARIANTS, Variant, method_of, variant
from equinlp.models import feature_size, wrap
from equinlp.models.generation import generate_each_copy
from equinlp.models.saving import load_parts
from equinlp.models.sequence import SEQUENCE_METHODS, PlainDecoder, SequenceLevel
from equinlp.models.text import encode_prompts
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.phrases import PhrasePermutation


def lambda_weight_net(model, folder: str | None):
    """The λ-net saved in ``folder`` (by ``EquiModel.save_pretrained`` of a λ-equitune model), in eval mode; or None."""
    if folder is None:
        return None
    _, _, _, aggregator = load_parts(folder, features=feature_size(model))
    inner = getattr(aggregator, "inner", aggregator)
    if not isinstance(inner, Weighted):
        raise ValueError(f"{folder} holds a {method_of(inner).name} model, not λ-equitune: it has no λ-net")
    return inner.weight_net.eval()  # generation reads it: dropout off


def method_model(
    method: str,
    model,
    action: TokenPermutation,
    general_tokens: Sequence[int] = (),
    proxy: str = "entropy",
    lambda_net: str | None = None,
):
    """The wrapped model that generates for ``method`` at the token level (a judged method decodes with ``base``)."""
    chosen = variant(method)
    if not chosen.entry.token_level:
        raise EquinlpError(f"{method} decodes one branch at the sequence level: it needs a phrase-level group (--level phrase)")
    if chosen.relaxed and not len(general_tokens):
        raise ValueError(f"{method} needs general words (the word group lists none)")
    if chosen.scored:  # every copy decodes on its own, with the base model's sampler
        return wrap(model, action, method="base")
    moved = set(action.moved.tolist())  # the paper's general words the group swaps (he/she for gender) stay swapped
    general = [int(i) for i in general_tokens if int(i) not in moved] if chosen.relaxed else []
    net = lambda_weight_net(model, lambda_net) if chosen.entry.needs_features else None
    # in eval mode: the λ-net's dropout off
    return wrap(model, action, method=chosen.method, proxy=proxy, relaxed_tokens=general, weight_net=net)


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


def cut_text(text: str) -> str:
    """A text continuation up to (not including) its first newline."""
    return text.split("\n", 1)[0]


def _sample(decoder, tokenizer, texts: Sequence[str], seeds: Sequence[int], decoding: Decoding, action=None):
    """``(prompt ids [B, P], continuations)``: ``[B, L]`` from ``decoder``, or with ``action`` ``[G, B, L]``, every
    copy decoded on its own and mapped back (:func:`~equinlp.models.generation.generate_each_copy`)."""
    batch = encode_prompts(tokenizer, texts, next(decoder.parameters()).device, padding_side="left")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    kwargs = {"max_new_tokens": decoding.max_new_tokens, "do_sample": decoding.do_sample, "pad_token_id": tokenizer.pad_token_id}
    if decoding.do_sample:
        kwargs.update(top_k=decoding.top_k, seed=list(seeds))
    if action is not None:
        return ids, generate_each_copy(decoder, action, ids, mask, **kwargs)
    with torch.no_grad():
        out = decoder.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return ids, out[:, ids.shape[1] :].cpu()


def select_by_score(tokenizer, action: TokenPermutation, prompts: torch.Tensor, pulled: torch.Tensor, scorer) -> tuple:
    """Pick, per prompt, the pulled-back copy whose masked prompt + continuation scores highest (:func:`select_best`).

    Args:
        prompts: ``[B, P]`` prompt ids (identity frame).
        pulled: ``[G, B, L]`` continuations, copy g generated from ``g·prompt`` and mapped back by ``g⁻¹``.
    Returns:
        ``(continuations: list of B id lists, scores [G, B], unresolved: list of B flags, True where different
        texts tied exactly)``. Ties of score are broken by the masked text (also swap-invariant); texts that still tie
        differ only in swapped words, and the least g's (the identity copy's when it ties) is kept.
    """
    order = action.group.order
    B = prompts.shape[0]
    candidates = [[tuple(cut(tokenizer, pulled[g, b].tolist())) for b in range(B)] for g in range(order)]
    full = [prompts[b].tolist() + list(candidates[g][b]) for g in range(order) for b in range(B)]
    texts = masked_texts(tokenizer, full, action)
    scores = np.asarray(scorer.scores(texts)).reshape(order, B)
    keys = [texts[g * B : (g + 1) * B] for g in range(order)]
    best, unresolved = select_best(scores, keys, candidates)
    return [list(candidates[g][b]) for b, g in enumerate(best.tolist())], scores, unresolved


@dataclass
class MethodRun:
    """One method set up once for many batches (a cell of ``bias run``): the wrapped model (token level), or the
    sequence-level decoder (phrase level), and equizero-sentiment's judge.

    Build it with :meth:`build`; :meth:`continue_tokens` / :meth:`continue_phrases` continue one batch.
    """

    variant: Variant
    tokenizer: Any
    action: TokenPermutation | PhrasePermutation
    decoding: Decoding
    decoder: Any  # EquiModel (token level), SequenceLevel or PlainDecoder (phrase level)
    scorer: Any = None

    @classmethod
    def build(cls, method: str, model, tokenizer, action, decoding: Decoding | None = None, general_tokens: Sequence[int] = (),
              scorer=None) -> MethodRun:  # fmt: skip
        chosen, decoding = variant(method), decoding or Decoding()
        if chosen.scored and scorer is None:
            raise ValueError(f"{method} needs a scorer (e.g. equinlp.apps.bias.scoring.scorer('vader'))")
        if not isinstance(action, PhrasePermutation):
            decoder = method_model(method, model, action, general_tokens, decoding.proxy, decoding.lambda_net)
        elif chosen.entry.trivial or chosen.scored:
            decoder = PlainDecoder(model, tokenizer)  # the prompt itself, or every branch of its orbit
        elif chosen.entry.sequence_weights is not None and not chosen.relaxed:
            net = lambda_weight_net(model, decoding.lambda_net) if chosen.entry.needs_features else None
            decoder = SequenceLevel(model, tokenizer, action, chosen.method, decoding.proxy, net)
        else:
            judged = [n for n, v in VARIANTS.items() if v.scored]
            raise EquinlpError(f"{method} works on single tokens; for the phrase-level group {action.name!r} choose from "
                               f"base, {', '.join(SEQUENCE_METHODS)}, {', '.join(judged)}")  # fmt: skip
        return cls(chosen, tokenizer, action, decoding, decoder, scorer)

    def continue_tokens(self, texts: Sequence[str], seeds: Sequence[int]) -> tuple[list[list[int]], list[bool]]:
        """Token level: continuations (ids, cut at the first newline) of one batch, sample i seeded by ``seeds[i]``,
        and per sample whether equizero-sentiment met an exact tie between different texts."""
        if self.variant.scored:
            prompts, pulled = _sample(self.decoder, self.tokenizer, texts, seeds, self.decoding, self.action)
            chosen, _, ties = select_by_score(self.tokenizer, self.action, prompts.cpu(), pulled, self.scorer)
            return chosen, ties
        _, out = _sample(self.decoder, self.tokenizer, texts, seeds, self.decoding)
        return [cut(self.tokenizer, row.tolist()) for row in out], [False] * len(texts)

    def continue_phrases(self, texts: Sequence[str], seeds: Sequence[int]) -> tuple[list[str], list[bool]]:
        """Phrase level: continuations (text, cut at the first newline) of one batch, and the unresolved ties.

        ``base`` decodes each prompt with the plain model; the sequence-level methods decode one branch per prompt
        (:class:`~equinlp.models.sequence.SequenceLevel`); equizero-sentiment decodes every branch and keeps the one
        whose masked text scores best."""
        kwargs = self.decoding.generate_kwargs()
        if self.variant.scored:
            return self._best_scored_branch(texts, seeds, kwargs)
        if isinstance(self.decoder, SequenceLevel):
            outs = self.decoder.generate(texts, seed=list(seeds), **kwargs)
        else:
            outs = self.decoder(texts, seeds, kwargs)
        return [cut_text(o) for o in outs], [False] * len(texts)

    def _best_scored_branch(self, texts, seeds, kwargs) -> tuple[list, list]:
        """Every branch ``j·c`` of each prompt's orbit decoded with the prompt's seed and mapped back; the one whose
        masked prompt + continuation scores highest is kept (:func:`select_best`: ties go to the masked text, then the
        least j, all in the orbit's canonical frame, so a prompt's swaps keep the matching branch)."""
        action, order, group = self.action, self.action.group.order, self.action.group
        frames = [action.canonical(t) for t in texts]
        unique = list(dict.fromkeys((c, seed) for (c, _), seed in zip(frames, seeds, strict=True)))
        items = [(action.act(c, j), seed) for c, seed in unique for j in range(order)]
        decoded = self.decoder([t for t, _ in items], [s for _, s in items], kwargs)
        branches = {key: decoded[i * order : (i + 1) * order] for i, key in enumerate(unique)}
        candidates = []  # per prompt, branch j's continuation mapped back by (j·k)⁻¹
        for (c, k), seed in zip(frames, seeds, strict=True):
            back = [int(group.inv[group.mul[j, k]]) for j in range(order)]
            candidates.append([cut_text(action.act(d, back[j])) for j, d in enumerate(branches[(c, seed)])])
        masked = [[action.mask(text) + action.mask(t) for t in options] for text, options in zip(texts, candidates, strict=True)]
        scores = np.asarray(self.scorer.scores([m for row in masked for m in row])).reshape(len(texts), order)
        best, unresolved = select_best(scores.T, list(zip(*masked, strict=True)), list(zip(*candidates, strict=True)))
        return [options[j] for options, j in zip(candidates, best.tolist(), strict=True)], unresolved


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
    """Continuations (token ids, cut at the first newline) of ``texts`` as one batch, sample i seeded by ``seeds[i]``.

    Returns ``(continuations, unresolved)``: per sample, whether equizero-sentiment met an exact tie between
    different texts (always False for the other methods). For many batches keep a :class:`MethodRun`.
    """
    return MethodRun.build(method, model, tokenizer, action, decoding, general_tokens, scorer).continue_tokens(texts, seeds)
