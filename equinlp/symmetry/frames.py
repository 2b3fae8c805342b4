"""Canonical frames of token sequences: what makes the wrappers exact, bit for bit, on any hardware.

Floating point sums depend on their order, and batched kernels may round a row differently at another
position in the batch. So equinlp never relies on two different computations agreeing. For each row it
finds the element ``k`` that maps the row's sequence ``x`` to the *canonical* element ``c = k·x`` of its
orbit (the least of the sequences ``g·x``, lexicographically by token id; for seq2seq the source comes
first) and works in c's frame:

- the wrapper runs the copies ``m·c`` for m = 0..G-1, i.e. copy ``m·k`` of x, so ``x`` and ``h·x`` fold
  into the very same batch: every number computed after that is the same, whatever the kernels do;
- the aggregated scores are computed in c's frame and mapped back to x's frame by ``k⁻¹``, a permutation,
  which is exact;
- tokens are chosen in c's frame (models/sampling.py).

When x is fixed by some elements (its stabilizer), several k give c. Copies holding the same sequence
are then made to hold the same outputs (:meth:`OrbitFrames.representatives`), and the copies are summed
in an order-free way (aggregate.symmetric_sum), so c's scores are exactly invariant under the stabilizer
and every choice of k gives the same result. What stays impossible there is choosing, symmetrically,
between a word and its swap when they tie.

Shapes: ``ranks [G, B]``, ``ids [B, L]``, ``k [B]``; tables ``[G, V]`` as in actions.TokenPermutation.
"""

from __future__ import annotations

import torch

from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.groups import Group


def lexicographic_ranks(sequences: torch.Tensor) -> torch.Tensor:
    """``[G, B, L] -> [G, B]``: for each row b, how many of the G sequences are smaller than sequence g."""
    a, b = sequences[:, None], sequences[None]  # [G, 1, B, L] against [1, G, B, L]
    differ = a != b
    first = differ.to(torch.uint8).argmax(-1, keepdim=True)  # the first position where g and g' differ
    smaller = differ.any(-1) & (b.expand_as(differ).gather(-1, first) < a.expand_as(differ).gather(-1, first)).squeeze(-1)
    return smaller.sum(1)


