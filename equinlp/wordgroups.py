"""Named demographic word groups, read from the JSON files in ``data/groups`` (shipped as equinlp.resources).

Adding a group is adding one JSON file; ``word_group(name)`` finds it, and ``--group NAME`` in the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from equinlp.actions import TokenPermutation
from equinlp.vocab import VocabularyError, vocab_permutation

Cycles = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class WordGroup:
    """A named word group: ``cycles`` is one generator; ``more_generators`` (optional) add more, as in
    :func:`~equinlp.vocab.vocab_permutation` (``race_s3``: a swap and a 3-cycle generate S3)."""

    name: str
    description: str
    source: str
    cycles: Cycles
    general_words: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    more_generators: tuple[Cycles, ...] = ()

    def __post_init__(self) -> None:
        for cycles in (self.cycles, *self.more_generators):
            if not cycles:
                raise VocabularyError(f"word group {self.name!r} has no word cycles; list at least one, e.g. [['man', 'woman']]")

    def action(self, tokenizer) -> TokenPermutation:
        """The group acting on ``tokenizer``'s vocabulary (raises if a swap word is several tokens)."""
        return vocab_permutation(tokenizer, self.cycles, *self.more_generators, name=self.name)


def _folder():
    try:
        return resources.files("equinlp.resources") / "groups"
    except ModuleNotFoundError:  # a source checkout on PYTHONPATH, not installed: data/ sits beside the package
        return Path(__file__).parents[1] / "data" / "groups"


def word_group_names() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in _folder().iterdir() if p.name.endswith(".json"))


def word_group(name: str) -> WordGroup:
    """Load a named group: ``gender``, ``race`` (3-cycle), ``race2`` (Black↔White), ``orientation``, ..."""
    path = _folder() / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown group {name!r}; choose from {word_group_names()} or add data/groups/{name}.json")
    return read_word_group(path)


def read_word_group(path) -> WordGroup:
    """Read one group file (the format of ``data/groups/*.json``); a file without word cycles is refused."""
    raw = json.loads(path.read_text())
    try:
        return WordGroup(
            name=raw["name"],
            description=raw["description"],
            source=raw["source"],
            cycles=_cycles(raw.get("cycles", [])),
            general_words=tuple(raw.get("general_words", ())),
            subjects=tuple(raw.get("subjects", ())),
            more_generators=tuple(_cycles(generator) for generator in raw.get("more_generators", [])),
        )
    except VocabularyError as err:
        raise VocabularyError(f"{path}: {err}") from None


def _cycles(raw: list) -> Cycles:
    return tuple(tuple(cycle) for cycle in raw)
