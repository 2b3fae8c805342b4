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
from equinlp.apps.scan.config import G_CELLS, ScanConfig
from equinlp.apps.scan.data import Encoded, encode, scan_actions, tokenizers
from equinlp.apps.scan.equi import build
from equinlp.apps.scan.gmodel import GSeq2Seq, GSeq2SeqConfig
from equinlp.apps.scan.hf import HFSeq2Seq, joint_tokenizer, tiny_t5
from equinlp.apps.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.apps.scan.splits import scan_split
from equinlp.apps.scan.train import TrainConfig, device, evaluate, hold_out, train
from equinlp.harness.protocol import Transfer, describe
from equinlp.methods import registry

log = logging.getLogger(__name__)

G_SETTINGS = ("g_hidden", "g_attention", "g_encoder", "g_init", "g_teacher_forcing")  # GSeq2SeqConfig's, prefixed g_
PRETRAIN_SETTINGS = ("pretrain_steps", "batch_size", "lr", "schedule", "validation", "validate_every", *G_SETTINGS)
BASE_WEIGHTS = "base"


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

    def wrap(self, config: ScanConfig, cell: dict, model: torch.nn.Module) -> torch.nn.Module:
        """The cell's method around the pre-trained seq2seq (its λ-net seeded by the cell's seed)."""
        method = cell["method"]
        torch.manual_seed(cell["seed"])  # the λ-net's initial weights
        group = "trivial" if registry.method(method).trivial else config.group
        decoding = {"equizero_score": config.equizero_score, "equitune_decoding": config.equitune_decoding}
        return make_module(method, model, self.data.actions(group), config.cell, config.proxy, **decoding).to(device())

    def lambda_parameters(self, config: ScanConfig, cell: dict, module: torch.nn.Module) -> list:
        return list(module.aggregator.parameters()) if registry.method(cell["method"]).needs_features else []

    def train_lambda(self, config: ScanConfig, cell: dict, module: torch.nn.Module, parameters: list, checkpoint: Path) -> None:
        """The λ-net alone (λ-equitune), the base frozen."""
        schedule = self._schedule(config, config.lambda_steps, config.lr, cell["seed"])
        train(module, parameters, self.data.train, schedule, checkpoint, f"λ-net {describe(cell)}")

    def evaluate(self, config: ScanConfig, cell: dict, module: torch.nn.Module) -> float:
        return evaluate(module, self.data.test, description=describe(cell))

    def finetune(self, config: ScanConfig, cell: dict, module: torch.nn.Module, zero_shot: float, checkpoint: Path) -> dict:
        """Every parameter fine-tuned through the symmetrized model; ``fine_tuned`` is its exact match after."""
        metrics = {"zero_shot": zero_shot, "n_test": len(self.data.test)}
        if config.finetune_steps == 0:
            return {**metrics, "fine_tuned": zero_shot}
        schedule = self._schedule(config, config.finetune_steps, config.finetune_lr, cell["seed"] + 1)
        trained = train(module, list(module.parameters()), self.data.train, schedule, checkpoint, f"fine-tune {describe(cell)}")
        fine_tuned = evaluate(module, self.data.test, description=f"fine-tuned {describe(cell)}")
        return {**metrics, "fine_tuned": fine_tuned, "finetune_loss": trained.losses[-1]}

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        from equinlp.apps.scan.report import table

        return [("exact-match accuracy (%), mean [95% t-interval] over seeds (number of seeds)", table(runs))]

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        from equinlp.apps.scan.report import plot

        plot(runs, path)
