import pytest
import torch

import equinlp as eq
from equinlp.symmetry.wordgroups import WordGroup, read_word_group, word_group, word_group_names
from equinlp.testing import bpe_tokenizer

CORPUS = [
    "The man said that he was kind. The woman said that she was kind. He and She went. The chairwoman spoke.",
    "The Black person and the White person and the Asian person.",
] * 50


@pytest.fixture(scope="module")
def bpe():
    return bpe_tokenizer(CORPUS, vocab_size=400)


def test_swaps_each_form_the_tokenizer_writes_as_one_token(bpe):
    action = eq.vocab_permutation(bpe, [("man", "woman"), ("he", "she")])
    ids = bpe(" man", add_special_tokens=False)["input_ids"] + bpe(" she", add_special_tokens=False)["input_ids"]
    swapped = action.ids.act(torch.tensor(ids), 1)
    assert bpe.decode(swapped) == " woman he"
    he, she = bpe.convert_tokens_to_ids(["He", "She"])  # capitalised sentence starts are swapped too
    assert action.ids.act(torch.tensor([he]), 1).item() == she
    assert not any("Man" in line for line in action.description)  # 'Man' and 'Woman' are several tokens
    partial = eq.vocab_permutation(bpe, [("he", "chairwoman")])  # 'He' is one token, 'Chairwoman' is not
    assert any(line.startswith("skipped 'He' -> 'Chairwoman'") for line in partial.description)
    assert partial.ids.act(torch.tensor([he]), 1).item() == he  # a form that cannot be swapped stays fixed


def test_three_cycle_goes_in_the_given_direction(bpe):
    action = eq.vocab_permutation(bpe, [("Black", "White", "Asian")])
    black, white, asian = (bpe(f" {w}", add_special_tokens=False)["input_ids"][0] for w in ("Black", "White", "Asian"))
    assert action.group.order == 3
    assert action.ids.act(torch.tensor([black, white, asian]), 1).tolist() == [white, asian, black]


def test_multi_token_word_is_refused_with_its_pieces(bpe):
    with pytest.raises(eq.VocabularyError, match=r"' his' -> \['Ġ', 'h', 'i', 's'\]"):
        eq.vocab_permutation(bpe, [("man", "woman"), ("his", "her")])
    with pytest.raises(eq.VocabularyError, match="chairman"):
        eq.vocab_permutation(bpe, [("chairman", "chairwoman")])


def test_word_list_that_is_not_one_to_one_is_refused(tok):
    with pytest.raises(eq.VocabularyError, match="not one-to-one: 'her'"):
        eq.vocab_permutation(tok, [("her", "his"), ("her", "him")])
    with pytest.raises(eq.VocabularyError, match="at least two words"):
        eq.vocab_permutation(tok, [("man",)])


@pytest.mark.parametrize("generators", [[[]], [[("man", "woman")], []]], ids=["empty", "empty-second"])
def test_empty_word_list_is_refused_not_trivial(tok, generators):
    with pytest.raises(eq.VocabularyError, match="no word cycles"):
        eq.vocab_permutation(tok, *generators)


def test_group_file_without_cycles_is_refused(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text('{"name": "empty", "description": "", "source": "", "cycles": []}')
    with pytest.raises(eq.VocabularyError, match=r"empty\.json.*no word cycles"):
        read_word_group(path)
    with pytest.raises(eq.VocabularyError, match="no word cycles"):
        WordGroup("empty", "", "", cycles=())


def test_generators_close_into_a_product(tok):
    action = eq.vocab_permutation(tok, [("man", "woman")], [("Black", "White", "Asian")])
    assert action.group.order == 6


def test_pair_shares_one_group(tok):
    in_action, out_action = eq.vocab_permutation_pair(tok, [("jump", "run")], tok, [("I_JUMP", "I_RUN")])
    assert in_action.group == out_action.group
    jump, run, i_jump, i_run = tok.convert_tokens_to_ids(["jump", "run", "I_JUMP", "I_RUN"])
    assert in_action.ids.act(torch.tensor([jump]), 1).item() == run
    assert out_action.ids.act(torch.tensor([i_jump]), 1).item() == i_run


def test_shipped_word_groups_load_and_build(tok):
    assert {"gender", "race", "race2", "orientation"} <= set(word_group_names())
    race = word_group("race")
    assert race.cycles == (("Black", "White", "Asian"),) and "Asian person" in race.subjects
    assert "her" in word_group("gender").general_words  # kept out of the permutation
    assert race.action(tok).group.order == 3
    assert word_group("race_s3").action(tok).group.order == 6  # two generators: a swap and a 3-cycle give S3
    with pytest.raises(ValueError, match="unknown group 'caste'"):
        word_group("caste")
