"""A layer-wise equivariant seq2seq, made exactly equivariant by running it in canonical frames.

:class:`~equinlp.apps.scan.gmodel.GSeq2Seq` commutes with the group up to rounding: for ``a·x`` its sums over the
group axis run in another order. :class:`CanonicalSCAN` never relies on two computations agreeing. Each
command ``x`` is mapped to the canonical element ``c = k·x`` of its orbit (equinlp/symmetry/frames.py), the model runs
on ``c`` only (one copy, not |G|: the model is equivariant already), and the outputs are mapped back by
``k⁻¹``, a permutation. ``x`` and ``h·x`` therefore run the very same computation.

Where ``c`` is fixed by some elements (its stabilizer S, e.g. a command without any verb of the group), the
logits are made exactly S-invariant by an order-free mean over S (``L(z) <- mean_s L(s·z)``), which the
equivariant model satisfies up to rounding anyway. Decoding keeps S to the elements that also fix the tokens
chosen so far. As everywhere in equinlp, a tie between a word and its swap there has no symmetric choice.

It has :class:`~equinlp.apps.scan.equi.EquiSCAN`'s interface: ``forward`` gives log-probabilities, ``decode``
greedy ids. Shapes: ``src [B, S]``, ``mask [B, S]``, ``tgt_in [B, T]``, logits ``[B, (T,) V]``.
"""

from __future__ import annotations

import torch
from torch import nn

from equinlp.apps.scan.gmodel import GSeq2Seq
from equinlp.methods.aggregate import symmetric_sum
from equinlp.models.decoding import CanonicalDecoder, JointStep
from equinlp.symmetry.frames import OrbitFrames


class CanonicalSCAN(nn.Module):
    """Runs a :class:`GSeq2Seq` in canonical frames (see the module docstring); ``in_action`` moves commands,
    ``out_action`` actions and the log-probabilities ``forward`` returns."""

    token_inputs = {"src": "in", "tgt_in": "out"}  # forward's token inputs -> their action (testing.check_equivariance)

    def __init__(self, model: GSeq2Seq) -> None:
        super().__init__()
        self.model, self.in_action, self.out_action = model, model.in_action, model.out_action
        self.group = model.in_action.group

    def _stabilizer(self, frames: OrbitFrames) -> torch.Tensor:
        """``[G, B]``: the elements fixing each row's canonical sequence (those s with ``s·k_b`` of rank 0)."""
        return frames.ranks.gather(0, frames.mul[:, frames.k]) == 0

    def _invariant(self, logits: torch.Tensor, stabilizer: torch.Tensor) -> torch.Tensor:
        """``[B, ..., V]`` logits in canonical frames -> ``mean_{s in S_b} L(s·z)``, bit-identical for every order of S."""
        if bool((stabilizer.sum(0) == 1).all()):  # nothing fixed: already exact
            return logits
        table = self.out_action.table.to(logits.device)  # [G, V]
        index = table.view(table.shape[0], 1, *([1] * (logits.ndim - 2)), -1).expand(-1, *logits.shape)
        moved = logits[None].expand(table.shape[0], *logits.shape).gather(-1, index)  # [G, B, ..., V]: L(s·z)
        keep = stabilizer.view(*stabilizer.shape, *([1] * (logits.ndim - 1)))
        total = symmetric_sum(torch.where(keep, moved, torch.zeros((), dtype=logits.dtype, device=logits.device)))
        count = stabilizer.sum(0).view(-1, *([1] * (logits.ndim - 1)))
        return total / count.to(logits.dtype)

    def _shared(self, frames: OrbitFrames, rows_out: torch.Tensor) -> torch.Tensor:
        """Rows holding the same canonical sequence take the first such row's outputs (batch positions may round)."""
        return rows_out[frames.same.to(torch.uint8).argmax(1)]

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities ``[B, T, V]``, exactly equivariant."""
        frames = OrbitFrames.of(self.in_action, src, mask)
        frames.extend(self.out_action, tgt_in)
        src, tgt_in = frames.canonical(self.in_action, src), frames.canonical(self.out_action, tgt_in)
        logits, _ = self.model(src, mask, tgt_in)
        return frames.from_canonical(self.out_action, self._scores(frames, logits).log_softmax(-1))

    def _scores(self, frames: OrbitFrames, logits: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """The canonical copy's logits ``[B, (T,) V]``, made invariant under the stabilizer of each row's sequence
        (so far, when decoding)."""
        return self._invariant(self._shared(frames, logits), self._stabilizer(frames))

    def decode(self, src: torch.Tensor, mask: torch.Tensor, max_length: int = 50) -> torch.Tensor:
        """Greedy decoding in canonical frames: ``[B, S] -> [B, L]`` action ids, ``PAD`` after the first ``EOS``."""
        selection = JointStep(self.out_action, self._scores, copies="canonical")
        return CanonicalDecoder(self.model, self.in_action, selection).decode(src, mask, max_length).tokens
