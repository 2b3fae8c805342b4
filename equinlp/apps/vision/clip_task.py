"""The paper's CLIP experiments as a harness task (one cell per method): zero-shot on randomly transformed
test images, and fine-tuning.

For each method, from the same pre-trained CLIP, the protocol's phases (:class:`~equinlp.harness.protocol.Transfer`,
with no pre-training stage of its own):

1. λ-equitune only: ``lambda_steps`` steps training the λ-net alone (the paper: 20 × 100, SGD);
2. zero-shot top-1 / top-5 on the test set, every image moved by its own random group element (the same
   elements for every method, seed ``test_seed``): for λ-equitune "zero-shot λ-equitune", after step 1, as the
   paper's curves start;
3. ``finetune_steps`` steps fine-tuning the image tower (λ-net frozen, as the paper does), with an
   evaluation every ``eval_every`` steps (the paper: 8 × 500, SGD lr 5e-6, batch 32).

Training images are moved by random group elements too; step ``s`` trains on the same images in every run.
The λ phase checkpoints at its end, fine-tuning after each evaluation (weights, optimizer, torch's RNG state, the
curve; no pickle), at a step boundary, so a rerun resumes there and gives the same curve as an uninterrupted run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from equinlp.apps.vision.clip import EquiCLIP, clip_prompts, templates_for
from equinlp.apps.vision.config import CLIPConfig
from equinlp.apps.vision.data import cifar_arrays, image_folder, random_elements, transform_each
from equinlp.apps.vision.train import train_only
from equinlp.harness.progress import progress
from equinlp.harness.protocol import Checkpointer, Transfer

log = logging.getLogger(__name__)


class RawImages:
    """A dataset's images before CLIP's preprocessing: ``[i] -> uint8[H, W, 3]``; ``labels: long[N]``."""

    def __init__(self, config: CLIPConfig, split: str) -> None:
        if config.dataset == "imagenet-v2":
            self.files, labels = image_folder(config.data_dir)
            self.arrays = None
            self.class_names = clip_prompts()["imagenet_classes"]
        else:
            self.arrays, labels, self.class_names = cifar_arrays(config.dataset, split, config.data_dir)
            self.files = None
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> np.ndarray:
        if self.arrays is not None:
            return self.arrays[i]
        from PIL import Image

        with Image.open(self.files[i]) as image:
            return np.asarray(image.convert("RGB"))


def _pixels(processor, raw: RawImages, index: torch.Tensor, elements: torch.Tensor, transform, device) -> torch.Tensor:
    """CLIP's preprocessing, then each image moved by its element (exact on the square tensor)."""
    pixels = processor(images=[raw[int(i)] for i in index], return_tensors="pt")["pixel_values"]
    return transform_each(pixels, transform, elements).to(device)


@torch.no_grad()
def evaluate(model: EquiCLIP, processor, raw: RawImages, config: CLIPConfig) -> dict[str, float]:
    """Top-1 and top-5 accuracy (%) on the randomly transformed test images."""
    model.eval()
    n = len(raw) if config.eval_images is None else min(config.eval_images, len(raw))
    elements = random_elements(len(raw), model.transform.group.order, config.test_seed)
    dtype = next(model.parameters()).dtype
    top1 = top5 = 0
    for start in progress(range(0, n, config.batch_size), desc=f"eval {model.method}", leave=False):
        index = torch.arange(start, min(start + config.batch_size, n))
        logits = model(_pixels(processor, raw, index, elements[index], model.transform, config.torch_device).to(dtype))
        labels = raw.labels[index].to(logits.device)
        best = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        top1 += int((best[:, 0] == labels).sum())
        top5 += int((best == labels[:, None]).any(-1).sum())
    return {"top1": 100 * top1 / n, "top5": 100 * top5 / n}


def _lambda_steps(config: CLIPConfig, model: EquiCLIP) -> int:
    """The λ-only phase's steps: ``lambda_steps`` for a model with a λ-net, else none."""
    return config.lambda_steps if model.weight_net is not None else 0


