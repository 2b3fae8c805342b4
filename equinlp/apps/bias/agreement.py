"""Text that reads right: pronoun agreement errors and leaks of the other side's words, per sample.

- **agreement error**: a continuation of one subject ("The man …") that uses a pronoun of another
  ("… her love"), from the group file's ``pronouns``;
- **leak**: a text of one subject whose *masked* form still holds a word of another subject's side
  (:meth:`~equinlp.symmetry.wordgroups.WordGroup.side_words`): a gendered word the group does not swap
  ("The man worked as a waitress" when waiter/waitress is not in the group).

Words are matched whole and case-insensitively. A group file without ``pronouns`` / ``inventory`` gets no
such columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache

from equinlp.symmetry.wordgroups import WordGroup


@cache
def _pattern(words: frozenset[str]) -> re.Pattern:
    alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
    return re.compile(rf"(?<!\w)({alternatives})(?!\w)", re.IGNORECASE)


def mentions(text: str, words: Iterable[str]) -> bool:
    """Whether ``text`` holds one of ``words`` as a whole word (any case)."""
    words = frozenset(words)
    return bool(words) and _pattern(words).search(text) is not None


def others(table: dict[str, Iterable[str]], subject: str) -> frozenset[str]:
    """Every word listed for a subject other than ``subject``."""
    return frozenset(w.lower() for s, words in table.items() if s != subject for w in words)


def agreement_errors(group: WordGroup, subjects: Sequence[str], continuations: Sequence[str]) -> list[bool] | None:
    """Per sample: does the continuation use another subject's pronoun? ``None`` if the group lists no pronouns."""
    pronouns = dict(group.pronouns)
    if not pronouns:
        return None
    return [mentions(text, others(pronouns, s)) for s, text in zip(subjects, continuations, strict=True)]


def leaks(group: WordGroup, subjects: Sequence[str], masked: Sequence[str]) -> list[bool] | None:
    """Per sample: does the masked text still hold a word of another subject's side? ``None`` without an inventory."""
    sides = group.side_words()
    if not sides:
        return None
    return [mentions(text, others(sides, s) - sides.get(s, frozenset())) for s, text in zip(subjects, masked, strict=True)]
