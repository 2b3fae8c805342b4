"""EquiCLIP: zero-shot CLIP classification, made invariant to image rotations and flips.

A :class:`CLIPClassifier` is CLIP's image tower with a fixed text classifier:

- ``features(pixel_values) -> [N, D]``: L2-normalised image embeddings;
- ``head(features) -> [N, K]``: ``logit_scale · features @ text_weights``, the model's own logit scale
  (×100 for OpenAI's checkpoints; the paper's code used ×1, which only flattens the probabilities);
- ``text_weights: [D, K]``: per class, the normalised mean of the normalised embeddings of every prompt
  template filled with the class name (CLIP's prompt ensembling).

:class:`EquiCLIP` wraps it with :class:`~equinlp.apps.vision.wrap.InvariantClassifier`: equitune (mean of logits,
i.e. the similarity with the mean embedding), equizero (the most confident copy) or λ-equitune, whose λ-net
reads embeddings from a frozen copy of the image tower (as in the paper), so fine-tuning the tower does not
move the λ-net's inputs. Loss is cross-entropy on these logits: one softmax, not the reference's two.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from equinlp.apps.vision.wrap import InvariantClassifier
from equinlp.harness.progress import progress
from equinlp.methods import registry
from equinlp.symmetry.actions import ImageTransform


@cache
def clip_prompts() -> dict:
    """CLIP's prompt sets: ``cifar_templates`` (18), ``imagenet_templates`` (80), ``imagenet_classes`` (1,000)."""
    try:
        text = (resources.files("equinlp.resources") / "clip_prompts.json").read_text()
    except ModuleNotFoundError:  # a source checkout that is not installed
        text = (Path(__file__).parents[3] / "data" / "clip_prompts.json").read_text()
    return json.loads(text)


def templates_for(dataset: str) -> list[str]:
    """The template set CLIP uses for ``dataset`` (CIFAR's 18 for cifar*, ImageNet's 80 otherwise)."""
    return clip_prompts()["cifar_templates" if dataset.startswith("cifar") else "imagenet_templates"]


@torch.no_grad()
def zero_shot_weights(
    model: nn.Module, tokenizer, class_names: list[str], templates: list[str], batch_size: int = 256
) -> torch.Tensor:
    """``[D, K]``: column k is the normalised mean of the normalised text embeddings of class k's prompts."""
    device = model.logit_scale.device
    columns = []
    for name in progress(class_names, desc="text classifier", leave=False):
        prompts = [t.format(name) for t in templates]
        embeds = []
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], padding=True, return_tensors="pt").to(device)
            out = model.text_model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
            embeds.append(model.text_projection(out.pooler_output))
        embeds = torch.cat(embeds)
        mean = (embeds / embeds.norm(dim=-1, keepdim=True)).mean(0)
        columns.append(mean / mean.norm())
    return torch.stack(columns, dim=1)


class CLIPClassifier(nn.Module):
    """CLIP's image tower and a fixed text classifier: ``pixel_values [N, 3, S, S] -> logits [N, K]``."""

    def __init__(self, model: nn.Module, text_weights: torch.Tensor) -> None:
        super().__init__()
        self.vision_model = model.vision_model
        self.visual_projection = model.visual_projection
        self.logit_scale = model.logit_scale
        self.register_buffer("text_weights", text_weights.detach().clone())
        self.feature_size = text_weights.shape[0]

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        embeds = self.visual_projection(pooled)
        return embeds / embeds.norm(dim=-1, keepdim=True)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.logit_scale.exp() * features @ self.text_weights.to(features.dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixel_values))

    def image_tower_parameters(self) -> list[nn.Parameter]:
        return [*self.vision_model.parameters(), *self.visual_projection.parameters()]


class EquiCLIP(InvariantClassifier):
    """Zero-shot CLIP invariant to ``group`` (``rot90``, ``rot180``, ``mirror``, ``d4``) by ``method``.

    Args:
        model: a ``transformers.CLIPModel``.
        text_weights: ``[D, K]`` from :func:`zero_shot_weights`.
        group, method, proxy: see :class:`~equinlp.apps.vision.wrap.InvariantClassifier`.

    Use :meth:`from_pretrained` to build one from a hub id or a local folder.
    """

    def __init__(
        self,
        model: nn.Module,
        text_weights: torch.Tensor,
        group: str = "rot90",
        method: str = "equitune",
        proxy: str = "max_prob",
    ):
        classifier = CLIPClassifier(model, text_weights)
        frozen = None
        if registry.method(method).needs_features:  # λ-equitune reads a frozen copy of the image tower
            frozen = copy.deepcopy(classifier).requires_grad_(False).eval()
        super().__init__(
            classifier,
            ImageTransform(group),
            method,
            proxy,
            lambda_features=frozen.features if frozen is not None else None,
            lambda_size=classifier.feature_size,
        )
        self.frozen_tower = frozen

    def train(self, mode: bool = True) -> EquiCLIP:
        super().train(mode)
        if self.frozen_tower is not None:
            self.frozen_tower.eval()
        return self

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        class_names: list[str],
        templates: list[str] | None = None,
        group: str = "rot90",
        method: str = "equitune",
        proxy: str = "max_prob",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> tuple[EquiCLIP, object]:
        """Load a ``CLIPModel`` (hub id or folder), build its text classifier; returns ``(EquiCLIP, image processor)``."""
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        model = CLIPModel.from_pretrained(name_or_path, dtype=dtype).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        processor = AutoImageProcessor.from_pretrained(name_or_path)
        weights = zero_shot_weights(model, tokenizer, class_names, templates or ["a photo of a {}."])
        return cls(model, weights, group, method, proxy).to(device), processor
