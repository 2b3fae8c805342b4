"""EquiCausalLM: any ``AutoModelForCausalLM`` (GPT-2, Llama, SmolLM2, Gemma, ...)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from equinlp.models.base import EquiModel


class EquiCausalLM(EquiModel):
    """Symmetrized causal LM. One action acts on the prompt and the vocabulary of the logits.

    ``forward`` returns the aggregated logits ``[B, T, V]`` and, given ``labels`` (``-100`` ignored,
    shifted by one as in HF), their cross-entropy, so HF ``Trainer``, accelerate or a plain loop train it.
    """

    family = "causal"
    token_inputs = {"input_ids": "in"}

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        config = getattr(model, "config", None)
        return config is not None and not config.is_encoder_decoder and hasattr(model, "generate")

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        with self._folding():
            output = self.base(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        loss = None
        if labels is not None:
            logits = output.logits[..., :-1, :].float()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[..., 1:].reshape(-1), ignore_index=-100)
        return self._with_loss(output, loss)
