"""Invariant image classifiers: any backbone with ``features`` and ``head``, wrapped by the core formula.

    logits_G(x) = Σ_g w_g(x) · head(features(g·x)),    w from the method:

- ``equitune``: ``w_g = 1/|G|`` (the mean of logits; for CLIP, whose head is linear in the normalised
  image embedding, this is the paper's "mean of features, then similarity");
- ``equizero``: 1 on the most confident copy (proxy ``max_prob``; the paper's CNN code used the *least*
  confident by mistake) or the lowest-entropy one; straight-through gradient when training;
- ``lambda``: ``w_g = softmax_g(λ-net(features of g·x))``. The λ-net reads ``lambda_features`` when given
  (CLIP: a frozen copy of the image tower, as in the paper), else the backbone's own features.

Classification is invariant, so the output action is :class:`~equinlp.symmetry.actions.Invariant` and there is no
inverse to forget. The wrapper declares both (``in_action``, ``out_action``). Every copy runs in one batch
(``core.symmetrize``): ``[B, C, H, W] -> [G·B, C, H, W] -> [B, K]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from equinlp.apps.vision.config import METHODS, VISION_PROXIES
from equinlp.errors import check_name
from equinlp.methods import registry
from equinlp.methods.aggregate import Aggregator, Argmin, Weighted
from equinlp.methods.core import symmetrize
from equinlp.symmetry.actions import ImageTransform, Invariant


class InvariantClassifier(nn.Module):
    """``[B, C, H, W] -> [B, K]``, invariant to ``transform``'s group when ``method`` is not ``base``.

    Args:
        backbone: a module with ``features: [N, C, H, W] -> [N, D]`` and ``head: [N, D] -> [N, K]``.
        transform: the image group action (``ImageTransform("rot90")`` etc.).
        method: one of :data:`METHODS`.
        proxy: equizero's proxy, ``max_prob`` (most confident copy) or ``entropy``.
        lambda_features: ``[N, C, H, W] -> [N, D']`` for the λ-net (default: ``backbone.features``).
        lambda_size: D', the λ-net's input width (default: ``backbone.feature_size``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        transform: ImageTransform,
        method: str,
        proxy: str = "max_prob",
        lambda_features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        lambda_size: int | None = None,
        lambda_hidden: int = 100,
        lambda_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        entry = registry.method(check_name("method", method, METHODS))
        check_name("proxy", proxy, VISION_PROXIES)
        self.backbone = backbone
        self.in_action, self.out_action = transform, Invariant(transform.group)
        self.method = method
        self.lambda_features = lambda_features
        self.aggregator: Aggregator | None = None
        if not entry.trivial:  # the trivial group's one copy is the backbone itself, bit for bit: base runs it bare
            size = (lambda_size or backbone.feature_size) if entry.needs_features else None
            settings = dict(weight_net_hidden=lambda_hidden, weight_net_dropout=lambda_dropout)
            self.aggregator = registry.make_aggregator(method, features=size, proxy=proxy, **settings)

    @property
    def transform(self) -> ImageTransform:
        """The image action, ``in_action``."""
        return self.in_action

    @property
    def weight_net(self) -> nn.Module | None:
        return self.aggregator.weight_net if isinstance(self.aggregator, Weighted) else None

    def _logits_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, C, H, W] -> ([N, K] logits, [N, D] λ-net features)``: the backbone runs once for both."""
        feats = self.backbone.features(images)
        logits = self.backbone.head(feats)
        if self.lambda_features is not None and self.aggregator.needs_features:
            with torch.no_grad():
                feats = self.lambda_features(images)
        return logits, feats

    def _copies(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every group copy in one batch: ``[B, C, H, W] -> ([G·B, K] logits, [G·B, D] λ-net features)``."""
        return self._logits_and_features(self.in_action.act_all(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.aggregator is None:
            return self.backbone(images)
        return symmetrize(self._logits_and_features, self.in_action, self.out_action, self.aggregator)(images)

    @torch.no_grad()
    def group_weights(self, images: torch.Tensor) -> torch.Tensor:
        """``[G, B]``: the weight each copy gets (uniform for equitune, one-hot for equizero)."""
        order = self.in_action.group.order
        if not isinstance(self.aggregator, Weighted | Argmin):
            return torch.full((order, len(images)), 1.0 / order)
        logits, feats = self._copies(images)
        if isinstance(self.aggregator, Weighted):
            return self.aggregator.weights(feats.reshape(order, len(images), -1))
        return self.aggregator.weights(logits.reshape(order, len(images), -1))

    def copy_logits(self, images: torch.Tensor) -> torch.Tensor:
        """``[G, B, K]``: the backbone's logits on every copy ``g·x``."""
        return self._copies(images)[0].reshape(self.in_action.group.order, len(images), -1)
