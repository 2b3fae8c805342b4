"""EquiCausalLM: any ``AutoModelForCausalLM`` (GPT-2, Llama, SmolLM2, Gemma, ...)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from equinlp.models.base import EquiModel
from equinlp.models.hf import register_causal


class EquiCausalLM(EquiModel):
    """Symmetrized causal LM. One action acts on the prompt and the vocabulary of the logits.

    ``forward`` returns the aggregated logits ``[B, T, V]`` and, given ``labels`` (``-100`` ignored,
    shifted by one as in HF), their cross-entropy, so HF ``Trainer``, accelerate or a plain loop train it.
    ``num_items_in_batch`` (passed by the Trainer under gradient accumulation) makes it the sum over
    labelled tokens divided by that count; it is never passed to the base model.
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
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        with self._folding():
            output = self.base(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        loss = None
        if labels is not None:
            loss = self._token_loss(output.logits[..., :-1, :], labels[..., 1:], num_items_in_batch)
        return self._with_loss(output, loss)


register_causal(EquiCausalLM)
