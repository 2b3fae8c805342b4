"""A group acting on text by whole-phrase substitution: names and multi-token identity terms, any tokenizer.

``phrase_permutation([("Lakisha Washington", "Emily Walsh")])`` swaps the two names wherever they occur as
whole phrases (not inside a longer word); ``[("Black person", "White person", "Asian person")]`` is a
3-cycle. Unlike :func:`~equinlp.vocab.vocab_permutation`, a phrase may be any number of tokens for any
tokenizer: the action is on strings, and the sequence-level wrappers (:mod:`equinlp.models.sequence`)
decode with the plain model and map text back.

It is a group action on strings, ``act(act(s, h), g) == act(s, g·h)``, because every phrase starts and
ends with a word character, is found only between non-word characters, and no phrase contains another
or overlaps another (or itself) at word boundaries (checked): substituting a phrase leaves the places where
phrases occur unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch

from equinlp.errors import EquinlpError
from equinlp.groups import Group, from_permutations

Cycle = Sequence[str]
MASK = "XYZ"


def _check(generators: Sequence[Sequence[Cycle]]) -> list[str]:
    """Every phrase, in first-seen order; raises on an empty, padded, repeated or overlapping phrase."""
    phrases: list[str] = []
    for cycles in generators:
        if not cycles:
            raise EquinlpError("a phrase generator has no cycles; list one, e.g. [['Emily Walsh', 'Lakisha Washington']]")
        seen: list[str] = []
        for cycle in cycles:
            if isinstance(cycle, str) or len(cycle) < 2:
                raise EquinlpError(f"a cycle needs at least two phrases, got {cycle!r}")
            for phrase in cycle:
                if not isinstance(phrase, str) or not re.fullmatch(r"\w(.*\w)?", phrase, re.DOTALL):
                    raise EquinlpError(f"phrase {phrase!r} must start and end with a letter or digit (no outer spaces)")
                if phrase in seen:
                    raise EquinlpError(f"phrase {phrase!r} is listed twice in one generator: the substitution is not one-to-one")
                seen.append(phrase)
        phrases += [p for p in seen if p not in phrases]
    for a in phrases:
        for b in phrases:
            if a != b and re.search(rf"(?<!\w){re.escape(a)}(?!\w)", b):
                raise EquinlpError(f"phrase {a!r} occurs inside phrase {b!r}: which one a text mentions is ambiguous")
            shared = _overlap(a, b)
            if shared:
                raise EquinlpError(
                    f"phrases {a!r} and {b!r} overlap in a text such as {a + b[len(shared) :]!r} (they share {shared!r}): "
                    "which one it mentions is ambiguous, and swapping one can make or break the other"
                )
    return phrases


def _overlap(a: str, b: str) -> str:
    """The words that end ``a`` and begin ``b``, where one text can hold both phrases overlapping ("Tom Lee" and
    "Lee Ann" in "Tom Lee Ann"); "" if none. Both ends must fall on word boundaries, as matches do."""
    for start in range(1, len(a)):
        shared = a[start:]
        if not re.match(r"\W", a[start - 1]) or not b.startswith(shared) or len(b) == len(shared):
            continue
        if re.match(r"\W", b[len(shared)]):
            return shared
    return ""


@dataclass(frozen=True, eq=False)
class PhrasePermutation:
    """A group acting on strings by substituting whole phrases.

    Args:
        group: the group; element 0 is the identity.
        phrases: every phrase some element moves.
        table: ``LongTensor[G, P]``, ``table[g, i]`` is the index of the phrase g sends ``phrases[i]`` to.
        name: a label (the word group's name).
    """

    group: Group
    phrases: tuple[str, ...]
    table: torch.Tensor
    name: str = "phrases"
    description: tuple[str, ...] = field(default=())

    @cached_property
    def _pattern(self) -> re.Pattern:
        longest_first = sorted(self.phrases, key=len, reverse=True)
        return re.compile(r"(?<!\w)(" + "|".join(map(re.escape, longest_first)) + r")(?!\w)")

    @cached_property
    def _index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.phrases)}

    def act(self, text: str, g: int) -> str:
        """``g·text``: every phrase replaced by its image under g."""
        row = self.table[g].tolist()
        return self._pattern.sub(lambda m: self.phrases[row[self._index[m.group(1)]]], text)

    def orbit(self, text: str) -> list[str]:
        """``[g·text for g in G]`` (element 0, the identity, first)."""
        return [self.act(text, g) for g in range(self.group.order)]

    def canonical(self, text: str) -> tuple[str, int]:
        """``(c, k)``: the least string of the orbit and the least element with ``k·text == c``.

        Every text of one orbit has the same ``c``: the frame in which the sequence-level methods decide.
        """
        orbit = self.orbit(text)
        least = min(orbit)
        return least, orbit.index(least)

    def mentions(self, text: str) -> bool:
        """Whether ``text`` contains a phrase the group moves."""
        return self._pattern.search(text) is not None

    def mask(self, text: str, mask: str = MASK) -> str:
        """``text`` with every phrase replaced by ``mask``: the same string for a text and all its swaps."""
        return self._pattern.sub(mask, text)


def phrase_permutation(cycles: Sequence[Cycle], *more_generators: Sequence[Cycle], name: str = "phrases") -> PhrasePermutation:
    """The group generated by phrase-cycle substitutions, acting on text.

    Args:
        cycles: one generator, phrase cycles applied together, e.g. ``[("Emily Walsh", "Lakisha Washington")]``.
        more_generators: further generators; the group is the closure of all of them.
    Raises:
        EquinlpError: a phrase is empty, padded with spaces, listed twice in a generator, or contains another.
    """
    generators = (cycles, *more_generators)
    phrases = _check(generators)
    index = {p: i for i, p in enumerate(phrases)}
    permutations, lines = [], []
    for generator in generators:
        perm = torch.arange(len(phrases))
        for cycle in generator:
            for k, phrase in enumerate(cycle):
                perm[index[phrase]] = index[cycle[(k + 1) % len(cycle)]]
            lines.append(" -> ".join(map(repr, cycle)))
        permutations.append(perm)
    group, table = from_permutations(permutations, name=name)
    return PhrasePermutation(group, tuple(phrases), table, name, tuple(lines))
