import pytest
import torch

from equinlp.symmetry import groups


@pytest.mark.parametrize(
    "group",
    [
        groups.trivial(),
        groups.cyclic(1),
        groups.cyclic(4),
        groups.dihedral(4),
        groups.dihedral(3),
        groups.product(groups.cyclic(2), groups.cyclic(3)),
    ],
    ids=repr,
)
def test_axioms(group):
    G = group.order
    e = torch.arange(G)
    assert torch.equal(group.mul[0], e) and torch.equal(group.mul[:, 0], e)  # identity is element 0
    assert torch.equal(group.mul[e, group.inv], torch.zeros(G, dtype=torch.long))  # g·g⁻¹ = e
    assert torch.equal(group.mul[group.inv, e], torch.zeros(G, dtype=torch.long))
    for a in range(G):
        for b in range(G):
            for c in range(G):
                assert group.mul[group.mul[a, b], c] == group.mul[a, group.mul[b, c]]


def test_orders_and_commutativity():
    assert groups.cyclic(5).order == 5 and groups.dihedral(4).order == 8
    d4 = groups.dihedral(4)
    assert not torch.equal(d4.mul, d4.mul.T)  # D4 is not abelian
    c6 = groups.product(groups.cyclic(2), groups.cyclic(3))
    assert torch.equal(c6.mul, c6.mul.T)


def test_from_permutations_closes_generators():
    swap01 = torch.tensor([1, 0, 2, 3])
    cycle012 = torch.tensor([1, 2, 0, 3])
    group, tables = groups.from_permutations([swap01, cycle012])
    assert group.order == 6  # S3 on {0, 1, 2}; 3 is fixed
    assert torch.equal(tables[0], torch.arange(4))
    assert (tables[:, 3] == 3).all()
    for g in range(6):
        for h in range(6):
            assert torch.equal(tables[group.mul[g, h]], tables[g][tables[h]])


@pytest.mark.parametrize(
    "table, message",
    [
        ([[1, 0], [0, 1]], "identity"),
        ([[0, 1, 2], [1, 1, 0], [2, 0, 1]], "Latin"),
        ([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 1, 0], [3, 2, 0, 1]], None),  # C4 written oddly: valid
    ],
)
def test_bad_tables_raise(table, message):
    if message is None:
        groups.Group("ok", torch.tensor(table))
    else:
        with pytest.raises(ValueError, match=message):
            groups.Group("bad", torch.tensor(table))


def test_non_associative_latin_square_raises():
    # a Latin square with identity 0 that is not associative (a loop, not a group)
    table = torch.tensor([[0, 1, 2, 3, 4], [1, 0, 3, 4, 2], [2, 4, 0, 1, 3], [3, 2, 4, 0, 1], [4, 3, 1, 2, 0]])
    with pytest.raises(ValueError, match="associative"):
        groups.Group("loop", table)


def test_generator_that_is_not_a_permutation_raises():
    with pytest.raises(ValueError, match="not a permutation"):
        groups.from_permutations([torch.tensor([0, 0, 1])])


# Written by hand, not computed: element r + 3·s of D3 is R^r M^s (mirror s times, then rotate r times),
# and M R M = R⁻¹; element 3·i + j of C2×C3 is the pair (i, j).
D3 = [
    [0, 1, 2, 3, 4, 5],
    [1, 2, 0, 4, 5, 3],
    [2, 0, 1, 5, 3, 4],
    [3, 5, 4, 0, 2, 1],
    [4, 3, 5, 1, 0, 2],
    [5, 4, 3, 2, 1, 0],
]
C2xC3 = [
    [0, 1, 2, 3, 4, 5],
    [1, 2, 0, 4, 5, 3],
    [2, 0, 1, 5, 3, 4],
    [3, 4, 5, 0, 1, 2],
    [4, 5, 3, 1, 2, 0],
    [5, 3, 4, 2, 0, 1],
]


def test_dihedral_and_product_match_hand_written_tables():
    assert torch.equal(groups.dihedral(3).mul, torch.tensor(D3))
    assert torch.equal(groups.product(groups.cyclic(2), groups.cyclic(3)).mul, torch.tensor(C2xC3))
    d3 = groups.dihedral(3)
    assert d3.inv.tolist() == [0, 2, 1, 3, 4, 5]  # rotations invert to the other rotation, mirrors to themselves


def test_dihedral_table_is_the_symmetries_of_a_triangle():
    # the same group realised on the corners 0, 1, 2: R turns 0 -> 1 -> 2, M swaps 1 and 2
    rotate, mirror = [1, 2, 0], [0, 2, 1]

    def compose(p, q):  # p after q
        return [p[i] for i in q]

    def power(p, n):
        out = [0, 1, 2]
        for _ in range(n):
            out = compose(p, out)
        return out

    perms = [compose(power(rotate, r), power(mirror, s)) for s in range(2) for r in range(3)]
    d3 = groups.dihedral(3)
    for g in range(6):
        for h in range(6):
            assert perms[d3.mul[g, h]] == compose(perms[g], perms[h])


def test_from_permutations_gives_s3_with_its_inverses_and_names():
    swap01, cycle012 = torch.tensor([1, 0, 2]), torch.tensor([1, 2, 0])
    group, tables = groups.from_permutations([swap01, cycle012], name="S3")
    assert group.order == 6 and not torch.equal(group.mul, group.mul.T)
    b = group.element_names.index("b")
    assert torch.equal(tables[b], cycle012) and torch.equal(tables[group.inv[b]], torch.tensor([2, 0, 1]))
    ab = group.element_names.index("a·b")  # b first, then a
    assert torch.equal(tables[ab], swap01[cycle012])
