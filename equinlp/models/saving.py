"""Saving and loading what a wrapper adds: the equinlp config, the group action, λ weights, a fine-tuned base."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from equinlp.files import write_atomic, write_folder_atomic
from equinlp.methods.registry import build_aggregator
from equinlp.models.config import CONFIG_NAME, EquiConfig
from equinlp.models.peft_support import load_adapters, save_adapters
from equinlp.symmetry.actions import TokenPermutation
from equinlp.symmetry.groups import Group

if TYPE_CHECKING:
    from equinlp.models.base import EquiModel

ACTION_FILE = "equinlp_action.safetensors"
WEIGHTS_FILE = "equinlp_weights.safetensors"
BASE_DIR = "base"


def save_pretrained(model: EquiModel, directory: str | os.PathLike, save_base: bool | None = None) -> None:
    """Write the equinlp config, the group action and any λ weights; the base model only if it must be.

    The base is written (to ``directory/base``) when it was fine-tuned since wrapping, was loaded fine-tuned,
    or has no name to be reloaded from (built from a config); ``save_base`` overrides that (pass True for
    a base changed before wrapping, e.g. merged adapters). Each file is written to a temporary name and
    renamed, so an interrupted save leaves the old one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    unnamed = not model.equi_config.base_model_name_or_path  # built from a config: nothing to reload it from
    fine_tuned = (model.base_fine_tuned() or unnamed) if save_base is None else save_base
    save_adapters(model.base, directory, fine_tuned)  # PEFT adapters to directory/adapter; refuses what it cannot save
    tensors = {"group_mul": model.group.mul, "in_table": model.in_action.table, "out_table": model.out_action.table}
    _atomic_save(tensors, directory / ACTION_FILE)
    weights = {k: v.detach().contiguous() for k, v in model.aggregator.state_dict().items()}
    if weights:
        _atomic_save(weights, directory / WEIGHTS_FILE)
    if fine_tuned:
        write_folder_atomic(directory / BASE_DIR, model.base.save_pretrained)
    config = copy.deepcopy(model.equi_config)
    config.base_fine_tuned = fine_tuned
    write_atomic(directory / CONFIG_NAME, lambda tmp: tmp.write_text(config.to_json_string()))


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}  # no shared storage
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp)))


def feature_size(model: nn.Module) -> int:
    """Width of the LM head's input: the features λ-equitune weighs each copy by."""
    return model.get_output_embeddings().weight.shape[1]


def load_pretrained(
    directory: str | os.PathLike,
    base: nn.Module | str | None = None,
    proxy: Any = None,
    weight_net: nn.Module | None = None,
    base_kwargs: dict | None = None,
):
    """Read a folder written by :func:`save_pretrained`: ``(base, config, in_action, out_action, aggregator)``.

    ``base``: the base model, a hub id / path, or None for the one the config names; a folder that holds
    fine-tuned base weights loads those. PEFT adapters saved beside are put back on the base.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    directory = Path(directory)
    config = EquiConfig.load(directory)
    auto = AutoModelForSeq2SeqLM if config.family == "seq2seq" else AutoModelForCausalLM
    if config.base_fine_tuned:
        base = auto.from_pretrained(directory / BASE_DIR, **(base_kwargs or {}))
    elif base is None or isinstance(base, str):
        base = auto.from_pretrained(base or config.base_model_name_or_path, **(base_kwargs or {}))
    base = load_adapters(base, directory)  # PEFT adapters saved in directory/adapter
    return (base, *load_parts(directory, proxy, weight_net, feature_size(base), config))


def load_parts(
    directory: str | os.PathLike,
    proxy: Any = None,
    weight_net: nn.Module | None = None,
    features: int | None = None,
    config: EquiConfig | None = None,
):
    """Read what save_pretrained wrote: ``(config, in_action, out_action, aggregator)``.

    The aggregator is rebuilt from the config by the method registry (``equinlp.methods.registry``); ``proxy`` and
    ``weight_net`` supply a custom callable / λ-net the config cannot name; ``features`` is the λ-net's width.
    """
    directory = Path(directory)
    config = config or EquiConfig.load(directory)
    tensors = load_file(str(directory / ACTION_FILE))
    group = Group("loaded", tensors["group_mul"])
    description = tuple(config.group_description)
    in_action = TokenPermutation(group, tensors["in_table"], description)
    out_action = TokenPermutation(group, tensors["out_table"], description)
    aggregator = build_aggregator(config, features=features, proxy=proxy, weight_net=weight_net)
    if (directory / WEIGHTS_FILE).exists():
        aggregator.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return config, in_action, out_action, aggregator
