"""How a group acts on one kind of tensor.

Every action has the same three verbs (shapes with the group axis folded group-outer, see core.py):

- ``act(x, g)``: ``g·x`` for one element, ``[B, ...] -> [B, ...]``;
- ``act_all(x)``: every element at once, ``[B, ...] -> [G·B, ...]`` (copy g first, then the batch);
- ``pull_back(y)``: map copy g of an output back by ``g⁻¹``, ``[G·B, ...] -> [G, B, ...]``.

A :class:`TokenPermutation` is one index table per element, ``table: LongTensor[G, V]``, with two views:
``.ids`` acts on token ids by lookup, ``.logits`` acts on the vocabulary axis of scores by a gather.
Never a dense V×V matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import torch

from equinlp.symmetry.groups import Group, cyclic, dihedral, trivial


class Action(Protocol):
    group: Group

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor: ...

    def act_all(self, x: torch.Tensor) -> torch.Tensor: ...

    def pull_back(self, y: torch.Tensor) -> torch.Tensor: ...


def fold(x: torch.Tensor) -> torch.Tensor:
    """``[G, B, ...] -> [G·B, ...]`` (group-outer)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def unfold(y: torch.Tensor, order: int) -> torch.Tensor:
    """``[G·B, ...] -> [G, B, ...]``."""
    if y.shape[0] % order:
        raise ValueError(f"batch of {y.shape[0]} is not a multiple of the group order {order}")
    return y.reshape(order, y.shape[0] // order, *y.shape[1:])


@dataclass(frozen=True, eq=False)
class TokenPermutation:
    """A group acting on a vocabulary by permutations.

    Args:
        group: the group; ``table[group.mul[g, h]] == table[g][table[h]]`` (h first, then g) is checked.
        table: ``LongTensor[G, V]``, ``table[g, v]`` is the token that g sends v to.
        description: human-readable cycles, e.g. ``" man -> woman"``.
    """

    group: Group
    table: torch.Tensor
    description: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        table = torch.as_tensor(self.table, dtype=torch.long)
        object.__setattr__(self, "table", table)
        G, V = table.shape
        if G != self.group.order:
            raise ValueError(f"{G} permutation rows for a group of order {self.group.order}")
        if not torch.equal(table[0], torch.arange(V)):
            raise ValueError("table[0] must be the identity permutation")
        if not torch.equal(table.sort(dim=1).values, torch.arange(V).expand(G, V)):
            raise ValueError("every row of the table must be a permutation of the vocabulary")
        # Only the ids some element moves can break it (they are mapped among themselves): [G, M]
        moved = table[:, self.moved]
        composed = table[:, moved]  # [G, G, M]: composed[g, h, m] = table[g, table[h, moved m]], h first
        if not torch.equal(composed, moved[self.group.mul]):
            raise ValueError("the table is not a homomorphism from the group: act(g, act(h, x)) != act(g·h, x)")

    @classmethod
    def identity(cls, vocab_size: int) -> TokenPermutation:
        """The trivial group on a vocabulary: wrapping with it runs the base model through the wrapper's
        decoding (the same seeded sampler), so a base model and a method are compared on equal terms."""
        return cls(trivial(), torch.arange(vocab_size)[None], ("identity",))

    @property
    def vocab_size(self) -> int:
        return self.table.shape[1]

    @property
    def moved(self) -> torch.Tensor:
        """``LongTensor[M]``: the token ids some element moves."""
        return torch.nonzero((self.table != torch.arange(self.vocab_size)).any(0)).flatten()

    @property
    def ids(self) -> _IdsView:
        return _IdsView(self)

    @property
    def logits(self) -> _LogitsView:
        return _LogitsView(self)

    def resized(self, vocab_size: int) -> TokenPermutation:
        """The same action on a vocabulary of ``vocab_size`` ids; added ids are fixed points.

        Raises if ``vocab_size`` is smaller than the table and a moved id would be cut off.
        """
        V = self.vocab_size
        if vocab_size == V:
            return self
        if vocab_size < V:
            moved = self.moved
            if len(moved) and int(moved.max()) >= vocab_size:
                raise ValueError(
                    f"vocabulary mismatch: the action moves token id {int(moved.max())} but the model has only "
                    f"{vocab_size} ids (action built for {V}); build it with this model's tokenizer"
                )
            return TokenPermutation(self.group, self.table[:, :vocab_size], self.description)
        extra = torch.arange(V, vocab_size).expand(self.group.order, -1)
        return TokenPermutation(self.group, torch.cat([self.table, extra], 1), self.description)

    def __repr__(self) -> str:
        cycles = "; ".join(self.description[:6]) + ("; ..." if len(self.description) > 6 else "")
        return f"TokenPermutation({self.group!r}, vocab={self.vocab_size}, moved={len(self.moved)}: {cycles})"


@dataclass(frozen=True)
class _IdsView:
    """A token permutation acting on token ids ``LongTensor[B, ...]``."""

    perm: TokenPermutation

    @property
    def group(self) -> Group:
        return self.perm.group

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor:
        return self.perm.table[g].to(x.device)[x]

    def act_all(self, x: torch.Tensor) -> torch.Tensor:
        return fold(self.perm.table.to(x.device)[:, x])

    def pull_back(self, y: torch.Tensor) -> torch.Tensor:
        inverse = self.perm.table[self.group.inv].to(y.device)  # [G, V]
        y = unfold(y, self.group.order)
        return torch.stack([inverse[g][y[g]] for g in range(self.group.order)])


@dataclass(frozen=True)
class _LogitsView:
    """A token permutation acting on the last (vocabulary) axis of scores ``[B, ..., V]``.

    ``(g·z)[g·v] = z[v]``, so ``act(z, g) = z[..., table[g⁻¹]]`` and the pull-back of copy g is
    ``y_g[..., table[g]]``: its entry v is the copy's score for the token g·v.
    """

    perm: TokenPermutation
    moves_last_axis_only = True  # scores keep their positions: proxies may be computed before the pull-back

    @property
    def group(self) -> Group:
        return self.perm.group

    def act(self, z: torch.Tensor, g: int) -> torch.Tensor:
        return z.index_select(-1, self.perm.table[int(self.group.inv[g])].to(z.device))

    def act_all(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.act(z, g) for g in range(self.group.order)])

    def pull_back(self, y: torch.Tensor) -> torch.Tensor:
        y = unfold(y, self.group.order)
        index = self.perm.table.to(y.device).view(self.group.order, *([1] * (y.ndim - 2)), -1)
        return y.gather(-1, index.expand(y.shape))


