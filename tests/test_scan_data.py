from collections import Counter

import pytest

from equinlp.apps.scan.grammar import all_commands, interpret
from equinlp.apps.scan.splits import SPLITS, export_split, format_line, scan_dataset, scan_split

SIZES = {
    "simple": (16728, 4182),
    "addprim_jump": (14670, 7706),
    "addprim_turn_left": (21890, 1208),
    "length": (16990, 3920),
    "template_around_right": (15225, 4476),
}


def test_grammar_size_and_longest_output():
    examples = all_commands()
    assert len(examples) == len(set(examples)) == 20910
    assert max(len(a.split()) for _, a in examples) == 48


@pytest.mark.parametrize(
    "command, actions",
    [
        ("jump", "I_JUMP"),
        ("turn left", "I_TURN_LEFT"),
        ("walk right twice", "I_TURN_RIGHT I_WALK I_TURN_RIGHT I_WALK"),
        ("look opposite left", "I_TURN_LEFT I_TURN_LEFT I_LOOK"),
        ("turn opposite right", "I_TURN_RIGHT I_TURN_RIGHT"),
        ("run around left", "I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN"),
        ("turn around right", "I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT"),
        ("jump and walk thrice", "I_JUMP I_WALK I_WALK I_WALK"),
        ("jump after walk thrice", "I_WALK I_WALK I_WALK I_JUMP"),
        ("look twice after turn left", "I_TURN_LEFT I_LOOK I_LOOK"),
    ],
)
def test_semantics_on_hand_checked_commands(command, actions):
    assert interpret(command) == actions


@pytest.mark.parametrize("name", SPLITS)
def test_split_sizes_match_the_official_files(name):
    split = scan_split(name)
    assert (len(split["train"]), len(split["test"])) == SIZES[name]


def test_split_contents_as_multisets():
    jump = scan_split("addprim_jump")
    train = Counter(c for c, _ in jump["train"])
    assert train["jump"] == 1467 and sum(train.values()) == 13203 + 1467
    assert all("jump" not in c.split() for c in train if c != "jump")
    assert all("jump" in c.split() and c != "jump" for c, _ in jump["test"])
    turn = Counter(c for c, _ in scan_split("addprim_turn_left")["train"])
    assert turn["turn left"] == 2189
    around = scan_split("template_around_right")
    assert all("around right" in c and "turn around right" not in c for c, _ in around["test"])
    assert not any("around right" in c for c, _ in around["train"])
    length = scan_split("length")
    assert max(len(a.split()) for _, a in length["train"]) == 22 and min(len(a.split()) for _, a in length["test"]) == 24


def test_simple_split_is_a_seeded_redraw():
    first, second = scan_split("simple"), scan_split("simple")
    assert first == second and not set(first["train"]) & set(first["test"])


def test_export_writes_the_official_format_and_datasets_load(tmp_path):
    paths = export_split("addprim_jump", tmp_path)
    lines = paths["test"].read_text().splitlines()
    assert len(lines) == 7706 and lines[0] == format_line(scan_split("addprim_jump")["test"][0])
    assert lines[0].startswith("IN: ") and " OUT: I_" in lines[0]
    dataset = scan_dataset("template_around_right")
    assert dataset["test"].num_rows == 4476 and dataset["train"].column_names == ["commands", "actions"]


def test_group_coverage_bounds_what_symmetrization_can_reach():
    from equinlp.apps.scan.coverage import _orbit, coverage

    assert _orbit("jump left and run twice", ("jump", "run")) == ["jump left and run twice", "run left and jump twice"]
    jump = coverage("addprim_jump", "verb")
    assert round(jump["reachable"] * jump["test"]) == 5942  # commands with both jump and run stay out of reach
    assert coverage("addprim_jump", "verb4")["reachable"] == 1.0
    around = coverage("template_around_right", "direction")
    assert round(around["reachable"] * around["test"]) == 3756  # "around right ... around left" stays out of reach


def test_reachable_marks_each_test_command_in_order():
    from equinlp.apps.scan.coverage import reachable

    reached = reachable("template_around_right", "direction")
    commands = [command for command, _ in scan_split("template_around_right")["test"]]
    assert len(reached) == len(commands) and sum(reached) == 3756
    train = {command for command, _ in scan_split("template_around_right")["train"]}
    first_out = commands[reached.index(False)]
    assert first_out.replace("left", "@").replace("right", "left").replace("@", "right") not in train
