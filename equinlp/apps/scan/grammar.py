"""SCAN's phrase-structure grammar and its interpretation, generated exactly (no download).

    C -> S | S and S | S after S              [[a and b]] = [[a]] [[b]];  [[a after b]] = [[b]] [[a]]
    S -> V | V twice | V thrice               repeat 1 / 2 / 3 times
    V -> U | D | D' opposite dir | D' around dir,   D' in U ∪ {turn}
    D -> U left | U right | turn left | turn right
    U -> walk | look | run | jump             -> I_WALK I_LOOK I_RUN I_JUMP

``[[x dir]] = TURN_dir [[x]]``, ``[[x opposite dir]] = TURN_dir TURN_dir [[x]]``,
``[[x around dir]] = (TURN_dir [[x]]) × 4``; "turn" adds no action of its own.
V has 34 forms, S 102, C 102 + 2·102² = 20,910 commands; the longest output has 48 actions.
"""

from __future__ import annotations

from collections.abc import Iterator

Example = tuple[str, str]  # (command, actions), e.g. ("jump twice", "I_JUMP I_JUMP")

PRIMITIVES = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
DIRECTIONS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
IN_WORDS = ("walk", "look", "run", "jump", "turn", "left", "right", "opposite", "around", "twice", "thrice", "and", "after")
OUT_WORDS = ("I_WALK", "I_LOOK", "I_RUN", "I_JUMP", "I_TURN_LEFT", "I_TURN_RIGHT")


def _v_phrases() -> Iterator[tuple[list[str], list[str]]]:
    for u, action in PRIMITIVES.items():
        yield [u], [action]
    movers = [([u], [a]) for u, a in PRIMITIVES.items()] + [(["turn"], [])]
    for words, actions in movers:
        for d, turn in DIRECTIONS.items():
            yield words + [d], [turn] + actions
    for words, actions in movers:
        for d, turn in DIRECTIONS.items():
            yield words + ["opposite", d], [turn, turn] + actions
    for words, actions in movers:
        for d, turn in DIRECTIONS.items():
            yield words + ["around", d], ([turn] + actions) * 4


def _s_phrases() -> list[tuple[list[str], list[str]]]:
    phrases = []
    for words, actions in _v_phrases():
        phrases.append((words, actions))
        phrases.append((words + ["twice"], actions * 2))
        phrases.append((words + ["thrice"], actions * 3))
    return phrases


def all_commands() -> list[Example]:
    """Every SCAN command with its action sequence, in a fixed order (20,910 pairs)."""
    s = _s_phrases()
    examples = [(" ".join(w), " ".join(a)) for w, a in s]
    for w1, a1 in s:
        for w2, a2 in s:
            examples.append((" ".join(w1 + ["and"] + w2), " ".join(a1 + a2)))
            examples.append((" ".join(w1 + ["after"] + w2), " ".join(a2 + a1)))
    return examples


def interpret(command: str) -> str:
    """The action sequence of one command (raises KeyError on a command outside the grammar)."""
    table = getattr(interpret, "_table", None)
    if table is None:
        table = interpret._table = dict(all_commands())  # type: ignore[attr-defined]
    return table[command]
