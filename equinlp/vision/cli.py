"""``equinlp vision run | clip | report``: the harness's commands over :class:`VisionTask` and :class:`CLIPTask`."""

from __future__ import annotations

import argparse

from equinlp.harness.cli import add_report_command, add_run_command
from equinlp.vision.clip_task import CLIPTask
from equinlp.vision.task import VisionTask

EXAMPLES = """examples:
  equinlp vision run --quick                                   # ResNet-18 on Fashion-MNIST, 1 seed, minutes
  equinlp vision run --archs resnet18 alexnet --seeds 0 1 2 --out reports/vision   # the README's table
  equinlp vision report reports/vision
  equinlp vision clip --model openai/clip-vit-base-patch32 --dataset cifar100 --data-dir ~/data/cifar-100-python \\
      --group rot90 --lambda-steps 2000 --finetune-steps 4000 --out results/clip   # the paper's CLIP runs (GPU)
"""

TASKS = {"vision": VisionTask(), "clip": CLIPTask()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vision_command", required=True)
    add_run_command(
        sub,
        TASKS["vision"],
        "run",
        help="pre-train CNNs on upright images, evaluate and fine-tune each method on rotated ones (resumable)",
        description="The paper's CNN protocol. Per architecture a network is pre-trained once on upright training "
        "images (a run of its own, shared by every method and seed); each method × seed then starts from it, is "
        "evaluated on the randomly rotated test set (epoch 0), and fine-tuned on randomly rotated training images. "
        "λ-equitune first trains its λ-net alone. Finished runs in OUT/runs are skipped; an interrupted one resumes "
        "from its last finished epoch.",
    )
    add_run_command(
        sub,
        TASKS["clip"],
        "clip",
        help="CLIP zero-shot (and fine-tuning) on randomly rotated/flipped test images, per method",
        description="Loads any HF CLIPModel (hub id or folder) and builds its zero-shot classifier from the class names "
        "and CLIP's templates (18 for CIFAR, 80 for ImageNet). Each test image is moved by a random group element. "
        "With --lambda-steps / --finetune-steps, trains the λ-net alone, then the image tower (λ-net frozen).",
    )
    add_report_command(sub, TASKS["vision"], TASKS["clip"])
