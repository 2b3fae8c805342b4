import pytest
import torch

from equinlp.apps.scan.data import encode, scan_actions, tokenizers
from equinlp.apps.scan.equi import MAX_LENGTH, build, exact_match
from equinlp.apps.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.errors import EquinlpError
from equinlp.testing import check_equivariance, equivariance_error

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: more threads only contend on a shared machine

# No element of any group below fixes these commands: a fixed command must get an invariant output, and
# an output containing a swapped action would tie exactly there (see the README's limitations).
COMMANDS = [
    ("jump twice after run left", "I_TURN_LEFT I_RUN I_JUMP I_JUMP"),
    ("jump around right", "I_TURN_RIGHT I_JUMP I_TURN_RIGHT I_JUMP I_TURN_RIGHT I_JUMP I_TURN_RIGHT I_JUMP"),
    ("look opposite left and run", "I_TURN_LEFT I_TURN_LEFT I_LOOK I_RUN"),
]
# The decoding rules and cells besides the defaults on a GRU, which the matrix (test_equivariance_matrix.py) checks
# for every method, group and dtype.
VARIANTS = [
    ("equitune", {"equitune_decoding": "per-copy"}, "gru"),
    ("equizero", {"selection": "step"}, "gru"),
    ("equizero", {"equizero_score": "decoded"}, "gru"),
    ("equitune", {}, "rnn"),
    ("equitune", {}, "lstm"),
]


@pytest.fixture(scope="module")
def data():
    in_tok, out_tok = tokenizers()
    return in_tok, out_tok, encode(COMMANDS, in_tok, out_tok)


def module_for(method, options, cell, group, in_tok, out_tok, dtype=torch.float64):
    torch.manual_seed(0)
    model = AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok), cell=cell, dropout=0.0))
    for p in model.parameters():  # larger weights: clear-cut greedy choices
        torch.nn.init.normal_(p, std=0.5)
    module = build(method, model, scan_actions(group, in_tok, out_tok), **options)
    if method == "lambda":
        torch.nn.init.normal_(module.aggregator.weight_net.net[-1].weight, std=2.0)
    return module.to(dtype).eval()


@pytest.mark.parametrize("method, options, cell", VARIANTS)
def test_each_decoding_rule_and_cell_is_exactly_equivariant(method, options, cell, data):
    """Bit for bit in float32 and float64: commands fold in their canonical frames (equinlp/symmetry/frames.py), so packed RNN
    batches are the same whichever image of a command comes in."""
    in_tok, out_tok, batch = data
    for dtype in (torch.float32, torch.float64):
        assert_equivariant_scan(module_for(method, options, cell, "verb4", in_tok, out_tok, dtype), batch)


def assert_equivariant_scan(module, batch):
    """Greedy decoding token for token, and the log-probabilities of the targets exactly, under the actions the
    module declares."""
    in_action, out_action = module.in_action, module.out_action
    decoded = equivariance_error(module.decode, (in_action.ids, None), out_action.ids, (batch.src, batch.mask))
    assert set(decoded.values()) == {0.0}, decoded
    logp = check_equivariance(module, (batch.src, batch.mask, batch.tgt_in))
    assert set(logp.values()) == {0.0}, logp


def test_the_base_model_is_not_equivariant(data):
    in_tok, out_tok, batch = data
    module = module_for("base", {}, "gru", "trivial", in_tok, out_tok)
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


def reference_rows(model, in_action, out_action, src, mask):
    """The reference code's decoding of one command ``src [S]``, copy by copy (batch 1, a Python loop over g):
    ``[G, 50, V]`` log-probs pulled back to the command's frame, zero rows after each copy's EOS."""
    from equinlp.models.tokenizers import BOS, EOS

    rows = torch.zeros(in_action.group.order, MAX_LENGTH, model.config.out_vocab, dtype=torch.float64)
    for g in range(in_action.group.order):
        memory, state = model.encode(in_action.table[g][src][None], mask[None])
        token = torch.tensor([BOS])
        for t in range(MAX_LENGTH):
            logits, _, state = model.step(token, state, memory, mask[None])
            logp = logits.log_softmax(-1)[0]
            rows[g, t] = logp[out_action.table[g]]  # entry v: the copy's score for g·v
            token = logp.argmax(-1, keepdim=True)
            if token.item() == EOS:
                break
    return rows


