"""SCAN on the harness: pre-train the base seq2seq, then evaluate each method zero-shot and fine-tuned.

Two stages (see :class:`~equinlp.harness.task.Stage`):

1. ``pretrain``, one cell per (split, cell, seed): the base model trained from scratch on the split's
   training set; its weights go to ``work/scan_pretrain_.../base`` (safetensors). The stage is keyed
   only by what pre-training depends on (:data:`PRETRAIN_SETTINGS`: steps, batch, rate and its schedule, the
   validation hold-out; for the G-equivariant cells the ``--g-*`` options and the group their layers are built
   on), so a rerun with another group, proxy or fine-tuning schedule reuses it, and a rerun with other
   pre-training settings is refused. With ``--validation`` the held-out commands are left out of every stage
   and the pre-trained weights kept are those of the best validated step.
2. ``run``, one cell per (split, cell, method, seed): zero-shot (λ-equitune first trains its λ-net alone,
   the base frozen, as the paper does), then every parameter fine-tuned through the symmetrized model.
   Metrics: ``zero_shot`` and ``fine_tuned`` exact-match accuracy, ``n_test``, the last fine-tuning loss.
   The G-equivariant cells (``grnn``, ``ggru``, ``glstm``: Gordon et al.'s seq2seq, equinlp/apps/scan/gmodel.py)
   run as ``base`` only, in canonical frames (equinlp/apps/scan/canonical.py): they are equivariant by construction.

Each cell trains in one process; under ``torchrun``/``accelerate launch`` the cells are split between processes
(no gradient sync between them). Every training step is checkpointed at step boundaries (:mod:`equinlp.apps.scan.train`),
so a rerun after Ctrl-C continues each cell where it stopped and gives the same numbers bit for bit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from equinlp.apps.scan.canonical import CanonicalSCAN
from equinlp.apps.scan.data import DEFAULT_GROUP, GROUPS, Encoded, encode, scan_actions, tokenizers
from equinlp.apps.scan.equi import METHODS, SCORES, build, default_equizero_score
from equinlp.apps.scan.gmodel import ATTENTIONS, ENCODERS, G_CELLS, INITS, GSeq2Seq, GSeq2SeqConfig
from equinlp.apps.scan.hf import HFSeq2Seq, joint_tokenizer, tiny_t5
from equinlp.apps.scan.model import CELLS, AttnSeq2Seq, Seq2SeqConfig
from equinlp.apps.scan.splits import SPLITS, scan_split
from equinlp.apps.scan.train import SCHEDULES, TrainConfig, device, evaluate, hold_out, train
from equinlp.errors import EquinlpError
from equinlp.harness import RunConfig, RunStore, option
from equinlp.harness.protocol import Transfer, remembered
from equinlp.methods import registry
from equinlp.methods.aggregate import PROXIES

log = logging.getLogger(__name__)

G_SETTINGS = ("g_hidden", "g_attention", "g_encoder", "g_init", "g_teacher_forcing")  # GSeq2SeqConfig's, prefixed g_
PRETRAIN_SETTINGS = ("pretrain_steps", "batch_size", "lr", "schedule", "validation", "validate_every", *G_SETTINGS)
CELL_CHOICES = (*sorted(CELLS), "t5", *G_CELLS)
BASE_WEIGHTS = "base"


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


def scan_tokenizers(cell: str):
    """``(in_tokenizer, out_tokenizer)``; T5 shares one joint vocabulary between its two sides."""
    if cell == "t5":
        joint = joint_tokenizer()
        return joint, joint
    return tokenizers()


def g_settings(config: ScanConfig) -> dict:
    """The G-equivariant cells' :class:`GSeq2SeqConfig` fields from ``--g-*``: ``{"hidden": ..., "attention": ...}``."""
    return {name.removeprefix("g_"): getattr(config, name) for name in G_SETTINGS}


def new_model(cell: str, data: ScanData, group: str, **g_settings) -> torch.nn.Module:
    """A freshly initialised base seq2seq (from torch's current RNG); ``group`` and ``g_settings`` (``hidden``,
    ``attention``, ... of :class:`GSeq2SeqConfig`) build the G-equivariant cells."""
    in_size, out_size = len(data.in_tok), len(data.out_tok)
    if cell == "t5":
        return tiny_t5(in_size)
    if cell in G_CELLS:
        return GSeq2Seq(GSeq2SeqConfig(in_size, out_size, cell=cell, **g_settings), *data.actions(group))
    return AttnSeq2Seq(Seq2SeqConfig(in_size, out_size, cell=cell))


def make_module(method: str, model: torch.nn.Module, actions, cell: str, proxy: str, **decoding) -> torch.nn.Module:
    """The symmetrized model with the SCAN loop interface (``forward`` log-probs, ``decode``).

    ``decoding``: ``equizero_score`` / ``equitune_decoding`` of :func:`equinlp.apps.scan.equi.build` (RNN cells; T5 ignores them).
    """
    if cell == "t5":  # HF generate: equizero chooses per step, equitune decodes jointly
        return HFSeq2Seq(model, actions, method, proxy)
    if cell in G_CELLS:  # already equivariant under its own group: run in canonical frames, one copy
        return CanonicalSCAN(model)
    return build(method, model, actions, proxy=proxy, **decoding)


