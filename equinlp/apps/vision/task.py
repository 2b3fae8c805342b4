"""The paper's CNN protocol as a harness task: pre-train on upright images, then evaluate and fine-tune on rotated ones.

Two stages (see :mod:`equinlp.harness.task`):

- ``pretrain``, one cell per architecture: a network trained on upright training images, as the paper
  starts every run from one ImageNet model. Keyed only by what pre-training depends on (dataset, data,
  epochs, images, lr), so every method × seed, and later runs with other fine-tuning settings, share it.
  Its weights are ``work/vision_pretrain_arch=A/weights`` (safetensors); its envelope holds the
  upright test accuracy on the whole test split.
- ``run``, one cell per architecture × method × seed, from that network:

  1. epoch 0: the method's accuracy on the rotated test set with no fine-tuning (zero-shot). λ-equitune
     first trains its λ-net alone for one pass over the fine-tuning images (the backbone frozen, batch-norm
     statistics included), as the paper does for CLIP, so its epoch 0 is "after λ-only training";
  2. epochs 1..E: fine-tune the whole network (and the λ-net) on randomly rotated training images, then
     evaluate. Every layer trains.

The rotated test set is the same for every run (one element per image, seed ``test_seed``), so runs are
paired. Both stages checkpoint at epoch boundaries (weights, optimizer, torch's RNG state, the curve) with the
harness's :class:`~equinlp.harness.protocol.Checkpointer`, so Ctrl-C loses at most the epoch in progress and a resumed run
equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch

from equinlp.apps.vision.cnn import build_cnn
from equinlp.apps.vision.config import VisionConfig
from equinlp.apps.vision.data import ImageSet, load
from equinlp.apps.vision.train import accuracy, rotated, train_epoch
from equinlp.apps.vision.wrap import InvariantClassifier
from equinlp.harness import RunStore
from equinlp.harness.protocol import Checkpointer, Transfer, describe
from equinlp.harness.store import read_json
from equinlp.symmetry.actions import ImageTransform

log = logging.getLogger(__name__)

PRETRAIN_LR = {"resnet18": 1e-3, "alexnet": 1e-4}
PRETRAIN_BATCH = 128
PRETRAIN_SETTINGS = ("dataset", "data_dir", "pretrain_epochs", "pretrain_images", "pretrain_lr")


def image_size(arch: str) -> int | None:
    """AlexNet needs at least 63 px: small images are resized to 64 (before any rotation)."""
    return 64 if arch == "alexnet" else None


def pretrain_lr(config: VisionConfig, arch: str) -> float:
    return config.pretrain_lr or PRETRAIN_LR[arch]


class VisionTask(Transfer):
    """``equinlp vision run``: see the module docstring."""

    name = "vision"
    config_class = VisionConfig
    metrics = {"zero_shot": True, "final": True, "upright": True}  # top-1 accuracies (fractions)
    pretrain_settings = PRETRAIN_SETTINGS

    def __init__(self) -> None:
        self._data: dict[str, tuple[ImageSet, ImageSet]] = {}
        self._rotated: dict[str, ImageSet] = {}

    def base_cells(self, config: VisionConfig) -> list[dict]:
        return [{"arch": a} for a in config.archs]

    def run_cells(self, config: VisionConfig) -> list[dict]:
        return [{"arch": a, "method": m, "seed": s} for a in config.archs for m in config.methods for s in config.seeds]

    def base_cell_of(self, config: VisionConfig, cell: dict) -> dict:
        return {"arch": cell["arch"]}

    def setup(self, config: VisionConfig) -> None:
        self._data, self._rotated = {}, {}  # read per architecture when first needed (AlexNet's images are resized)

    def data(self, config: VisionConfig, arch: str) -> tuple[ImageSet, ImageSet]:
        """``(train, upright test)`` at the architecture's image size."""
        if arch not in self._data:
            size = image_size(arch)
            self._data[arch] = tuple(load(config.dataset, split, config.data_dir, size) for split in ("train", "test"))
        return self._data[arch]

    def build_base(self, config: VisionConfig, cell: dict) -> torch.nn.Module:
        """A fresh network for the architecture (seed 0: one pre-trained network per architecture)."""
        train, _ = self.data(config, cell["arch"])
        torch.manual_seed(0)
        return build_cnn(cell["arch"], len(train.class_names), train.channels)

    def pretrain(self, config: VisionConfig, cell: dict, net: torch.nn.Module, checkpoint: Path) -> dict:
        """Train the network on upright images, epoch by epoch; returns the metrics (losses, upright test accuracy)."""
        arch = cell["arch"]
        train, test = self.data(config, arch)
        data = train.subset(config.pretrain_images, seed=0)
        optimizer = torch.optim.AdamW(net.parameters(), lr=pretrain_lr(config, arch))
        checkpointer = Checkpointer(checkpoint, model=net, optimizer=optimizer)
        losses = (checkpointer.resume() or {"losses": []})["losses"]
        for epoch in range(len(losses), config.pretrain_epochs):
            desc = f"pre-train {arch} epoch {epoch + 1}"
            seeded = {"seed": epoch, "batch_size": PRETRAIN_BATCH, "desc": desc}
            losses.append(train_epoch(net, net.parameters(), optimizer, data, None, **seeded))
            checkpointer.save(losses=losses)
            log.info("%s: loss %.3f", desc, losses[-1])
        upright = accuracy(net, test, desc=f"{arch} upright eval")
        log.info("pre-trained %s: upright test accuracy %.4f", arch, upright)
        return {
            "image_size": image_size(arch),
            "pretrain_images": len(data),
            "optimizer": f"AdamW lr {pretrain_lr(config, arch)}, batch {PRETRAIN_BATCH}",
            "losses": losses,
            "upright_test_accuracy": upright,
            "upright_test_images": len(test),
        }

    def transfer(self, config: VisionConfig, cell: dict, base: torch.nn.Module | None, store: RunStore) -> dict:
        """One method × seed from the pre-trained ``base`` (the protocol's phases), with the base's upright accuracy."""
        upright = read_json(store.envelope_path("pretrain", self.base_cell_of(config, cell)), "run result")["metrics"]
        return {**super().transfer(config, cell, base, store), "upright": upright["upright_test_accuracy"]}

    def rotated_test(self, config: VisionConfig, arch: str) -> ImageSet:
        """The test images every run of ``arch`` is measured on, each rotated by its own element (seed ``test_seed``)."""
        if arch not in self._rotated:
            _, test = self.data(config, arch)
            chosen = test.subset(config.eval_images, seed=config.test_seed)
            self._rotated[arch] = rotated(chosen, ImageTransform(config.group), config.test_seed)
        return self._rotated[arch]

    def finetune_images(self, config: VisionConfig, cell: dict) -> ImageSet:
        """The run's training images (the λ pass and fine-tuning see the same ones), drawn by its seed."""
        return self.data(config, cell["arch"])[0].subset(config.finetune_images, seed=cell["seed"])

    def wrap(self, config: VisionConfig, cell: dict, base: torch.nn.Module) -> InvariantClassifier:
        torch.manual_seed(cell["seed"])  # the λ-net's initial weights
        return InvariantClassifier(base, ImageTransform(config.group), cell["method"], config.proxy)

    def lambda_parameters(self, config: VisionConfig, cell: dict, model: InvariantClassifier) -> list:
        return [] if model.weight_net is None else list(model.weight_net.parameters())

    def train_lambda(
        self, config: VisionConfig, cell: dict, model: InvariantClassifier, parameters: list, checkpoint: Path
    ) -> None:
        """One pass over the fine-tuning images training the λ-net alone: the backbone frozen, its BN statistics too."""
        optimizer = torch.optim.Adam(parameters, lr=config.lambda_lr)
        checkpointer = Checkpointer(checkpoint, model=model, optimizer=optimizer)
        if checkpointer.resume() is not None:
            return
        images = self.finetune_images(config, cell)
        seeded = {"seed": cell["seed"] + 10_000, "batch_size": config.batch_size, "desc": f"{describe(cell)} λ"}
        train_epoch(model, parameters, optimizer, images, model.transform, **seeded, train_mode=model.weight_net)
        checkpointer.save()

    def evaluate(self, config: VisionConfig, cell: dict, model: InvariantClassifier) -> float:
        return accuracy(model, self.rotated_test(config, cell["arch"]), desc=f"{describe(cell)} eval")

    def finetune(self, config: VisionConfig, cell: dict, model: InvariantClassifier, zero_shot: float, checkpoint: Path) -> dict:
        """Epochs 1..E of fine-tuning every layer (and the λ-net) on rotated images; the curve starts at epoch 0."""
        name, seed = describe(cell), cell["seed"]
        images = self.finetune_images(config, cell)
        test = self.rotated_test(config, cell["arch"])
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
        checkpointer = Checkpointer(checkpoint, model=model, optimizer=optimizer)
        start = [{"epoch": 0, "accuracy": zero_shot, "train_loss": None}]
        curve: list[dict] = (checkpointer.resume() or {"curve": start})["curve"]
        if curve[-1]["epoch"]:
            log.info("%s: resumed after epoch %d from %s", name, curve[-1]["epoch"], checkpoint)
        else:
            log.info("%s epoch 0: %.4f", name, zero_shot)
        for epoch in range(curve[-1]["epoch"] + 1, config.epochs + 1):
            desc = f"{name} epoch {epoch}"
            seeded = {"seed": seed * 1000 + epoch, "batch_size": config.batch_size, "desc": desc}
            loss = train_epoch(model, model.parameters(), optimizer, images, model.transform, **seeded)
            curve.append({"epoch": epoch, "accuracy": accuracy(model, test, desc=f"{name} eval"), "train_loss": loss})
            checkpointer.save(curve=curve)
            log.info("%s epoch %d: %.4f (train loss %.3f)", name, epoch, curve[-1]["accuracy"], loss)
        return {"zero_shot": curve[0]["accuracy"], "final": curve[-1]["accuracy"], "curve": curve}

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        from equinlp.apps.vision.report import cnn_tables

        return cnn_tables(runs)

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        from equinlp.apps.vision.report import plot_cnn

        plot_cnn(runs, path)
