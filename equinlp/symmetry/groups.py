"""Finite groups as values.

A :class:`Group` is its Cayley table: elements are the integers ``0 .. order-1``, element 0 is the
identity, ``group.mul[g, h]`` is the product ``g·h`` and ``group.inv[g]`` the inverse. Acting on data,
``g·h`` applies h first, then g: ``act(act(x, h), g) == act(x, mul[g, h])`` for every action. Everything
that acts on data (token permutations, image rotations) refers to elements by these integers, so actions
on different kinds of data can share one group (SCAN's input and output vocabularies).

Groups here are small (every element costs one forward copy of the model), so the axioms are checked
in full at construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

MAX_ORDER = 256


@dataclass(frozen=True, eq=False)
class Group:
    """A finite group given by its Cayley table.

    Args:
        name: a label for printing.
        mul: ``LongTensor[G, G]``, ``mul[g, h] = g·h``; row and column 0 must be the identity's.
        element_names: optional names of the elements, for readable error messages.
    """

    name: str
    mul: torch.Tensor
    element_names: tuple[str, ...] = field(default=())
    inv: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mul = torch.as_tensor(self.mul, dtype=torch.long)
        object.__setattr__(self, "mul", mul)
        order = mul.shape[0]
        if mul.ndim != 2 or mul.shape[1] != order or order == 0:
            raise ValueError(f"group {self.name!r}: Cayley table must be square and non-empty, got {tuple(mul.shape)}")
        if order > MAX_ORDER:
            raise ValueError(f"group {self.name!r} has order {order} > {MAX_ORDER}; every element costs a model copy")
        elements = torch.arange(order)
        if not (torch.equal(mul[0], elements) and torch.equal(mul[:, 0], elements)):
            raise ValueError(f"group {self.name!r}: element 0 must be the identity")
        sorted_rows, _ = mul.sort(dim=1)
        sorted_cols, _ = mul.sort(dim=0)
        if not (
            torch.equal(sorted_rows, elements.expand(order, order))
            and torch.equal(sorted_cols, elements[:, None].expand(order, order))
        ):
            raise ValueError(f"group {self.name!r}: Cayley table is not a Latin square (no inverses, or not closed)")
        # (g·h)·k == g·(h·k) for all g, h, k.
        left = mul[mul]  # [g, h, k] -> (g·h)·k
        right = mul.gather(1, mul.reshape(1, -1).expand(order, -1)).reshape(order, order, order)  # g·(h·k)
        if not torch.equal(left, right):
            raise ValueError(f"group {self.name!r}: multiplication is not associative")
        inv = (mul == 0).float().argmax(dim=1)
        object.__setattr__(self, "inv", inv)
        if self.element_names and len(self.element_names) != order:
            raise ValueError(f"group {self.name!r}: {len(self.element_names)} names for {order} elements")

    @property
    def order(self) -> int:
        return self.mul.shape[0]

    def __len__(self) -> int:
        return self.order

    def element_name(self, g: int) -> str:
        return self.element_names[g] if self.element_names else f"g{g}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Group) and torch.equal(self.mul, other.mul)

    def __hash__(self) -> int:
        return hash(tuple(self.mul.flatten().tolist()))

    def __repr__(self) -> str:
        return f"Group({self.name!r}, order={self.order})"


def trivial() -> Group:
    """The group with one element: wrapping with it reproduces the base model exactly."""
    return Group("trivial", torch.zeros(1, 1, dtype=torch.long), ("e",))


def cyclic(n: int) -> Group:
    """C_n: element k is the k-th power of a generator (rotation by k·360°/n)."""
    k = torch.arange(n)
    names = tuple("e" if i == 0 else f"r{i}" for i in range(n))
    return Group(f"C{n}", (k[:, None] + k[None, :]) % n, names)


def dihedral(n: int) -> Group:
    """D_n of order 2n: element ``r + n·s`` is ``R^r M^s``, ``s`` mirrors (s in {0, 1}) and then r rotations.

    With ``x ↦ R^r M^s x`` and ``M R M = R⁻¹``: (r1, s1)·(r2, s2) = (r1 + (-1)^s1 r2, s1 xor s2).
    """
    r = torch.arange(2 * n) % n
    s = torch.arange(2 * n) // n
    sign = 1 - 2 * s[:, None]
    r_prod = (r[:, None] + sign * r[None, :]) % n
    s_prod = s[:, None] ^ s[None, :]
    names = tuple(("e" if i == 0 else f"r{i}") if j == 0 else f"r{i}m" for j in range(2) for i in range(n))
    return Group(f"D{n}", r_prod + n * s_prod, names)


def product(a: Group, b: Group) -> Group:
    """Direct product A×B; element ``i·|B| + j`` is the pair (a_i, b_j)."""
    ia = torch.arange(a.order).repeat_interleave(b.order)
    ib = torch.arange(b.order).repeat(a.order)
    mul = a.mul[ia[:, None], ia[None, :]] * b.order + b.mul[ib[:, None], ib[None, :]]
    names = tuple(f"({a.element_name(i)},{b.element_name(j)})" for i in range(a.order) for j in range(b.order))
    return Group(f"{a.name}x{b.name}", mul, names)


def from_permutations(
    generators: Sequence[torch.Tensor], name: str = "generated", generator_names: Sequence[str] = ()
) -> tuple[Group, torch.Tensor]:
    """Close permutations of ``0..N-1`` under composition.

    The convention used everywhere in equinlp: ``g·h`` applies h first, then g, so
    ``tables[group.mul[g, h]] == tables[g][tables[h]]``. Elements are named by a shortest product of the
    generators (``"a·b"`` is b, then a).

    Args:
        generators: each a ``LongTensor[N]`` with ``perm[i]`` the image of ``i``.
        name: the group's label.
        generator_names: one per generator, for element names (default ``a, b, c, ...``).
    Returns:
        ``(group, tables)`` with ``tables: LongTensor[G, N]``; ``tables[0]`` is the identity.
    """
    if not generators:
        raise ValueError("from_permutations needs at least one generator")
    gens = [torch.as_tensor(p, dtype=torch.long) for p in generators]
    n = gens[0].numel()
    for i, p in enumerate(gens):
        if p.shape != (n,) or not torch.equal(p.sort().values, torch.arange(n)):
            raise ValueError(f"generator {i} is not a permutation of 0..{n - 1}")
    # Work on the moved points only: vocabularies are large, the moved sets small.
    moved = torch.unique(torch.cat([torch.nonzero(p != torch.arange(n)).flatten() for p in gens]))
    local = {int(v): i for i, v in enumerate(moved.tolist())}
    small = [tuple(local[int(p[v])] for v in moved.tolist()) for p in gens]
    letters = list(generator_names) or [chr(ord("a") + i) if i < 26 else f"s{i}" for i in range(len(small))]
    if len(letters) != len(small):
        raise ValueError(f"{len(letters)} generator names for {len(small)} generators")
    identity = tuple(range(len(moved)))
    elements, names = [identity], ["e"]
    index = {identity: 0}
    frontier = [identity]
    while frontier:  # breadth first, so each name is a shortest product
        nxt = []
        for perm in frontier:
            for letter, gen in zip(letters, small, strict=True):
                composed = tuple(gen[i] for i in perm)  # gen·perm: perm first, then gen
                if composed not in index:
                    if len(elements) >= MAX_ORDER:
                        raise ValueError(f"generated group has order > {MAX_ORDER}; every element costs a model copy")
                    index[composed] = len(elements)
                    elements.append(composed)
                    names.append(letter if perm == identity else f"{letter}·{names[index[perm]]}")
                    nxt.append(composed)
        frontier = nxt
    order = len(elements)
    mul = torch.empty(order, order, dtype=torch.long)
    for g, pg in enumerate(elements):
        for h, ph in enumerate(elements):
            mul[g, h] = index[tuple(pg[i] for i in ph)]
    tables = torch.arange(n).repeat(order, 1)
    if len(moved):
        tables[:, moved] = moved[torch.tensor(elements, dtype=torch.long)]
    return Group(name, mul, tuple(names)), tables
