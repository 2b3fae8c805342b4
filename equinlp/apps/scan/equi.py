"""EquiSCAN: the one formula around the SCAN seq2seq, with the decoding loop it owns.

Training (teacher forcing) folds the group into the batch and aggregates log-probabilities with
``core.combine``. Greedy decoding runs all |G| copies in one batch per step, in one of three ways:

- ``selection="step"``: each step combines the copies' log-probs (mean, λ-weights, or the lowest-proxy
  copy), takes the argmax and feeds ``g·token`` to copy g (as EquiModel does inside HF ``generate``);
- ``selection="sequence"`` (the paper's SCAN equizero): every copy decodes on its own, and one copy's
  whole sequence is mapped back by ``g⁻¹``. ``score`` says which copy: ``"decoded"``, the lowest mean
  proxy over the steps the copy decoded (up to its EOS); ``"paper"``, the reference code's rule, the
  highest arithmetic mean of the max probability over all ``max_length`` rows, the rows after EOS
  counting as the softmax of a zero row (``1/V``), which favours longer outputs;
- ``selection="position"`` (the reference's SCAN equitune): every copy decodes on its own, and the
  pulled-back log-probs are averaged position by position, a copy that has stopped adding 0 (the
  reference's zero rows); the output is the argmax at each position, up to the first EOS.

As in EquiModel, each row runs in its orbit's canonical frame (equinlp/symmetry/frames.py): a command and its swap
fold into the same batch, copies holding the same sequence share outputs, and tokens are chosen in the
canonical frame, so decoding is exactly equivariant, ties included.
"""

from __future__ import annotations

import torch
from torch import nn

from equinlp.apps.scan.config import METHODS, SCORES, default_equizero_score  # noqa: F401 (METHODS re-exported)
from equinlp.apps.scan.model import AttnSeq2Seq
from equinlp.methods import registry
from equinlp.methods.aggregate import Aggregator, Argmin, Mean, select_best
from equinlp.methods.core import combine
from equinlp.models.decoding import CanonicalDecoder, JointStep, PerCopy
from equinlp.models.tokenizers import EOS, PAD
from equinlp.symmetry.actions import TokenPermutation, unfold
from equinlp.symmetry.frames import OrbitFrames

MAX_LENGTH = 50
SELECTIONS = ("step", "sequence", "position")


