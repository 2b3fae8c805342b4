"""Gender text that reads right: pronouns swapped by role, generated forms, agreement errors and leaks measured."""

import logging

import pandas as pd
import pytest

from equinlp.apps.bias.agreement import agreement_errors, leaks
from equinlp.apps.bias.analysis import summarise
from equinlp.errors import EquinlpError
from equinlp.models.sequence import SequenceLevel
from equinlp.symmetry.phrases import PhrasePermutation, phrase_permutation, role_at
from equinlp.symmetry.wordgroups import plural, word_group
from equinlp.testing import tiny_causal_lm, word_tokenizer

GENDER = word_group("gender")
SWAPS = [  # (text, its swap): pronouns by role, capitals and plurals generated
    ("The man was known for his love for her.", "The woman was known for her love for him."),
    ("The woman gave him her book, and it was hers.", "The man gave her his book, and it was his."),
    ("Her car is his.", "His car is hers."),
    ("She told him to stop.", "He told her to stop."),
    ("He gave her a book.", "She gave him a book."),
    ("His wife worked as a waitress.", "Her husband worked as a waiter."),
    ("The Businessmen and their wives", "The Businesswomen and their husbands"),
    ("her very own", "his very own"),
    ("Manchester and human", "Manchester and human"),  # inside words: untouched
]
CORPUS = [  # continuations of the kind the models write
    " was known for his love for her family and friends.",
    " worked as a nurse at her local hospital, where she met him.",
    " was regarded as the best in his field; the prize was his.",
    " had a job as a waiter, and his wife helped him.",
    " earned money by selling her paintings to her neighbours.",
    " was described as a kind man who loved his children.",
]


@pytest.mark.parametrize("text, swapped", SWAPS)
def test_pronouns_are_swapped_by_their_role(text, swapped):
    action = GENDER.phrase_action()
    assert action.act(text, 1) == swapped
    assert action.act(swapped, 1) == text  # an involution on these texts
    assert action.round_trips(text) and action.mask(text) == action.mask(swapped)


def test_the_role_swap_is_an_involution_on_generated_texts_and_says_where_english_is_ambiguous():
    action = GENDER.phrase_action()
    for subject in ("The man", "The woman"):
        for continuation in CORPUS:
            text = subject + continuation
            assert action.round_trips(text), text
    assert not action.round_trips("He gave him money.")  # -> "She gave her money" (her: a determiner)
    assert action.mask("He gave him money.") == action.mask(action.act("He gave him money.", 1))  # masked: still exact


PROMPT_FINAL = [  # (text, its swap) where nothing follows the last pronoun: the role is read from the word before
    ("The woman said that her", "The man said that his"),  # a clause's subject: a determiner ('him' cannot stand there)
    ("The man knew that his", "The woman knew that her"),
    ("The woman was sad because her", "The man was sad because his"),
    ("The man left. His", "The woman left. Her"),  # a new sentence
    ("When she arrived, her", "When he arrived, his"),
    ("Her", "His"),
    ("The woman went to her", "The man went to him"),  # after a preposition or a verb: on its own
    ("The man went to his", "The woman went to hers"),
    ("The woman walked with her", "The man walked with him"),
    ("The man saw him", "The woman saw her"),
    ("The man saw hers", "The woman saw his"),
    ("The woman and her", "The man and him"),
    ("The man and his", "The woman and hers"),
    ("The woman saw her.", "The man saw him."),  # punctuation follows: on its own
    ("The man saw his.", "The woman saw hers."),
    ("The woman said that her ", "The man said that his "),  # trailing space: still nothing follows
]


@pytest.mark.parametrize("text, swapped", PROMPT_FINAL)
def test_a_last_pronoun_takes_its_role_from_the_word_before(text, swapped):
    action = GENDER.phrase_action()
    assert action.act(text, 1) == swapped
    assert action.act(swapped, 1) == text and action.round_trips(text)


def test_a_last_pronoun_that_cannot_map_back_is_named():
    """After a clause opener only the determiner pairing her <-> his is an involution: 'that him' is not English and
    'that hers' (rare) becomes 'that his', read back as 'that her'. Every text-final his/her is a guess, named."""
    action = GENDER.phrase_action()
    for text in ("The man said that him", "The woman said that hers"):
        assert not action.round_trips(text)
        assert "does not map back" in action.final_reading(text)
    note = action.final_reading("The woman walked with her")
    assert "'her'" in note and "after 'with'" in note and "on its own" in note and "'him'" in note
    assert "as a determiner" in action.final_reading("The man said that his")
    assert action.final_reading("The man saw him") is None  # one role: no guess
    assert action.final_reading("The man was known for his love") is None  # a following word shows the role
    assert action.final_reading("The man worked as") is None


def test_roles_read_the_next_word():
    assert role_at("her book", 3) == "determiner" and role_at("her.", 3) == "alone" and role_at("her to", 3) == "alone"
    assert role_at("said that her", 13) == "determiner" and role_at("saw her", 7) == "alone" and role_at("her", 3) == "determiner"
    with pytest.raises(EquinlpError, match="both as a plain phrase and as a role word"):
        phrase_permutation([("her", "him"), ("her@alone", "his@alone")])
    with pytest.raises(EquinlpError, match="role after '@'"):
        phrase_permutation([("her@object", "his@object")])


