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
RUN_DESCRIPTION = (
    "The paper's CNN protocol. Per architecture a network is pre-trained once on upright training "
    "images (a run of its own, shared by every method and seed); each method × seed then starts from it, is "
    "evaluated on the randomly rotated test set (epoch 0), and fine-tuned on randomly rotated training images. "
    "λ-equitune first trains its λ-net alone. Finished runs in OUT/runs are skipped; an interrupted one resumes "
    "from its last finished epoch."
)
CLIP_HELP = "CLIP zero-shot (and fine-tuning) on randomly rotated/flipped test images, per method"
CLIP_DESCRIPTION = (
    "Loads any HF CLIPModel (hub id or folder) and builds its zero-shot classifier from the class names "
    "and CLIP's templates (18 for CIFAR, 80 for ImageNet). Each test image is moved by a random group element. "
    "With --lambda-steps / --finetune-steps, trains the λ-net alone, then the image tower (λ-net frozen)."
)
VISION, CLIP = TASKS["vision"], TASKS["clip"]

add_arguments = app_arguments(
    "vision_command",
    {
        "run": Command(RUN_HELP, run=VISION.source, config=VISION.config, description=RUN_DESCRIPTION),
        "clip": Command(CLIP_HELP, run=CLIP.source, config=CLIP.config, description=CLIP_DESCRIPTION),
        "report": Command(REPORT_HELP, report=(("vision", VISION.source), ("clip", CLIP.source))),
    },
)
