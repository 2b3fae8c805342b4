"""The base seq2seq of the paper's SCAN experiments: an attention encoder-decoder with RNN, GRU or LSTM cells.

After Gordon et al. (2020): word embeddings of 64, a bidirectional one-layer encoder of 64 per direction,
a one-layer decoder of 128 with attention over the encoder states, dropout 0.1. The attention is Luong's
"general" score applied after the decoder cell (rather than before it), so teacher-forced training is
one RNN call instead of a Python loop over steps; greedy decoding runs step by step.

Shapes: ``src [B, S]`` with ``mask [B, S]`` (right-padded), targets ``[B, T]``; ``V`` the output vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from equinlp.apps.scan.config import RNN_CELLS
from equinlp.errors import check_name
from equinlp.models.tokenizers import PAD

CELLS = {name: getattr(nn, name.upper()) for name in RNN_CELLS}  # nn.RNN, nn.GRU, nn.LSTM
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class Seq2SeqConfig:
    in_vocab: int
    out_vocab: int
    cell: str = "gru"
    embedding: int = 64
    hidden: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_name("cell", self.cell, sorted(CELLS))

    def to_dict(self) -> dict:
        return asdict(self)


class AttnSeq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        rnn, width = CELLS[config.cell], 2 * config.hidden
        self.src_embed = nn.Embedding(config.in_vocab, config.embedding, padding_idx=PAD)
        self.encoder = rnn(config.embedding, config.hidden, batch_first=True, bidirectional=True)
        self.tgt_embed = nn.Embedding(config.out_vocab, width, padding_idx=PAD)
        self.decoder = rnn(width, width, batch_first=True)
        self.attn = nn.Linear(width, width, bias=False)
        self.mix = nn.Linear(2 * width, width)
        self.out = nn.Linear(width, config.out_vocab)
        self.drop = nn.Dropout(config.dropout)

    @property
    def feature_size(self) -> int:
        return 2 * self.config.hidden

    def encode(self, src: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, State]:
        """``src [B, S] -> memory [B, S, 2H]``, and the decoder's first state (both directions' last)."""
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.drop(self.src_embed(src)), lengths, batch_first=True, enforce_sorted=False)
        out, last = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])

        def merge(h: torch.Tensor) -> torch.Tensor:  # [2, B, H] -> [1, B, 2H]
            return torch.cat([h[0], h[1]], -1)[None].contiguous()

        return memory, tuple(merge(h) for h in last) if isinstance(last, tuple) else merge(last)

    def _attend(self, h: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``h [B, T, 2H]`` -> features ``[B, T, 2H]``: the state mixed with its attention context."""
        scores = h @ self.attn(memory).transpose(1, 2)  # [B, T, S]
        scores = scores.masked_fill(~mask.bool()[:, None, :], float("-inf"))
        context = scores.softmax(-1) @ memory
        return torch.tanh(self.mix(torch.cat([h, context], -1)))

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in [B, T]`` (BOS + targets) -> logits ``[B, T, V]`` and features ``[B, T, 2H]``."""
        memory, state = self.encode(src, mask)
        h, _ = self.decoder(self.drop(self.tgt_embed(tgt_in)), state)
        features = self._attend(h, memory, mask)
        return self.out(self.drop(features)), features

    def step(
        self, token: torch.Tensor, state: State, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One decoding step: ``token [B]`` -> logits ``[B, V]``, features ``[B, 2H]``, next state."""
        h, state = self.decoder(self.tgt_embed(token)[:, None], state)
        features = self._attend(h, memory, mask)[:, 0]
        return self.out(features), features, state