def test_forms_are_generated_not_listed():
    assert [plural(w) for w in ("man", "lady", "actress", "wife", "boy", "chairwoman")] == [
        "men", "ladies", "actresses", "wives", "boys", "chairwomen"
    ]  # fmt: skip
    phrases = set(GENDER.phrase_action().phrases)
    assert {"waitresses", "Waitresses", "Nieces", "Her@determiner", "His@alone"} <= phrases
    assert len(GENDER.words) >= 80  # every listed pair and its plural


def test_gender_decodes_at_the_sequence_level_by_default_and_names_what_token_level_drops(caplog):
    tok = word_tokenizer("The man woman he she his her him was known for himself herself Mr Mrs".split())
    assert isinstance(GENDER.action_at("auto", tok), PhrasePermutation)
    with caplog.at_level(logging.WARNING):
        action = GENDER.action_at("token", tok)
    assert action.group.order == 2 and "leaves out" in caplog.text and "waitress" in caplog.text


def test_sequence_level_continuations_keep_agreement_and_are_exact_swaps():
    words = "The man woman was known for his her him he she and loved a book it".split()
    tok = word_tokenizer(words)
    model = tiny_causal_lm(len(tok), seed=3).eval()
    action = GENDER.phrase_action()
    prompts = ["The man was known for", "The woman was known for"]
    for method in ("equitune", "equizero"):
        outs = SequenceLevel(model, tok, action, method).generate(prompts, seed=[0, 0], max_new_tokens=8, do_sample=True)
        assert action.mask(outs[0]) == action.mask(outs[1])
        if action.round_trips(outs[0]):
            assert outs[1] == action.act(outs[0], 1)


def test_agreement_errors_and_leaks_are_counted_per_sample():
    subjects = ["man", "woman", "man", "woman"]
    texts = [" was known for her love", " was known for her love", " worked as a waitress", " was his wife"]
    assert agreement_errors(GENDER, subjects, texts) == [True, False, False, True]
    masked = ["The XYZ worked as a maid", "The XYZ worked as a maid", "The XYZ was a XYZ", "The XYZ, sir"]
    assert leaks(GENDER, subjects, masked) == [True, False, False, True]
    assert agreement_errors(word_group("race"), ["Black person"], ["x"]) is None


def test_the_summary_reports_agreement_and_leak_rates_with_intervals():
    rows = []
    for seed in range(4):
        for subject in ("man", "woman"):
            rows.append({"axis": "gender", "context": "respect", "method": "equitune", "subject": subject,
                         "template": "t", "seed": seed, "vader_masked": 0.0, "vader_plain": 0.0,
                         f"vader_plain_as_{'woman' if subject == 'man' else 'man'}": 0.0, "vader_plain_as_man": 0.0,
                         "vader_plain_as_woman": 0.0, "perplexity": 1.0,
                         "agreement_error": seed == 0, "leak": False})  # fmt: skip
    text = pd.DataFrame(summarise(pd.DataFrame(rows), resamples=50)["text"]).set_index("measure")
    assert text.loc["agreement_error", "value"] == 0.25 and text.loc["leak", "value"] == 0
    assert text.loc["agreement_error", "low"] <= 0.25 <= text.loc["agreement_error", "high"]


def test_race4_cycles_four_groups_from_langfair():
    group = word_group("race4")
    action = group.phrase_action()
    assert action.group.order == 4
    assert action.act("The Hispanic person met two Asians.", 1) == "The Black person met two Hispanics."


def test_generate_names_how_a_last_pronoun_was_read_on_stderr(tmp_path, caplog):
    from equinlp.cli import main

    tok = word_tokenizer("The man woman said that his her him was known for".split())
    tiny_causal_lm(len(tok), seed=0).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    argv = ["generate", "--model", str(tmp_path / "model"), "--group", "gender", "--max-new-tokens", "2", "--json"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "The woman said that her"]) == 0
    lines = [r.getMessage() for r in caplog.records if "'her'" in r.getMessage()]
    assert len(lines) == 1 and "after 'that'" in lines[0] and "as a determiner" in lines[0] and "'his'" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "The woman was known for"]) == 0
    assert "no following word" not in caplog.text


def test_race_forms_are_generated_the_way_langfair_reads_race_words():
    """Plurals and lower-case plurals alone; lower-case singulars only before a person word (else mostly colours)."""
    race = word_group("race")
    action = race.phrase_action()
    text = "The Black person helped black people, two asian kids and the Whites; a black cat in white paint."
    swapped = "The White person helped white people, two black kids and the Asians; a black cat in white paint."
    assert action.act(text, 1) == swapped and action.act(swapped, 2) == text
    assert {"Blacks", "blacks", "asian person", "white women", "black families"} <= set(action.phrases)
    tok = word_tokenizer("The Black White Asian person was known for".split())
    assert isinstance(race.action_at("auto", tok), PhrasePermutation)  # 'black person' is several tokens
    race4 = word_group("race4").phrase_action()
    assert race4.act("a hispanic family and two latino men", 1) == "a black family and two latino men"  # latino: no partner
