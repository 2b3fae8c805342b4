"""A group acting on text by whole-phrase substitution: names and multi-token identity terms, any tokenizer.

``phrase_permutation([("Lakisha Washington", "Emily Walsh")])`` swaps the two names wherever they occur as
whole phrases (not inside a longer word); ``[("Black person", "White person", "Asian person")]`` is a
3-cycle. Unlike :func:`~equinlp.symmetry.vocab.vocab_permutation`, a phrase may be any number of tokens for any
tokenizer: the action is on strings, and the sequence-level wrappers (:mod:`equinlp.models.sequence`)
decode with the plain model and map text back.

It is a group action on strings, ``act(act(s, h), g) == act(s, g·h)``, because every phrase starts and
ends with a word character, is found only between non-word characters, and no phrase contains another
or overlaps another (or itself) at word boundaries (checked): substituting a phrase leaves the places where
phrases occur unchanged.

Role words. A word written ``word@role`` is swapped by the role it plays where it occurs, so that words
with no one-to-one image still map: English 'her' is 'his' before a noun and 'him' on its own. The role
is read from the next word (:func:`role_at`): ``determiner`` when a word that can follow a determiner
comes next, ``alone`` before punctuation or a closed-class word ('to', 'and', 'a', 'was', ...). When
nothing follows (a prompt that ends in 'her'), the role is read from what comes before: after a word that
opens a clause ('that', 'because', 'when', ...; :data:`CLAUSE_OPENERS`), after . ! ? ; : , or at the
start, the word is a clause's subject, where 'him' cannot stand, so it is a ``determiner`` ("said that
her" -> "said that his"); after anything else (a verb, a preposition, 'and') it is ``alone`` ("saw her" ->
"saw him", "with his" -> "with hers"). A word listed in one role only ('him@alone') takes that role
everywhere. The rule is deterministic and needs no model; the swap of a text is again a text whose role
words keep their roles (so applying it twice gives the text back) except where English itself is
ambiguous ("gave him money" becomes "gave her money", where 'her' reads as a determiner; a text that ends
in "that hers" becomes "that his", read back as "that her"; "that him" is not English):
:meth:`PhrasePermutation.round_trips` says whether a text is one of those, and
:meth:`PhrasePermutation.final_reading` names the reading of a last word whose role nothing shows.
Masking replaces every role word too, so masked texts of a text and its swaps are equal whatever the roles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch

from equinlp.errors import EquinlpError
from equinlp.symmetry.groups import Group, from_permutations

Cycle = Sequence[str]
MASK = "XYZ"
ROLES = ("determiner", "alone")
ROLE_NAMES = {"determiner": "as a determiner (before a noun)", "alone": "on its own (an object or a possessive)"}
CLOSED_CLASS = frozenset(
    """a an the this that these those some any no every each both either neither to of in on at by for with from
    about into onto over under up down out off away back again and or but nor so yet as than then when while
    because if though although is was were be been being am are has have had do does did will would can could
    shall should may might must not never always also too here there now today i me my mine you your yours he
    him his she her hers it its we us our ours they them their theirs who whom whose which what where how""".split()
)
CLAUSE_OPENERS = frozenset(
    "that because if whether although though while whereas when whenever where why how unless once".split()
)
CLAUSE_PUNCTUATION = ".!?;:,"
_NEXT_WORD = re.compile(r"\s*(\w+)?")


def role_at(text: str, end: int) -> str:
    """The role of a word ending at ``end``: ``determiner`` if the next word is an open-class word, ``alone`` if a
    closed-class word or punctuation follows; if nothing follows, ``determiner`` where a clause opens before it
    (:func:`opens_clause`), else ``alone``."""
    following = _NEXT_WORD.match(text, end)
    if following.group(1):
        return "alone" if following.group(1).lower() in CLOSED_CLASS else "determiner"
    if following.end() < len(text):
        return "alone"
    start = end - len(re.search(r"\w*$", text[:end]).group())
    return "determiner" if opens_clause(text[:start]) else "alone"


def opens_clause(before: str) -> bool:
    """Whether the next word is the start of a clause (its subject): ``before`` is empty, ends in . ! ? ; : , or
    in a word of :data:`CLAUSE_OPENERS` ('said that', 'because')."""
    stripped = before.rstrip()
    if not stripped or stripped[-1] in CLAUSE_PUNCTUATION:
        return True
    last = re.search(r"\w+$", stripped)
    return last is not None and last.group().lower() in CLAUSE_OPENERS


def surface(phrase: str) -> str:
    """The text of a phrase: ``her@determiner`` is written 'her'."""
    return phrase.split("@", 1)[0]


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
                if not isinstance(phrase, str) or not re.fullmatch(r"\w(.*\w)?", surface(phrase), re.DOTALL):
                    raise EquinlpError(f"phrase {phrase!r} must start and end with a letter or digit (no outer spaces)")
                if "@" in phrase and phrase.split("@", 1)[1] not in ROLES:
                    raise EquinlpError(f"role word {phrase!r}: the role after '@' must be one of {', '.join(ROLES)}")
                if phrase in seen:
                    raise EquinlpError(f"phrase {phrase!r} is listed twice in one generator: the substitution is not one-to-one")
                seen.append(phrase)
        phrases += [p for p in seen if p not in phrases]
    surfaces = list(dict.fromkeys(map(surface, phrases)))
    for word in surfaces:
        if word in phrases and any(surface(p) == word and p != word for p in phrases):
            raise EquinlpError(f"{word!r} is listed both as a plain phrase and as a role word ({word}@role): list one")
    for a in surfaces:
        for b in surfaces:
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
        longest_first = sorted(dict.fromkeys(map(surface, self.phrases)), key=len, reverse=True)
        return re.compile(r"(?<!\w)(" + "|".join(map(re.escape, longest_first)) + r")(?!\w)")

    @cached_property
    def _index(self) -> dict[str, dict[str | None, int]]:
        """``{surface: {role: phrase index}}``; a plain phrase has the one role ``None``."""
        index: dict[str, dict[str | None, int]] = {}
        for i, phrase in enumerate(self.phrases):
            role = phrase.split("@", 1)[1] if "@" in phrase else None
            index.setdefault(surface(phrase), {})[role] = i
        return index

    def _found(self, match: re.Match) -> int:
        """The phrase a match is: by the role it plays there when its word has several roles."""
        roles = self._index[match.group(1)]
        if len(roles) == 1:
            return next(iter(roles.values()))
        return roles[role_at(match.string, match.end())]

    def act(self, text: str, g: int) -> str:
        """``g·text``: every phrase replaced by its image under g (role words by their role, see the module)."""
        row = self.table[g].tolist()
        return self._pattern.sub(lambda m: surface(self.phrases[row[self._found(m)]]), text)

    def round_trips(self, text: str) -> bool:
        """Whether every swap of ``text`` keeps its role words' roles: ``act(act(text, g), g⁻¹) == text`` for all g."""
        return all(self.act(self.act(text, g), int(self.group.inv[g])) == text for g in range(self.group.order))

    def final_reading(self, text: str) -> str | None:
        """One line on how the last word of ``text`` was read when it is a role word that no following word
        shows the role of ("The man said that his": a determiner, or 'his' on its own?), None otherwise.

        Those readings are guesses (:func:`role_at`), and where the text does not map back to itself ("that hers"
        -> "that his" -> "that her") the line says so."""
        stripped = text.rstrip()
        last = next((m for m in self._pattern.finditer(stripped) if m.end() == len(stripped)), None)
        if last is None or "@" not in self.phrases[self._found(last)]:
            return None
        roles = self._index[last.group(1)]
        if len(roles) == 1 and self.round_trips(text):
            return None
        before = re.search(r"(\S+)\s*$", stripped[: last.start()])
        where = f"after {before.group(1)!r}" if before else "at the start"
        images = sorted({self._pattern.findall(self.act(stripped, g))[-1] for g in range(1, self.group.order)})
        role = self.phrases[self._found(last)].split("@", 1)[1]
        line = f"{last.group(1)!r} ends {stripped!r} {where}, where no following word shows its role: read {ROLE_NAMES[role]}"
        line += f", swapped to {' / '.join(map(repr, images))}"
        return line if self.round_trips(text) else line + "; the swap does not map back to this text"

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
