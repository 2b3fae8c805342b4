"""``equinlp vision run | clip | report``: the harness's commands over :class:`VisionTask` and :class:`CLIPTask`."""

from __future__ import annotations

from equinlp.apps import TASKS
from equinlp.harness.cli import REPORT_HELP, Command, app_arguments

EXAMPLES = """examples:
  equinlp vision run --quick                                   # ResNet-18 on Fashion-MNIST, 1 seed, minutes
  equinlp vision run --archs resnet18 alexnet --seeds 0 1 2 --out reports/vision   # the docs' results table
  equinlp vision report reports/vision
  equinlp vision clip --model openai/clip-vit-base-patch32 --dataset cifar100 --data-dir ~/data/cifar-100-python \\
      --group rot90 --lambda-steps 2000 --finetune-steps 4000 --out results/clip   # the paper's CLIP runs (GPU)
"""

RUN_HELP = "pre-train CNNs on upright images, evaluate and fine-tune each method on rotated ones (resumable)"
CLIP_HELP = "CLIP zero-shot (and fine-tuning) on randomly rotated/flipped test images, per method"
VISION, CLIP = TASKS["vision"].source, TASKS["clip"].source

add_arguments = app_arguments(
    "vision_command",
    {
        "run": Command(RUN_HELP, run=VISION),
        "clip": Command(CLIP_HELP, run=CLIP),
        "report": Command(REPORT_HELP, report=(VISION, CLIP)),
    },
)