class EquiSCAN(nn.Module):
    """The symmetrized SCAN seq2seq (see the module docstring).

    Args:
        model: the base seq2seq.
        in_action, out_action: the group acting on commands and on actions.
        aggregator: ``Mean()``, ``Argmin(proxy)`` or ``Weighted(net)``.
        selection: ``"step"`` (any aggregator), ``"sequence"`` (``Argmin``) or ``"position"`` (``Mean``).
        score: for ``"sequence"``, ``"decoded"`` (the aggregator's proxy) or ``"paper"`` (needs ``max_prob``).
    """

    # forward's token inputs -> the action that moves them: ``in_action`` (commands) or ``out_action`` (actions,
    # whose logits forward returns), as EquiModel.token_inputs; what testing.check_equivariance reads
    token_inputs = {"src": "in", "tgt_in": "out"}

    def __init__(
        self,
        model: AttnSeq2Seq,
        in_action: TokenPermutation,
        out_action: TokenPermutation,
        aggregator: Aggregator,
        selection: str = "step",
        score: str = "decoded",
    ) -> None:
        super().__init__()
        _check_decoding(aggregator, selection, score)
        self.model, self.in_action, self.out_action, self.aggregator = model, in_action, out_action, aggregator
        self.selection, self.score = selection, score
        self.order = in_action.group.order

    def _step_scores(self, frames: OrbitFrames, logits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``[G·B, V]`` logits of the copies -> ``[B, V]`` the combined log-probs in each row's canonical frame."""
        logp = frames.share_representatives(logits.log_softmax(-1))
        return combine(logp, self.out_action.logits, self.aggregator, frames.share_representatives(features), frames.share)

    def _decoder(self, selection: str) -> CanonicalDecoder:
        chosen = JointStep(self.out_action, self._step_scores) if selection == "step" else PerCopy()
        return CanonicalDecoder(self.model, self.in_action, chosen)

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities of the symmetrized model, ``[B, T, V]``."""
        frames = OrbitFrames.of(self.in_action, src, mask)
        frames.extend(self.out_action, tgt_in)
        folded_tgt = frames.fold(self.out_action, tgt_in)
        logits, features = self.model(frames.fold(self.in_action, src), mask.repeat(self.order, 1), folded_tgt)
        aggregator = self.aggregator
        if self.selection == "sequence":  # one copy for the whole sequence
            aggregator = Argmin(self._sequence_proxy(tgt_in != PAD))
            aggregator.train(self.training)
        logp = frames.share_representatives(logits.log_softmax(-1))
        canonical = combine(logp, self.out_action.logits, aggregator, frames.share_representatives(features), frames.share)
        return frames.from_canonical(self.out_action, canonical)

    def _sequence_proxy(self, rows: torch.Tensor):
        """Teacher forcing's sequence score, ``[G, B, T, V] -> [G, B, T]`` (the same at every position).

        ``"decoded"``: the proxy averaged over the T positions; ``"paper"``: :func:`paper_score` over the
        target's ``rows [B, T]`` (BOS and the actions), the others counting as the reference's zero rows.
        """
        if self.score == "decoded":
            proxy = self.aggregator.proxy
            return lambda outs: proxy(outs).mean(-1, keepdim=True).expand(outs.shape[:-1])

        def paper(outs: torch.Tensor) -> torch.Tensor:
            confidence = torch.where(rows, -outs.float().softmax(-1).amax(-1), 0.0).sum(-1)  # [G, B]
            length = max(MAX_LENGTH, rows.shape[1])
            score = paper_score(confidence, rows.sum(-1).to(confidence.dtype), length, outs.shape[-1])
            return score[..., None].expand(outs.shape[:-1])

        return paper

    @torch.no_grad()
    def decode(self, src: torch.Tensor, mask: torch.Tensor, max_length: int = MAX_LENGTH) -> torch.Tensor:
        """Greedy decoding: ``[B, S] -> [B, L]`` action ids, ``PAD`` after the first ``EOS``."""
        if self.selection == "sequence":
            return self.choose_copy(src, mask, max_length)[0]
        if self.selection == "position":
            return self._average_positions(src, mask, max_length)
        return self._decoder("step").decode(src, mask, max_length).tokens

    @torch.no_grad()
    def choose_copy(
        self, src: torch.Tensor, mask: torch.Tensor, max_length: int = MAX_LENGTH
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Equizero over whole sequences: the copy with the best ``score``, mapped back by ``g⁻¹``.

        Returns:
            the decoded actions ``[B, L]`` (as :meth:`decode`) and ``[B]`` the group element g of the chosen
            copy, the one that decoded ``g·x``.
        """
        if self.selection != "sequence":
            raise ValueError(f"choose_copy needs selection='sequence' (equizero), not {self.selection!r}")
        G, B = self.order, src.shape[0]
        decoded = self._decoder("per-copy").decode(src, mask, max_length)
        frames, tokens, logps, alive = decoded.frames, decoded.tokens, decoded.scores, _alive(decoded.tokens)
        step_loss = self.aggregator.proxy if self.score == "decoded" else lambda logp: -logp.float().exp().amax(-1)
        total = torch.zeros(G * B, device=src.device)  # float32, as the proxies
        steps = torch.zeros(G * B, device=src.device)
        for logp, running in zip(logps, alive.unbind(1), strict=True):  # in step order: the same sums in every frame
            total += torch.where(running, step_loss(logp), 0.0)
            steps += running.float()
        if self.score == "decoded":
            loss = total / steps.clamp(min=1)
        else:
            loss = paper_score(total, steps, max_length, logps[0].shape[-1])
        best, _ = select_best(-unfold(loss, G))  # [B], in canonical order: ties go to the least copy
        rows = torch.arange(B, device=src.device)
        element = frames.elements()[best, rows]  # the group element of the chosen copy
        inverse = self.out_action.table.to(src.device)[self.in_action.group.inv.to(src.device)[element]]  # [B, V]
        return inverse.gather(1, unfold(tokens, G)[best, rows]), element

    def _average_positions(self, src: torch.Tensor, mask: torch.Tensor, max_length: int) -> torch.Tensor:
        """Equitune as the reference decodes it: the copies' pulled-back log-probs averaged position by position."""
        decoded = self._decoder("per-copy").decode(src, mask, max_length)
        frames, alive = decoded.frames, _alive(decoded.tokens)
        logp = torch.stack([torch.where(a[:, None], lp, 0.0) for lp, a in zip(decoded.scores, alive.unbind(1), strict=True)], 1)
        canonical = combine(logp, self.out_action.logits, self.aggregator, None, frames.share)  # [B, L, V]
        tokens = frames.token_from_canonical(self.out_action, canonical.argmax(-1))  # [B, L]
        return tokens.masked_fill(~_alive(tokens), PAD)


def _alive(tokens: torch.Tensor) -> torch.Tensor:
    """``[N, L] -> [N, L]``: no EOS before each step (the copy was still decoding; the token is not after the end)."""
    ended = (tokens == EOS).long().cumsum(1)
    return (ended - (tokens == EOS).long()) == 0


def paper_score(confidence: torch.Tensor, steps: torch.Tensor, length: int, vocab: int) -> torch.Tensor:
    """The reference's equizero 'top1' rule as a loss to minimise, ``[...] -> [...]``.

    ``confidence`` is minus the sum of the max probabilities over the ``steps`` rows decoded; the
    ``length - steps`` rows after EOS are the reference's zero rows, whose softmax gives ``1/vocab``.
    The loss is minus the mean over all ``length`` rows.
    """
    return (confidence - (length - steps) / vocab) / length


def _check_decoding(aggregator: Aggregator, selection: str, score: str) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"selection {selection!r}: choose from {SELECTIONS}")
    if selection == "sequence" and not isinstance(aggregator, Argmin):
        raise ValueError("selection='sequence' is for equizero (an Argmin aggregator)")
    if selection == "position" and not isinstance(aggregator, Mean):
        raise ValueError("selection='position' is for equitune (a Mean aggregator)")
    if score not in SCORES:
        raise ValueError(f"score {score!r}: choose from {SCORES}")
    if score == "paper" and (selection != "sequence" or aggregator.proxy_name != "max_prob"):
        raise ValueError("score='paper' is the reference's top1 rule: use it with selection='sequence' and proxy='max_prob'")


