"""Sampling whose random draw follows the group: for swapped prompts, the same seed picks swapped tokens.

``torch.multinomial`` walks the vocabulary in id order, so the same random number lands on unrelated
tokens for two permuted distributions: equivariant in distribution, but not sample by sample.
:class:`RankGumbelSampler` draws Gumbel noise in the order of the tokens' *ranks* (the reference code's
sort-then-sample), which a permutation of the vocabulary does not change. It is an exact sample from
``softmax(scores)`` (Gumbel-max with i.i.d. noise) and it is the last logits processor: it leaves only the
chosen token finite, so HF's greedy step takes it.
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig, LogitsProcessorList
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

UNSUPPORTED_WARPERS = ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h")


class RankGumbelSampler:
    """Logits processor: ``[B, V] -> [B, V]`` with one finite entry per row, the sampled token.

    Args:
        seeds: one seed per row, or None for torch's global generator. A seeded row draws its noise from
            its own generator (seed, step), so its sample does not depend on the other rows of the batch
            and rows with equal seeds draw equal noise: ``x`` and ``g·x`` with one seed give swapped samples.
    """

    def __init__(self, seeds: list[int] | None = None) -> None:
        self.seeds = seeds
        self.step = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(scores, float("-inf"))
        if self.seeds is None:
            finite = int(torch.isfinite(scores).sum(-1).max())
            ranked, order = scores.topk(max(finite, 1), dim=-1)  # descending: rank r is column r
            gumbel = -torch.empty_like(ranked).exponential_().log()
            token = order.gather(-1, (ranked + gumbel).argmax(-1, keepdim=True))
            return out.scatter_(-1, token, 0.0)
        if len(self.seeds) != scores.shape[0]:
            raise ValueError(f"{len(self.seeds)} seeds for a batch of {scores.shape[0]} rows")
        generator = torch.Generator(device=scores.device)
        for row, seed in enumerate(self.seeds):
            ranked, order = scores[row].topk(max(int(torch.isfinite(scores[row]).sum()), 1))
            generator.manual_seed(int(seed) * 1_000_003 + self.step)
            noise = torch.empty_like(ranked).exponential_(generator=generator)
            out[row, order[(ranked - noise.log()).argmax()]] = 0.0
        self.step += 1
        return out


def equivariant_sampling(
    config: GenerationConfig, processors: LogitsProcessorList | None, seeds: list[int] | None = None
) -> LogitsProcessorList:
    """Move ``config``'s sampling into processors ending in :class:`RankGumbelSampler`; ``config`` turns greedy.

    Mutates ``config`` (a private copy). Returns the processor list to pass to ``generate``.
    """
    for name in UNSUPPORTED_WARPERS:
        value = getattr(config, name, None)
        if value is not None and not (name == "typical_p" and value >= 1.0) and not (name.endswith("cutoff") and value == 0.0):
            raise ValueError(f"{name}={value} is not supported by the equivariant sampler; pass sampler='hf' to use HF's")
    warpers = LogitsProcessorList(processors or [])
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        warpers.append(TopKLogitsWarper(config.top_k))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))
    if config.min_p is not None:
        warpers.append(MinPLogitsWarper(config.min_p))
    warpers.append(RankGumbelSampler(seeds))
    config.do_sample = False
    config.temperature, config.top_k, config.top_p, config.min_p = None, None, None, None
    return warpers