class OrbitFrames:
    """Each row's canonical frame, kept up to date as tokens arrive; and which rows hold the same sequence.

    ``ranks[g, b]`` is the rank of ``g·x_b`` among the sequences of its orbit; :meth:`extend` refines it
    with new tokens (the order of two sequences is settled at their first difference, so only new
    tokens can separate copies that were equal so far, and the canonical sequence only grows).
    ``same[b, b']`` says rows b and b' have the same canonical sequence (and masks, see :meth:`compare`):
    ``x`` and ``h·x`` in one batch fold into identical copies, which :meth:`share_representatives` makes
    give identical outputs, wherever they sit in the batch.

    Args:
        group: the group acting.
    """

    def __init__(self, group: Group) -> None:
        self.mul, self.inverse = group.mul, group.inv
        self.ranks: torch.Tensor | None = None
        self.same: torch.Tensor | None = None
        self._sharing: tuple | None = None  # share()'s (index, nothing to share), until the state changes

    @classmethod
    def of(cls, action: TokenPermutation, ids: torch.Tensor, mask: torch.Tensor | None = None) -> OrbitFrames:
        """The frames of the rows ``ids [B, L]`` (a source, for a seq2seq), rows the same only with equal ``mask``."""
        frames = cls(action.group)
        frames.extend(action, ids)
        if mask is not None:
            frames.compare(mask)
        return frames

    def reset(self, batch: int, device: torch.device | str) -> None:
        """Start every row's sequence empty: fresh state tensors that later updates write in place."""
        self.mul, self.inverse = self.mul.to(device), self.inverse.to(device)
        self.ranks = torch.zeros(len(self.inverse), batch, dtype=torch.long, device=device)
        self.same = torch.ones(batch, batch, dtype=torch.bool, device=device)
        self._sharing = None

    def fix_addresses(self) -> None:
        """Tell torch.compile the state lives at fixed addresses: a CUDA graph reads and updates it in place
        (generate's decoding loop; elsewhere the frames are rebuilt per call and this is not needed)."""
        if not torch.compiler.is_compiling():
            for tensor in (self.mul, self.inverse, self.ranks, self.same):
                torch._dynamo.mark_static_address(tensor)

    @property
    def state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A copy of ``(ranks, same)``, to come back to later (the live tensors change in place)."""
        return self.ranks.clone(), self.same.clone()

    @state.setter
    def state(self, value: tuple[torch.Tensor, torch.Tensor]) -> None:
        ranks, same = value
        if self.ranks is None or self.ranks.shape != ranks.shape or self.same.shape != same.shape:
            self.reset(ranks.shape[1], ranks.device)
        self._update(ranks, same)

    def _update(self, ranks: torch.Tensor | None = None, same: torch.Tensor | None = None) -> None:
        """Write the new state (``None``: unchanged) into the state tensors, in place: a compiled decoding step
        (CUDA graphs) then keeps reading the same memory, and no step's output feeds the next step."""
        if ranks is not None:
            self.ranks.copy_(ranks)
        if same is not None:
            self.same.copy_(same)
        self._sharing = None

    def extend(self, action: TokenPermutation, ids: torch.Tensor) -> None:
        """Append ``ids [B, L]`` (acted on by ``action``) to every row's sequence."""
        if self.ranks is None:
            self.reset(ids.shape[0], ids.device)
        if self.ranks.shape[1] != ids.shape[0]:
            raise ValueError(f"{ids.shape[0]} rows of token ids for frames of {self.ranks.shape[1]} rows")
        table = action.table.to(ids.device)
        self._update(ranks=lexicographic_ranks(torch.cat([self.ranks[..., None], table[:, ids]], -1)))
        self.compare(self.canonical(action, ids))

    def compare(self, rows: torch.Tensor) -> None:
        """Rows stay 'the same' only where ``rows [B, ...]`` (canonical tokens, a mask) agree too."""
        flat = rows.reshape(rows.shape[0], -1)
        self._update(same=self.same & (flat[:, None] == flat[None]).all(-1))

    @property
    def k(self) -> torch.Tensor:
        """``[B]``: an element sending each row to the canonical element of its orbit."""
        return self.ranks.argmin(0)

    def elements(self) -> torch.Tensor:
        """``[G, B]``: the element whose copy block m holds, ``m·k_b``."""
        return self.mul[:, self.k]

    def representatives(self) -> torch.Tensor:
        """``[G, B]``: for block m, the first block holding the same sequence (m itself when x is fixed by nothing)."""
        held = self.ranks.gather(0, self.elements())  # rank of the sequence in block m
        return (held[:, None] == held[None]).to(torch.uint8).argmax(1)

    def own_rows(self, folded: torch.Tensor) -> torch.Tensor:
        """``[G·B, ...] -> [B, ...]``: each row's own copy (the identity element's block, ``k_b⁻¹``)."""
        k = self.k
        blocks = folded.reshape(len(self.inverse), len(k), *folded.shape[1:])
        return blocks[self.inverse[k], torch.arange(len(k), device=k.device)]

    def canonical(self, action: TokenPermutation, ids: torch.Tensor) -> torch.Tensor:
        """``[B, L]``: the ids in each row's canonical frame, ``k_b·ids_b`` (block 0 of :meth:`fold`)."""
        return action.table.to(ids.device)[self.k[:, None], ids]

    def fold(self, action: TokenPermutation, ids: torch.Tensor) -> torch.Tensor:
        """``[B, L] -> [G·B, L]``: block m holds ``(m·k_b)·x_b``, i.e. ``m·c_b``."""
        table = action.table.to(ids.device)
        flat = self.elements()[:, :, None] * table.shape[1] + ids[None]  # [G, B, L] into table.view(-1)
        return table.reshape(-1)[flat].reshape(-1, ids.shape[1])

    def share(self, blocks: torch.Tensor) -> torch.Tensor:
        """``[G, B, ...]``: each copy's values replaced by those of the first copy that holds the same sequence.

        Equal inputs then give equal outputs, bit for bit, whatever the kernels do with batch positions.
        """
        if torch.compiler.is_compiling():  # no branch on values: always gather (an identity when nothing is shared)
            return blocks[self._sharing_index()]
        if self._sharing is None:  # computed once per state: share() runs on logits, features, proxies, λ
            reps, rows = index = self._sharing_index()
            order, batch = reps.shape
            alone = torch.equal(rows, torch.arange(batch, device=rows.device)) and torch.equal(
                reps, torch.arange(order, device=rows.device)[:, None].expand_as(reps)
            )
            self._sharing = None if alone else index, alone
        index, alone = self._sharing
        return blocks if alone else blocks[index]

    def _sharing_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([G, B], [B])``: the (block, row) whose values each copy takes in :meth:`share`."""
        rows = self.same.to(torch.uint8).argmax(1)  # [B]: the first row with the same canonical sequence
        return self.representatives()[:, rows], rows  # that row's first block holding the same sequence

    def share_representatives(self, folded: torch.Tensor) -> torch.Tensor:
        """``[G·B, ...]``: :meth:`share` on the folded batch."""
        order = len(self.inverse)
        return self.share(folded.reshape(order, -1, *folded.shape[1:])).reshape(folded.shape)

    def to_canonical(self, action: TokenPermutation, scores: torch.Tensor) -> torch.Tensor:
        """``[B, ..., V]``: row b's scores seen from its canonical frame, ``k_b · scores_b``."""
        index = action.table.to(scores.device)[self.inverse[self.k]]  # [B, V]
        return scores.gather(-1, _expand(index, scores))

    def from_canonical(self, action: TokenPermutation, scores: torch.Tensor) -> torch.Tensor:
        """``[B, ..., V]``: scores in the canonical frames mapped back to each row's frame (``k_b⁻¹``)."""
        index = action.table.to(scores.device)[self.k]
        return scores.gather(-1, _expand(index, scores))

    def token_from_canonical(self, action: TokenPermutation, token: torch.Tensor) -> torch.Tensor:
        """``[B, 1]`` token ids in the canonical frames -> each row's own ids (``k_b⁻¹ · token``)."""
        return action.table.to(token.device)[self.inverse[self.k]].gather(1, token)


def _expand(index: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``[B, V]`` -> ``[B, ..., V]`` like ``scores``."""
    return index.view(index.shape[0], *([1] * (scores.ndim - 2)), index.shape[1]).expand_as(scores)
