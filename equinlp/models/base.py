"""EquiModel: wrap an HF model so that its forward and generate compute the symmetrized model.

While the wrapper runs the base model (``forward`` or ``generate``) it installs three hooks:

- a forward pre-hook on the base model folds the group into the batch: token ids ``[B, T]`` become
  ``[G·B, T]`` (copy g holds ``g·ids``), masks and positions are repeated group-outer;
- a forward pre-hook on the output embedding (the LM head) keeps its input, the features λ-equitune needs;
- a forward hook on the base model pulls each copy's logits back by ``g⁻¹`` and aggregates them:
  ``[G·B, T, V] -> [B, T, V]`` (core.combine).

So ``generate`` sees an ordinary model of batch B: it samples one token per row in the identity frame and
appends it, and the pre-hook feeds ``g·token`` to copy g at the next step. The KV cache holds ``G·B``
rows without ``generate`` knowing. The hooks exist only during a call; ``unwrap()`` is the untouched base.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig

from equinlp.actions import TokenPermutation
from equinlp.aggregate import Aggregator, Relaxed
from equinlp.config import EquiConfig
from equinlp.core import combine
from equinlp.groups import Group
from equinlp.models.peft_support import base_parameters, hook_target, refuse_unsupported_peft


class EquiModel(nn.Module):
    """Base class of the wrappers. Subclasses say which inputs are token ids of which vocabulary."""

    family = ""
    token_inputs: dict[str, str] = {}  # input name -> "in" | "out": the action that moves it
    batch_inputs: tuple[str, ...] = ("attention_mask", "position_ids", "token_type_ids")
    refused_inputs: tuple[str, ...] = ("inputs_embeds",)
    _inside_forward = False  # set while the base model's own forward runs (seq2seq's encoder hook reads it)

    def __init__(
        self,
        base: nn.Module,
        in_action: TokenPermutation,
        out_action: TokenPermutation,
        aggregator: Aggregator,
        config: EquiConfig | None = None,
    ) -> None:
        super().__init__()
        if in_action.group != out_action.group:
            raise ValueError("input and output actions must be of the same group (build them with vocab_permutation_pair)")
        refuse_unsupported_peft(base)
        self.base = base
        self.in_action = in_action.resized(base.get_input_embeddings().num_embeddings)
        self.out_action = out_action.resized(self._output_vocab_size())
        self.aggregator = aggregator
        self.equi_config = config or EquiConfig()
        self.equi_config.method = aggregator.method
        self.equi_config.family = self.family
        self.equi_config.proxy = getattr(aggregator, "proxy_name", None)
        self.equi_config.relaxed_tokens = aggregator.token_ids.tolist() if isinstance(aggregator, Relaxed) else []
        self.equi_config.base_model_name_or_path = getattr(base.config, "_name_or_path", "") or ""
        self._features: torch.Tensor | None = None
        self._base_fingerprint = self._fingerprint()

    # --- plumbing -------------------------------------------------------------------------------

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        raise NotImplementedError

    @property
    def group(self) -> Group:
        return self.in_action.group

    def unwrap(self) -> nn.Module:
        """The base model, untouched (the hooks live only inside calls)."""
        return self.base

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base":
                raise
            return getattr(self.base, name)

    def _output_vocab_size(self) -> int:
        head = self.base.get_output_embeddings()
        if head is None:
            raise ValueError(f"{type(self.base).__name__} has no output embedding (LM head) to symmetrize")
        return head.weight.shape[0]

    def _fingerprint(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([p.sum(dtype=torch.float64) for p in base_parameters(self.base)]).cpu()

    def base_fine_tuned(self) -> bool:
        """Whether the base weights changed since wrapping."""
        return not torch.equal(self._fingerprint(), self._base_fingerprint)

    # --- hooks ----------------------------------------------------------------------------------

    @contextmanager
    def _folding(self) -> Iterator[None]:
        target = hook_target(self.base)  # the transformers model inside a PeftModel: generate bypasses the PeftModel
        handles = [
            target.register_forward_pre_hook(self._fold_inputs, with_kwargs=True),
            target.register_forward_hook(self._combine_outputs, with_kwargs=True),
            *self._extra_hooks(),
        ]
        if self.aggregator.needs_features:
            handles.append(self.base.get_output_embeddings().register_forward_pre_hook(self._keep_features))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._features = None
            self._inside_forward = False

    def _extra_hooks(self) -> list:
        return []

    def _fold_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            raise TypeError(f"{type(self).__name__}: pass the base model's inputs by keyword")
        for key in self.refused_inputs:
            if kwargs.get(key) is not None:
                raise ValueError(f"{key} cannot be acted on by a token permutation; pass token ids instead")
        batch = None
        for key, side in self.token_inputs.items():
            ids = kwargs.get(key)
            if ids is not None:
                batch = ids.shape[0]
                kwargs[key] = (self.in_action if side == "in" else self.out_action).ids.act_all(ids)
        self._repeat(kwargs, self.batch_inputs, batch)
        return args, kwargs

    def _repeat(self, kwargs: dict, keys: tuple[str, ...], batch: int | None) -> None:
        order = self.group.order
        for key in keys:
            x = kwargs.get(key)
            if isinstance(x, torch.Tensor) and x.ndim > 0:
                if batch is not None and x.shape[0] != batch:
                    raise ValueError(f"{key} has batch size {x.shape[0]}, the token ids {batch}")
                kwargs[key] = x.repeat(order, *([1] * (x.ndim - 1)))

    def _keep_features(self, module: nn.Module, args: tuple) -> None:
        self._features = args[0]

    def _combine_outputs(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        features, self._features = self._features, None
        output.logits = combine(output.logits, self.out_action.logits, self.aggregator, features)
        return output

    # --- loss -----------------------------------------------------------------------------------

    def _with_loss(self, output: Any, loss: torch.Tensor | None) -> Any:
        if loss is None:
            return output
        return type(output)(loss=loss, **{k: v for k, v in output.items() if k != "loss"})

    # --- generation and saving (models/generation.py, models/saving.py) --------------------------

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: Any = None,
        seed: int | list[int] | None = None,
        **kwargs: Any,
    ) -> Any:
        """HF ``generate`` on the symmetrized model; see :func:`equinlp.models.generation.generate`."""
        from equinlp.models.generation import generate

        return generate(self, inputs, generation_config, logits_processor, seed, **kwargs)

    def save_pretrained(self, directory: str | os.PathLike, save_base: bool | None = None) -> None:
        """Write the equinlp config, the group action and any λ weights; the base model only if fine-tuned.

        See :func:`equinlp.models.saving.save_pretrained`.
        """
        from equinlp.models.saving import save_pretrained

        save_pretrained(self, directory, save_base)