def up_to_eos(tokens):
    from equinlp.models.tokenizers import EOS

    tokens = tokens.tolist()
    return tokens[: tokens.index(EOS) + 1] if EOS in tokens else tokens


@pytest.mark.parametrize("group", ["verb", "verb4"])
def test_paper_score_picks_the_copy_the_reference_picks(group, data):
    """The reference's top1 rule: the highest mean max-probability over all 50 rows, zero rows (1/V) included."""
    in_tok, out_tok, batch = data
    module = module_for("equizero", {"equizero_score": "paper"}, "gru", group, in_tok, out_tok)
    decoded = module.decode(batch.src, batch.mask)
    for b in range(len(batch.src)):
        rows = reference_rows(module.model, module.in_action, module.out_action, batch.src[b], batch.mask[b])
        best = rows.softmax(-1).amax(-1).mean(-1).argmax()
        assert up_to_eos(decoded[b]) == up_to_eos(rows[best].argmax(-1))


@pytest.mark.parametrize("group", ["verb", "verb4"])
def test_per_copy_equitune_averages_positions_as_the_reference(group, data):
    in_tok, out_tok, batch = data
    module = module_for("equitune", {"equitune_decoding": "per-copy"}, "gru", group, in_tok, out_tok)
    decoded = module.decode(batch.src, batch.mask)
    for b in range(len(batch.src)):
        rows = reference_rows(module.model, module.in_action, module.out_action, batch.src[b], batch.mask[b])
        assert up_to_eos(decoded[b]) == up_to_eos(rows.mean(0).argmax(-1))


def test_the_selection_rules_differ_where_lengths_differ(data):
    """On a random network the two scores do not always agree (the paper's favours the longer output)."""
    in_tok, out_tok, batch = data
    picks = {}
    for score in ("decoded", "paper"):
        module = module_for("equizero", {"equizero_score": score}, "gru", "verb4", in_tok, out_tok)
        picks[score] = [up_to_eos(row) for row in module.decode(batch.src, batch.mask)]
    assert picks["decoded"] != picks["paper"]


@pytest.mark.parametrize(
    "method, options",
    [
        ("equizero", {"equizero_score": "paper", "proxy": "entropy"}),
        ("equizero", {"equizero_score": "best"}),
        ("equitune", {"equitune_decoding": "alone"}),
        ("lambda", {"selection": "position"}),
    ],
)
def test_decoding_options_are_checked(method, options, data):
    in_tok, out_tok, _ = data
    with pytest.raises(ValueError):
        module_for(method, options, "gru", "verb", in_tok, out_tok)


def test_equizero_defaults_to_the_paper_rule_and_older_runs_read_as_decoded():
    from equinlp.apps.scan.task import ScanConfig
    from equinlp.harness.options import defaults

    assert ScanConfig().equizero_score == "paper"
    assert ScanConfig(proxy="entropy").equizero_score == "decoded"  # the paper's rule is max-probability's
    with pytest.raises(EquinlpError, match="--proxy max_prob"):
        ScanConfig(proxy="entropy", equizero_score="paper")
    assert defaults(ScanConfig)["equizero_score"] == "decoded"  # envelopes written before the option


def test_build_picks_the_rule_its_proxy_defines():
    in_tok, out_tok = tokenizers()
    model = AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok)))
    actions = scan_actions("verb", in_tok, out_tok)
    assert build("equizero", model, actions).score == "paper"
    assert build("equizero", model, actions, proxy="entropy").score == "decoded"
