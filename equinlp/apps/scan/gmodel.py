"""Gordon et al. (2020)'s G-equivariant seq2seq: equivariant layer by layer, trained from scratch.

"Permutation Equivariant Models for Compositional Generalization in Language" (ICLR 2020; the public
``Permutation-Equivariant-Seq2Seq`` code). Every hidden representation is a function on the group,
``f: G -> R^K``, stored as ``[..., G, K]``, and every layer commutes with the left shift
``(a·f)(g) = f(a⁻¹g)``:

- word convolution (embeddings): ``e(w)(g) = ψ(g⁻¹·w)``, so ``e(a·w) = a·e(w)``;
- group convolution (every linear map of the cells): ``φ(g) = Σ_h f(h) W[g⁻¹h] + b``;
- G-RNN / G-GRU / G-LSTM cells: the usual gates with group convolutions in place of the matrices;
- attention: the dot product summed over the group axis too (invariant), the context a weighted sum (equivariant);
- the group-invariant readout: ``logit(z) = Σ_g ⟨h(g), ψ(g⁻¹·z)⟩ + b(orbit of z)``, so ``logit'(a·z) = logit(z)``.

The architecture follows the reference's attention model: a bidirectional encoder of ``hidden`` per
direction, a decoder of ``2·hidden`` whose attention reads the previous state, mixes the context with the
previous word through a group convolution and a tanh, then runs the cell; no dropout (the reference's
default). Differences: batches (masked padding) instead of one command at a time, and the readout's bias is
shared by each orbit of words (the reference learns one bias per word, which breaks equivariance slightly).
Options (:class:`GSeq2SeqConfig`), the first value the default:

- ``attention``: ``scaled`` divides the scores by √(G·2H), a constant, so they stay invariant; ``dot`` is the
  reference's unscaled product, whose softmax over G·2H summed products starts nearly one-hot;
- ``encoder``: ``two-cells`` runs the directions in two cells over the command; ``shared-eos`` is the
  reference's: one cell for both directions, over the command followed by EOS (memory one position longer);
- ``init``: ``fused`` draws a cell's fused gate weights from U(±1/√(gates·H)); ``reference`` from U(±1/√H),
  the fan of the reference's separate per-gate layers;
- ``teacher_forcing``: the chance that a training batch reads the targets; otherwise each step reads the
  previous step's argmax (the reference's 0.5, per command at its batch of one).

Equivariance here holds up to floating-point rounding (sums over the group run in another order for
``a·x``); :class:`~equinlp.apps.scan.canonical.CanonicalSCAN` runs the model in each command's canonical frame,
which makes it exact. Shapes: ``src [B, S]``, ``mask [B, S]``, ``tgt_in [B, T]``; ``G`` the group's order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from equinlp.apps.scan.config import ATTENTIONS, ENCODERS, G_CELLS, INITS
from equinlp.errors import check_name
from equinlp.models.tokenizers import EOS, PAD
from equinlp.symmetry.actions import TokenPermutation

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class GSeq2SeqConfig:
    in_vocab: int
    out_vocab: int
    cell: str = "ggru"
    hidden: int = 64
    attention: str = "scaled"
    encoder: str = "two-cells"
    init: str = "fused"
    teacher_forcing: float = 1.0

    def __post_init__(self) -> None:
        check_name("G-equivariant cell", self.cell, sorted(G_CELLS))
        check_name("G-seq2seq attention", self.attention, ATTENTIONS)
        check_name("G-seq2seq encoder", self.encoder, ENCODERS)
        check_name("G-seq2seq initialisation", self.init, INITS)

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(tensor: torch.Tensor, fan: int) -> None:
    bound = 1.0 / math.sqrt(fan)
    nn.init.uniform_(tensor, -bound, bound)


class WordConv(nn.Module):
    """Word ids ``[...]`` -> functions on the group ``[..., G, K]``: ``e(w)(g) = ψ(g⁻¹·w)``."""

    def __init__(self, action: TokenPermutation, size: int) -> None:
        super().__init__()
        self.psi = nn.Embedding(action.vocab_size, size)
        self.register_buffer("pulled", action.table[action.group.inv].T.contiguous(), persistent=False)  # [V, G]: g⁻¹·w

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.psi(self.pulled[ids])


class GroupConv(nn.Module):
    """``[..., G, I] -> [..., G, O]``: ``φ(g) = Σ_h f(h) W[g⁻¹h] + b``, as one matrix ``[G·I, G·O]``."""

    def __init__(
        self, group_mul: torch.Tensor, group_inv: torch.Tensor, inputs: int, outputs: int, fan: int | None = None
    ) -> None:
        """``fan``: the weights are drawn from U(±1/√fan), default ``outputs``."""
        super().__init__()
        order = len(group_inv)
        self.weight = nn.Parameter(torch.empty(order, inputs, outputs))
        self.bias = nn.Parameter(torch.empty(outputs))
        _uniform(self.weight, fan or outputs)
        _uniform(self.bias, order * inputs)
        self.register_buffer("index", group_mul[group_inv].T.contiguous(), persistent=False)  # [h, g] -> g⁻¹h

    def matrix(self) -> torch.Tensor:
        G, inputs, outputs = self.weight.shape
        return self.weight[self.index].permute(0, 2, 1, 3).reshape(G * inputs, G * outputs)  # [(h, i), (g, o)]

    def forward(self, f: torch.Tensor, matrix: torch.Tensor | None = None) -> torch.Tensor:
        matrix = self.matrix() if matrix is None else matrix
        out = f.flatten(-2) @ matrix
        return out.view(*f.shape[:-1], -1) + self.bias


class GCell(nn.Module):
    """A G-RNN, G-GRU or G-LSTM cell on ``[B, G, I]`` inputs and ``[B, G, H]`` states (``(h, c)`` for the LSTM).

    ``inputs(x)`` (the input's gates) can run on a whole sequence at once; ``forward`` adds the state's gates.
    ``init="reference"`` draws each gate's weights from U(±1/√H) as the reference's separate gate layers do;
    ``"fused"`` from U(±1/√(gates·H)), the fused layer's own fan (√gates smaller).
    """

    def __init__(
        self, kind: str, group_mul: torch.Tensor, group_inv: torch.Tensor, inputs: int, hidden: int, init: str = "fused"
    ) -> None:
        super().__init__()
        self.kind, self.hidden, gates = kind, hidden, G_CELLS[kind]
        fan = hidden if init == "reference" else gates * hidden
        self.input_conv = GroupConv(group_mul, group_inv, inputs, gates * hidden, fan)
        self.state_conv = GroupConv(group_mul, group_inv, hidden, gates * hidden, fan)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., G, I] -> [..., G, gates·H]``."""
        return self.input_conv(x)

    def zero_state(self, batch: int, order: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(batch, order, self.hidden)
        return (zeros, zeros) if self.kind == "glstm" else zeros

    def forward(self, x_gates: torch.Tensor, state: State, matrix: torch.Tensor | None = None) -> State:
        h = state[0] if self.kind == "glstm" else state
        h_gates = self.state_conv(h, matrix)
        if self.kind == "grnn":
            return torch.tanh(x_gates + h_gates)
        if self.kind == "ggru":
            xr, xz, xn = x_gates.chunk(3, -1)
            hr, hz, hn = h_gates.chunk(3, -1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            return (1 - z) * torch.tanh(xn + r * hn) + z * h
        i, f, g, o = (x_gates + h_gates).chunk(4, -1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def _keep(update: State, state: State, valid: torch.Tensor) -> State:
    """The updated state where ``valid [B]``, the old one at padding."""
    if isinstance(state, tuple):
        return tuple(_keep(u, s, valid) for u, s in zip(update, state, strict=True))
    return torch.where(valid[:, None, None], update, state)


class GroupReadout(nn.Module):
    """``[..., G, D] -> [..., V]``: ``logit(z) = Σ_g ⟨h(g), ψ(g⁻¹·z)⟩ + b(orbit of z)``."""

    def __init__(self, action: TokenPermutation, size: int) -> None:
        super().__init__()
        self.psi = nn.Parameter(torch.empty(action.vocab_size, size))
        _uniform(self.psi, size)
        orbit = action.table.min(0).values  # [V]: the least id of each word's orbit names the orbit
        self.bias = nn.Parameter(torch.zeros(action.vocab_size))
        _uniform(self.bias, size)
        self.register_buffer("orbit", orbit, persistent=False)
        self.register_buffer("pulled", action.table[action.group.inv], persistent=False)  # [G, V]: g⁻¹·z

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        G, V = self.pulled.shape
        matrix = self.psi[self.pulled].permute(0, 2, 1).reshape(-1, V)  # [(g, d), z]
        return h.flatten(-2) @ matrix + self.bias[self.orbit]


class GSeq2Seq(nn.Module):
    """The G-equivariant attention seq2seq, with :class:`~equinlp.apps.scan.model.AttnSeq2Seq`'s interface.

    Args:
        config: vocabulary sizes, the cell and ``hidden`` (per direction and group element).
        in_action, out_action: the group acting on the command and action vocabularies (one group).
    """

    def __init__(self, config: GSeq2SeqConfig, in_action: TokenPermutation, out_action: TokenPermutation) -> None:
        super().__init__()
        self.config, self.in_action, self.out_action = config, in_action, out_action
        group, H = in_action.group, config.hidden
        mul, inv = group.mul, group.inv
        self.order, width = group.order, 2 * H
        self.src_embed = WordConv(in_action, H)
        self.forward_cell = GCell(config.cell, mul, inv, H, H, config.init)
        self.source_eos = config.encoder == "shared-eos"  # one cell reads both directions of ``command EOS``
        self.backward_cell = None if self.source_eos else GCell(config.cell, mul, inv, H, H, config.init)
        self.tgt_embed = WordConv(out_action, width)
        self.combine = GroupConv(mul, inv, 2 * width, width)
        self.decoder_cell = GCell(config.cell, mul, inv, width, width, config.init)
        self.attention_scale = 1 / math.sqrt(self.order * width) if config.attention == "scaled" else 1.0
        self.readout = GroupReadout(out_action, width)

    @property
    def feature_size(self) -> int:
        return self.order * 2 * self.config.hidden

    def memory_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The command's ``mask [B, S]`` -> the memory's ``[B, S']``: one more position (EOS) with ``shared-eos``."""
        if not self.source_eos:
            return mask
        return torch.nn.functional.pad(mask, (0, 1)) | torch.nn.functional.pad(mask, (1, 0))

    def _with_eos(self, src: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src [B, S]`` -> ``[B, S+1]`` with EOS after each command (EOS is fixed by every group element)."""
        extended = self.memory_mask(mask)
        eos_at = extended.bool() & ~torch.nn.functional.pad(mask, (0, 1)).bool()
        return torch.nn.functional.pad(src, (0, 1), value=PAD).masked_fill(eos_at, EOS), extended

    def encode(self, src: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, State]:
        """``src [B, S] -> memory [B, S', G, 2H]`` and the decoder's first state (both directions' last).

        ``S' = S``, or ``S + 1`` with ``shared-eos`` (the command then ends with EOS, read by one cell both ways).
        """
        if self.source_eos:
            src, mask = self._with_eos(src, mask)
        B, S = src.shape
        valid = mask.bool()
        embedded = self.src_embed(src)  # [B, S, G, H]
        outputs = []
        backward_cell = self.forward_cell if self.source_eos else self.backward_cell
        for cell, positions in ((self.forward_cell, range(S)), (backward_cell, reversed(range(S)))):
            gates, matrix = cell.inputs(embedded), cell.state_conv.matrix()
            state = cell.zero_state(B, self.order, embedded)
            hidden = [None] * S
            for t in positions:
                state = _keep(cell(gates[:, t], state, matrix), state, valid[:, t])
                hidden[t] = state[0] if isinstance(state, tuple) else state
            outputs.append((torch.stack(hidden, 1), state))
        (forward_hidden, forward_last), (backward_hidden, backward_last) = outputs
        memory = torch.cat([forward_hidden, backward_hidden], -1)
        if isinstance(forward_last, tuple):
            return memory, tuple(torch.cat(pair, -1) for pair in zip(forward_last, backward_last, strict=True))
        return memory, torch.cat([forward_last, backward_last], -1)

    def _decoder_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.combine.matrix(), self.decoder_cell.state_conv.matrix()

    def _decode_step(
        self, embedded: torch.Tensor, state: State, memory: torch.Tensor, mask: torch.Tensor, matrices
    ) -> tuple[torch.Tensor, State]:
        """``embedded [B, G, 2H]`` (the previous word) -> the new state's ``h [B, G, 2H]`` and the state."""
        h = state[0] if isinstance(state, tuple) else state
        scores = torch.einsum("bgd,bsgd->bs", h, memory) * self.attention_scale  # a constant: still invariant
        scores = scores.masked_fill(~self.memory_mask(mask).bool(), float("-inf"))
        context = torch.einsum("bs,bsgd->bgd", scores.softmax(-1), memory)
        combine, state_matrix = matrices
        mixed = torch.tanh(self.combine(torch.cat([embedded, context], -1), combine))
        state = self.decoder_cell(self.decoder_cell.inputs(mixed), state, state_matrix)
        return (state[0] if isinstance(state, tuple) else state), state

    def forward(self, src: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in [B, T]`` -> logits ``[B, T, V]`` and features ``[B, T, G·2H]``.

        In training with ``teacher_forcing < 1``, one draw of torch's RNG per call decides for the whole batch
        (the reference's per command at batch 1): with probability ``1 - teacher_forcing`` each step is fed the
        previous step's argmax instead of ``tgt_in`` (the first step still reads ``tgt_in[:, 0]``, BOS).
        """
        memory, state = self.encode(src, mask)
        steps = int((tgt_in != PAD).any(0).nonzero().max()) + 1  # columns after it are padding in every row
        embedded, matrices = self.tgt_embed(tgt_in[:, :steps]), self._decoder_matrices()
        free_running = self.training and self.config.teacher_forcing < 1 and self._draw() >= self.config.teacher_forcing
        hidden = []
        for t in range(steps):
            word = self.tgt_embed(self.readout(hidden[-1]).argmax(-1)) if free_running and t else embedded[:, t]
            h, state = self._decode_step(word, state, memory, mask, matrices)
            hidden.append(h)
        h = torch.stack(hidden, 1)  # [B, steps, G, 2H]
        h = torch.nn.functional.pad(h, (0, 0, 0, 0, 0, tgt_in.shape[1] - steps))  # zeros at the all-padding columns
        return self.readout(h), h.flatten(-2)

    @staticmethod
    def _draw() -> float:
        return float(torch.rand(()))  # torch's CPU generator: checkpointed, so a resumed run draws the same

    def step(
        self, token: torch.Tensor, state: State, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One decoding step: ``token [B]`` -> logits ``[B, V]``, features ``[B, G·2H]``, next state."""
        h, state = self._decode_step(self.tgt_embed(token), state, memory, mask, self._decoder_matrices())
        return self.readout(h), h.flatten(-2), state
