import pytest
import torch

from equinlp.scan.data import encode, scan_actions, tokenizers
from equinlp.scan.equi import build, exact_match
from equinlp.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.testing import TOLERANCE, equivariance_error

# No element of any group below fixes these commands: a fixed command must get an invariant output, and
# an output containing a swapped action would tie exactly there (see the README's limitations).
COMMANDS = [
    ("jump twice after run left", "I_TURN_LEFT I_RUN I_JUMP I_JUMP"),
    ("jump around right", "I_TURN_RIGHT I_JUMP I_TURN_RIGHT I_JUMP I_TURN_RIGHT I_JUMP I_TURN_RIGHT I_JUMP"),
    ("look opposite left and run", "I_TURN_LEFT I_TURN_LEFT I_LOOK I_RUN"),
]
VARIANTS = [("equitune", None), ("equizero", "step"), ("equizero", "sequence"), ("lambda", None)]


@pytest.fixture(scope="module")
def data():
    in_tok, out_tok = tokenizers()
    return in_tok, out_tok, encode(COMMANDS, in_tok, out_tok)


def module_for(method, selection, cell, group, in_tok, out_tok, dtype=torch.float64):
    torch.manual_seed(0)
    model = AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok), cell=cell, dropout=0.0))
    for p in model.parameters():  # larger weights: clear-cut greedy choices
        torch.nn.init.normal_(p, std=0.5)
    module = build(method, model, scan_actions(group, in_tok, out_tok), selection=selection)
    if method == "lambda":
        torch.nn.init.normal_(module.aggregator.weight_net.net[-1].weight, std=2.0)
    return module.to(dtype).eval()


@pytest.mark.parametrize("group", ["verb", "direction", "verb4"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("method, selection", VARIANTS)
def test_scan_models_are_exactly_equivariant(method, selection, cell, group, data, dtype):
    """Bit for bit in float32 and float64: commands fold in their canonical frames (equinlp/frames.py), so packed RNN
    batches are the same whichever image of a command comes in."""
    in_tok, out_tok, batch = data
    module = module_for(method, selection, cell, group, in_tok, out_tok, dtype)
    assert_equivariant_scan(module, module.in_action, module.out_action, batch)


def assert_equivariant_scan(module, in_action, out_action, batch, atol=0.0, **decode):
    """Greedy decoding token for token, and the log-probabilities of the targets (exactly, by default)."""
    decoded = equivariance_error(
        lambda src, mask: module.decode(src, mask, **decode), (in_action.ids, None), out_action.ids, (batch.src, batch.mask)
    )
    assert set(decoded.values()) == {0.0}, decoded
    x = (batch.src, batch.mask, batch.tgt_in)
    logp = equivariance_error(module, (in_action.ids, None, out_action.ids), out_action.logits, x)
    assert max(logp.values()) <= atol, logp


def test_the_base_model_is_not_equivariant(data):
    in_tok, out_tok, batch = data
    module = module_for("base", None, "gru", "trivial", in_tok, out_tok)
    in_action, out_action = scan_actions("verb", in_tok, out_tok)
    x = (batch.src, batch.mask, batch.tgt_in)
    errors = equivariance_error(module, (in_action.ids, None, out_action.ids), out_action.logits, x)
    assert errors[1] > 1e-2


def test_exact_match_compares_up_to_the_first_eos(data):
    _, _, batch = data
    target = batch.tgt_out.masked_fill(batch.tgt_out == -100, 0)
    assert exact_match(target, batch.tgt_out).all()
    wrong = target.clone()
    wrong[0, 0] = 4
    assert exact_match(wrong, batch.tgt_out).tolist() == [False, True, True]
    assert not exact_match(target[:, :2], batch.tgt_out).any()


@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_t5_through_the_core_wrapper_is_equivariant(method):
    from equinlp.scan.hf import HFSeq2Seq, joint_tokenizer, tiny_t5

    tok = joint_tokenizer()
    torch.manual_seed(0)
    t5 = tiny_t5(len(tok), width=32).eval()
    for p in t5.parameters():
        torch.nn.init.normal_(p, std=0.3)
    actions = scan_actions("verb", tok, tok)
    module = HFSeq2Seq(t5, actions, method, "max_prob").double().eval()
    if method == "lambda":
        torch.nn.init.normal_(module.aggregator.weight_net.net[-1].weight, std=2.0)
    # HFSeq2Seq applies log_softmax to the wrapper's logits in each row's own vocabulary order: rounding
    batch = encode(COMMANDS, tok, tok)
    assert_equivariant_scan(module, *actions, batch, atol=TOLERANCE[torch.float64], max_length=12)
