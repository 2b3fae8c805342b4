"""The paper's CNN protocol: pre-train on upright images, then evaluate and fine-tune on rotated ones.

Per architecture, one network is pre-trained on upright training images (``OUT/pretrained``), as the
paper starts every run from one ImageNet model. Each method × seed then starts from it:

1. epoch 0: the method's accuracy on the rotated test set with no fine-tuning (zero-shot). λ-equitune
   first trains its λ-net alone for one pass over the fine-tuning images (the backbone frozen, batch-norm
   statistics included), as the paper does for CLIP, so its epoch 0 is "after λ-only training";
2. epochs 1..E: fine-tune the whole network (and the λ-net) on randomly rotated training images, then
   evaluate. (The paper's CNN code trained only the head: its backbone sat in a plain Python list, so
   it was never registered; here every layer trains.)

The rotated test set is the same for every run (one element per image, seed ``test_seed``), so runs are
paired. One JSON per run: ``OUT/runs/{dataset}_{arch}_{method}_seed{s}.json``. A checkpoint is written
after every epoch, so Ctrl-C loses at most the epoch in progress; a rerun skips finished runs and resumes
the rest. A finished run's checkpoint is deleted (AlexNet's is 0.5 GB with its optimizer state).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from equinlp.actions import ImageTransform
from equinlp.files import write_atomic, write_text_atomic
from equinlp.vision.cnn import ARCHITECTURES, build_cnn
from equinlp.vision.data import DATASETS, ImageSet, load
from equinlp.vision.train import accuracy, rotated, train_epoch
from equinlp.vision.wrap import METHODS, VISION_PROXIES, InvariantClassifier

PRETRAIN_LR = {"resnet18": 1e-3, "alexnet": 1e-4}


@dataclass
class VisionConfig:
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    group: str = "rot90"
    archs: tuple[str, ...] = ("resnet18", "alexnet")
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    proxy: str = "max_prob"
    pretrain_epochs: int = 1
    pretrain_images: int | None = None  # None: the whole training split
    pretrain_lr: float | None = None  # None: AdamW 1e-3 for ResNet-18, 1e-4 for AlexNet (no batch norm)
    finetune_images: int = 1500
    epochs: int = 3
    lr: float = 1e-3
    lambda_lr: float = 1e-3
    batch_size: int = 32
    eval_images: int | None = 1500
    test_seed: int = 1234
    out: str = "results/vision"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        for name, chosen, allowed in (("archs", self.archs, ARCHITECTURES), ("methods", self.methods, METHODS)):
            unknown = set(chosen) - set(allowed)
            if unknown:
                raise ValueError(f"unknown {name} {sorted(unknown)}; choose from {', '.join(allowed)}")
        if self.proxy not in VISION_PROXIES:
            raise ValueError(f"unknown proxy {self.proxy!r}; choose from {', '.join(VISION_PROXIES)}")
        ImageTransform(self.group)  # raises on an unknown group

    def image_size(self, arch: str) -> int | None:
        """AlexNet needs at least 63 px: small images are resized to 64 (before any rotation)."""
        return 64 if arch == "alexnet" else None


def _data(config: VisionConfig, arch: str, split: str) -> ImageSet:
    return load(config.dataset, split, config.data_dir, config.image_size(arch))


def pretrained(config: VisionConfig, arch: str, train: ImageSet, test: ImageSet, log=print) -> torch.nn.Module:
    """The backbone trained on upright images (trained once, then read from ``OUT/pretrained``)."""
    name = f"{config.dataset}_{arch}_e{config.pretrain_epochs}_n{config.pretrain_images or len(train)}"
    path = Path(config.out) / "pretrained" / f"{name}.pt"
    torch.manual_seed(0)
    net = build_cnn(arch, len(train.class_names), train.channels)
    if path.exists():
        net.load_state_dict(torch.load(path))
        return net
    data = train.subset(config.pretrain_images, seed=0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.pretrain_lr or PRETRAIN_LR[arch])
    for epoch in range(config.pretrain_epochs):
        loss = train_epoch(net, net.parameters(), optimizer, data, None, seed=epoch, batch_size=128, desc=f"pre-train {arch}")
        log(f"pre-train {arch} epoch {epoch + 1}: loss {loss:.3f}")
    upright_test = test.subset(config.eval_images, seed=config.test_seed)
    upright = accuracy(net, upright_test)
    write_atomic(path, lambda tmp: torch.save(net.state_dict(), tmp))
    record = {
        "dataset": config.dataset,
        "arch": arch,
        "image_size": config.image_size(arch),
        "pretrain_epochs": config.pretrain_epochs,
        "pretrain_images": len(data),
        "optimizer": f"AdamW lr {config.pretrain_lr or PRETRAIN_LR[arch]}, batch 128",
        "upright_test_accuracy": upright,
        "upright_test_images": len(upright_test),
    }
    write_text_atomic(path.with_suffix(".json"), json.dumps(record, indent=1))
    log(f"pre-trained {arch}: upright test accuracy {upright:.4f} -> {path}")
    return net


def run_name(config: VisionConfig, arch: str, method: str, seed: int) -> str:
    return f"{config.dataset}_{arch}_{method}_seed{seed}"


def run_one(
    config: VisionConfig, arch: str, method: str, seed: int, base: torch.nn.Module, train: ImageSet, test: ImageSet, log=print
):
    """One method × seed from the pre-trained ``base``; returns the result dict (also written as JSON)."""
    out = Path(config.out)
    name = run_name(config, arch, method, seed)
    checkpoint = out / "checkpoints" / f"{name}.pt"
    transform = ImageTransform(config.group)
    torch.manual_seed(seed)
    model = InvariantClassifier(copy.deepcopy(base), transform, method, config.proxy)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)  # the backbone and any λ-net
    finetune = train.subset(config.finetune_images, seed=seed)
    curve: list[dict] = []
    if checkpoint.exists():
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        curve = state["curve"]
        log(f"{name}: resumed after epoch {curve[-1]['epoch']}")

    def save() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "curve": curve}
        write_atomic(checkpoint, lambda tmp: torch.save(state, tmp))

    try:
        if not curve:
            if model.weight_net is not None:  # λ-only stage: the backbone frozen
                lambda_optimizer = torch.optim.Adam(model.weight_net.parameters(), lr=config.lambda_lr)
                train_epoch(
                    model,
                    model.weight_net.parameters(),
                    lambda_optimizer,
                    finetune,
                    transform,
                    seed + 10_000,
                    config.batch_size,
                    f"{name} λ",
                    train_mode=model.weight_net,  # the backbone stays in eval mode: its BN statistics do not move
                )
            curve.append({"epoch": 0, "accuracy": accuracy(model, test, desc=f"{name} eval"), "train_loss": None})
            save()
            log(f"{name} epoch 0: {curve[-1]['accuracy']:.4f}")
        while curve[-1]["epoch"] < config.epochs:
            epoch = curve[-1]["epoch"] + 1
            loss = train_epoch(
                model,
                model.parameters(),
                optimizer,
                finetune,
                transform,
                seed * 1000 + epoch,
                config.batch_size,
                f"{name} e{epoch}",
            )
            curve.append({"epoch": epoch, "accuracy": accuracy(model, test, desc=f"{name} eval"), "train_loss": loss})
            save()
            log(f"{name} epoch {epoch}: {curve[-1]['accuracy']:.4f} (train loss {loss:.3f})")
    except KeyboardInterrupt:
        log(f"{name}: interrupted; epochs up to {curve[-1]['epoch'] if curve else 'none'} are in {checkpoint}")
        raise
    result = {
        "dataset": config.dataset,
        "arch": arch,
        "method": method,
        "seed": seed,
        "group": config.group,
        "proxy": config.proxy if method == "equizero" else None,
        "zero_shot": curve[0]["accuracy"],
        "final": curve[-1]["accuracy"],
        "curve": curve,
        "config": asdict(config),
    }
    write_text_atomic(out / "runs" / f"{name}.json", json.dumps(result, indent=1))
    checkpoint.unlink(missing_ok=True)  # the JSON holds the whole curve; weights of finished runs are not kept
    return result


def run(config: VisionConfig, log=print) -> list[dict]:
    """Every arch × method × seed not yet in ``OUT/runs``; returns all their results."""
    results = []
    for arch in config.archs:
        todo = [(m, s) for m in config.methods for s in config.seeds]
        runs = Path(config.out) / "runs"
        done = {(m, s) for m, s in todo if (runs / f"{run_name(config, arch, m, s)}.json").exists()}
        for m, s in sorted(done):
            results.append(json.loads((runs / f"{run_name(config, arch, m, s)}.json").read_text()))
        if len(done) == len(todo):
            continue
        train, upright_test = _data(config, arch, "train"), _data(config, arch, "test")
        test_subset = upright_test.subset(config.eval_images, seed=config.test_seed)
        test = rotated(test_subset, ImageTransform(config.group), config.test_seed)
        base = pretrained(config, arch, train, upright_test, log)
        for method, seed in todo:
            if (method, seed) not in done:
                results.append(run_one(config, arch, method, seed, base, train, test, log))
    return results
