"""``equinlp vision run | clip | report``: the harness's commands over :class:`VisionTask` and :class:`CLIPTask`."""

from __future__ import annotations

import argparse

from equinlp.harness.cli import REPORT_HELP, add_lazy_subcommands, add_report_command, add_run_command

EXAMPLES = """examples:
  equinlp vision run --quick                                   # ResNet-18 on Fashion-MNIST, 1 seed, minutes
  equinlp vision run --archs resnet18 alexnet --seeds 0 1 2 --out reports/vision   # the docs' results table
  equinlp vision report reports/vision
  equinlp vision clip --model openai/clip-vit-base-patch32 --dataset cifar100 --data-dir ~/data/cifar-100-python \\
      --group rot90 --lambda-steps 2000 --finetune-steps 4000 --out results/clip   # the paper's CLIP runs (GPU)
"""

RUN_HELP = "pre-train CNNs on upright images, evaluate and fine-tune each method on rotated ones (resumable)"
CLIP_HELP = "CLIP zero-shot (and fine-tuning) on randomly rotated/flipped test images, per method"
RUN_DESCRIPTION = (
    "The paper's CNN protocol. Per architecture a network is pre-trained once on upright training "
    "images (a run of its own, shared by every method and seed); each method × seed then starts from it, is "
    "evaluated on the randomly rotated test set (epoch 0), and fine-tuned on randomly rotated training images. "
    "λ-equitune first trains its λ-net alone. Finished runs in OUT/runs are skipped; an interrupted one resumes "
    "from its last finished epoch."
)
CLIP_DESCRIPTION = (
    "Loads any HF CLIPModel (hub id or folder) and builds its zero-shot classifier from the class names "
    "and CLIP's templates (18 for CIFAR, 80 for ImageNet). Each test image is moved by a random group element. "
    "With --lambda-steps / --finetune-steps, trains the λ-net alone, then the image tower (λ-net frozen)."
)


def add_arguments(parser: argparse.ArgumentParser, chosen: str | None = None) -> None:
    builders = {"run": (RUN_HELP, _add_run), "clip": (CLIP_HELP, _add_clip), "report": (REPORT_HELP, _add_report)}
    add_lazy_subcommands(parser, "vision_command", chosen, builders)


def _add_run(sub, name: str, help_text: str) -> None:
    from equinlp.apps.vision.task import VisionTask

    add_run_command(sub, VisionTask(), name, help=help_text, description=RUN_DESCRIPTION)


def _add_clip(sub, name: str, help_text: str) -> None:
    from equinlp.apps.vision.clip_task import CLIPTask

    add_run_command(sub, CLIPTask(), name, help=help_text, description=CLIP_DESCRIPTION)


def _add_report(sub, name: str, help_text: str) -> None:
    from equinlp.apps.vision.clip_task import CLIPTask
    from equinlp.apps.vision.task import VisionTask

    add_report_command(sub, VisionTask(), CLIPTask(), name=name, help=help_text)
