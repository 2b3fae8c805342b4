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

import copy
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import GenerationConfig

from equinlp.actions import TokenPermutation
from equinlp.aggregate import Aggregator, Argmin, Mean, Relaxed, Weighted, WeightNet
from equinlp.config import EquiConfig
from equinlp.core import combine
from equinlp.files import write_atomic
from equinlp.groups import Group
from equinlp.models.sampling import equivariant_sampling

ACTION_FILE = "equinlp_action.safetensors"
WEIGHTS_FILE = "equinlp_weights.safetensors"
BASE_DIR = "base"
SUPPORTED_CACHES = (None, "dynamic")
TOKEN_LIST_SETTINGS = ("bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias", "force_words_ids")
SPECIAL_TOKEN_SETTINGS = (
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "decoder_start_token_id",
    "forced_bos_token_id",
    "forced_eos_token_id",
)


def _flat_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, torch.Tensor):
        return value.flatten().tolist()
    if isinstance(value, dict):
        value = list(value)
    return [i for v in value for i in _flat_ids(v)]


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
            return torch.stack([p.sum(dtype=torch.float64) for p in self.base.parameters()]).cpu()

    def base_fine_tuned(self) -> bool:
        """Whether the base weights changed since wrapping."""
        return not torch.equal(self._fingerprint(), self._base_fingerprint)

    # --- hooks ----------------------------------------------------------------------------------

    @contextmanager
    def _folding(self) -> Iterator[None]:
        handles = [
            self.base.register_forward_pre_hook(self._fold_inputs, with_kwargs=True),
            self.base.register_forward_hook(self._combine_outputs, with_kwargs=True),
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

    # --- generation -----------------------------------------------------------------------------

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: Any = None,
        seed: int | list[int] | None = None,
        **kwargs: Any,
    ) -> Any:
        """HF ``generate`` on the symmetrized model: greedy or sampling, any stopping criteria or streamer.

        Sampling uses :class:`~equinlp.models.sampling.RankGumbelSampler` unless the wrapper was built with
        ``sampler="hf"``, so a seeded sample for ``g·x`` is ``g`` applied to the sample for ``x``. ``seed``
        (an int for every row, or one per row) makes each row's draw independent of the rest of the batch;
        without it sampling follows torch's global generator (``torch.manual_seed``).
        Raises ``ValueError`` for decoding the wrapper cannot make equivariant (beam search, assisted or
        contrastive decoding, static caches, special or banned tokens that the group moves).
        """
        if inputs is not None:
            kwargs[self.base.main_input_name] = inputs
        config = copy.deepcopy(generation_config or self.base.generation_config)
        model_kwargs = config.update(**kwargs)
        self._check_generation(config, model_kwargs)
        if config.do_sample and self.equi_config.sampler == "equivariant":
            seeds = None
            if seed is not None:  # one per row, each expanded over num_return_sequences (rows b·n + k)
                rows = [seed] * kwargs[self.base.main_input_name].shape[0] if isinstance(seed, int) else list(seed)
                seeds = [s + k for s in rows for k in range(config.num_return_sequences or 1)]
            logits_processor = equivariant_sampling(config, logits_processor, seeds)
        elif seed is not None:
            raise ValueError("seed= is for equivariant sampling (do_sample=True); use torch.manual_seed otherwise")
        with self._folding():
            return self.base.generate(generation_config=config, logits_processor=logits_processor, **model_kwargs)

    def _check_generation(self, config: GenerationConfig, model_kwargs: dict) -> None:
        def refuse(what: str) -> None:
            raise ValueError(f"{what} cannot be made equivariant by {type(self).__name__}; use greedy decoding or sampling")

        if (config.num_beams or 1) > 1:
            refuse(f"beam search (num_beams={config.num_beams}): HF reorders the cache by beam, but it holds G·B copies;")
        if config.penalty_alpha and (config.top_k or 0) > 1:
            refuse("contrastive search (penalty_alpha)")
        if model_kwargs.get("assistant_model") is not None or config.prompt_lookup_num_tokens:
            refuse("assisted decoding")
        if config.cache_implementation not in SUPPORTED_CACHES:
            refuse(f"cache_implementation={config.cache_implementation!r} (pre-sized for batch B, not G·B);")
        for key in ("past_key_values", "cache", "inputs_embeds", "decoder_inputs_embeds"):
            if model_kwargs.get(key) is not None:
                refuse(f"passing {key}")
        moved = set(self.out_action.moved.tolist())
        for name in SPECIAL_TOKEN_SETTINGS + TOKEN_LIST_SETTINGS:
            hit = sorted(moved.intersection(_flat_ids(getattr(config, name, None))))
            if hit:
                raise ValueError(
                    f"generation setting {name} names token ids {hit} that the group moves; it would treat a word "
                    "and its swap differently and break equivariance"
                )

    # --- saving ---------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike, save_base: bool | None = None) -> None:
        """Write the equinlp config, the group action and any λ weights; the base model only if fine-tuned.

        Each file is written to a temporary name and renamed, so an interrupted save leaves the old one.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fine_tuned = self.base_fine_tuned() if save_base is None else save_base
        tensors = {"group_mul": self.group.mul, "in_table": self.in_action.table, "out_table": self.out_action.table}
        _atomic_save(tensors, directory / ACTION_FILE)
        weights = {k: v.detach().contiguous() for k, v in self.aggregator.state_dict().items()}
        if weights:
            _atomic_save(weights, directory / WEIGHTS_FILE)
        if fine_tuned:
            tmp = directory / f".{BASE_DIR}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.base.save_pretrained(tmp)
            shutil.rmtree(directory / BASE_DIR, ignore_errors=True)
            tmp.rename(directory / BASE_DIR)
        config = replace(self.equi_config, base_fine_tuned=fine_tuned, group_description=list(self.in_action.description))
        tmp_dir = directory / ".config.tmp"
        tmp_dir.mkdir(exist_ok=True)
        config.save(tmp_dir)
        os.replace(tmp_dir / "equinlp_config.json", directory / "equinlp_config.json")
        tmp_dir.rmdir()


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}  # no shared storage
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp)))


def load_parts(directory: str | os.PathLike, proxy: Any = None, weight_net: nn.Module | None = None, features: int | None = None):
    """Read what save_pretrained wrote: ``(config, in_action, out_action, aggregator)``."""
    directory = Path(directory)
    config = EquiConfig.load(directory)
    tensors = load_file(str(directory / ACTION_FILE))
    group = Group("loaded", tensors["group_mul"])
    description = tuple(config.group_description)
    in_action = TokenPermutation(group, tensors["in_table"], description)
    out_action = TokenPermutation(group, tensors["out_table"], description)
    if config.method == "equitune":
        aggregator: Aggregator = Mean()
    elif config.method == "equizero":
        aggregator = Argmin(proxy or config.proxy, straight_through=config.straight_through)
    else:
        net = weight_net or WeightNet(features, config.weight_net_hidden, config.weight_net_dropout)
        aggregator = Weighted(net)
    if config.relaxed_tokens:
        aggregator = Relaxed(aggregator, config.relaxed_tokens)
    if (directory / WEIGHTS_FILE).exists():
        aggregator.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return config, in_action, out_action, aggregator
