"""``equinlp vision run | clip | report``."""

from __future__ import annotations

import argparse

from equinlp.actions import IMAGE_GROUPS
from equinlp.vision.cnn import ARCHITECTURES
from equinlp.vision.data import DATASETS
from equinlp.vision.wrap import METHODS, VISION_PROXIES

EXAMPLES = """examples:
  equinlp vision run --quick                                   # ResNet-18 on Fashion-MNIST, 1 seed, minutes
  equinlp vision run --arch resnet18 alexnet --seeds 0 1 2 --out reports/vision   # the README's table
  equinlp vision report reports/vision
  equinlp vision clip --model openai/clip-vit-base-patch32 --dataset cifar100 --data-dir ~/data/cifar-100-python \\
      --group rot90 --lambda-steps 2000 --finetune-steps 4000 --out results/clip   # the paper's CLIP runs (GPU)
"""

QUICK = {
    "archs": ("resnet18",),
    "seeds": (0,),
    "pretrain_images": 10_000,
    "finetune_images": 500,
    "epochs": 1,
    "eval_images": 500,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vision_command", required=True)
    run = sub.add_parser(
        "run",
        help="pre-train CNNs on upright images, evaluate and fine-tune each method on rotated ones (resumable)",
        description="The paper's CNN protocol. Per architecture a network is pre-trained once on upright training "
        "images (OUT/pretrained); each method × seed then starts from it, is evaluated on the randomly rotated test "
        "set (epoch 0), and fine-tuned on randomly rotated training images. λ-equitune first trains its λ-net alone. "
        "Runs in OUT/runs are skipped; an interrupted run resumes from OUT/checkpoints.",
    )
    run.add_argument("--dataset", default="fashion-mnist", choices=DATASETS, help="image data (cifar* need --data-dir)")
    run.add_argument("--data-dir", default=None, help="folder of the dataset's files (default: where its package installs them)")
    run.add_argument("--arch", "--archs", dest="archs", nargs="+", default=["resnet18", "alexnet"], choices=list(ARCHITECTURES))
    run.add_argument("--method", "--methods", dest="methods", nargs="+", default=list(METHODS), choices=METHODS)
    run.add_argument("--group", default="rot90", choices=sorted(IMAGE_GROUPS), help="rot90 = C4; rot180 = the paper's 'flip'")
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="fine-tuning seeds (the paper: 3)")
    run.add_argument(
        "--proxy", default="max_prob", choices=VISION_PROXIES, help="equizero's proxy: most confident copy, or lowest entropy"
    )
    run.add_argument("--pretrain-epochs", type=int, default=1, help="epochs of upright pre-training")
    run.add_argument("--pretrain-images", type=int, default=None, help="upright training images (default: all)")
    run.add_argument("--finetune-images", type=int, default=1500, help="rotated training images per fine-tuning epoch")
    run.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    run.add_argument("--lr", type=float, default=1e-3, help="SGD (momentum 0.9) learning rate for fine-tuning (the paper: 1e-3)")
    run.add_argument("--lambda-lr", type=float, default=1e-3, help="Adam learning rate of the λ-only stage")
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--eval-images", type=int, default=1500, help="rotated test images (0: all)")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--quick", action="store_true", help=f"a first look in minutes: {QUICK}")
    run.add_argument("--out", default="results/vision", help="output folder (kept and continued on rerun)")

    clip = sub.add_parser(
        "clip",
        help="CLIP zero-shot (and fine-tuning) on randomly rotated/flipped test images, per method",
        description="Loads any HF CLIPModel (hub id or folder) and builds its zero-shot classifier from the class names "
        "and CLIP's templates (18 for CIFAR, 80 for ImageNet). Each test image is moved by a random group element. "
        "With --lambda-steps / --finetune-steps, trains the λ-net alone, then the image tower (λ-net frozen).",
    )
    clip.add_argument("--model", default="openai/clip-vit-base-patch32", help="hub id or local folder of a CLIPModel")
    clip.add_argument("--dataset", default="cifar100", choices=["cifar10", "cifar100", "imagenet-v2"])
    clip.add_argument(
        "--data-dir", required=True, help="CIFAR python release folder, or ImageNet-V2's folder of 0..999 class folders"
    )
    clip.add_argument("--group", default="rot90", choices=sorted(IMAGE_GROUPS), help="rot90 = C4; rot180 = the paper's 'flip'")
    clip.add_argument("--method", "--methods", dest="methods", nargs="+", default=list(METHODS), choices=METHODS)
    clip.add_argument("--proxy", default="max_prob", choices=VISION_PROXIES)
    clip.add_argument("--batch-size", type=int, default=32)
    clip.add_argument("--eval-images", type=int, default=None, help="test images (default: all)")
    clip.add_argument("--lambda-steps", type=int, default=0, help="λ-only training steps (the paper: 2000)")
    clip.add_argument("--lambda-lr", type=float, default=1e-3, help="SGD learning rate of the λ-net")
    clip.add_argument("--finetune-steps", type=int, default=0, help="image-tower fine-tuning steps (the paper: 4000)")
    clip.add_argument("--lr", type=float, default=5e-6, help="SGD learning rate of the image tower (the paper: 5e-6)")
    clip.add_argument("--eval-every", type=int, default=500, help="fine-tuning steps between evaluations")
    clip.add_argument("--seed", type=int, default=0)
    clip.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    clip.add_argument("--out", default="results/clip")

    report = sub.add_parser("report", help="print the accuracy table and save the curves")
    report.add_argument("results", help="a results folder (of `vision run` or `vision clip`)")
    report.add_argument("--plot", default=None, help="where to save the plot (default RESULTS/vision.png)")


def run_command(args: argparse.Namespace) -> int:
    from equinlp.vision.report import print_report

    if args.vision_command == "report":
        print_report(args.results, args.plot)
        return 0
    if args.vision_command == "clip":
        from equinlp.vision.clip_run import CLIPConfig, run

        options = {
            k: getattr(args, k)
            for k in (
                "model",
                "dataset",
                "data_dir",
                "group",
                "proxy",
                "batch_size",
                "eval_images",
                "lambda_steps",
                "lambda_lr",
                "finetune_steps",
                "lr",
                "eval_every",
                "seed",
                "out",
            )
        }
        config = CLIPConfig(methods=tuple(args.methods), **options, **({"device": args.device} if args.device else {}))
        run(config)
        print_report(args.out)
        return 0
    import torch

    from equinlp.vision.run import VisionConfig, run

    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(
        dataset=args.dataset,
        data_dir=args.data_dir,
        group=args.group,
        archs=tuple(args.archs),
        methods=tuple(args.methods),
        seeds=tuple(args.seeds),
        proxy=args.proxy,
        pretrain_epochs=args.pretrain_epochs,
        pretrain_images=args.pretrain_images,
        finetune_images=args.finetune_images,
        epochs=args.epochs,
        lr=args.lr,
        lambda_lr=args.lambda_lr,
        batch_size=args.batch_size,
        eval_images=args.eval_images or None,
        out=args.out,
    )
    if args.quick:
        options.update(QUICK)
    run(VisionConfig(**options))
    print_report(args.out)
    return 0
