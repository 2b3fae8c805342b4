"""Choosing the next token so that the choice moves with the group, exactly.

The wrapper's scores are equivariant: for ``h·x`` they are the scores for ``x`` with the vocabulary
permuted by h, bit for bit (frames.py). What is left is the choice of a token from them:

- **Ties.** ``argmax`` and sorting break exact ties by token id, and no permutation respects token ids:
  half-precision logits tie often, and the swapped prompt would pick an unrelated token. So the choice is
  made in a *canonical frame*: each row's sequence ``x`` (the source too, for seq2seq) is mapped by the
  group element ``k`` that sends it to the least sequence of its orbit ``{g·x}`` (lexicographically, by
  token id). ``h·x`` has the same orbit, so its frame shows the same scores; the token chosen there is
  mapped back by ``k⁻¹``, and the choice moves with the group.
- **Sampling.** ``torch.multinomial`` walks the vocabulary in id order, so one random number lands on
  unrelated tokens for two permuted distributions: equivariant in distribution, not sample by sample.
  :class:`EquivariantChoice` applies the sampling warpers (temperature, top-k, top-p, ...) in the canonical
  frame, ranks the tokens there (a stable sort) and draws Gumbel noise in rank order (the reference code's
  sort-then-sample): an exact sample from the warped distribution, and the same noise for ``x`` and ``g·x``.

A sequence fixed by some ``h`` (no swap word) is the one inherent limit: its scores are exactly
h-invariant, so a word and its swap tie there, and whichever is chosen, the continuation is not h-invariant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopHLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.frames import OrbitFrames

# HF's sampling settings, in HF's order: name -> (is it on?, its warper). Each acts on the values of the
# scores alone, so in the canonical frame it acts the same on x and g·x, ties included.
SAMPLING_WARPERS: dict[str, tuple[Callable[[Any], bool], Callable[[Any], LogitsProcessor]]] = {
    "temperature": (lambda v: v != 1.0, TemperatureLogitsWarper),
    "top_h": (lambda v: True, lambda v: TopHLogitsWarper(top_h=v)),
    "top_k": (lambda v: v != 0, lambda v: TopKLogitsWarper(top_k=v)),
    "top_p": (lambda v: v < 1.0, lambda v: TopPLogitsWarper(top_p=v)),
    "min_p": (lambda v: True, lambda v: MinPLogitsWarper(min_p=v)),
    "typical_p": (lambda v: v < 1.0, lambda v: TypicalLogitsWarper(mass=v)),
    "epsilon_cutoff": (lambda v: 0.0 < v < 1.0, lambda v: EpsilonLogitsWarper(epsilon=v)),
    "eta_cutoff": (lambda v: 0.0 < v < 1.0, lambda v: EtaLogitsWarper(epsilon=v)),  # a 0-d tensor: any device
}


def rank_gumbel(scores: torch.Tensor, seeds: list[int] | None, step: int) -> torch.Tensor:
    """``[B, V] -> [B, 1]``: a sample from ``softmax(scores)`` with Gumbel noise drawn in rank order.

    Ranks come from a stable sort (ties keep id order, which the canonical frame makes symmetric). A
    seeded row draws from its own generator (seed, step), so its sample does not depend on the other rows.
    """
    if seeds is not None and len(seeds) != scores.shape[0]:
        raise ValueError(f"{len(seeds)} seeds for a batch of {scores.shape[0]} rows")
    ranked, order = scores.sort(dim=-1, descending=True, stable=True)  # rank r is column r
    finite = max(int(torch.isfinite(ranked).sum(-1).max()), 1)
    ranked, order = ranked[:, :finite], order[:, :finite]
    if seeds is None:
        noise = torch.empty_like(ranked).exponential_()
    else:
        generator = torch.Generator(device=scores.device)
        noise = torch.empty_like(ranked)
        for row, seed in enumerate(seeds):
            generator.manual_seed(int(seed) * 1_000_003 + step)
            noise[row].exponential_(generator=generator)
    return order.gather(-1, (ranked - noise.log()).argmax(-1, keepdim=True))


class EquivariantChoice:
    """The last logits processor: picks each row's token in its canonical frame, ``[B, V] -> [B, V]``.

    It returns scores with one finite entry, the chosen token, so HF's greedy step takes it. With
    ``warpers`` it samples (rank-Gumbel), without it takes the argmax. With ``keep_scores``, ``scores`` keeps,
    per step, the processed scores a token was chosen from in the row's frame (the warped distribution when
    sampling), for ``output_scores``.

    The frames are the wrapper's (models/base.py): its hooks extend them with every token fed to the model,
    the source first for seq2seq, so at each call they hold the rows' sequences so far and the choice only
    reads them.

    Args:
        action: the group's action on the generated ids.
        frames: the rows' canonical frames, kept up to date by the wrapper.
        warpers: sampling warpers to apply in the canonical frame, or None for greedy decoding.
        seeds: one seed per row (see :func:`rank_gumbel`), or None for torch's global generator.
        canonical_scores: the scores arrive in each row's canonical frame already (the wrapper returns them
            so when no processor before this one reads them); else in each row's own frame.
        keep_scores: keep each step's scores (``output_scores``).
    """

    def __init__(
        self,
        action: TokenPermutation,
        frames: OrbitFrames,
        warpers: LogitsProcessorList | None = None,
        seeds: list[int] | None = None,
        canonical_scores: bool = False,
        keep_scores: bool = False,
    ) -> None:
        self.action, self.frames, self.warpers, self.seeds = action, frames, warpers, seeds
        self.canonical_scores, self.keep_scores = canonical_scores, keep_scores
        self.step = 0
        self.scores: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        canonical = scores if self.canonical_scores else self.frames.to_canonical(self.action, scores)
        if self.warpers is not None:
            canonical = self.warpers(input_ids, canonical)
            chosen = rank_gumbel(canonical, self.seeds, self.step)
        else:
            chosen = canonical.argmax(-1, keepdim=True)  # the first maximum: the least id in the canonical frame
        if self.keep_scores:
            self.scores.append(self.frames.from_canonical(self.action, canonical))
        self.step += 1
        token = self.frames.token_from_canonical(self.action, chosen)
        return torch.full_like(scores, float("-inf")).scatter_(-1, token, 0.0)


def take_sampling_warpers(config: GenerationConfig) -> LogitsProcessorList:
    """Move ``config``'s sampling settings into warpers (HF's, in HF's order); ``config`` turns greedy.

    Mutates ``config`` (a private copy).
    """
    warpers = LogitsProcessorList()
    for name, (is_on, warper) in SAMPLING_WARPERS.items():
        value = getattr(config, name, None)
        if value is not None and is_on(value):
            warpers.append(warper(value))
        setattr(config, name, None)
    config.do_sample = False
    return warpers
