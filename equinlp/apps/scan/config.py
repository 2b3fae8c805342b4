"""``equinlp scan run``'s settings: :class:`ScanConfig` and its choices (splits, cells, groups, methods,
schedules). Imports no torch, so ``equinlp scan run --help`` starts at once."""

from __future__ import annotations

from dataclasses import dataclass

from equinlp.apps.scan.splits import SPLITS
from equinlp.errors import EquinlpError
from equinlp.harness import RunConfig, option
from equinlp.methods import registry
from equinlp.methods.proxies import PROXIES

# the SCAN groups: name -> (command word cycles, action cycles)
GROUPS = {
    "verb": ([("jump", "run")], [("I_JUMP", "I_RUN")]),
    "direction": ([("left", "right")], [("I_TURN_LEFT", "I_TURN_RIGHT")]),
    "verb4": ([("jump", "run", "walk", "look")], [("I_JUMP", "I_RUN", "I_WALK", "I_LOOK")]),
}
DEFAULT_GROUP = {"addprim_jump": "verb", "template_around_right": "direction", "addprim_turn_left": "direction"}
RNN_CELLS = ("rnn", "gru", "lstm")  # the attention seq2seq's cells (:mod:`equinlp.apps.scan.model`)
# Gordon et al.'s G-equivariant cells and their options (:mod:`equinlp.apps.scan.gmodel`)
G_CELLS = {"grnn": 1, "ggru": 3, "glstm": 4}  # name -> number of gates
ATTENTIONS = ("scaled", "dot")
ENCODERS = ("two-cells", "shared-eos")
INITS = ("fused", "reference")
CELL_CHOICES = (*sorted(RNN_CELLS), "t5", *G_CELLS)
METHODS = registry.token_methods()
SCORES = ("decoded", "paper")  # equizero's choice of copy (:func:`equinlp.apps.scan.equi.build`)
SCHEDULES = ("constant", "linear", "cosine")  # the learning rate over a training (:mod:`equinlp.apps.scan.train`)


def default_equizero_score(proxy: str) -> str:
    """``"paper"`` with the ``max_prob`` proxy (the reference's top1 rule is defined on it), else ``"decoded"``."""
    return "paper" if proxy == "max_prob" else "decoded"


