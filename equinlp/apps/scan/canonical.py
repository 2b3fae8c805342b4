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
from equinlp.models.tokenizers import BOS, EOS, PAD
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.frames import OrbitFrames


class CanonicalSCAN(nn.Module):
    def __init__(self, model: GSeq2Seq) -> None:
        super().__init__()
        self.model, self.in_action, self.out_action = model, model.in_action, model.out_action
        self.group = model.in_action.group

    def _frames(self, src: torch.Tensor, mask: torch.Tensor) -> OrbitFrames:
        frames = OrbitFrames(self.group)
        frames.extend(self.in_action, src)
        frames.compare(mask)
        return frames

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

    def _canonical(self, frames: OrbitFrames, action: TokenPermutation, ids: torch.Tensor) -> torch.Tensor:
        return action.table.to(ids.device)[frames.k[:, None], ids]

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities ``[B, T, V]``, exactly equivariant."""
        frames = self._frames(src, mask)
        frames.extend(self.out_action, tgt_in)
        src, tgt_in = self._canonical(frames, self.in_action, src), self._canonical(frames, self.out_action, tgt_in)
        logits, _ = self.model(src, mask, tgt_in)
        logits = self._invariant(self._shared(frames, logits), self._stabilizer(frames))
        return frames.from_canonical(self.out_action, logits.log_softmax(-1))

    @torch.no_grad()
    def decode(self, src: torch.Tensor, mask: torch.Tensor, max_length: int = 50) -> torch.Tensor:
        """Greedy decoding in canonical frames: ``[B, S] -> [B, L]`` action ids, ``PAD`` after the first ``EOS``."""
        B = src.shape[0]
        frames = self._frames(src, mask)
        stabilizer = self._stabilizer(frames)
        memory, state = self.model.encode(self._canonical(frames, self.in_action, src), mask)
        table = self.out_action.table.to(src.device)
        token = torch.full((B,), BOS, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_length):
            logits, _, state = self.model.step(token, state, memory, mask)
            logits = self._invariant(self._shared(frames, logits), stabilizer)
            token = logits.argmax(-1).masked_fill(done, PAD)  # [B], in the canonical frames
            stabilizer &= table[:, token] == token  # elements that still fix the canonical prefix
            out.append(token)
            done |= token == EOS
            if done.all():
                break
        canonical = torch.stack(out, 1)
        return frames.token_from_canonical(self.out_action, canonical)
