"""The paper's CLIP experiments as a harness task (one cell per method): zero-shot on randomly transformed
test images, and fine-tuning.

For each method, from the same pre-trained CLIP:

1. step 0: zero-shot top-1 / top-5 on the test set, every image moved by its own random group element
   (the same elements for every method, seed ``test_seed``);
2. λ-equitune only: ``lambda_steps`` steps training the λ-net alone (the paper: 20 × 100, SGD), then an
   evaluation — "zero-shot λ-equitune";
3. ``finetune_steps`` steps fine-tuning the image tower (λ-net frozen, as the paper does), with an
   evaluation every ``eval_every`` steps (the paper: 8 × 500, SGD lr 5e-6, batch 32).

Training images are moved by random group elements too. After each evaluation the cell checkpoints
(weights, optimizers, torch's RNG state, the curve; no pickle), at a step boundary, so a rerun resumes
there and gives the same curve as an uninterrupted run.
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
from equinlp.harness import RunStore, Stage
from equinlp.harness.progress import progress
from equinlp.harness.protocol import Checkpointer

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


def evaluates_after(done: int, lambda_steps: int, total: int, eval_every: int) -> bool:
    """Whether step ``done`` (counted from 1) ends the λ stage, a multiple of ``eval_every`` fine-tuning steps, or training."""
    return done == lambda_steps or (done > lambda_steps and (done - lambda_steps) % eval_every == 0) or done == total


class CLIPTask:
    """``equinlp vision clip``: one cell per method; see the module docstring."""

    name = "clip"
    config_class = CLIPConfig
    collective = False
    metrics = {"zero_shot_top1": True, "final_top1": True}  # top-1 (%)

    def __init__(self) -> None:
        self.test: RawImages | None = None
        self.train: RawImages | None = None

    def plan(self, config: CLIPConfig) -> list[Stage]:
        return [Stage("run", [{"method": m} for m in config.methods])]

    def setup(self, config: CLIPConfig) -> None:
        self.test = RawImages(config, "test")
        self.train = RawImages(config, "train") if config.lambda_steps or config.finetune_steps else None

    def run_cell(self, config: CLIPConfig, stage: str, cell: dict, store: RunStore) -> dict:
        method, device = cell["method"], config.torch_device
        torch.manual_seed(config.seed)  # the λ-net's initial weights
        model, processor = EquiCLIP.from_pretrained(
            config.model, list(self.test.class_names), templates_for(config.dataset), config.group, method, config.proxy, device
        )
        lambda_steps = config.lambda_steps if model.weight_net is not None else 0
        stages = [("lambda", lambda_steps, model.weight_net.parameters() if lambda_steps else [], config.lambda_lr)]
        stages.append(("finetune", config.finetune_steps, model.backbone.image_tower_parameters(), config.lr))
        optimizers = {stage: torch.optim.SGD(params, lr=lr, momentum=0.9) for stage, steps, params, lr in stages if steps}
        checkpointer = Checkpointer(store.checkpoint_dir(stage, cell), device, model=model, optimizers=optimizers)
        curve: list[dict] = (checkpointer.resume() or {"curve": []})["curve"]
        if curve:
            log.info("%s: resumed at step %d", method, curve[-1]["step"])

        def record(step: int, stage: str, train_loss: float | None = None) -> None:
            point = {"step": step, "stage": stage, "train_loss": train_loss}
            curve.append({**point, **evaluate(model, processor, self.test, config)})
            checkpointer.save(curve=curve)
            log.info("%s step %d (%s): top-1 %.2f", method, step, stage, curve[-1]["top1"])

        if not curve:
            record(0, "zero-shot")
        total = lambda_steps + config.finetune_steps
        if total:
            self._train(config, model, processor, optimizers, lambda_steps, curve, record)
        return {"zero_shot_top1": curve[0]["top1"], "final_top1": curve[-1]["top1"], "curve": curve}

    def _train(self, config: CLIPConfig, model: EquiCLIP, processor, optimizers: dict, lambda_steps: int, curve, record) -> None:
        """Steps ``curve[-1]["step"] .. total``: the λ-net alone, then the image tower; ``record`` at evaluation steps."""
        train, batch = self.train, config.batch_size
        total = lambda_steps + config.finetune_steps
        generator = torch.Generator().manual_seed(config.seed)
        epochs = -(-total * batch // len(train))
        order = torch.cat([torch.randperm(len(train), generator=generator) for _ in range(epochs)])  # each image once per epoch
        elements = random_elements(len(order), model.transform.group.order, config.seed + 1)
        losses: list[float] = []  # since the last evaluation (a checkpoint is written at evaluations only)
        ready = None  # the stage the model is set up for; evaluation leaves eval mode, so it is reset there
        for step in progress(range(curve[-1]["step"], total), desc=f"train {model.method}"):
            stage = "lambda" if step < lambda_steps else "finetune"
            if ready != stage:
                # the λ stage trains the λ-net alone (the tower in eval mode); fine-tuning trains the image tower
                trainable = [p for g in optimizers[stage].param_groups for p in g["params"]]
                train_only(model, trainable, model.weight_net if stage == "lambda" else None)
                ready = stage
            index, moved = order[step * batch : (step + 1) * batch], elements[step * batch : (step + 1) * batch]
            pixels = _pixels(processor, train, index, moved, model.transform, config.torch_device)
            loss = F.cross_entropy(model(pixels), train.labels[index].to(config.torch_device))
            optimizers[stage].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[stage].step()
            losses.append(loss.item())
            if evaluates_after(step + 1, lambda_steps, total, config.eval_every) and curve[-1]["step"] != step + 1:
                record(step + 1, stage, sum(losses) / len(losses))
                losses.clear()
                ready = None

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        from equinlp.apps.vision.report import clip_tables

        return clip_tables(runs)

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        from equinlp.apps.vision.report import plot_clip

        plot_clip(runs, path)
