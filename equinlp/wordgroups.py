"""Named demographic word groups, read from the JSON files in ``data/groups`` (shipped as equinlp.resources).

Adding a group is adding one JSON file; ``word_group(name)`` finds it, and ``--group NAME`` in the CLI. A
file elsewhere works by its path: ``--group my_groups/caste.json``, ``bias run --axis my_groups/caste.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from equinlp.actions import TokenPermutation
from equinlp.errors import EquinlpError, UnknownName, check_name
from equinlp.files import read_text_file
from equinlp.phrases import PhrasePermutation, phrase_permutation
from equinlp.vocab import VocabularyError, vocab_permutation

Cycles = tuple[tuple[str, ...], ...]
LEVELS = ("auto", "token", "phrase")


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
    article: str = "The"  # what precedes a subject in a prompt ("" for names)

    def __post_init__(self) -> None:
        for cycles in (self.cycles, *self.more_generators):
            if not cycles:
                raise VocabularyError(f"word group {self.name!r} has no word cycles; list at least one, e.g. [['man', 'woman']]")
            words = [word for cycle in cycles for word in cycle]
            repeated = sorted({w for w in words if words.count(w) > 1})
            if repeated:  # a word in two places of one generator makes no permutation (her -> his / him)
                raise VocabularyError(f"word group {self.name!r} lists {repeated} more than once in one generator")

    def action(self, tokenizer) -> TokenPermutation:
        """The group acting on ``tokenizer``'s vocabulary (raises if a swap word is several tokens)."""
        return vocab_permutation(tokenizer, self.cycles, *self.more_generators, name=self.name)

    def phrase_action(self) -> PhrasePermutation:
        """The group acting on text by substituting whole phrases (any number of tokens)."""
        return phrase_permutation(self.cycles, *self.more_generators, name=self.name)

    def action_at(self, level: str, tokenizer) -> TokenPermutation | PhrasePermutation:
        """The action at ``level``: ``token``, ``phrase``, or ``auto`` (token when every swap word is one token)."""
        check_name("level", level, LEVELS)
        if level == "phrase":
            return self.phrase_action()
        try:
            return self.action(tokenizer)
        except VocabularyError:
            if level == "token":
                raise
            return self.phrase_action()


def _folder():
    try:
        return resources.files("equinlp.resources") / "groups"
    except ModuleNotFoundError:  # a source checkout on PYTHONPATH, not installed: data/ sits beside the package
        return Path(__file__).parents[1] / "data" / "groups"


def word_group_names() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in _folder().iterdir() if p.name.endswith(".json"))


def word_group(name: str) -> WordGroup:
    """A named group (``gender``, ``race`` (3-cycle), ``race2`` (Black↔White), ``orientation``, ...) or the group
    in a JSON file of that format (a name ending in ``.json``): every command that takes a group takes a file."""
    if name.endswith(".json"):
        return read_word_group(Path(name))
    path = _folder() / f"{name}.json"
    if not path.is_file():
        raise UnknownName("group", name, word_group_names(), hint="or a group file NAME.json (see data/groups)")
    return read_word_group(path)


def read_word_group(path) -> WordGroup:
    """Read one group file (the format of ``data/groups/*.json``); every problem is an error naming the file."""
    try:
        raw = json.loads(read_text_file(path, "group file"))
    except json.JSONDecodeError as error:
        raise EquinlpError(f"group file {path} is not valid JSON ({error})") from None
    missing = [key for key in ("name", "description", "source", "cycles") if key not in raw] if isinstance(raw, dict) else []
    if not isinstance(raw, dict) or missing:
        raise EquinlpError(f"group file {path} needs the keys name, description, source, cycles (missing: {missing or 'all'})")
    try:
        return WordGroup(
            name=raw["name"],
            description=raw["description"],
            source=raw["source"],
            cycles=_cycles(raw["cycles"]),
            general_words=tuple(raw.get("general_words", ())),
            subjects=tuple(raw.get("subjects", ())),
            more_generators=tuple(_cycles(generator) for generator in raw.get("more_generators", [])),
            article=raw.get("article", "The"),
        )
    except VocabularyError as err:
        raise VocabularyError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise EquinlpError(f"group file {path}: cycles must be lists of words, e.g. [['man', 'woman']] ({err})") from None


def _cycles(raw: list) -> Cycles:
    """Cycles from JSON: a list of lists of words (a string anywhere else is a mistake named in the error)."""
    if not isinstance(raw, list) or not all(isinstance(c, list) and all(isinstance(w, str) for w in c) for c in raw):
        raise TypeError(f"got {json.dumps(raw, ensure_ascii=False)}")
    return tuple(tuple(cycle) for cycle in raw)