@dataclass
class ScanConfig(RunConfig):
    """One SCAN experiment: a split and a base architecture, methods × seeds, and the training schedule."""

    split: str = option("addprim_jump", "SCAN split", choices=SPLITS, plan=True)
    cell: str = option(
        "gru",
        "base seq2seq: attention RNN/GRU/LSTM, a small T5, or Gordon et al.'s G-equivariant seq2seq (grnn/ggru/glstm, "
        "built on --group and trained from scratch)",
        choices=CELL_CHOICES,
        plan=True,
    )
    methods: tuple[str, ...] | None = option(
        None,
        "methods to compare (default: all; only base for the G-equivariant cells, which are equivariant already)",
        choices=METHODS,
        plan=True,
        flags=("--method",),
    )
    seeds: tuple[int, ...] = option((0,), "one base model and one run per method for each seed", plan=True)
    group: str | None = option(
        None,
        "the methods' group (base runs under the trivial one) and the G-equivariant cells' group; default: verb for "
        "addprim_jump, direction for template_around_right and addprim_turn_left, else verb",
        choices=sorted(GROUPS),
    )
    g_hidden: int = option(
        64,
        "G-equivariant cells: hidden units per direction and group element (Gordon et al.'s 64)",
        at_least=1,
        used_by={"cell": tuple(G_CELLS)},
    )
    g_attention: str = option(
        "scaled",
        "G-equivariant cells: attention scores as the dot product over the G·2H numbers (dot, the reference's; runs "
        "before this option) or divided by √(G·2H) (scaled: softer attention at initialisation, learnt faster)",
        choices=ATTENTIONS,
        used_by={"cell": tuple(G_CELLS)},
        unrecorded="dot",
    )
    g_encoder: str = option(
        "two-cells",
        "G-equivariant cells: the bidirectional encoder's two directions in two cells over the command (two-cells), or "
        "in one cell over the command and EOS (shared-eos, the reference's)",
        choices=ENCODERS,
        used_by={"cell": tuple(G_CELLS)},
    )
    g_init: str = option(
        "fused",
        "G-equivariant cells: gate weights from U(±1/√(gates·H)) (fused) or U(±1/√H) per gate (reference)",
        choices=INITS,
        used_by={"cell": tuple(G_CELLS)},
    )
    g_teacher_forcing: float = option(
        1.0,
        "G-equivariant cells: the chance that a training batch is teacher-forced; otherwise it is fed its own argmax "
        "(the reference's 0.5)",
        at_least=0,
        at_most=1,
        used_by={"cell": tuple(G_CELLS)},
    )
    pretrain_steps: int = option(3000, "base model training steps", at_least=1, quick=1000)
    finetune_steps: int = option(500, "fine-tuning steps through the symmetrized model (0: none)", at_least=0, quick=150)
    lambda_steps: int = option(300, "λ-net-only steps (base frozen) before λ-equitune's zero-shot test", at_least=1, quick=80)
    batch_size: int = option(128, "training batch size (pre-training, λ-net and fine-tuning)", at_least=1)
    lr: float = option(3e-3, "learning rate (Adam) of pre-training and of the λ-net", above=0)
    finetune_lr: float = option(3e-4, "learning rate (Adam) of fine-tuning", above=0)
    schedule: str = option(
        "constant",
        "learning rate over each training (pre-training, λ-net, fine-tuning): constant, or from --lr/--finetune-lr "
        "down to 0 by step, linear or cosine",
        choices=SCHEDULES,
    )
    proxy: str = option(
        "max_prob",
        "equizero's proxy (the paper's 'top1' is max_prob)",
        choices=sorted(PROXIES),
        used_by={"method": ("equizero",)},
    )
    equizero_score: str | None = option(
        None,
        "equizero's choice of copy (rnn/gru/lstm): paper (the reference code's mean max-probability over all 50 rows, "
        "rows after EOS included; needs --proxy max_prob) or decoded (mean proxy over the steps each copy decoded; "
        "runs before this option); default: paper with max_prob, else decoded",
        choices=SCORES,
        used_by={"method": ("equizero",)},
        unrecorded="decoded",
    )
    equitune_decoding: str = option(
        "joint",
        "equitune's decoding (rnn/gru/lstm): joint (combine every step, feed g·token back) or per-copy (each copy decodes alone, "
        "log-probs averaged position by position, as the reference)",
        choices=("joint", "per-copy"),
        used_by={"method": ("equitune",)},
    )
    validation: float = option(
        0.0,
        "hold out this fraction of the training set (one fixed draw; no stage trains on it) and keep the pre-trained "
        "weights of the best exact match on it (the reference's 0.2); 0: train on all, keep the last weights",
        at_least=0,
        at_most=0.5,
    )
    validate_every: int = option(250, "with --validation: measure it every N pre-training steps and at the end", at_least=1)
    test_limit: int | None = option(None, "evaluate on the first N test commands only (default: all)", at_least=1)
    save_every: int = option(500, "checkpoint training every N steps (a rerun continues from there)", at_least=1, keyed=False)
    out: str = option("results/scan", "output folder: one JSON per finished run in OUT/runs, continued on rerun", keyed=False)

    def __post_init__(self) -> None:
        if self.group is None:
            self.group = DEFAULT_GROUP.get(self.split, "verb")
        if self.methods is None:
            self.methods = ("base",) if self.cell in G_CELLS else METHODS
        if self.equizero_score is None:
            self.equizero_score = default_equizero_score(self.proxy)
        if self.equizero_score == "paper" and self.proxy != "max_prob":
            raise EquinlpError("--equizero-score paper is the reference's top1 rule: use it with --proxy max_prob")
        super().__post_init__()
        if self.cell in G_CELLS and set(self.methods) != {"base"}:
            raise EquinlpError(
                f"--cell {self.cell} is equivariant layer by layer; symmetrizing it changes nothing: use --method base"
            )
