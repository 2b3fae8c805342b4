"""Phrase-level groups: a group action on text, for phrases of any number of tokens."""

import itertools

import pytest

from equinlp.errors import EquinlpError
from equinlp.symmetry.phrases import phrase_permutation

NAMES = [("Lakisha Washington", "Emily Walsh", "Latoya Robinson")]
TEXTS = [
    "Lakisha Washington met Emily Walsh.",
    "Emily Walsh, not Latoya Robinson, said: Lakisha Washington!",
    "Emily Walshington and xEmily Walsh are not names here.",
    "no names at all",
    "",
]


def test_a_cycle_of_names_is_a_group_action_on_text():
    act = phrase_permutation(NAMES)
    assert act.group.order == 3
    assert act.act("Lakisha Washington met Emily Walsh.", 1) == "Emily Walsh met Latoya Robinson."
    for text, g, h in itertools.product(TEXTS, range(3), range(3)):
        assert act.act(act.act(text, h), g) == act.act(text, int(act.group.mul[g, h]))
    assert act.act(TEXTS[2], 1) == TEXTS[2]  # inside longer words: untouched


def test_canonical_frames_agree_across_an_orbit():
    act = phrase_permutation(NAMES, [("Lakisha Washington", "Emily Walsh")])  # S3
    assert act.group.order == 6
    text = "Lakisha Washington met Emily Walsh."
    c, k = act.canonical(text)
    for g in range(6):
        other = act.act(text, g)
        c2, k2 = act.canonical(other)
        assert c2 == c and act.act(other, k2) == c
    assert act.mask(text) == act.mask(act.act(text, 3)) == "XYZ met XYZ."


@pytest.mark.parametrize(
    "cycles, message",
    [
        ([("Black", "Black person")], "occurs inside phrase"),
        ([("Emily", " Greg")], "must start and end with a letter"),
        ([("Emily", "Greg"), ("Emily", "Jamal")], "listed twice"),
        ([("Emily",)], "at least two phrases"),
        ([], "has no cycles"),
    ],
)
def test_bad_phrase_lists_name_the_culprit(cycles, message):
    with pytest.raises(EquinlpError, match=message):
        phrase_permutation(cycles)