def _turn(x: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    return torch.rot90(x, quarter_turns, dims=(-2, -1))


class ImageGroup(NamedTuple):
    """One kind of image symmetry: its group, and how element g moves a ``[..., H, W]`` tensor."""

    group: Callable[[], Group]
    act: Callable[[torch.Tensor, int], torch.Tensor]


IMAGE_GROUPS = {
    "rot90": ImageGroup(lambda: cyclic(4), _turn),
    "rot180": ImageGroup(lambda: cyclic(2), lambda x, g: _turn(x, 2 * g)),
    "mirror": ImageGroup(lambda: cyclic(2), lambda x, g: x.flip(-1) if g else x),
    "d4": ImageGroup(lambda: dihedral(4), lambda x, g: _turn(x.flip(-1) if g >= 4 else x, g % 4)),  # R^r M^s
    "trivial": ImageGroup(trivial, lambda x, g: x),
}


@dataclass(frozen=True, eq=False)
class ImageTransform:
    """Rotations and mirrors of the last two axes of ``[B, C, H, W]`` tensors.

    kinds (:data:`IMAGE_GROUPS`, one entry each): ``rot90`` (C4, rotation by k·90°), ``rot180`` (C2: the
    180° rotation that the paper's code calls "flip"), ``mirror`` (C2: a true left-right mirror, flipping
    the width axis only) and ``d4`` (element ``r + 4·s`` is mirror s times, then rotate r times).
    """

    kind: str
    group: Group = field(init=False)

    def __post_init__(self) -> None:
        if self.kind not in IMAGE_GROUPS:
            raise ValueError(f"unknown image group {self.kind!r}; choose from {sorted(IMAGE_GROUPS)}")
        object.__setattr__(self, "group", IMAGE_GROUPS[self.kind].group())

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor:
        return IMAGE_GROUPS[self.kind].act(x, g)

    def act_all(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.act(x, g) for g in range(self.group.order)])

    def pull_back(self, y: torch.Tensor) -> torch.Tensor:
        y = unfold(y, self.group.order)
        return torch.stack([self.act(y[g], int(self.group.inv[g])) for g in range(self.group.order)])


@dataclass(frozen=True, eq=False)
class Invariant:
    """The trivial action: class logits, regard scores, anything the group must not change."""

    group: Group
    moves_last_axis_only = True  # nothing moves

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor:
        return x

    def act_all(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(self.group.order, *([1] * (x.ndim - 1)))

    def pull_back(self, y: torch.Tensor) -> torch.Tensor:
        return unfold(y, self.group.order)


@dataclass(frozen=True, eq=False)
class LinearAction:
    """A group acting on vectors ``[B, D]`` by matrices: reflections and rotations of RL states.

    Args:
        group: the group; ``matrices[g] @ matrices[h] == matrices[g·h]`` is checked.
        matrices: ``Tensor[G, D, D]``, ``g·x = matrices[g] @ x``; ``matrices[0]`` must be the identity.
    """

    group: Group
    matrices: torch.Tensor

    def __post_init__(self) -> None:
        m = torch.as_tensor(self.matrices, dtype=torch.float64)
        G, D, D2 = m.shape
        if G != self.group.order or D != D2:
            raise ValueError(f"need {self.group.order} square matrices, got shape {tuple(m.shape)}")
        if not torch.equal(m[0], torch.eye(D, dtype=m.dtype)):
            raise ValueError("matrices[0] must be the identity")
        products = torch.einsum("gij,hjk->ghik", m, m)
        if not torch.allclose(products, m[self.group.mul], atol=1e-9):
            raise ValueError("the matrices are not a homomorphism from the group: M_g M_h != M_{g·h}")
        object.__setattr__(self, "matrices", m)  # kept in float64; each call casts to the input's dtype

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor:
        return x @ self.matrices[g].to(x.device, x.dtype).T

    def act_all(self, x: torch.Tensor) -> torch.Tensor:
        return fold(torch.einsum("gij,bj->gbi", self.matrices.to(x.device, x.dtype), x))

    def pull_back(self, y: torch.Tensor) -> torch.Tensor:
        inverse = self.matrices[self.group.inv].to(y.device, y.dtype)  # [G, D, D]
        return torch.einsum("gij,gbj->gbi", inverse, unfold(y, self.group.order))
