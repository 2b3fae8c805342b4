"""EquiSeq2SeqLM: any ``AutoModelForSeq2SeqLM`` (T5, BART, ...), with its own input and output actions.

``generate`` runs the encoder by itself before decoding, so the encoder gets its own pre-hook that folds
the source ids; during a plain ``forward`` that hook stands aside (the outer pre-hook already folded
them). Decoder steps then receive the folded encoder states ``[G·B, S, D]`` and are left alone.
A row's canonical frame (frames.py) orders the source first, then the target: the encoder hook starts the
frames from the source, and each decoding run continues from there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from equinlp.models.base import EquiModel, _continues_a_cache
from equinlp.models.hf import register_seq2seq


class EquiSeq2SeqLM(EquiModel):
    """Symmetrized encoder-decoder: ``in_action`` moves source ids, ``out_action`` target ids and logits.

    Given ``labels`` (``-100`` ignored, not shifted), ``forward`` returns their cross-entropy; with
    ``num_items_in_batch`` (the Trainer's count under gradient accumulation) the sum divided by it.
    """

    family = "seq2seq"
    token_inputs = {"input_ids": "in", "decoder_input_ids": "out"}
    batch_inputs = ("attention_mask", "decoder_attention_mask", "decoder_position_ids", "token_type_ids")
    refused_inputs = ("inputs_embeds", "decoder_inputs_embeds")

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        config = getattr(model, "config", None)
        return config is not None and bool(config.is_encoder_decoder) and hasattr(model, "get_encoder")

    def _extra_hooks(self) -> list:
        return [self.base.get_encoder().register_forward_pre_hook(self._fold_encoder_inputs, with_kwargs=True)]

    def _fold_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        encoder_outputs = kwargs.get("encoder_outputs")
        if encoder_outputs is not None and kwargs.get("input_ids") is None:
            ids = kwargs.get("decoder_input_ids")
            states = encoder_outputs[0]
            if ids is not None and states.shape[0] != self.group.order * ids.shape[0]:
                raise ValueError("encoder_outputs were computed outside the wrapper; pass input_ids instead")
        self._inside_forward = True
        return super()._fold_inputs(module, args, kwargs)

    def _combine_outputs(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        self._inside_forward = False
        return super()._combine_outputs(module, args, kwargs, output)

    _source_pending = False  # the encoder ran and no decoder step has started from its frames yet

    def _start_frames(self, kwargs: dict, batch: int, device) -> None:
        if kwargs.get("input_ids") is not None:  # the source is in this call: start from it
            self._frames.reset(batch, device)
        elif self._decoding:  # generate: its first decoder step starts from the source, the rest continue
            if self._source_pending:
                self._frames.state, self._source_pending = self._source_state, False
        elif not _continues_a_cache(kwargs):  # a new decoding run: back to the source's frames
            self._frames.state = self._source_state

    def _fold_encoder_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if self._inside_forward:
            return args, kwargs
        if args:
            kwargs = {"input_ids": args[0], **kwargs}
            args = ()
        ids = kwargs.get("input_ids")
        if ids is None:
            raise ValueError("the encoder needs input_ids (inputs_embeds cannot be acted on)")
        self._frames.reset(ids.shape[0], ids.device)
        if self._decoding:  # generate's decoder steps read and update these frames in place
            self._frames.fix_addresses()
        self._frames.extend(self.in_action, ids)
        if isinstance(kwargs.get("attention_mask"), torch.Tensor):
            self._frames.compare(kwargs["attention_mask"])
        self._source_state, self._source_pending = self._frames.state, True
        kwargs["input_ids"] = self._frames.fold(self.in_action, ids)
        self._repeat(kwargs, ("attention_mask",), ids.shape[0])
        return args, kwargs

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = self.base.prepare_decoder_input_ids_from_labels(labels=labels)
        with self._folding():
            output = self.base(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask,
                **kwargs,
            )
        loss = None
        if labels is not None:
            loss = self._token_loss(output.logits, labels, num_items_in_batch)
        return self._with_loss(output, loss)


register_seq2seq(EquiSeq2SeqLM)
