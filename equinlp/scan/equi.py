"""EquiSCAN: the one formula around the SCAN seq2seq, with the decoding loop it owns.

Training (teacher forcing) folds the group into the batch and aggregates log-probabilities with
``core.combine``. Greedy decoding runs all |G| copies in one batch per step:

- ``selection="step"``: each step combines the copies' log-probs (mean, λ-weights, or the lowest-proxy
  copy), takes the argmax and feeds ``g·token`` to copy g (as EquiModel does inside HF ``generate``);
- ``selection="sequence"`` (the paper's SCAN equizero): every copy decodes on its own, and the copy with
  the lowest mean proxy over its sequence is mapped back by ``g⁻¹``.

As in EquiModel, each row runs in its orbit's canonical frame (equinlp/frames.py): a command and its swap
fold into the same batch, copies holding the same sequence share outputs, and tokens are chosen in the
canonical frame, so decoding is exactly equivariant, ties included.
"""

from __future__ import annotations

import torch
from torch import nn

from equinlp.actions import TokenPermutation, unfold
from equinlp.aggregate import Aggregator, Argmin
from equinlp.core import combine
from equinlp.frames import OrbitFrames
from equinlp.methods import BASE, check_method, make_aggregator, method_names
from equinlp.scan.model import AttnSeq2Seq
from equinlp.wordlevel import BOS, EOS, PAD

METHODS = method_names(with_base=True)
MAX_LENGTH = 50


class EquiSCAN(nn.Module):
    def __init__(
        self,
        model: AttnSeq2Seq,
        in_action: TokenPermutation,
        out_action: TokenPermutation,
        aggregator: Aggregator,
        selection: str = "step",
    ) -> None:
        super().__init__()
        if selection not in ("step", "sequence") or (selection == "sequence" and not isinstance(aggregator, Argmin)):
            raise ValueError("selection is 'step', or 'sequence' for equizero")
        self.model, self.in_action, self.out_action, self.aggregator = model, in_action, out_action, aggregator
        self.selection = selection
        self.order = in_action.group.order

    def _frames(self, src: torch.Tensor, mask: torch.Tensor) -> OrbitFrames:
        frames = OrbitFrames(self.in_action.group)
        frames.extend(self.in_action, src)
        frames.compare(mask)
        return frames

    def _encode(self, frames: OrbitFrames, src: torch.Tensor, mask: torch.Tensor):
        folded_mask = mask.repeat(self.order, 1)
        return self.model.encode(frames.fold(self.in_action, src), folded_mask), folded_mask

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities of the symmetrized model, ``[B, T, V]``."""
        frames = self._frames(src, mask)
        frames.extend(self.out_action, tgt_in)
        folded_tgt = frames.fold(self.out_action, tgt_in)
        logits, features = self.model(frames.fold(self.in_action, src), mask.repeat(self.order, 1), folded_tgt)
        aggregator = self.aggregator
        if self.selection == "sequence":  # one copy for the whole sequence: the proxy averaged over positions
            proxy = aggregator.proxy
            aggregator = Argmin(lambda outs: proxy(outs).mean(-1, keepdim=True).expand(outs.shape[:-1]))
            aggregator.train(self.training)
        logp = frames.share_representatives(logits.log_softmax(-1))
        canonical = combine(logp, self.out_action.logits, aggregator, frames.share_representatives(features), frames.share)
        return frames.from_canonical(self.out_action, canonical)

    @torch.no_grad()
    def decode(self, src: torch.Tensor, mask: torch.Tensor, max_length: int = MAX_LENGTH) -> torch.Tensor:
        """Greedy decoding: ``[B, S] -> [B, L]`` action ids, ``PAD`` after the first ``EOS``."""
        if self.selection == "sequence":
            return self._decode_each_copy(src, mask, max_length)
        B = src.shape[0]
        frames = self._frames(src, mask)
        (memory, state), folded_mask = self._encode(frames, src, mask)
        token = torch.full((self.order * B,), BOS, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_length):
            logits, features, state = self.model.step(token, state, memory, folded_mask)
            logp = frames.share_representatives(logits.log_softmax(-1))
            features = frames.share_representatives(features)
            scores = combine(logp, self.out_action.logits, self.aggregator, features, frames.share)
            chosen = frames.token_from_canonical(self.out_action, scores.argmax(-1, keepdim=True))  # [B, 1]
            chosen = chosen.masked_fill(done[:, None], PAD)
            out.append(chosen[:, 0])
            done |= chosen[:, 0] == EOS
            if done.all():
                break
            frames.extend(self.out_action, chosen)
            token = frames.fold(self.out_action, chosen)[:, 0]
        return torch.stack(out, 1)

    def _decode_each_copy(self, src: torch.Tensor, mask: torch.Tensor, max_length: int) -> torch.Tensor:
        G, B = self.order, src.shape[0]
        proxy = self.aggregator.proxy  # Argmin holds the resolved callable
        frames = self._frames(src, mask)
        (memory, state), folded_mask = self._encode(frames, src, mask)
        token = torch.full((G * B,), BOS, device=src.device)
        done = torch.zeros(G * B, dtype=torch.bool, device=src.device)
        loss_sum = torch.zeros(G * B, device=src.device)
        steps = torch.zeros(G * B, device=src.device)
        out = []
        for _ in range(max_length):
            logits, _, state = self.model.step(token, state, memory, folded_mask)
            logp = frames.share_representatives(logits.log_softmax(-1))  # equal copies decode alike
            loss_sum += torch.where(done, 0.0, proxy(logp))
            steps += (~done).float()
            token = logp.argmax(-1).masked_fill(done, PAD)
            out.append(token)
            done |= token == EOS
            if done.all():
                break
        tokens = unfold(torch.stack(out, 1), G)  # [G, B, L]: block m decoded m·c, i.e. copy (m·k)·x
        best = unfold(loss_sum / steps.clamp(min=1), G).argmin(0)  # [B], in canonical order
        rows = torch.arange(B, device=src.device)
        element = frames.elements()[best, rows]  # the group element of the chosen copy
        inverse = self.out_action.table.to(src.device)[self.in_action.group.inv.to(src.device)[element]]  # [B, V]
        return inverse.gather(1, tokens[best, rows])


def build(
    method: str,
    model: AttnSeq2Seq,
    actions: tuple[TokenPermutation, TokenPermutation],
    proxy: str = "max_prob",
    selection: str | None = None,
) -> EquiSCAN:
    """``base`` (pass trivial actions), ``equitune``, ``equizero`` (sequence selection by default) or ``lambda``."""
    check_method(method, with_base=True)
    aggregator = make_aggregator("equitune" if method == BASE else method, features=model.feature_size, proxy=proxy)
    return EquiSCAN(model, *actions, aggregator, selection or ("sequence" if method == "equizero" else "step"))


def exact_match(predicted: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
    """``BoolTensor[B]``: the prediction up to its first EOS equals the target (actions + EOS) exactly."""
    target = tgt_out.masked_fill(tgt_out == -100, PAD)
    width = max(predicted.shape[1], target.shape[1])
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=PAD)  # noqa: E731
    return (pad(predicted) == pad(target)).all(1)
