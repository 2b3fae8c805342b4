"""One equivariance matrix: every equinlp wrapper kind × every registered method, both float precisions.

``check_equivariance(module, x)`` reads the actions each wrapper declares (``in_action``, ``out_action``) and
checks ``module(g·x) == g·module(x)`` for every element g of every group the kind takes, a non-abelian one
(S3 or D4) included:

- exactly (0.0 for every element) where the wrapper folds each row into its orbit's canonical frame: the HF
  language models, SCAN's ``EquiSCAN`` and ``CanonicalSCAN``; a wrapper that decodes (SCAN's) must also
  decode token for token;
- within ``TOLERANCE[dtype]`` where the copies run on transformed inputs whose arithmetic rounds otherwise
  (images, RL states, the log-softmax of SCAN's T5 adapter);
- ``base``, the trivial group's wrapper (the model itself), under the same group's actions is *not*
  equivariant: every row of the matrix can fail.

The per-app files keep what is their own: decoding rules, cells, architectures, copy weights, the G-seq2seq's
layer-wise equivariance (up to rounding: test_scan_gmodel.py) and the relaxed variants, equivariant off their
general words only (test_relaxed.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import torch
from test_scan_gmodel import FIXED, S3_COMMANDS, g_model, s3_on_three_verbs
from test_scan_models import COMMANDS
from torch import nn

import equinlp as eq
from equinlp.apps.rl.envs import ENVS, MOVES, Symmetry, env_spec
from equinlp.apps.rl.qnet import QNetwork, build_q
from equinlp.apps.scan.canonical import CanonicalSCAN
from equinlp.apps.scan.data import encode, scan_actions, tokenizers
from equinlp.apps.scan.equi import build as build_scan
from equinlp.apps.scan.hf import HFSeq2Seq, joint_tokenizer, tiny_t5
from equinlp.apps.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.apps.vision.clip import EquiCLIP, zero_shot_weights
from equinlp.apps.vision.wrap import InvariantClassifier
from equinlp.methods import registry
from equinlp.symmetry.actions import IMAGE_GROUPS, ImageTransform
from equinlp.symmetry.groups import dihedral
from equinlp.testing import TOLERANCE, check_equivariance, equivariance_error, tiny_causal_lm, tiny_seq2seq, word_tokenizer
from tests.fixtures import tiny_clip

pytestmark = pytest.mark.usefixtures("one_thread")

Inputs = torch.Tensor | dict[str, torch.Tensor]


@dataclass
class Case:
    """One wrapper under one group: ``module`` and its inputs ``x``; ``actions`` the group's (in, out) actions,
    which ``base`` is checked under; when the wrapper decodes, ``decode(src, mask) -> ids`` and the commands
    ``(src, mask)`` to decode (none that an element fixes: a word and its swap would tie there)."""

    module: nn.Module
    actions: tuple
    x: Inputs
    decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    commands: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass(frozen=True)
class Kind:
    """A wrapper kind: ``make(method, group) -> Case`` (float32; the test casts it) for each of ``groups``; ``exact``:
    error 0.0, else within ``TOLERANCE``."""

    make: Callable[[str, str], Case]
    groups: tuple[str, ...]
    exact: bool
    methods: tuple[str, ...] = registry.method_names(with_base=True)


class Declared(nn.Module):
    """``module`` (the ``base`` wrapper, the trivial group's) under the actions of a non-trivial group."""

    def __init__(self, module: nn.Module, in_action, out_action) -> None:
        super().__init__()
        self.module, self.in_action, self.out_action = module, in_action, out_action
        self.token_inputs = getattr(module, "token_inputs", None)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def spread_lambda(module: nn.Module) -> None:
    """A λ-net far from its uniform start (its last layer starts at zero), so that the weights matter."""
    net = getattr(getattr(module, "aggregator", None), "weight_net", None)
    if net is not None:
        nn.init.normal_(net.net[-1].weight, std=2.0)


# --- HF language models (EquiModel) ---------------------------------------------------------------------

LM_PROMPTS = {
    "Z2": ["the man said that he was", "the woman worked as a"],
    "Z3": ["the Black person worked as a", "the White man said that he was", "Asian people run twice"],
    "S3": ["the Black and White people worked as a", "White and Asian people said that"],
}
LM_TARGETS = {"Z2": "he was a man", "Z3": "I_JUMP I_RUN the", "S3": "the Black man was"}


def lm_action(tok, group: str, seq2seq: bool):
    """Z2 (man↔woman, he↔she), Z3 (a 3-cycle; on seq2seq another 3-cycle on the target side) or S3."""
    if group == "Z2":
        return eq.vocab_permutation(tok, [("man", "woman"), ("he", "she")])
    if group == "Z3" and seq2seq:
        return eq.vocab_permutation_pair(tok, [("Black", "White", "Asian")], tok, [("I_JUMP", "I_RUN", "I_WALK")])
    if group == "Z3":
        return eq.vocab_permutation(tok, [("Black", "White", "Asian")])
    return eq.vocab_permutation(tok, [("Black", "White")], [("Black", "White", "Asian")])


def hf_case(seq2seq: bool) -> Callable[[str, str], Case]:
    def make(method: str, group: str) -> Case:
        tok = word_tokenizer(padding_side="right" if seq2seq else "left")
        model = tiny_seq2seq(len(tok)) if seq2seq else tiny_causal_lm(len(tok), "llama")
        action = lm_action(tok, group, seq2seq)
        actions = action if isinstance(action, tuple) else (action, action)
        x = dict(tok(LM_PROMPTS[group], return_tensors="pt", padding=True))
        if seq2seq:
            x["decoder_input_ids"] = tok([LM_TARGETS[group]], return_tensors="pt")["input_ids"].repeat(len(LM_PROMPTS[group]), 1)
        return Case(eq.wrap(model, action, method=method, proxy="entropy"), actions, x)

    return make


# --- vision (InvariantClassifier, EquiCLIP) -------------------------------------------------------------


class TinyCNN(nn.Module):
    """``[N, 1, 8, 8] -> [N, 10]``: a convolution and two linear layers, no symmetry of its own."""

    feature_size = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.hidden = nn.Linear(4 * 8 * 8, self.feature_size)
        self.out = nn.Linear(self.feature_size, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.hidden(torch.relu(self.conv(images)).flatten(1)))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def cnn_case(method: str, group: str) -> Case:
    transform = ImageTransform(group)
    model = InvariantClassifier(TinyCNN(), transform, method, "max_prob")
    return Case(model, (transform, model.out_action), torch.randn(2, 1, 8, 8))


@cache
def clip_and_classes() -> tuple[nn.Module, torch.Tensor]:
    """The tiny CLIP and its zero-shot weights ``[D, 4]``, built once."""
    model, tokenizer = tiny_clip()
    return model, zero_shot_weights(model, tokenizer, ["man", "woman", "person", "doctor"], ["a {}", "the {} was kind"])


def clip_case(method: str, group: str) -> Case:
    model, weights = copy.deepcopy(clip_and_classes())
    equi = EquiCLIP(model, weights, group, method)
    return Case(equi, (equi.in_action, equi.out_action), torch.randn(3, 3, 32, 32))


# --- RL (EquivariantQ) ----------------------------------------------------------------------------------


def grid_d4() -> Symmetry:
    """D4 on the grid world's positions and moves: element ``r + 4·s`` mirrors s times, then turns r quarter turns."""
    turn, mirror = np.array([[0.0, -1.0], [1.0, 0.0]]), np.diag([-1.0, 1.0])
    matrices = np.stack([np.linalg.matrix_power(turn, g % 4) @ np.linalg.matrix_power(mirror, g // 4) for g in range(8)])
    table = [[MOVES.index(tuple(int(v) for v in (m @ np.array(move)).round())) for move in MOVES] for m in matrices]
    return Symmetry("D4 on the grid", dihedral(4), matrices.round(), np.array(table))


def q_case(method: str, group: str) -> Case:
    symmetry = grid_d4() if group == "grid-d4" else env_spec(group).symmetry
    state_dim, n_actions = symmetry.state_matrices.shape[1], symmetry.action_table.shape[1]
    q = build_q(QNetwork(state_dim, n_actions, hidden=32), symmetry, method)
    actions = (symmetry.state_action(), symmetry.action_permutation().logits)
    return Case(q, actions, torch.randn(16, state_dim))


# --- SCAN (EquiSCAN, HFSeq2Seq, CanonicalSCAN) -------------------------------------------------------------


def scan_group(group: str, in_tok, out_tok):
    """The SCAN groups (verb, direction, verb4) and S3 on three verbs; the commands no element fixes."""
    if group == "S3":
        return s3_on_three_verbs(in_tok, out_tok), S3_COMMANDS
    return scan_actions(group, in_tok, out_tok), COMMANDS


def scan_inputs(commands, in_tok, out_tok) -> dict[str, torch.Tensor]:
    batch = encode(commands, in_tok, out_tok)
    return {"src": batch.src, "mask": batch.mask, "tgt_in": batch.tgt_in}


def large_weights(model: nn.Module) -> nn.Module:
    """Clear-cut greedy choices."""
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    return model


def equi_scan_case(method: str, group: str) -> Case:
    in_tok, out_tok = tokenizers()
    actions, commands = scan_group(group, in_tok, out_tok)
    model = large_weights(AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok), cell="gru", dropout=0.0)))
    trivial = registry.method(method).trivial
    module = build_scan(method, model, scan_actions("trivial", in_tok, out_tok) if trivial else actions)
    x = scan_inputs(commands, in_tok, out_tok)
    return Case(module, actions, x, module.decode, (x["src"], x["mask"]))


def t5_scan_case(method: str, group: str) -> Case:
    tok = joint_tokenizer()
    actions, commands = scan_group(group, tok, tok)
    t5 = tiny_t5(len(tok), width=32)
    for p in t5.parameters():
        nn.init.normal_(p, std=0.3)
    module = HFSeq2Seq(t5, actions, method, "max_prob")
    x = scan_inputs(commands, tok, tok)
    return Case(module, actions, x, lambda src, mask: module.decode(src, mask, max_length=12), (x["src"], x["mask"]))


def canonical_scan_case(method: str, group: str) -> Case:
    """Gordon et al.'s G-seq2seq in canonical frames (one copy: no aggregator), on commands some element fixes too."""
    in_tok, out_tok = tokenizers()
    actions, commands = scan_group(group, in_tok, out_tok)
    module = CanonicalSCAN(g_model("ggru", actions, in_tok, out_tok, torch.float32))
    x = scan_inputs(commands + FIXED, in_tok, out_tok)
    return Case(module, actions, x, module.decode, (x["src"][: len(commands)], x["mask"][: len(commands)]))


# --- the matrix -----------------------------------------------------------------------------------------

IMAGE = tuple(name for name in IMAGE_GROUPS if name != "trivial")  # rot90, rot180, mirror, d4
SCAN_GROUPS = ("verb", "direction", "verb4", "S3")
KINDS = {
    "causal-lm": Kind(hf_case(seq2seq=False), ("Z2", "Z3", "S3"), exact=True),
    "seq2seq-lm": Kind(hf_case(seq2seq=True), ("Z2", "Z3", "S3"), exact=True),
    "vision-cnn": Kind(cnn_case, IMAGE, exact=False),
    "vision-clip": Kind(clip_case, IMAGE, exact=False),
    "rl-q": Kind(q_case, (*sorted(ENVS), "grid-d4"), exact=False),
    "scan-equi": Kind(equi_scan_case, SCAN_GROUPS, exact=True),
    "scan-t5": Kind(t5_scan_case, ("verb4", "S3"), exact=False),  # (HF generate is slow: the seq2seq LM row has the rest)
    "scan-canonical": Kind(canonical_scan_case, SCAN_GROUPS, exact=True, methods=("canonical",)),
}
CASES = [(kind, method) for kind, entry in KINDS.items() for method in entry.methods]


@pytest.mark.parametrize("kind, method", CASES)
def test_every_wrapper_is_equivariant_under_every_method(kind, method, dtype):
    entry = KINDS[kind]
    tolerance = 0.0 if entry.exact else TOLERANCE[dtype]
    trivial = registry.method(method).trivial
    for group in entry.groups:
        case = entry.make(method, group)
        spread_lambda(case.module)
        module = case.module.to(dtype).eval()
        x = case.x.to(dtype) if isinstance(case.x, torch.Tensor) else case.x
        if trivial:  # the model itself: the check must be able to fail
            errors = check_equivariance(Declared(module, *case.actions), x)
            assert errors[0] == 0.0 and max(errors.values()) > 1e-4, (group, errors)
            continue
        errors = check_equivariance(module, x)
        assert max(errors.values()) <= tolerance, f"{group}: {errors} (element: error)"
        if case.decode is not None:
            in_action, out_action = case.actions
            decoded = equivariance_error(case.decode, (in_action.ids, None), out_action.ids, case.commands)
            assert set(decoded.values()) == {0.0}, f"{group}: decoding {decoded}"