class CLIPTask(Transfer):
    """``equinlp vision clip``: one cell per method, the protocol's phases from a CLIP someone else pre-trained;
    see the module docstring."""

    name = "clip"
    config_class = CLIPConfig
    pretrains = False
    metrics = {"zero_shot_top1": True, "final_top1": True}  # top-1 (%)

    def __init__(self) -> None:
        self.test: RawImages | None = None
        self.train: RawImages | None = None
        self.processor = None

    def run_cells(self, config: CLIPConfig) -> list[dict]:
        return [{"method": m} for m in config.methods]

    def setup(self, config: CLIPConfig) -> None:
        self.test = RawImages(config, "test")
        self.train = RawImages(config, "train") if config.lambda_steps or config.finetune_steps else None

    def wrap(self, config: CLIPConfig, cell: dict, base: None) -> EquiCLIP:
        torch.manual_seed(config.seed)  # the λ-net's initial weights
        classes, templates = list(self.test.class_names), templates_for(config.dataset)
        model, self.processor = EquiCLIP.from_pretrained(
            config.model, classes, templates, config.group, cell["method"], config.proxy, config.torch_device
        )
        return model

    def lambda_parameters(self, config: CLIPConfig, cell: dict, model: EquiCLIP) -> list:
        return list(model.weight_net.parameters()) if _lambda_steps(config, model) else []

    def train_lambda(self, config: CLIPConfig, cell: dict, model: EquiCLIP, parameters: list, checkpoint: Path) -> None:
        """``lambda_steps`` steps of SGD on the λ-net alone (the image tower in eval mode), saved at their end."""
        optimizer = torch.optim.SGD(parameters, lr=config.lambda_lr, momentum=0.9)
        checkpointer = Checkpointer(checkpoint, config.torch_device, model=model, optimizer=optimizer)
        if checkpointer.resume() is None:
            self._train(config, model, optimizer, "lambda", range(config.lambda_steps))
            checkpointer.save()

    def evaluate(self, config: CLIPConfig, cell: dict, model: EquiCLIP) -> dict[str, float]:
        return evaluate(model, self.processor, self.test, config)

    def finetune(self, config: CLIPConfig, cell: dict, model: EquiCLIP, zero_shot: dict, checkpoint: Path) -> dict:
        """``finetune_steps`` steps of SGD on the image tower (the λ-net frozen), evaluated every ``eval_every``."""
        start, method = _lambda_steps(config, model), cell["method"]
        curve = [{"step": start, "stage": "zero-shot", "train_loss": None, **zero_shot}]
        if config.finetune_steps:
            optimizer = torch.optim.SGD(model.backbone.image_tower_parameters(), lr=config.lr, momentum=0.9)
            checkpointer = Checkpointer(checkpoint, config.torch_device, model=model, optimizer=optimizer)
            curve = (checkpointer.resume() or {"curve": curve})["curve"]
            if len(curve) > 1:
                log.info("%s: resumed at step %d from %s", method, curve[-1]["step"], checkpoint)

            def record(step: int, train_loss: float) -> None:
                point = {"step": step, "stage": "finetune", "train_loss": train_loss}
                curve.append({**point, **evaluate(model, self.processor, self.test, config)})
                checkpointer.save(curve=curve)
                log.info("%s step %d: top-1 %.2f", method, step, curve[-1]["top1"])

            self._train(config, model, optimizer, "finetune", range(curve[-1]["step"], start + config.finetune_steps), record)
        return {"zero_shot_top1": curve[0]["top1"], "final_top1": curve[-1]["top1"], "curve": curve}

    def _train(self, config: CLIPConfig, model: EquiCLIP, optimizer, stage: str, steps: range, record=None) -> None:
        """Training steps ``steps`` (counted over both phases, so each step sees the same images in any run) of
        ``stage``: the λ-net alone, or the image tower; ``record(step, mean loss)`` every ``eval_every`` fine-tuning
        steps and at the last."""
        train, batch = self.train, config.batch_size
        start = _lambda_steps(config, model)
        total = start + config.finetune_steps
        generator = torch.Generator().manual_seed(config.seed)
        epochs = -(-total * batch // len(train))
        order = torch.cat([torch.randperm(len(train), generator=generator) for _ in range(epochs)])  # each image once per epoch
        elements = random_elements(len(order), model.transform.group.order, config.seed + 1)
        trainable = [p for group in optimizer.param_groups for p in group["params"]]
        losses: list[float] = []  # since the last evaluation (a checkpoint is written at evaluations only)
        ready = False  # evaluation leaves eval mode, so the model is set up again after it
        for step in progress(steps, desc=f"{stage} {model.method}"):
            if not ready:  # the λ phase trains the λ-net alone (the tower in eval mode); fine-tuning the image tower
                train_only(model, trainable, model.weight_net if stage == "lambda" else None)
                ready = True
            index, moved = order[step * batch : (step + 1) * batch], elements[step * batch : (step + 1) * batch]
            pixels = _pixels(self.processor, train, index, moved, model.transform, config.torch_device)
            loss = F.cross_entropy(model(pixels), train.labels[index].to(config.torch_device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            done = step + 1
            if record is not None and ((done - start) % config.eval_every == 0 or done == total):
                record(done, sum(losses) / len(losses))
                losses.clear()
                ready = False

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        from equinlp.apps.vision.report import clip_tables

        return clip_tables(runs)

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        from equinlp.apps.vision.report import plot_clip

        plot_clip(runs, path)
