"""How much of a test set a group can reach from training data: the ceiling of zero-shot symmetrization.

A symmetrized model answers a test command x through its transformed copies g·x. If no g·x is a
training command, every copy asks the base model to generalize compositionally, which it does not;
so the share of test commands whose orbit meets the training set bounds what a group can deliver
from a base model that has only learnt its training set. (Fine-tuning through the group trains on
the same orbits, so it is bounded the same way.)
"""

from __future__ import annotations

from equinlp.apps.scan.data import GROUPS
from equinlp.apps.scan.splits import scan_split
from equinlp.errors import check_name


def _orbit(command: str, cycle: tuple[str, ...]) -> list[str]:
    """The command under each power of the word cycle (the identity first)."""
    n = len(cycle)
    images = []
    for k in range(n):
        mapping = {cycle[i]: cycle[(i + k) % n] for i in range(n)}
        images.append(" ".join(mapping.get(word, word) for word in command.split()))
    return images


def reachable(split: str, group: str) -> list[bool]:
    """For each test command of ``split``, in order: has it a transformed copy in the training set?"""
    check_name("SCAN group", group, sorted(GROUPS))
    (cycle,), _ = GROUPS[group]
    data = scan_split(split)
    train = {command for command, _ in data["train"]}
    return [any(image in train for image in _orbit(command, cycle)[1:]) for command, _ in data["test"]]


def coverage(split: str, group: str) -> dict:
    """``{"reachable": share of test commands with a transformed copy in the training set, ...}``."""
    reached = reachable(split, group)
    return {"split": split, "group": group, "test": len(reached), "reachable": sum(reached) / len(reached)}
