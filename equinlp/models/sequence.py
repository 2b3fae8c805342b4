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

import torch

from equinlp.errors import check_name
from equinlp.methods.aggregate import PROXIES, Weighted, WeightNet
from equinlp.models.text import encode_prompts
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.phrases import PhrasePermutation

SEQUENCE_METHODS = ("equitune", "equizero", "lambda", "canonical")


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
        self.method = check_name("sequence-level method", method, SEQUENCE_METHODS)
        self.proxy = PROXIES[check_name("proxy", proxy, PROXIES)]
        if method == "lambda" and weight_net is None:
            weight_net = WeightNet(model.config.get_text_config().hidden_size).eval()
        self.weighted = Weighted(weight_net) if method == "lambda" else None

    @torch.no_grad()
    def _prompt_end(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [N, V], features [N, D])`` at the last prompt token of each text, one batched forward."""
        batch = encode_prompts(self.tokenizer, texts, self.model.device, padding_side="left")
        out = self.model(**batch, output_hidden_states=True)
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1].float()

    def _weights(self, canonicals: list[str], batch_independent: bool = False) -> dict[str, list[float]]:
        """Branch weights per canonical text (a list over j), from one forward of every branch prompt (with
        ``batch_independent``, one forward per orbit: its |G| branches alone)."""
        order = self.action.group.order
        if self.method in ("equitune", "canonical"):
            uniform = [1.0 / order] * order if self.method == "equitune" else [1.0] + [0.0] * (order - 1)
            return {c: uniform for c in canonicals}
        if batch_independent and len(canonicals) > 1:
            return {c: w for one in canonicals for c, w in self._weights([one]).items()}
        branches = [self.action.act(c, j) for c in canonicals for j in range(order)]
        logits, features = self._prompt_end(branches)
        weights = {}
        for i, c in enumerate(canonicals):
            rows = slice(i * order, (i + 1) * order)
            if self.method == "equizero":
                proxy = self.proxy(logits[rows])
                best = int(torch.nonzero(proxy == proxy.min())[0])  # ties: the least j, in the canonical frame
                weights[c] = [float(j == best) for j in range(order)]
            else:
                weights[c] = self.weighted.weights(features[rows][:, None])[:, 0].tolist()
        return weights

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
        decoded = [text for items in groups for text in self._decode(items, generate_kwargs)]
        texts = dict(zip(unique, decoded, strict=True))
        return [self.action.act(texts[(b.text, b.seed)], b.back) for b in branches]

    def _decode(self, items: list[tuple[str, int | None]], generate_kwargs: dict) -> list[str]:
        return decode_texts(self.model, self.tokenizer, [t for t, _ in items], [s for _, s in items], generate_kwargs)


@torch.no_grad()
def decode_texts(model, tokenizer, texts: Sequence[str], seeds: Sequence[int | None], generate_kwargs: dict) -> list[str]:
    """The plain model's continuations of ``texts`` (as text), each sampled row seeded by its own seed.

    Sampling goes through the trivial group's wrapper, which is the model bit for bit with a per-row seeded
    sampler, so a row's draw does not depend on the other rows of the batch.
    """
    batch = encode_prompts(tokenizer, texts, model.device, padding_side="left")
    kwargs = {"pad_token_id": tokenizer.pad_token_id, **generate_kwargs}
    if kwargs.get("do_sample"):
        from equinlp.models import wrap_method
        from equinlp.models.config import config_for

        model = wrap_method(model, TokenPermutation.identity(len(tokenizer)), config_for("equitune"))
        kwargs["seed"] = list(seeds)
    out = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
    return tokenizer.batch_decode(out, skip_special_tokens=True)
