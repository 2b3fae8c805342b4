"""EquiModel: wrap an HF model so that its forward and generate compute the symmetrized model.

While the wrapper runs the base model (``forward`` or ``generate``) it installs three hooks:

- a forward pre-hook on the base model folds the group into the batch: token ids ``[B, T]`` become
  ``[G·B, T]``, masks and positions are repeated group-outer. Block m of row b holds ``m·c_b``, where
  ``c_b = k_b·x_b`` is the canonical element of the row's orbit (frames.py): ``x`` and ``h·x`` fold into the
  very same batch;
- a forward pre-hook on the output embedding (the LM head) keeps its input, the features λ-equitune needs;
- a forward hook on the base model aggregates the copies in c's frame (core.combine) and maps the result
  back to each row's frame by ``k_b⁻¹``: ``[G·B, T, V] -> [B, T, V]`` (inside ``generate``, when only the
  token choice reads the scores, they stay in c's frame, where the choice is made).

So ``generate`` sees an ordinary model of batch B: it picks one token per row (models/sampling.py, reading
these frames) and appends it; the pre-hook updates the frames and feeds ``m·k_b·token`` to block m at the next
step. The KV
cache holds ``G·B`` rows without ``generate`` knowing. The hooks exist only during a call; ``unwrap()``
is the untouched base.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, PreTrainedModel

from equinlp.methods.aggregate import Aggregator, Relaxed
from equinlp.methods.core import combine
from equinlp.models.config import EquiConfig
from equinlp.models.generation import generate as generate_symmetrized
from equinlp.models.peft_support import base_parameters, hook_target, refuse_unsupported_peft
from equinlp.models.saving import load_pretrained
from equinlp.models.saving import save_pretrained as save_wrapper
from equinlp.symmetry.actions import Invariant, TokenPermutation
from equinlp.symmetry.frames import OrbitFrames
from equinlp.symmetry.groups import Group

# family name -> wrapper class, filled as each family's module defines its class (causal_lm.py, seq2seq.py)
FAMILIES: dict[str, type[EquiModel]] = {}


class EquiModel(PreTrainedModel):
    """Base class of the wrappers. Subclasses say which inputs are token ids of which vocabulary.

    A ``PreTrainedModel`` so that HF tooling treats it as a model (the Trainer calls its ``save_pretrained``,
    ``push_to_hub`` writes the equinlp folder, ``num_parameters`` counts the λ-net), but it skips
    ``PreTrainedModel.__init__``: that would rewrite the base config's attention settings. ``model.config`` is
    the base model's config (every reader of ``is_encoder_decoder``, ``eos_token_id``, ``vocab_size``...
    sees the base's values); ``model.equi_config`` is the :class:`~equinlp.models.config.EquiConfig` saved as
    ``config.json``. Wrapping puts the wrapper, and so the base model, in eval mode, as HF's
    ``from_pretrained`` does: call ``.train()`` to train.
    """

    config_class = EquiConfig
    base_model_prefix = "base"  # PreTrainedModel.base_model / get_input_embeddings reach the base model
    accepts_loss_kwargs = True  # forward honours num_items_in_batch (Trainer gradient accumulation)
    family = ""
    token_inputs: dict[str, str] = {}  # input name -> "in" | "out": the action that moves it
    batch_inputs: tuple[str, ...] = ("attention_mask", "position_ids", "token_type_ids")
    refused_inputs: tuple[str, ...] = ("inputs_embeds",)
    _inside_forward = False  # set while the base model's own forward runs (seq2seq's encoder hook reads it)
    _tuple_output = False  # the caller asked for return_dict=False
    _frames: OrbitFrames | None = None  # the rows' canonical frames, during a call
    _decoding = False  # inside generate(): one run of sequences, from the prompt to the last step
    _canonical_scores = False  # inside generate(), when only the token choice reads the scores: leave them canonical

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            FAMILIES[cls.family] = cls

    def __init__(
        self,
        base: nn.Module,
        in_action: TokenPermutation,
        out_action: TokenPermutation,
        aggregator: Aggregator,
        config: EquiConfig,
    ) -> None:
        nn.Module.__init__(self)  # not PreTrainedModel.__init__: see the class docstring
        if in_action.group != out_action.group:
            raise ValueError("input and output actions must be of the same group (build them with vocab_permutation_pair)")
        refuse_unsupported_peft(base)
        self.base = base
        self.config = base.config
        self.in_action = in_action.resized(base.get_input_embeddings().num_embeddings)
        self.out_action = out_action.resized(self._output_vocab_size())
        _check_general_tokens(aggregator, self.out_action)
        self.aggregator = aggregator.to(_device_of(base))
        self.equi_config = config  # built once by wrap (or read by from_pretrained), kept as given
        self._features: torch.Tensor | None = None
        self._base_fingerprint = self._fingerprint()
        self.eval()

    # --- plumbing -------------------------------------------------------------------------------

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        raise NotImplementedError

    @classmethod
    def can_generate(cls) -> bool:
        return True

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
            if name == self.base_model_prefix:  # the base model's own attribute: missing before __init__ sets it
                raise
            return getattr(self.base, name)

    def get_input_embeddings(self) -> nn.Module:
        return self.base.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module | None:
        return self.base.get_output_embeddings()

    def tie_weights(self, *args: Any, **kwargs: Any) -> None:
        self.base.tie_weights(*args, **kwargs)

    def gradient_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        self.base.gradient_checkpointing_enable(*args, **kwargs)

    def gradient_checkpointing_disable(self) -> None:
        self.base.gradient_checkpointing_disable()

    def _output_vocab_size(self) -> int:
        head = self.base.get_output_embeddings()
        if head is None:
            raise ValueError(f"{type(self.base).__name__} has no output embedding (LM head) to symmetrize")
        return head.weight.shape[0]

    def _fingerprint(self) -> torch.Tensor:
        """``[P, 2]`` float64: each base parameter's sum and its version counter, which every in-place change
        bumps (an optimizer step, an edit under ``no_grad``, two rows swapped: the sum alone would miss that).
        Cheap enough to take at every wrap (one copy to the CPU per device); a false alarm only means the base is
        saved too."""
        parameters = [p for p in base_parameters(self.base) if not p.is_meta]
        sums = torch.zeros(len(parameters), dtype=torch.float64)
        by_device: dict[torch.device, list[int]] = {}
        for i, p in enumerate(parameters):
            by_device.setdefault(p.device, []).append(i)
        with torch.no_grad():
            for rows in by_device.values():
                sums[rows] = torch.stack([parameters[i].sum(dtype=torch.float64) for i in rows]).cpu()
        versions = torch.tensor([float(p._version) for p in parameters], dtype=torch.float64)
        return torch.stack([sums, versions], 1)

    def base_fine_tuned(self) -> bool:
        """Whether the base weights differ from those named by ``equi_config.base_model_name_or_path``:
        changed since wrapping, or loaded from a folder that held fine-tuned base weights.

        Changes made *before* wrapping cannot be seen (merged adapters, weights edited in place): save such
        a wrapper with ``save_pretrained(dir, save_base=True)``.
        """
        return self.equi_config.base_fine_tuned or not torch.equal(self._fingerprint(), self._base_fingerprint)

    # --- hooks ----------------------------------------------------------------------------------

    @contextmanager
    def _folding(self, decoding: bool = False, canonical_scores: bool = False) -> Iterator[OrbitFrames]:
        """Install the hooks for one call; yields the rows' frames, which the hooks keep up to date.

        ``decoding``: the call is ``generate``, whose forwards continue one run of sequences (the frames start
        at the first forward and are never restarted, so no step asks the cache how long it is: a static cache
        answers with a tensor, a data-dependent branch under compile). ``canonical_scores``: the logits are
        returned in each row's canonical frame, not mapped back to its own (for generate's token choice, when
        nothing else reads them).
        """
        self._frames = OrbitFrames(self.group)
        self._decoding, self._canonical_scores = decoding, canonical_scores
        actions = self.in_action, self.out_action
        self.in_action, self.out_action = self._actions_on(_device_of(self.base))
        target = hook_target(self.base)  # the transformers model inside a PeftModel: generate bypasses the PeftModel
        handles = [
            target.register_forward_pre_hook(self._fold_inputs, with_kwargs=True),
            target.register_forward_hook(self._combine_outputs, with_kwargs=True),
            *self._extra_hooks(),
        ]
        if self.aggregator.needs_features:
            handles.append(self.base.get_output_embeddings().register_forward_pre_hook(self._keep_features))
        try:
            yield self._frames
        finally:
            for handle in handles:
                handle.remove()
            self._features = self._frames = None
            self._inside_forward = self._decoding = self._canonical_scores = False
            self.in_action, self.out_action = actions

    def _actions_on(self, device: torch.device) -> tuple[TokenPermutation, TokenPermutation]:
        """``(in_action, out_action)`` with their index tables on ``device``, made once per device: the hooks
        then copy no table at any step, and a compiled step holds no CPU tensor (CUDA graphs would skip it)."""
        cached = self.__dict__.setdefault("_device_actions", {})
        key = (device, id(self.in_action), id(self.out_action))
        if key not in cached:
            cached.clear()
            cached[key] = _table_on(self.in_action, device), _table_on(self.out_action, device)
        return cached[key]

    def _extra_hooks(self) -> list:
        return []

    def _action(self, side: str) -> TokenPermutation:
        return self.in_action if side == "in" else self.out_action

    def _start_frames(self, kwargs: dict, batch: int, device: torch.device) -> None:
        """Start the rows' frames afresh, unless this call continues cached sequences (or generate's run)."""
        if self._decoding:
            if self._frames.ranks is None:
                self._frames.reset(batch, device)
                self._frames.fix_addresses()
        elif not _continues_a_cache(kwargs):
            self._frames.reset(batch, device)

    def _fold_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            raise TypeError(f"{type(self).__name__}: pass the base model's inputs by keyword")
        for key in self.refused_inputs:
            if kwargs.get(key) is not None:
                raise ValueError(f"{key} cannot be acted on by a token permutation; pass token ids instead")
        self._tuple_output = kwargs.get("return_dict") is False
        if self._tuple_output:
            kwargs["return_dict"] = True  # the hooks read outputs by name; forward() turns them into a tuple
        present = {key: side for key, side in self.token_inputs.items() if kwargs.get(key) is not None}
        if not present:
            raise ValueError(f"{type(self).__name__} needs token ids ({', '.join(self.token_inputs)})")
        first = kwargs[next(iter(present))]
        self._start_frames(kwargs, first.shape[0], first.device)
        for key, side in present.items():
            self._frames.extend(self._action(side), kwargs[key])
        for key in self.batch_inputs:
            if isinstance(kwargs.get(key), torch.Tensor) and kwargs[key].ndim:
                self._frames.compare(kwargs[key])  # rows that share a sequence share outputs only with equal masks
        for key, side in present.items():
            kwargs[key] = self._frames.fold(self._action(side), kwargs[key])
        self._repeat(kwargs, self.batch_inputs, first.shape[0])
        return args, kwargs

    def _repeat(self, kwargs: dict, keys: tuple[str, ...], batch: int | None) -> None:
        """The inputs that no element moves (masks, positions), one copy per element: ``[B, ...] -> [G·B, ...]``."""
        invariant = Invariant(self.group)
        for key in keys:
            x = kwargs.get(key)
            if isinstance(x, torch.Tensor) and x.ndim > 0:
                if batch is not None and x.shape[0] != batch:
                    raise ValueError(f"{key} has batch size {x.shape[0]}, the token ids {batch}")
                kwargs[key] = invariant.act_all(x)

    def _keep_features(self, module: nn.Module, args: tuple) -> None:
        self._features = args[0]

    def _combine_outputs(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        features, self._features = self._features, None
        frames = self._frames
        raw = frames.share_representatives(output.logits)  # [G·B, T, V], block m = M(m·c)
        if features is not None:
            features = frames.share_representatives(features)
        relaxed = isinstance(self.aggregator, Relaxed)
        aggregator = self.aggregator.inner if relaxed else self.aggregator
        logits = combine(raw, self.out_action.logits, aggregator, features, frames.share)  # [B, T, V], canonical frames
        if not self._canonical_scores:
            logits = frames.from_canonical(self.out_action, logits)  # in each row's own frame
        # the general tokens relaxed are fixed by every element: the same columns in either frame
        output.logits = self.aggregator.relax(logits, frames.own_rows(raw)) if relaxed else logits
        folded = raw.shape[0]
        for key in output.keys():  # hidden states, attentions: each row's own copy (they have no action)
            if key not in ("logits", "loss", "past_key_values"):
                output[key] = _own_rows(output[key], folded, frames)
        return output

    # --- loss -----------------------------------------------------------------------------------

    @staticmethod
    def _token_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        """Cross-entropy of ``logits [..., V]`` against ``labels [...]`` (``-100`` ignored).

        The mean over labelled tokens, or, given ``num_items_in_batch`` (the HF Trainer's count of labelled
        tokens over all accumulated batches), their sum divided by it, so gradient accumulation sums to the
        mean over the whole accumulated batch.
        """
        logits, labels = logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device)
        if num_items_in_batch is None:
            return F.cross_entropy(logits, labels, ignore_index=-100)
        loss = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
        if isinstance(num_items_in_batch, torch.Tensor):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        return loss / num_items_in_batch

    def _with_loss(self, output: Any, loss: torch.Tensor | None) -> Any:
        if loss is not None:
            output = type(output)(loss=loss, **{k: v for k, v in output.items() if k != "loss"})
        return output.to_tuple() if self._tuple_output else output

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
        return generate_symmetrized(self, inputs, generation_config, logits_processor, seed, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, save_base: bool | None = None, **kwargs: Any) -> None:
        """Write the equinlp config, the group action and any λ weights; the base model only if fine-tuned.

        Accepts (and ignores) the keyword arguments HF tooling passes to ``PreTrainedModel.save_pretrained``
        (``state_dict``, ``safe_serialization``, ``max_shard_size``, ``is_main_process``...), so the Trainer's
        checkpoints and ``push_to_hub`` write this folder. See :func:`equinlp.models.saving.save_pretrained`.
        """
        if kwargs.get("is_main_process", True):
            save_wrapper(self, save_directory, save_base)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any) -> EquiModel:
        """Load a folder written by ``save_pretrained``: what ``AutoModelForCausalLM.from_pretrained(DIR)`` calls.

        ``base=`` (a model or a path) replaces the base named in the folder; other HF loading keywords
        (``config``, ``dtype``, ``device_map``...) are ignored except ``dtype`` and ``device_map``, passed to
        the base model's loader. Prefer :func:`equinlp.from_pretrained`.
        """
        proxy, weight_net = kwargs.pop("proxy", None), kwargs.pop("weight_net", None)
        loaded = load_pretrained(pretrained_model_name_or_path, kwargs.pop("base", None), proxy, weight_net, _base_kwargs(kwargs))
        base, config, in_action, out_action, aggregator = loaded
        if cls.family and config.family != cls.family:
            folder = pretrained_model_name_or_path
            raise ValueError(f"{folder} holds a {config.family} wrapper, not {cls.family}; load it with its family's Auto class")
        family = FAMILIES.get(config.family or "causal")
        if family is None:  # its module not imported yet: `import equinlp.models` imports every family
            raise ValueError(f"no wrapper family {config.family!r} is loaded; import equinlp.models first")
        return family(base, in_action, out_action, aggregator, config)


def _base_kwargs(kwargs: dict) -> dict:
    return {k: kwargs[k] for k in ("dtype", "torch_dtype", "device_map") if kwargs.get(k) is not None}


def _device_of(module: nn.Module) -> torch.device:
    return next(iter(module.parameters()), torch.empty(0)).device


def _table_on(action: TokenPermutation, device: torch.device) -> TokenPermutation:
    """``action`` with its table on ``device`` (the same group and values; a copy only when it moves)."""
    if action.table.device == device:
        return action
    moved = copy.copy(action)
    object.__setattr__(moved, "table", action.table.to(device))  # a frozen dataclass: its checks ran already
    torch._dynamo.mark_static_address(moved.table)  # a CUDA graph reads it where it is, no copy per step
    return moved


def _check_general_tokens(aggregator: Aggregator, action: TokenPermutation) -> None:
    if isinstance(aggregator, Relaxed):
        moved = sorted(set(aggregator.token_ids.tolist()) & set(action.moved.tolist()))
        if moved:
            raise ValueError(
                f"general_tokens {moved} are moved by the group: a swap word cannot also be a general word; "
                "drop them from general_tokens (or from the word cycles)"
            )


def _own_rows(x: Any, folded: int, frames: OrbitFrames) -> Any:
    """``x`` with every tensor of ``folded`` rows cut to each row's own copy (nested tuples too)."""
    if isinstance(x, torch.Tensor):
        return frames.own_rows(x) if x.ndim and x.shape[0] == folded else x
    if isinstance(x, tuple | list):
        return type(x)(_own_rows(v, folded, frames) for v in x)
    return x


def _continues_a_cache(kwargs: dict) -> bool:
    """Whether the call extends sequences held in a KV cache (``cache``; ``past_key_values`` before transformers 5.40)."""
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    return cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0
