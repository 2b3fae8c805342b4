"""Checkpoints without pickle: tensors go to safetensors, everything else to JSON.

``save_state(folder, state)`` takes any nesting of dicts, lists, tensors, numbers, strings and None (a model's
and an optimizer's ``state_dict``, RNG states, a replay buffer as tensors, a curve) and writes
``folder/tensors.safetensors`` plus ``folder/state.json``, atomically as one folder. ``load_state`` rebuilds
the same nesting. Nothing in either file can run code when read, so a checkpoint handed over by someone
else is as safe to load as a JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from equinlp.errors import EquinlpError
from equinlp.files import write_folder_atomic

TENSORS, STRUCTURE = "tensors.safetensors", "state.json"


def _split(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous().clone()  # clone: tied weights share storage
        return {"__tensor__": key}
    if isinstance(value, dict):
        if not all(isinstance(k, str | int) for k in value):
            raise TypeError(f"checkpoint dict keys must be str or int, got {sorted(map(type, value))}")
        return {"__dict__": [[k, _split(v, tensors)] for k, v in value.items()]}  # keeps int keys (optimizer state)
    if isinstance(value, list | tuple):
        return {"__list__": [_split(v, tensors) for v in value], "tuple": isinstance(value, tuple)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} without pickle; convert it to tensors or JSON values")


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict) and "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if isinstance(value, dict) and "__dict__" in value:
        return {k: _join(v, tensors) for k, v in value["__dict__"]}
    if isinstance(value, dict) and "__list__" in value:
        items = [_join(v, tensors) for v in value["__list__"]]
        return tuple(items) if value.get("tuple") else items
    return value


def save_state(folder: str | Path, state: Any) -> Path:
    """Write ``state`` (nested dicts/lists of tensors and JSON values) to ``folder``, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _split(state, tensors)

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / TENSORS))
        (tmp / STRUCTURE).write_text(json.dumps(structure))

    return write_folder_atomic(folder, write)


def load_state(folder: str | Path, device: str | torch.device = "cpu") -> Any:
    """The state written by :func:`save_state`; a damaged checkpoint is an ``EquinlpError`` naming the folder."""
    folder = Path(folder)
    try:
        tensors = load_file(str(folder / TENSORS), device=str(device))
        structure = json.loads((folder / STRUCTURE).read_text())
    except (OSError, SafetensorError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EquinlpError(f"checkpoint {folder} is damaged ({error}); delete it to start that run afresh") from error
    return _join(structure, tensors)


def rng_state() -> dict[str, Any]:
    """torch's CPU (and CUDA) generator states, as tensors."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
