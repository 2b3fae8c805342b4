"""The one formula over sequences: decode one branch g·x with the plain model and map its text back by g⁻¹.

``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)`` read over continuations is a mixture: draw a branch g with probability
``w_g(x)``, continue ``g·x`` with the model (any HF decoding: greedy, sampling, beam search), and apply
g⁻¹ to the text. It needs one decode per prompt, not |G|, and works for phrases of any number of tokens
(:class:`~equinlp.symmetry.phrases.PhrasePermutation`).

Exact sample by sample, by construction: everything is decided in the canonical frame of the prompt's
orbit. With ``c = k·x`` the least text of the orbit, the branches are ``b_j = j·c`` (so ``g·x`` has the
same branches), the branch j is drawn from ``w`` with a random number seeded by ``(seed, c)`` (so ``g·x``
draws the same j), ``b_j`` is decoded with the same seed, and the result is mapped back by
``(j·k)⁻¹``. For ``y = h·x``, ``k_y = k·h⁻¹`` and the output is ``h·`` that of x, as text. Weights:

- ``equitune``: uniform; ``canonical``: all on ``c`` itself (a canonicalizer, Kaba et al. 2023; no draw);
- ``equizero``: all on the branch whose proxy (e.g. the next-token entropy after the prompt) is lowest,
  from one batched forward of the |G| branch prompts; ties go to the least j;
- ``lambda``: ``softmax_j λ(features of b_j)``, the features being the last hidden state at the prompt's end.

Token-level averaging (``eq.equitune``: the mean of the |G| next-token distributions, at every step) and
this mixture of sequences are different distributions; the paper uses the token-level one. Inputs fixed
by a group element (a prompt without any group phrase) get a continuation, not a symmetrised one: the
promise there is only that the output does not depend on which of the prompt's (equal) swaps was given.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from equinlp.errors import check_name
from equinlp.methods import registry
from equinlp.methods.aggregate import PROXIES
from equinlp.methods.registry import sequence_methods
from equinlp.models.text import encode_prompts
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.phrases import PhrasePermutation

SEQUENCE_METHODS = sequence_methods()  # equitune, equizero, lambda, canonical: their weights are the registry's


@dataclass(frozen=True)
class Branch:
    """What is decoded for a prompt: the branch text, the element that maps it back, the seed."""

    text: str
    back: int  # (j·k)⁻¹
    seed: int | None


class SequenceLevel:
    """A causal LM made equivariant over sequences for a phrase-level group (see the module docstring).

    Args:
        model: any causal LM (``generate`` and ``output_hidden_states``).
        tokenizer: its tokenizer (batches are padded on the left, whatever its ``padding_side``).
        action: the group acting on text.
        method: ``equitune``, ``equizero``, ``lambda`` or ``canonical``.
        proxy: equizero's proxy of a branch's next-token scores (``entropy``, ``max_prob``, ``max_logit``).
        weight_net: λ-equitune's λ-net (features ``[..., D] -> [...]``); default a fresh :class:`WeightNet`
            (uniform at initialisation: the same branch draws as equitune).
    """

    def __init__(
        self, model, tokenizer, action: PhrasePermutation, method: str = "equitune", proxy: str = "entropy", weight_net=None
    ) -> None:
        self.model, self.tokenizer, self.action = model, tokenizer, action
        self.decoder = PlainDecoder(model, tokenizer)
        self.method = registry.method(check_name("sequence-level method", method, SEQUENCE_METHODS))
        check_name("proxy", proxy, PROXIES)
        self.aggregator = None  # what weighs the branches: Mean, Argmin(proxy) or Weighted(λ-net; default a fresh one)
        if self.method.token_level:
            settings = registry.MethodSettings(method, proxy=proxy)
            features = model.config.get_text_config().hidden_size if self.method.needs_features else None
            self.aggregator = registry.build_aggregator(settings, features=features, weight_net=weight_net)
            if weight_net is None:
                self.aggregator.eval()  # a fresh λ-net without dropout (a given one is used as it is)

    @torch.no_grad()
    def _prompt_end(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [N, V], features [N, D])`` at the last prompt token of each text, one batched forward."""
        batch = encode_prompts(self.tokenizer, texts, self.model.device, padding_side="left")
        out = self.model(**batch, output_hidden_states=True)
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1].float()

    def _weights(self, canonicals: list[str], batch_independent: bool = False) -> dict[str, list[float]]:
        """Branch weights per canonical text (a list over j), the method's ``sequence_weights``; those that weigh
        the branches read one forward of every branch prompt (with ``batch_independent``, one forward per orbit:
        its |G| branches alone)."""
        order, weights = self.action.group.order, self.method.sequence_weights
        if not self.method.weighs_branches:
            return {c: weights(self.aggregator, order, None, None) for c in canonicals}
        if batch_independent and len(canonicals) > 1:
            return {c: w for one in canonicals for c, w in self._weights([one]).items()}
        branches = [self.action.act(c, j) for c in canonicals for j in range(order)]
        logits, features = self._prompt_end(branches)
        rows = [slice(i * order, (i + 1) * order) for i in range(len(canonicals))]
        return {c: weights(self.aggregator, order, logits[r], features[r]) for c, r in zip(canonicals, rows, strict=True)}

    def branches(self, prompts: Sequence[str], seeds: Sequence[int | None], batch_independent: bool = False) -> list[Branch]:
        """The branch each prompt decodes (deterministic given the prompt's orbit and its seed)."""
        frames = [self.action.canonical(p) for p in prompts]
        weights = self._weights(list(dict.fromkeys(c for c, _ in frames)), batch_independent)
        chosen = []
        for (c, k), seed in zip(frames, seeds, strict=True):
            u = random.Random(f"{seed}\x1f{c}").random()  # the same for every text of the orbit
            cumulative, j = 0.0, len(weights[c]) - 1
            for index, w in enumerate(weights[c]):
                cumulative += w
                if u < cumulative:
                    j = index
                    break
            group = self.action.group
            chosen.append(Branch(self.action.act(c, j), int(group.inv[group.mul[j, k]]), seed))
        return chosen

    def generate(
        self, prompts: Sequence[str], seed: int | Sequence[int] | None = None, batch_independent: bool = False, **generate_kwargs
    ) -> list[str]:
        """The continuation of each prompt, as text. Any ``generate`` keyword works (``num_beams``, ``top_k``...);
        with ``do_sample=True`` each prompt's draw is seeded by ``seed`` (an int for all, or one per prompt).

        Prompts of one call are exact swaps of each other's continuations in every dtype. ``batch_independent``
        makes calls agree too in half precision: each orbit's weights and each branch are computed alone,
        without padding or batch mates (one forward and one decode per prompt instead of one per call).
        """
        seeds = list(seed) if isinstance(seed, Sequence) else [seed] * len(prompts)
        if generate_kwargs.get("do_sample") and None in seeds:
            raise ValueError("sampling needs a seed per prompt (seed=...) for swapped prompts to draw alike")
        branches = self.branches(prompts, seeds, batch_independent)
        unique = list(dict.fromkeys((b.text, b.seed) for b in branches))  # a prompt and its swaps decode once
        groups = [[item] for item in unique] if batch_independent else [unique]
        decode = lambda items: self.decoder([t for t, _ in items], [s for _, s in items], generate_kwargs)  # noqa: E731
        decoded = [text for items in groups for text in decode(items)]
        texts = dict(zip(unique, decoded, strict=True))
        return [self.action.act(texts[(b.text, b.seed)], b.back) for b in branches]


