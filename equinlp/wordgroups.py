"""Named demographic word groups, read from the JSON files in ``data/groups`` (shipped as equinlp.resources).

Adding a group is adding one JSON file; ``word_group(name)`` finds it, and ``--group NAME`` in the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from equinlp.actions import TokenPermutation
from equinlp.vocab import vocab_permutation


@dataclass(frozen=True)
class WordGroup:
    name: str
    description: str
    source: str
    cycles: tuple[tuple[str, ...], ...]
    general_words: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()

    def action(self, tokenizer) -> TokenPermutation:
        """The group acting on ``tokenizer``'s vocabulary (raises if a swap word is several tokens)."""
        return vocab_permutation(tokenizer, self.cycles, name=self.name)


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
    raw = json.loads(path.read_text())
    return WordGroup(
        name=raw["name"],
        description=raw["description"],
        source=raw["source"],
        cycles=tuple(tuple(c) for c in raw["cycles"]),
        general_words=tuple(raw.get("general_words", ())),
        subjects=tuple(raw.get("subjects", ())),
    )
