"""EquiSCAN: the one formula around the SCAN seq2seq, with the decoding loop it owns.

Training (teacher forcing) folds the group into the batch and aggregates log-probabilities with
``core.combine``. Greedy decoding runs all |G| copies in one batch per step:

- ``selection="step"``: each step combines the copies' log-probs (mean, λ-weights, or the lowest-proxy
  copy), takes the argmax in the identity frame and feeds ``g·token`` to copy g (as EquiModel does
  inside HF ``generate``);
- ``selection="sequence"`` (the paper's SCAN equizero): every copy decodes on its own, and the copy with
  the lowest mean proxy over its sequence is mapped back by ``g⁻¹``.
"""

from __future__ import annotations

import torch
from torch import nn

from equinlp.actions import TokenPermutation, unfold
from equinlp.aggregate import Aggregator, Argmin
from equinlp.core import combine
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

    def _folded(self, src: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.in_action.ids.act_all(src), mask.repeat(self.order, 1)

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities of the symmetrized model, ``[B, T, V]``."""
        logits, features = self.model(*self._folded(src, mask), self.out_action.ids.act_all(tgt_in))
        aggregator = self.aggregator
        if self.selection == "sequence":  # one copy for the whole sequence: the proxy averaged over positions
            proxy = aggregator.proxy
            aggregator = Argmin(lambda outs: proxy(outs).mean(-1, keepdim=True).expand(outs.shape[:-1]))
            aggregator.train(self.training)
        return combine(logits.log_softmax(-1), self.out_action.logits, aggregator, features)

    @torch.no_grad()
    def decode(self, src: torch.Tensor, mask: torch.Tensor, max_length: int = MAX_LENGTH) -> torch.Tensor:
        """Greedy decoding: ``[B, S] -> [B, L]`` action ids, ``PAD`` after the first ``EOS``."""
        if self.selection == "sequence":
            return self._decode_each_copy(src, mask, max_length)
        G, B = self.order, src.shape[0]
        folded_src, folded_mask = self._folded(src, mask)
        memory, state = self.model.encode(folded_src, folded_mask)
        token = torch.full((G * B,), BOS, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_length):
            logits, features, state = self.model.step(token, state, memory, folded_mask)
            scores = combine(logits.log_softmax(-1), self.out_action.logits, self.aggregator, features)  # [B, V]
            chosen = scores.argmax(-1).masked_fill(done, PAD)
            out.append(chosen)
            done |= chosen == EOS
            if done.all():
                break
            token = self.out_action.ids.act_all(chosen)
        return torch.stack(out, 1)

    def _decode_each_copy(self, src: torch.Tensor, mask: torch.Tensor, max_length: int) -> torch.Tensor:
        G, B = self.order, src.shape[0]
        proxy = self.aggregator.proxy  # Argmin holds the resolved callable
        folded_src, folded_mask = self._folded(src, mask)
        memory, state = self.model.encode(folded_src, folded_mask)
        token = torch.full((G * B,), BOS, device=src.device)
        done = torch.zeros(G * B, dtype=torch.bool, device=src.device)
        loss_sum = torch.zeros(G * B, device=src.device)
        steps = torch.zeros(G * B, device=src.device)
        out = []
        for _ in range(max_length):
            logits, _, state = self.model.step(token, state, memory, folded_mask)
            logp = logits.log_softmax(-1)
            loss_sum += torch.where(done, 0.0, proxy(logp))
            steps += (~done).float()
            token = logp.argmax(-1).masked_fill(done, PAD)
            out.append(token)
            done |= token == EOS
            if done.all():
                break
        copies = self.out_action.ids.pull_back(torch.stack(out, 1))  # [G, B, L], copy g mapped by g⁻¹
        mean_loss = unfold(loss_sum / steps.clamp(min=1), G)  # [G, B]
        best = mean_loss.argmin(0)
        return copies[best, torch.arange(B, device=src.device)]


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
