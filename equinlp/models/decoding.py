"""Greedy decoding in canonical frames, for the seq2seq models whose decoding loop equinlp owns (SCAN's).

HF owns ``generate``'s loop, which the wrapper feeds through hooks (models/base.py). A recurrent seq2seq with

- ``encode(src [N, S], mask [N, S]) -> (memory, state)`` and
- ``step(token [N], state, memory, mask) -> (logits [N, V], features [N, D], state)``

is decoded here instead, one way for every wrapper. The source fixes each row's canonical frame
(symmetry/frames.py), the copies of every row run in one batch, and at each step a *selection* turns their
outputs into tokens:

- :class:`JointStep` (``selection="step"``): one token per row, the argmax of scores computed in the row's
  canonical frame (the copies combined, or the one canonical copy made invariant), mapped to the row's frame,
  appended to the frames and fed to each copy in the copy's frame;
- :class:`PerCopy` (``selection="per-copy"``): every copy decodes on its own, feeding back its own argmax.

A command and its swap fold into the same batch, so they run the same arithmetic: decoding is exactly
equivariant, ties included. ``PAD`` follows the first ``EOS`` (both fixed by every element).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from equinlp.models.tokenizers import BOS, EOS, PAD
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.frames import OrbitFrames

# (frames, logits [N, V], features [N, D]) -> [B, V]: each row's scores in its canonical frame
Scores = Callable[[OrbitFrames, torch.Tensor, torch.Tensor], torch.Tensor]


class Selection(Protocol):
    each_copy: bool  # tokens are chosen for every copy (``[N]``), not for every row (``[B]``)

    def inputs(self, frames: OrbitFrames, action: TokenPermutation, ids: torch.Tensor) -> torch.Tensor:
        """``[B, L] -> [N, L]``: the copies' inputs."""

    def choose(self, frames: OrbitFrames, logits: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens chosen and the scores they were chosen from."""

    def feed(self, frames: OrbitFrames, tokens: torch.Tensor) -> torch.Tensor:
        """The chosen tokens -> the copies' next inputs ``[N]``."""


class JointStep:
    """One token per row, chosen in its canonical frame from ``scores``.

    Args:
        out_action: the group's action on the decoded ids.
        scores: each row's scores in its canonical frame, from the copies' outputs.
        copies: ``"all"`` (block m of the folded batch holds ``m·c``) or ``"canonical"`` (``c`` alone, for a model
            that is equivariant already).
    """

    each_copy = False

    def __init__(self, out_action: TokenPermutation, scores: Scores, copies: str = "all") -> None:
        if copies not in ("all", "canonical"):
            raise ValueError(f"copies {copies!r}: choose 'all' or 'canonical'")
        self.out_action, self.scores, self.copies = out_action, scores, copies

    def inputs(self, frames: OrbitFrames, action: TokenPermutation, ids: torch.Tensor) -> torch.Tensor:
        return frames.fold(action, ids) if self.copies == "all" else frames.canonical(action, ids)

    def choose(self, frames: OrbitFrames, logits: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.scores(frames, logits, features)  # [B, V]
        return frames.token_from_canonical(self.out_action, scores.argmax(-1, keepdim=True))[:, 0], scores

    def feed(self, frames: OrbitFrames, tokens: torch.Tensor) -> torch.Tensor:
        frames.extend(self.out_action, tokens[:, None])
        return self.inputs(frames, self.out_action, tokens[:, None])[:, 0]


class PerCopy:
    """Every copy decodes greedily on its own, in its own frame; copies holding the same sequence decode alike.
    The scores kept are each copy's log-probabilities ``[G·B, V]``."""

    each_copy = True

    def inputs(self, frames: OrbitFrames, action: TokenPermutation, ids: torch.Tensor) -> torch.Tensor:
        return frames.fold(action, ids)

    def choose(self, frames: OrbitFrames, logits: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = frames.share_representatives(logits.log_softmax(-1))
        return logp.argmax(-1), logp

    def feed(self, frames: OrbitFrames, tokens: torch.Tensor) -> torch.Tensor:
        return tokens


@dataclass
class Decoded:
    """What :meth:`CanonicalDecoder.decode` returns.

    Attributes:
        frames: the rows' frames (after the source, and the tokens when chosen per row).
        tokens: ``[B, L]`` in each row's frame (``JointStep``) or ``[G·B, L]`` in each copy's (``PerCopy``).
        scores: per step, the scores the tokens were chosen from.
    """

    frames: OrbitFrames
    tokens: torch.Tensor
    scores: list[torch.Tensor]


class CanonicalDecoder:
    """Greedy decoding of ``model`` in canonical frames (see the module docstring).

    Args:
        model: a seq2seq with ``encode`` and ``step``.
        in_action: the group's action on the source ids.
        selection: :class:`JointStep` or :class:`PerCopy`.
    """

    def __init__(self, model: Any, in_action: TokenPermutation, selection: Selection) -> None:
        self.model, self.in_action, self.selection = model, in_action, selection

    @torch.no_grad()
    def decode(self, src: torch.Tensor, mask: torch.Tensor, max_length: int) -> Decoded:
        """``src, mask [B, S]``: greedy decoding, at most ``max_length`` tokens, ``PAD`` after the first ``EOS``."""
        frames = OrbitFrames.of(self.in_action, src, mask)
        inputs = self.selection.inputs(frames, self.in_action, src)  # [N, S]
        mask = mask.repeat(inputs.shape[0] // src.shape[0], 1)
        memory, state = self.model.encode(inputs, mask)
        token = torch.full((inputs.shape[0],), BOS, device=src.device)
        done = torch.zeros(inputs.shape[0] if self.selection.each_copy else src.shape[0], dtype=torch.bool, device=src.device)
        tokens, scores = [], []
        for _ in range(max_length):
            logits, features, state = self.model.step(token, state, memory, mask)
            chosen, chosen_from = self.selection.choose(frames, logits, features)
            chosen = chosen.masked_fill(done, PAD)
            tokens.append(chosen)
            scores.append(chosen_from)
            done = done | (chosen == EOS)
            if done.all():
                break
            token = self.selection.feed(frames, chosen)
        return Decoded(frames, torch.stack(tokens, 1), scores)
