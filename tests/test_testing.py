"""The checks users get: equivariance_error for any function and action, and assert_equivariant for LMs."""

from types import SimpleNamespace

import pytest
import torch

import equinlp as eq
from equinlp.symmetry.actions import ImageTransform, Invariant, LinearAction
from equinlp.testing import TOLERANCE, equivariance_error, tiny_causal_lm, tiny_seq2seq

PROMPTS = ["the man said that he was", "the Black person worked as a"]


def zeros(group):
    return {g: 0.0 for g in range(group.order)}


def test_exactly_equivariant_functions_have_zero_error_for_every_action(s3, dtype):
    G = s3.group
    logits = torch.randn(2, 3, s3.vocab_size, dtype=dtype)
    ids = torch.randint(0, s3.vocab_size, (2, 3))
    image = torch.randn(2, 1, 5, 5, dtype=dtype)
    flip = LinearAction(eq.cyclic(2), torch.stack([torch.eye(3), -torch.eye(3)]))
    one_hot = lambda i: torch.nn.functional.one_hot(i, s3.vocab_size).to(dtype)  # noqa: E731
    assert equivariance_error(torch.tanh, s3.logits, s3.logits, logits) == zeros(G)  # pointwise on the vocab axis
    assert equivariance_error(one_hot, s3.ids, s3.logits, ids) == zeros(G)  # ids in, scores out
    assert equivariance_error(torch.square, ImageTransform("d4"), ImageTransform("d4"), image) == zeros(eq.dihedral(4))
    pooled = lambda x: x.amax((-2, -1))  # noqa: E731  # (a sum would add in another order: rounding)
    assert equivariance_error(pooled, ImageTransform("rot90"), Invariant(eq.cyclic(4)), image) == zeros(eq.cyclic(4))
    assert equivariance_error(lambda v: v**3, flip, flip, torch.randn(4, 3, dtype=dtype)) == zeros(flip.group)


def test_a_broken_function_shows_at_every_element_but_the_identity(s3, dtype):
    bias = torch.arange(s3.vocab_size, dtype=dtype)
    errors = equivariance_error(lambda z: z + bias, s3.logits, s3.logits, torch.zeros(1, s3.vocab_size, dtype=dtype))
    assert errors[0] == 0.0 and all(errors[g] > 0 for g in range(1, 6))
    top_row = lambda x: x[..., :1, :]  # noqa: E731
    image = torch.randn(1, 1, 4, 4, dtype=dtype)
    errors = equivariance_error(top_row, ImageTransform("rot90"), Invariant(eq.cyclic(4)), image)
    assert errors[0] == 0.0 and min(errors[g] for g in (1, 2, 3)) > TOLERANCE[dtype]


def test_tuple_inputs_shape_changes_and_dropout():
    ids, mask = torch.tensor([[1, 2, 3]]), torch.tensor([[0, 1, 1]])
    action = eq.vocab_permutation(eq.testing.word_tokenizer(), [("man", "woman")])
    masked = lambda i, m: i * m  # noqa: E731  # the mask is left alone (None)
    assert equivariance_error(masked, (action.ids, None), action.ids, (ids, mask)) == {0: 0.0, 1: 0.0}
    man = torch.tensor([[action.moved[0]]])
    grows = lambda i: i if torch.equal(i, man) else torch.cat([i, i], 1)  # noqa: E731
    assert equivariance_error(grows, action.ids, action.ids, man)[1] == float("inf")  # other shape: never equal
    dropout = torch.nn.Dropout(0.5).train()
    assert equivariance_error(dropout, Invariant(eq.cyclic(2)), Invariant(eq.cyclic(2)), torch.ones(64))[0] > 0


def test_unclear_actions_are_refused(swap, cycle3):
    x = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(TypeError, match="pass action.ids or action.logits"):
        equivariance_error(lambda i: i, swap, swap.ids, x)
    with pytest.raises(ValueError, match="one group"):
        equivariance_error(lambda i: i, swap.ids, cycle3.ids, x)
    with pytest.raises(ValueError, match="one actions for 2 inputs"):
        equivariance_error(lambda i, m: i, swap.ids, swap.ids, (x, x))


def test_s3_wrapper_is_equivariant_end_to_end(tok, s3):
    model = eq.equitune(tiny_causal_lm(len(tok)), s3)
    tok.padding_side = "left"
    x = tok(PROMPTS, return_tensors="pt", padding=True)
    result = eq.assert_equivariant(model, s3, x, tokenizer=tok, max_new_tokens=6)
    assert result["max_logit_diff"] <= 1e-5


def test_model_vocabulary_padded_past_the_tokenizer(tok, swap):
    padded = tiny_causal_lm(len(tok) + 7)  # GPT-2 / SmolLM2 style: more embedding rows than tokens
    x = tok(PROMPTS[:1], return_tensors="pt")
    eq.assert_equivariant(eq.equitune(padded, swap), swap, x, max_new_tokens=4)
    with pytest.raises(AssertionError, match="not equivariant"):  # and the base model still fails, not crashes
        eq.assert_equivariant(padded, swap, x, max_new_tokens=4)


class AlwaysMan:
    """Exactly equivariant logits (one-hot of the input), but generation always appends 'man'."""

    def __init__(self, tok):
        self.vocab, self.man = len(tok), tok.convert_tokens_to_ids("man")

    def __call__(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=torch.nn.functional.one_hot(input_ids, self.vocab).float())

    def generate(self, input_ids, attention_mask=None, **kwargs):
        return torch.cat([input_ids, torch.full_like(input_ids[:, :1], self.man)], 1)


def test_generation_failure_on_a_fixed_prompt_says_so(tok, swap):
    fixed = tok(["the person was"], return_tensors="pt")
    note = r"row 0:[\s\S]*the prompt is fixed by \(man woman\)\(he she\): a word and its swap tie exactly"
    with pytest.raises(AssertionError, match=note):
        eq.assert_equivariant(AlwaysMan(tok), swap, fixed, tokenizer=tok)
    moved = tok(["the man was"], return_tensors="pt")
    with pytest.raises(AssertionError, match="generation not equivariant") as failure:
        eq.assert_equivariant(AlwaysMan(tok), swap, moved, tokenizer=tok)
    assert "fixed" not in str(failure.value)


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_check_equivariance_reads_the_actions_a_wrapper_declares(family, tok, swap):
    """Keyword inputs as an HF model takes them: the token inputs take the wrapper's actions, masks none."""
    x = tok(["the man said that he was", "the woman was"], return_tensors="pt", padding=True)
    if family == "causal":
        model = eq.equitune(tiny_causal_lm(len(tok)), swap)
    else:
        model = eq.equitune(tiny_seq2seq(len(tok)), swap)
        x["decoder_input_ids"] = tok(["he was a man"], return_tensors="pt")["input_ids"].repeat(2, 1)
    assert set(eq.check_equivariance(model, dict(x)).values()) == {0.0}
    assert max(eq.check_equivariance(Declared(model.unwrap(), model), dict(x)).values()) > 0  # the base is not


class Declared(torch.nn.Module):
    """A base model under its wrapper's declared actions: the check can fail."""

    def __init__(self, base, wrapper):
        super().__init__()
        self.base, self.in_action, self.out_action = base, wrapper.in_action, wrapper.out_action
        self.token_inputs = wrapper.token_inputs

    def forward(self, **inputs):
        return self.base(**inputs)
