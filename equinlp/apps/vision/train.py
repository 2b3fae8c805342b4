"""Training and evaluation loops for image classifiers on in-memory tensors.

Images are corrupted by one random group element each (the paper's CNN protocol), drawn from a seeded
generator, so a run and its resumed copy see the same batches.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from equinlp.apps.vision.data import ImageSet, random_elements, transform_each
from equinlp.harness.progress import progress
from equinlp.symmetry.actions import ImageTransform


@torch.no_grad()
def accuracy(model: nn.Module, data: ImageSet, batch_size: int = 256, desc: str = "eval") -> float:
    """Top-1 accuracy of ``model`` (``[B, C, H, W] -> [B, K]``) on ``data`` as given, in eval mode."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in progress(range(0, len(data), batch_size), desc=desc, leave=False):
        logits = model(data.images[start : start + batch_size])
        correct += int((logits.argmax(-1) == data.labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(data)


def rotated(data: ImageSet, transform: ImageTransform, seed: int) -> ImageSet:
    """``data`` with every image moved by its own random group element (fixed by ``seed``)."""
    elements = random_elements(len(data), transform.group.order, seed)
    return ImageSet(transform_each(data.images, transform, elements), data.labels, data.class_names)


def train_only(model: nn.Module, parameters: Iterable[nn.Parameter], train_mode: nn.Module | None = None) -> None:
    """Give gradients to ``parameters`` alone, and put ``train_mode`` (default: the whole model) in training
    mode with the rest in eval mode, so a frozen part's batch-norm statistics and dropout stay fixed too."""
    trainable = {id(p) for p in parameters}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    model.eval()
    (train_mode or model).train()


def train_epoch(
    model: nn.Module,
    parameters: Iterable[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    data: ImageSet,
    transform: ImageTransform | None,
    seed: int,
    batch_size: int = 32,
    desc: str = "train",
    train_mode: nn.Module | None = None,
) -> float:
    """One pass over ``data`` in a seeded order, each image randomly transformed (``transform`` None: upright).

    Returns the mean training loss. Only ``parameters`` get gradients; the rest of the model is frozen.
    ``train_mode``: the submodule put in training mode (default: the whole model); the rest stays in eval
    mode, so a frozen backbone's batch-norm statistics do not move either.
    """
    train_only(model, parameters, train_mode)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    images = data.images if transform is None else rotated(data, transform, seed).images
    total, count = 0.0, 0
    bar = progress(range(0, len(data), batch_size), desc=desc, leave=False)
    for start in bar:
        index = order[start : start + batch_size]
        loss = F.cross_entropy(model(images[index]), data.labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(index), count + len(index)
        bar.set_postfix(loss=f"{total / count:.3f}")
    return total / max(count, 1)
