"""``equinlp vision run`` and ``vision clip``'s settings: :class:`VisionConfig` (CNNs) and :class:`CLIPConfig`, with
their choices (datasets, architectures, methods, equizero's proxies). Imports no torch, so ``--help`` starts at once."""

from __future__ import annotations

from dataclasses import dataclass

from equinlp.errors import EquinlpError
from equinlp.harness import RunConfig, option
from equinlp.methods import registry
from equinlp.symmetry.catalog import IMAGE_GROUP_NAMES

DATASETS = ("fashion-mnist", "digits", "cifar10", "cifar100")  # the CNN runs' (see :mod:`equinlp.apps.vision.data`)
CLIP_DATASETS = ("cifar10", "cifar100", "imagenet-v2")
ARCHS = ("resnet18", "alexnet")  # the CNNs of :data:`equinlp.apps.vision.cnn.ARCHITECTURES`
METHODS = registry.token_methods()
VISION_PROXIES = ("max_prob", "entropy")


def proxy_option():
    """The ``proxy`` setting of the vision configs (CNN and CLIP): used by the equizero runs only."""
    return option(
        "max_prob",
        "equizero's proxy: most confident copy, or lowest entropy",
        choices=VISION_PROXIES,
        used_by={"method": ("equizero",)},
    )


@dataclass
class VisionConfig(RunConfig):
    dataset: str = option("fashion-mnist", "image data (cifar* need --data-dir)", choices=DATASETS)
    data_dir: str | None = option(None, "folder of the dataset's files (default: where its package installs them)", reads=True)
    group: str = option(
        "rot90", "image group: rot90 = C4; rot180 = the paper's 'flip'", choices=lambda: sorted(IMAGE_GROUP_NAMES)
    )
    archs: tuple[str, ...] = option(
        ("resnet18", "alexnet"), "architectures", choices=ARCHS, plan=True, flags=("--arch",), quick=("resnet18",)
    )
    methods: tuple[str, ...] = option(METHODS, "methods", choices=METHODS, plan=True, flags=("--method",))
    seeds: tuple[int, ...] = option((0, 1, 2), "fine-tuning seeds (the paper: 3)", at_least=0, plan=True, quick=(0,))
    proxy: str = proxy_option()
    pretrain_epochs: int = option(1, "epochs of upright pre-training", at_least=1)
    pretrain_images: int | None = option(None, "upright training images (default: all)", at_least=1, quick=10_000)
    pretrain_lr: float | None = option(None, "AdamW lr of pre-training (default: 1e-3 ResNet-18, 1e-4 AlexNet)", above=0)
    finetune_images: int = option(1500, "rotated training images per fine-tuning epoch", at_least=1, quick=500)
    epochs: int = option(3, "fine-tuning epochs (0: zero-shot only)", at_least=0, quick=1)
    lr: float = option(1e-3, "SGD (momentum 0.9) learning rate of fine-tuning (the paper: 1e-3)", above=0)
    lambda_lr: float = option(1e-3, "Adam learning rate of the λ-only pass", above=0)
    batch_size: int = option(32, "fine-tuning batch size", at_least=1)
    eval_images: int | None = option(1500, "rotated test images (null in --config: all)", at_least=1, quick=500)
    test_seed: int = option(1234, "seed of the rotated test set (its images and their elements)", at_least=0)
    out: str = option("results/vision", "output folder: one JSON per finished run in OUT/runs, continued on rerun", keyed=False)


@dataclass
class CLIPConfig(RunConfig):
    model: str = option("openai/clip-vit-base-patch32", "hub id or local folder of a CLIPModel", reads=True)
    dataset: str = option("cifar100", "test (and training) images", choices=CLIP_DATASETS)
    data_dir: str | None = option(
        None, "CIFAR python release folder, or ImageNet-V2's folder of 0..999 class folders (required)", reads=True
    )
    group: str = option(
        "rot90", "image group: rot90 = C4; rot180 = the paper's 'flip'", choices=lambda: sorted(IMAGE_GROUP_NAMES)
    )
    methods: tuple[str, ...] = option(METHODS, "methods", choices=METHODS, plan=True, flags=("--method",))
    proxy: str = proxy_option()
    batch_size: int = option(32, "batch size of training and evaluation", at_least=1)
    eval_images: int | None = option(None, "test images (default: all)", at_least=1)
    lambda_steps: int = option(0, "λ-only training steps (the paper: 2000)", at_least=0)
    lambda_lr: float = option(1e-3, "SGD (momentum 0.9) learning rate of the λ-net", above=0)
    finetune_steps: int = option(0, "image-tower fine-tuning steps (the paper: 4000)", at_least=0)
    lr: float = option(5e-6, "SGD (momentum 0.9) learning rate of the image tower (the paper: 5e-6)", above=0)
    eval_every: int = option(500, "fine-tuning steps between evaluations", at_least=1)
    seed: int = option(0, "seed of the training order and the training images' elements", at_least=0)
    test_seed: int = option(1234, "seed of the test images' elements", at_least=0)
    device: str | None = option(None, "torch device (default: cuda if available)", keyed=False)
    out: str = option("results/clip", "output folder: one JSON per finished run in OUT/runs, continued on rerun", keyed=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data_dir is None:
            raise EquinlpError("data_dir (--data-dir) is required: the CIFAR python release or ImageNet-V2's folder")
        if self.finetune_steps and self.dataset == "imagenet-v2":
            raise EquinlpError("ImageNet-V2 is a test set only; fine-tune on cifar10 or cifar100 (or --finetune-steps 0)")

    @property
    def torch_device(self) -> str:
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")