@dataclass
class ScanData:
    """A split encoded for one architecture: tokenizers, training set and (possibly limited) test set."""

    in_tok: object
    out_tok: object
    train: Encoded
    test: Encoded
    validation: Encoded | None = None

    @classmethod
    def load(cls, split: str, cell: str, test_limit: int | None = None, validation: float = 0.0) -> ScanData:
        in_tok, out_tok = scan_tokenizers(cell)
        examples = scan_split(split)
        test = examples["test"][:test_limit] if test_limit else examples["test"]
        train, held_out = hold_out(encode(examples["train"], in_tok, out_tok), validation)
        return cls(in_tok, out_tok, train, encode(test, in_tok, out_tok), held_out)

    def actions(self, group: str):
        return scan_actions(group, self.in_tok, self.out_tok)


def base_cell(config: ScanConfig, seed: int) -> dict:
    """The ``pretrain`` cell of a seed: ``{"split", "cell", "seed"}``, and ``"group"`` for the G-equivariant cells."""
    group = {"group": config.group} if config.cell in G_CELLS else {}
    return {"split": config.split, "cell": config.cell, **group, "seed": seed}


class ScanTask(Transfer):
    """``equinlp scan run``: the harness task (see the module docstring)."""

    name = "scan"
    config_class = ScanConfig
    metrics = {"zero_shot": True, "fine_tuned": True, "finetune_loss": False}  # exact match (fractions); the last loss
    pretrain_settings = PRETRAIN_SETTINGS
    weights = BASE_WEIGHTS

    def base_cells(self, config: ScanConfig) -> list[dict]:
        return [base_cell(config, seed) for seed in config.seeds]

    def run_cells(self, config: ScanConfig) -> list[dict]:
        where = {"split": config.split, "cell": config.cell}
        return [{**where, "method": method, "seed": seed} for seed in config.seeds for method in config.methods]

    def base_cell_of(self, config: ScanConfig, cell: dict) -> dict:
        return base_cell(config, cell["seed"])

    def setup(self, config: ScanConfig) -> None:
        self.data = ScanData.load(config.split, config.cell, config.test_limit, config.validation)

    def _schedule(self, config: ScanConfig, steps: int, lr: float, seed: int) -> TrainConfig:
        return TrainConfig(
            steps, config.batch_size, lr, seed=seed, save_every=config.save_every, schedule=config.schedule,
            validate_every=config.validate_every,
        )  # fmt: skip

    def build_base(self, config: ScanConfig, cell: dict) -> torch.nn.Module:
        """A fresh base seq2seq of the cell's seed, on this process's device."""
        torch.manual_seed(cell["seed"])
        return new_model(config.cell, self.data, config.group, **g_settings(config)).to(device())

    def pretrain(self, config: ScanConfig, cell: dict, model: torch.nn.Module, checkpoint: Path) -> dict:
        base = make_module("base", model, self.data.actions("trivial"), config.cell, config.proxy)
        schedule = self._schedule(config, config.pretrain_steps, config.lr, cell["seed"])
        description = f"pre-train seed {cell['seed']}"
        trained = train(base, list(model.parameters()), self.data.train, schedule, checkpoint, description, self.data.validation)
        kept = {} if trained.best_step is None else {"validation": trained.validation, "best_step": trained.best_step}
        return {"loss": trained.losses[-1], "steps": config.pretrain_steps, **kept}

    def transfer(self, config: ScanConfig, cell: dict, model: torch.nn.Module, store: RunStore) -> dict:
        """λ-net alone (λ-equitune), zero-shot, then every parameter fine-tuned through the symmetrized model."""
        method, seed = cell["method"], cell["seed"]
        torch.manual_seed(seed)  # the λ-net's initial weights
        group = "trivial" if registry.method(method).trivial else config.group
        decoding = {"equizero_score": config.equizero_score, "equitune_decoding": config.equitune_decoding}
        module = make_module(method, model, self.data.actions(group), config.cell, config.proxy, **decoding).to(device())
        checkpoint = store.checkpoint_dir("run", cell)
        name = store.cell_id("run", cell)
        if registry.method(method).needs_features:  # λ-equitune: the λ-net alone, base frozen
            schedule = self._schedule(config, config.lambda_steps, config.lr, seed)
            train(module, list(module.aggregator.parameters()), self.data.train, schedule, checkpoint / "lambda", f"λ-net {name}")
        zero_shot = remembered(checkpoint / "zero_shot.json", lambda: evaluate(module, self.data.test, description=name))
        metrics = {"zero_shot": zero_shot, "n_test": len(self.data.test)}
        if config.finetune_steps == 0:
            return {**metrics, "fine_tuned": zero_shot}
        schedule = self._schedule(config, config.finetune_steps, config.finetune_lr, seed + 1)
        parameters = list(module.parameters())
        trained = train(module, parameters, self.data.train, schedule, checkpoint / "finetune", f"fine-tune {name}")
        fine_tuned = evaluate(module, self.data.test, description=f"fine-tuned {name}")
        return {**metrics, "fine_tuned": fine_tuned, "finetune_loss": trained.losses[-1]}

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        from equinlp.apps.scan.report import table

        return [("exact-match accuracy (%), mean [95% t-interval] over seeds (number of seeds)", table(runs))]

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        from equinlp.apps.scan.report import plot

        plot(runs, path)
