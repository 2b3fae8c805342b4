"""ResNet-18 and AlexNet, defined here with torchvision's layer names and shapes (no torchvision needed).

A torchvision ``state_dict`` loads into these classes unchanged (``load_state_dict``), so users who have
ImageNet weights can start from them; here they are pre-trained on upright images by ``equinlp vision``.

Every backbone splits into ``features(x) -> [N, D]`` and ``head(features) -> [N, K]``, so the wrappers can
give λ-equitune the paper's features: AlexNet's flattened ``features``+``avgpool`` (D = 9216), ResNet's
pooled last block (D = 512).
"""

from __future__ import annotations

import torch
from torch import nn

from equinlp.errors import check_name


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (torchvision's ``BasicBlock``)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """ResNet-18: ``[N, C, H, W] -> [N, K]``, features ``[N, 512]``. Any H, W ≥ 1 (the stem halves twice)."""

    feature_size = 512

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        in_planes = 64
        for i, (planes, stride) in enumerate(zip(widths, strides, strict=True), start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes)))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class AlexNet(nn.Module):
    """AlexNet: ``[N, C, H, W] -> [N, K]``, features ``[N, 9216]``. Needs H, W ≥ 63."""

    feature_size = 256 * 6 * 6
    min_size = 63

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        # torchvision calls this stack `features`; here that name is the method (see _load_from_state_dict)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, 4, 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.feature_size, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"AlexNet needs images of at least {self.min_size}×{self.min_size}, got {tuple(x.shape[-2:])}")
        return self.avgpool(self.conv(x)).flatten(1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # torchvision names the convolutional stack `features`; here that name is the method.
        for key in [k for k in state_dict if k.startswith(prefix + "features.")]:
            state_dict[prefix + "conv." + key[len(prefix + "features.") :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


ARCHITECTURES: dict[str, type[nn.Module]] = {"resnet18": ResNet18, "alexnet": AlexNet}  # keys: config.ARCHS


def build_cnn(arch: str, num_classes: int, in_channels: int = 3) -> nn.Module:
    """A freshly initialised backbone by name (``resnet18`` or ``alexnet``)."""
    check_name("architecture", arch, ARCHITECTURES)
    return ARCHITECTURES[arch](num_classes=num_classes, in_channels=in_channels)
