"""Named demographic word groups, read from the JSON files in ``data/groups`` (shipped as equinlp.resources).

Adding a group is adding one JSON file; ``word_group(name)`` finds it, and ``--group NAME`` in the CLI. A
file elsewhere works by its path: ``--group my_groups/caste.json``, ``bias run --axis my_groups/caste.json``.

A file lists each word once, in lower case where it is a common word: the capitalised forms (sentence
starts) are generated, and so are the plurals of the words under ``nouns`` (:func:`plural`), and with
``person_words`` the plural and lower-case forms of capitalised words (:func:`lower_case_forms`: Blacks, blacks,
black person, black people). ``roles``
lists words swapped by the role they play (:mod:`equinlp.symmetry.phrases`): 'her' is 'his' before a noun and
'him' on its own. No token permutation can carry those, so a group with roles is decoded at the sequence
level under ``--level auto``, where the text keeps pronoun agreement.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from equinlp.errors import EquinlpError, UnknownName, check_name
from equinlp.files import read_text_file
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.catalog import LEVELS, group_file, groups_folder, word_group_names  # noqa: F401 (re-exported)
from equinlp.symmetry.phrases import PhrasePermutation, phrase_permutation, surface
from equinlp.symmetry.vocab import VocabularyError, several_tokens, vocab_permutation

Cycles = tuple[tuple[str, ...], ...]

log = logging.getLogger(__name__)


IRREGULAR_PLURALS = {"wife": "wives", "hero": "heroes", "child": "children", "person": "people"}


def plural(noun: str) -> str:
    """The English plural of a gendered noun: man -> men, lady -> ladies, actress -> actresses, wife -> wives."""
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith("man"):
        return noun[:-3] + "men"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def with_capitals(cycles: Cycles) -> Cycles:
    """``cycles`` and, for each cycle of lower-case words, the same cycle capitalised (``man`` -> ``Man``), unless a
    capitalised form or its first word is listed already ('black person' is not capitalised: 'Black' is swapped)."""
    listed = {surface(word) for cycle in cycles for word in cycle}
    capitals = []
    for cycle in cycles:
        capital = tuple(word[:1].upper() + word[1:] for word in cycle)
        firsts = {surface(w) for w in capital} | {w.split()[0] for w in capital}
        if all(word[:1].islower() for word in cycle) and not listed & firsts:
            capitals.append(capital)
    return (*cycles, *capitals)


def lower_case_forms(cycles: Cycles, person_words: tuple[str, ...]) -> Cycles:
    """For each cycle of capitalised words (Black, White, Asian): their plurals (Blacks), the lower-case plurals
    (blacks), and the lower-case words before each person word and its plural (black person, black people). A
    lower-case singular alone is left alone: lower-case black and white are mostly colours (langfair's race words
    that require context). Nothing without ``person_words``."""
    if not person_words:
        return ()
    capitalised = [cycle for cycle in cycles if all(word[:1].isupper() for word in cycle)]
    heads = dict.fromkeys((*person_words, *map(plural, person_words)))
    forms = [tuple(map(plural, cycle)) for cycle in capitalised]
    forms += [tuple(plural(word).lower() for word in cycle) for cycle in capitalised]
    forms += [tuple(f"{word.lower()} {head}" for word in cycle) for cycle in capitalised for head in heads]
    return tuple(forms)


@dataclass(frozen=True)
class WordGroup:
    """A named word group: ``cycles`` is one generator; ``more_generators`` (optional) add more, as in
    :func:`~equinlp.symmetry.vocab.vocab_permutation` (``race_s3``: a swap and a 3-cycle generate S3)."""

    name: str
    description: str
    source: str
    cycles: Cycles
    general_words: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    more_generators: tuple[Cycles, ...] = ()
    article: str = "The"  # what precedes a subject in a prompt ("" for names)
    roles: tuple[tuple[str, Cycles], ...] = ()  # (role, cycles) swapped with the first generator, by role
    nouns: Cycles = ()  # cycles of singular nouns, swapped with the first generator, with their plurals
    pronouns: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (subject, its pronouns): agreement errors
    inventory: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (subject, more words of its side): leaks
    person_words: tuple[str, ...] = ()  # nouns after which lower-case forms are swapped (:func:`lower_case_forms`)

    def side_words(self) -> dict[str, frozenset[str]]:
        """``{subject: every word of its side}``, lower case: the words at the subject's place in each cycle of the
        first generator (nouns with plurals, role words), its pronouns and its ``inventory`` (empty without one)."""
        if not self.inventory:
            return {}
        cycles = self.words + tuple(tuple(map(surface, c)) for _, cs in self.roles for c in cs)
        sides = {}
        for subject, extra in self.inventory:
            place = next((c.index(subject) for c in cycles if subject in c), None)
            listed = {c[place] for c in cycles if place is not None and len(c) > place}
            sides[subject] = frozenset(w.lower() for w in (*listed, *dict(self.pronouns).get(subject, ()), *extra))
        return sides

    @property
    def words(self) -> Cycles:
        """The first generator's word cycles: ``cycles``, then ``nouns`` and their plurals, then the lower-case forms
        of capitalised cycles (:func:`lower_case_forms`, with ``person_words`` only)."""
        plurals = tuple(tuple(map(plural, cycle)) for cycle in self.nouns)
        return self.cycles + self.nouns + plurals + lower_case_forms(self.cycles, self.person_words)

    def __post_init__(self) -> None:
        for cycles in (self.words, *self.more_generators):
            if not cycles:
                raise VocabularyError(f"word group {self.name!r} has no word cycles; list at least one, e.g. [['man', 'woman']]")
            words = [word for cycle in cycles for word in cycle]
            repeated = sorted({w for w in words if words.count(w) > 1})
            if repeated:  # a word in two places of one generator makes no permutation (her -> his / him)
                raise VocabularyError(f"word group {self.name!r} lists {repeated} more than once in one generator")

    def action(self, tokenizer) -> TokenPermutation:
        """The group acting on ``tokenizer``'s vocabulary (raises if a swap word is several tokens; role words are
        left alone, the paper's general words). Forms that are several tokens are named on stderr."""
        kept, dropped = self._single_token_cycles(tokenizer)
        if dropped and kept:  # none kept: vocab_permutation refuses, naming the pieces
            log.warning("group %s at token level leaves out (several tokens here): %s", self.name, ", ".join(dropped))
        action = vocab_permutation(tokenizer, kept or self.words, *self.more_generators, name=self.name)
        skipped = [line.removeprefix("skipped ") for line in action.description if line.startswith("skipped ")]
        if skipped:
            log.warning("group %s at token level leaves alone (several tokens): %s", self.name, "; ".join(skipped))
        return action

    def _single_token_cycles(self, tokenizer) -> tuple[Cycles, list[str]]:
        """The first generator's cycles whose words are one token each after a space, and the words left out."""
        kept, dropped = [], []
        for cycle in self.words:
            bad = several_tokens(tokenizer, cycle)
            if bad:
                dropped += bad
            else:
                kept.append(cycle)
        return tuple(kept), dropped

    def phrase_action(self) -> PhrasePermutation:
        """The group acting on text by substituting whole phrases (any number of tokens), role words by role,
        every lower-case cycle also capitalised."""
        tagged = tuple(tuple(f"{word}@{role}" for word in cycle) for role, cycles in self.roles for cycle in cycles)
        generators = (self.words + tagged, *self.more_generators)
        return phrase_permutation(*(with_capitals(g) for g in generators), name=self.name)

    def level_for(self, tokenizer) -> str:
        """What ``auto`` chooses: ``phrase`` for a group with role words or a swap word of several tokens, else ``token``."""
        several = any(several_tokens(tokenizer, cycle) for cycles in (self.words, *self.more_generators) for cycle in cycles)
        return "phrase" if self.roles or several else "token"

    def action_at(self, level: str, tokenizer) -> TokenPermutation | PhrasePermutation:
        """The action at ``level``: ``token``, ``phrase``, or ``auto`` (:meth:`level_for`)."""
        level = self.level_for(tokenizer) if check_name("level", level, LEVELS) == "auto" else level
        return self.phrase_action() if level == "phrase" else self.action(tokenizer)

    def subject_text(self, subject: str) -> str:
        """A subject as the prompts write it: after the group's article ("The man", "Lakisha Washington")."""
        return f"{self.article} {subject}".strip()

    def subject_elements(self, action: TokenPermutation | PhrasePermutation, tokenizer=None) -> dict[tuple[str, str], int]:
        """``{(a, b): g}`` for every two subjects: the (least) element of ``action``'s group that maps subject a, as
        the prompts write it, to b (a token-level action acts on ``tokenizer``'s ids of the text)."""

        def image(subject: str, g: int):
            text = self.subject_text(subject)
            if isinstance(action, PhrasePermutation):
                return action.act(text, g)
            return action.ids.act(torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"]), g).tolist()

        images = {s: [image(s, g) for g in range(action.group.order)] for s in self.subjects}
        elements = {}
        for a in self.subjects:
            for b in self.subjects:
                target = images[b][0]
                g = next((g for g, moved in enumerate(images[a]) if moved == target), None)
                if g is None:
                    raise EquinlpError(f"no element of the group maps subject {a!r} to {b!r}: list subjects that are swaps")
                elements[(a, b)] = g
        return elements


def word_group(name: str) -> WordGroup:
    """A named group (``gender``, ``race`` (3-cycle), ``race2`` (Black↔White), ``orientation``, ...) or the group
    in a JSON file of that format (a name ending in ``.json``): every command that takes a group takes a file."""
    if name.endswith(".json"):
        return read_word_group(Path(name))
    path = groups_folder() / f"{name}.json"
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
            roles=tuple((role, _cycles(cycles)) for role, cycles in raw.get("roles", {}).items()),
            nouns=_cycles(raw.get("nouns", [])),
            pronouns=_by_subject(raw.get("pronouns", {})),
            inventory=_by_subject(raw.get("inventory", {})),
            person_words=tuple(raw.get("person_words", ())),
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


def _by_subject(raw: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((subject, tuple(words)) for subject, words in raw.items())