class PlainDecoder:
    """The plain model's continuations of texts (as text), each sampled row seeded by its own seed.

    Sampling goes through the trivial group's wrapper (the registry's ``base``), which is the model bit for bit
    with a per-row seeded sampler, so a row's draw does not depend on the other rows of the batch; it is built
    once, at the first sampled call. Greedy decoding and beam search run the model itself.
    """

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    @cached_property
    def sampler(self):
        from equinlp.models import wrap

        return wrap(self.model, TokenPermutation.identity(len(self.tokenizer)), method="base")

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], seeds: Sequence[int | None], generate_kwargs: dict) -> list[str]:
        batch = encode_prompts(self.tokenizer, texts, self.model.device, padding_side="left")
        kwargs = {"pad_token_id": self.tokenizer.pad_token_id, **generate_kwargs}
        model = self.model
        if kwargs.get("do_sample"):
            model, kwargs["seed"] = self.sampler, list(seeds)
        out = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)


def decode_texts(model, tokenizer, texts: Sequence[str], seeds: Sequence[int | None], generate_kwargs: dict) -> list[str]:
    """One call of a :class:`PlainDecoder` (keep a decoder to wrap the model once for many calls)."""
    return PlainDecoder(model, tokenizer)(texts, seeds, generate_kwargs)
