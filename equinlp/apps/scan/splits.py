"""The standard SCAN splits, rebuilt from the grammar: identical (as multisets) to the official files.

| split | train | test | rule |
|---|---|---|---|
| simple | 16,728 | 4,182 | a seeded 80/20 re-draw: the official random split cannot be reproduced |
| addprim_jump | 14,670 | 7,706 | test: commands with 'jump' but 'jump' itself; train: the rest + 'jump' × 1,467 |
| addprim_turn_left | 21,890 | 1,208 | test: with 'turn left' but 'turn left' itself; train: the rest + 'turn left' × 2,189 |
| length | 16,990 | 3,920 | train: at most 22 actions |
| template_around_right | 15,225 | 4,476 | test: with 'around right' and no 'turn around right' (1,209 commands are in neither) |

Line order differs from the official (shuffled) files; evaluation is order-free.
"""

from __future__ import annotations

import random
from pathlib import Path

from equinlp.apps.scan.grammar import Example, all_commands
from equinlp.errors import UnknownName
from equinlp.files import write_text_atomic

PRIMITIVE_REPEATS = {"addprim_jump": ("jump", 1467), "addprim_turn_left": ("turn left", 2189)}
SPLITS = ("simple", "addprim_jump", "addprim_turn_left", "length", "template_around_right")
SIMPLE_SEED = 0


def _has(command: str, phrase: str) -> bool:
    return f" {phrase} " in f" {command} "


def scan_split(name: str) -> dict[str, list[Example]]:
    """``{"train": [...], "test": [...]}`` of (command, actions) pairs."""
    examples = all_commands()
    if name == "simple":
        shuffled = examples[:]
        random.Random(SIMPLE_SEED).shuffle(shuffled)
        cut = int(0.8 * len(shuffled))
        return {"train": shuffled[:cut], "test": shuffled[cut:]}
    if name in PRIMITIVE_REPEATS:
        primitive, repeats = PRIMITIVE_REPEATS[name]
        test = [e for e in examples if _has(e[0], primitive) and e[0] != primitive]
        rest = [e for e in examples if not _has(e[0], primitive)]
        single = next(e for e in examples if e[0] == primitive)
        return {"train": rest + [single] * repeats, "test": test}
    if name == "length":
        return {
            "train": [e for e in examples if len(e[1].split()) <= 22],
            "test": [e for e in examples if len(e[1].split()) > 22],
        }
    if name == "template_around_right":
        return {
            "train": [e for e in examples if not _has(e[0], "around right")],
            "test": [e for e in examples if _has(e[0], "around right") and not _has(e[0], "turn around right")],
        }
    raise UnknownName("SCAN split", name, SPLITS)


def format_line(example: Example) -> str:
    """The official line format: ``IN: <command> OUT: <actions>``."""
    return f"IN: {example[0]} OUT: {example[1]}"


def export_split(name: str, out_dir: str | Path) -> dict[str, Path]:
    """Write ``train.txt`` and ``test.txt`` in the official format; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, examples in scan_split(name).items():
        paths[part] = write_text_atomic(out / f"{part}.txt", "".join(format_line(e) + "\n" for e in examples))
    return paths


def scan_dataset(name: str):
    """The split as an HF ``DatasetDict`` with the columns ``commands`` and ``actions`` (as on the hub)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {
            part: Dataset.from_dict({"commands": [c for c, _ in ex], "actions": [a for _, a in ex]})
            for part, ex in scan_split(name).items()
        }
    )
