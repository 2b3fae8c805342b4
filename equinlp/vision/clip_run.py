"""The paper's CLIP experiments: zero-shot on randomly transformed test images, and fine-tuning.

For each method, from the same pre-trained CLIP:

1. step 0: zero-shot top-1 / top-5 on the test set, every image moved by its own random group element
   (the same elements for every method, seed ``test_seed``);
2. λ-equitune only: ``lambda_steps`` steps training the λ-net alone (the paper: 20 × 100, SGD), then an
   evaluation — "zero-shot λ-equitune";
3. ``finetune_steps`` steps fine-tuning the image tower (λ-net frozen, as the paper does), with an
   evaluation every ``eval_every`` steps (the paper: 8 × 500, SGD lr 5e-6, batch 32).

Training images are moved by random group elements too. One JSON per method in ``OUT/runs``; a checkpoint
after each evaluation (``OUT/checkpoints``), from which a rerun resumes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from equinlp.files import write_atomic, write_text_atomic
from equinlp.vision.clip import EquiCLIP, clip_prompts, templates_for
from equinlp.vision.data import cifar_arrays, image_folder, random_elements, transform_each
from equinlp.vision.train import train_only
from equinlp.vision.wrap import METHODS

CLIP_DATASETS = ("cifar10", "cifar100", "imagenet-v2")


@dataclass
class CLIPConfig:
    model: str = "openai/clip-vit-base-patch32"
    dataset: str = "cifar100"
    data_dir: str = "data/cifar-100-python"
    group: str = "rot90"
    methods: tuple[str, ...] = METHODS
    proxy: str = "max_prob"
    batch_size: int = 32
    eval_images: int | None = None  # None: the whole test set
    lambda_steps: int = 0
    lambda_lr: float = 1e-3
    finetune_steps: int = 0
    lr: float = 5e-6
    eval_every: int = 500
    seed: int = 0
    test_seed: int = 1234
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    out: str = "results/clip"

    def __post_init__(self) -> None:
        if self.dataset not in CLIP_DATASETS:
            raise ValueError(f"unknown CLIP dataset {self.dataset!r}; choose from {', '.join(CLIP_DATASETS)}")
        if self.finetune_steps and self.dataset == "imagenet-v2":
            raise ValueError("ImageNet-V2 is a test set only; fine-tune on cifar10 or cifar100")


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
    for start in tqdm(range(0, n, config.batch_size), desc=f"eval {model.method}", disable=None, leave=False):
        index = torch.arange(start, min(start + config.batch_size, n))
        logits = model(_pixels(processor, raw, index, elements[index], model.transform, config.device).to(dtype))
        labels = raw.labels[index].to(logits.device)
        best = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        top1 += int((best[:, 0] == labels).sum())
        top5 += int((best == labels[:, None]).any(-1).sum())
    return {"top1": 100 * top1 / n, "top5": 100 * top5 / n}


def run_method(config: CLIPConfig, method: str, log=print) -> dict:
    """One method's curve; resumes from its checkpoint; writes ``OUT/runs/<name>.json``."""
    name = f"{config.dataset}_{re.sub(r'[^A-Za-z0-9.-]+', '-', config.model)}_{config.group}_{method}_seed{config.seed}"
    out = Path(config.out)
    test = RawImages(config, "test")
    model, processor = EquiCLIP.from_pretrained(
        config.model, list(test.class_names), templates_for(config.dataset), config.group, method, config.proxy, config.device
    )
    torch.manual_seed(config.seed)
    lambda_steps = config.lambda_steps if model.weight_net is not None else 0
    stages = [("lambda", lambda_steps, model.weight_net.parameters() if lambda_steps else [], config.lambda_lr)]
    stages.append(("finetune", config.finetune_steps, model.backbone.image_tower_parameters(), config.lr))
    optimizers = {stage: torch.optim.SGD(params, lr=lr, momentum=0.9) for stage, steps, params, lr in stages if steps}
    checkpoint = out / "checkpoints" / f"{name}.pt"
    curve: list[dict] = []
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=config.device)
        model.load_state_dict(state["model"])
        for stage, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][stage])
        curve = state["curve"]
        log(f"{name}: resumed at step {curve[-1]['step']}")

    def record(step: int, stage: str) -> None:
        curve.append({"step": step, "stage": stage, **evaluate(model, processor, test, config)})
        state = {"model": model.state_dict(), "optimizers": {s: o.state_dict() for s, o in optimizers.items()}, "curve": curve}
        write_atomic(checkpoint, lambda tmp: torch.save(state, tmp))
        log(f"{name} step {step} ({stage}): top-1 {curve[-1]['top1']:.2f}")

    if not curve:
        record(0, "zero-shot")
    total = lambda_steps + config.finetune_steps
    if total:
        train = RawImages(config, "train")
        generator = torch.Generator().manual_seed(config.seed)
        epochs = -(-total * config.batch_size // len(train))
        order = torch.cat([torch.randperm(len(train), generator=generator) for _ in range(epochs)])  # each image once per epoch
        elements = random_elements(len(order), model.transform.group.order, config.seed + 1)
        ready = None  # the stage the model is set up for; evaluation leaves eval mode, so it is reset there
        for step in tqdm(range(curve[-1]["step"], total), desc=f"train {method}", disable=None):
            stage = "lambda" if step < lambda_steps else "finetune"
            if ready != stage:
                # the λ stage trains the λ-net alone (the tower in eval mode); fine-tuning trains the image tower
                trainable = [p for g in optimizers[stage].param_groups for p in g["params"]]
                train_only(model, trainable, model.weight_net if stage == "lambda" else None)
                ready = stage
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            pixels = _pixels(
                processor,
                train,
                index,
                elements[step * config.batch_size : (step + 1) * config.batch_size],
                model.transform,
                config.device,
            )
            loss = F.cross_entropy(model(pixels), train.labels[index].to(config.device))
            optimizers[stage].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[stage].step()
            done = step + 1
            if done == lambda_steps or (done > lambda_steps and (done - lambda_steps) % config.eval_every == 0) or done == total:
                if curve[-1]["step"] != done:
                    record(done, stage)
                    ready = None
    result = {
        "model": config.model,
        "dataset": config.dataset,
        "group": config.group,
        "method": method,
        "curve": curve,
        "zero_shot_top1": curve[0]["top1"],
        "final_top1": curve[-1]["top1"],
        "config": asdict(config),
    }
    write_text_atomic(out / "runs" / f"{name}.json", json.dumps(result, indent=1))
    return result


def run(config: CLIPConfig, log=print) -> list[dict]:
    """Every method in ``config.methods``, in turn."""
    return [run_method(config, method, log) for method in config.methods]
