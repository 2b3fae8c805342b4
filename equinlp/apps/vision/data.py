"""Image datasets as tensors, and the random rotations of the paper's protocol.

Readers return an :class:`ImageSet`: float images in [-1, 1] ``[N, C, H, W]``, labels ``[N]`` and class
names. Small sets are read whole into memory (Fashion-MNIST: 47 MB as bytes).

- ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), or any
  folder holding the four IDX ``.gz`` files (``--data-dir`` or ``$EQUINLP_FASHION_MNIST``).
- ``digits``: scikit-learn's 1,797 8×8 digits, shipped inside its wheel: the fast set for tests.
- ``cifar10`` / ``cifar100``: the ``cifar-10-batches-py`` / ``cifar-100-python`` folders of the
  official python release, when a user has them on disk.
- ImageNet-V2 is read lazily from its image folders by :func:`image_folder` (CLIP evaluation).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from equinlp.apps.vision.config import DATASETS
from equinlp.apps.vision.safe_pickle import load_data_pickle
from equinlp.errors import MissingData, UnknownName
from equinlp.symmetry.actions import ImageTransform

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)


@dataclass
class ImageSet:
    """``images: float[N, C, H, W]`` (normalised), ``labels: long[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def subset(self, n: int | None, seed: int = 0) -> ImageSet:
        """A random subset of ``n`` images (all of them when ``n`` is None or not smaller)."""
        if n is None or n >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageSet(self.images[index], self.labels[index], self.class_names)


def _normalise(images: np.ndarray, size: int | None) -> torch.Tensor:
    """``uint8[N, H, W(, C)] -> float[N, C, size, size]`` in [-1, 1] (the same map for every split)."""
    x = torch.from_numpy(images).float() / 255.0
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if size is not None and size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return ((x - 0.5) / 0.5).contiguous()


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain): magic, dimension sizes, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


def find_fashion_mnist(data_dir: str | Path | None = None) -> Path:
    """The folder holding Fashion-MNIST's IDX files: ``data_dir``, ``$EQUINLP_FASHION_MNIST`` or Debian's."""
    candidates = [data_dir] if data_dir else [os.environ.get("EQUINLP_FASHION_MNIST"), *FASHION_MNIST_DIRS]
    for folder in filter(None, candidates):
        if (Path(folder) / "train-images-idx3-ubyte.gz").exists() or (Path(folder) / "train-images-idx3-ubyte").exists():
            return Path(folder)
    raise MissingData(
        f"Fashion-MNIST not found in {[str(c) for c in candidates if c]}; install it with "
        "`apt-get install dataset-fashion-mnist` (make setup does) or pass --data-dir to a folder with the four IDX files"
    )


def fashion_mnist(split: str = "train", data_dir: str | Path | None = None, size: int | None = None) -> ImageSet:
    """Fashion-MNIST ``train`` (60,000) or ``test`` (10,000): ``[N, 1, 28, 28]`` (or ``size``²)."""
    folder = find_fashion_mnist(data_dir)
    prefix = {"train": "train", "test": "t10k"}[split]

    def read(kind: str) -> np.ndarray:
        path = folder / f"{prefix}-{kind}"
        return _read_idx(path.with_name(path.name + ".gz") if path.with_name(path.name + ".gz").exists() else path)

    images, labels = read("images-idx3-ubyte"), read("labels-idx1-ubyte")
    return ImageSet(_normalise(images, size), torch.from_numpy(labels.astype(np.int64)), FASHION_MNIST_CLASSES)


def digits(split: str = "train", size: int | None = None, test_fraction: float = 0.25) -> ImageSet:
    """scikit-learn's 8×8 digits, split by a fixed permutation: ``[N, 1, 8, 8]`` (or ``size``²)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(len(images) * (1 - test_fraction))
    index = order[:cut] if split == "train" else order[cut:]
    return ImageSet(
        _normalise(images[index], size), torch.from_numpy(bunch.target[index].astype(np.int64)), tuple(map(str, range(10)))
    )


def cifar_arrays(which: str, split: str, data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """CIFAR-10 or -100 from the official python pickles: ``uint8[N, 32, 32, 3]``, labels, class names."""
    folder = Path(data_dir)
    if which == "cifar10":
        folder = folder if (folder / "batches.meta").exists() else folder / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta, names_key, labels_key = "batches.meta", "label_names", "labels"
    else:
        folder = folder if (folder / "meta").exists() else folder / "cifar-100-python"
        files, meta, names_key, labels_key = [split], "meta", "fine_label_names", "fine_labels"
    if not (folder / meta).exists():
        raise MissingData(f"no {which} python release under {data_dir} (expected {folder / meta})")
    batches = [load_data_pickle(folder / f) for f in files]  # numpy arrays only: a crafted file runs no code
    images = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.concatenate([b[labels_key] for b in batches]).astype(np.int64)
    names = load_data_pickle(folder / meta)[names_key]
    return np.ascontiguousarray(images), labels, tuple(n.replace("_", " ") for n in names)


def cifar(which: str, split: str, data_dir: str | Path, size: int | None = None) -> ImageSet:
    """CIFAR-10 or -100 as an :class:`ImageSet`: ``[N, 3, 32, 32]`` (or ``size``²)."""
    images, labels, names = cifar_arrays(which, split, data_dir)
    return ImageSet(_normalise(images, size), torch.from_numpy(labels), names)


def image_folder(root: str | Path) -> tuple[list[Path], np.ndarray]:
    """Image files under ``root/<class>/``, sorted, with labels: the folder name when it is an integer
    (ImageNet-V2's ``0 .. 999``), else the folder's rank in sorted order."""
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir())
    if not folders:
        raise MissingData(f"no class folders under {root}")
    numeric = all(p.name.isdigit() for p in folders)
    files, labels = [], []
    for rank, folder in enumerate(sorted(folders, key=lambda p: int(p.name) if numeric else p.name)):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in (".jpeg", ".jpg", ".png"):
                files.append(path)
                labels.append(int(folder.name) if numeric else rank)
    return files, np.asarray(labels, dtype=np.int64)


def load(name: str, split: str, data_dir: str | Path | None = None, size: int | None = None) -> ImageSet:
    """A dataset by name (see :data:`DATASETS`)."""
    if name == "fashion-mnist":
        return fashion_mnist(split, data_dir, size)
    if name == "digits":
        return digits(split, size)
    if name in ("cifar10", "cifar100"):
        if data_dir is None:
            raise ValueError(f"{name} is not shipped with any package here: pass --data-dir to its python release")
        return cifar(name, split, data_dir, size)
    raise UnknownName("dataset", name, DATASETS)


def random_elements(n: int, order: int, seed: int) -> torch.Tensor:
    """``long[n]``: one group element per image, drawn uniformly with ``seed``."""
    return torch.randint(order, (n,), generator=torch.Generator().manual_seed(seed))


def transform_each(images: torch.Tensor, transform: ImageTransform, elements: torch.Tensor) -> torch.Tensor:
    """``g_i · x_i`` for every image: ``[N, C, H, W]`` and ``long[N]`` -> ``[N, C, H, W]``."""
    out = images.clone()
    for g in elements.unique().tolist():
        mask = elements == g
        out[mask] = transform.act(images[mask], g)
    return out