def build(
    method: str,
    model: AttnSeq2Seq,
    actions: tuple[TokenPermutation, TokenPermutation],
    proxy: str = "max_prob",
    selection: str | None = None,
    equizero_score: str | None = None,
    equitune_decoding: str = "joint",
) -> EquiSCAN:
    """``base`` (pass trivial actions), ``equitune``, ``equizero`` or ``lambda``.

    Args:
        selection: how decoding combines the copies (see :class:`EquiSCAN`); default ``"sequence"`` for
            equizero, ``"position"`` for equitune with ``equitune_decoding="per-copy"``, else ``"step"``.
        equizero_score: equizero's sequence score, ``"paper"`` (the better of the two, README) or ``"decoded"``;
            default :func:`default_equizero_score`.
        equitune_decoding: ``"joint"`` (combine every step, feed ``g·token`` back) or ``"per-copy"``
            (each copy decodes alone, averaged position by position, as the reference); equitune only.
    """
    if equitune_decoding not in ("joint", "per-copy"):
        raise ValueError(f"equitune_decoding {equitune_decoding!r}: choose 'joint' or 'per-copy'")
    trivial = registry.method(method).trivial
    aggregator = registry.make_aggregator(method, features=model.feature_size, proxy=proxy)
    if selection is None:
        per_copy = isinstance(aggregator, Mean) and not trivial and equitune_decoding == "per-copy"
        selection = "sequence" if isinstance(aggregator, Argmin) else "position" if per_copy else "step"
    if equizero_score is None:
        equizero_score = default_equizero_score(proxy)
    score = equizero_score if selection == "sequence" else "decoded"
    return EquiSCAN(model, *actions, aggregator, selection, score)


def exact_match(predicted: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
    """``BoolTensor[B]``: the prediction up to its first EOS equals the target (actions + EOS) exactly."""
    target = tgt_out.masked_fill(tgt_out == -100, PAD)
    width = max(predicted.shape[1], target.shape[1])
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=PAD)  # noqa: E731
    return (pad(predicted) == pad(target)).all(1)
