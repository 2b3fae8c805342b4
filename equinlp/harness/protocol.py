"""The transfer protocol every training application fills in, its checkpointer and its metric vocabulary.

SCAN, CNN vision, CLIP and RL run the paper's protocol: a base network pre-trained once per base cell (a
``pretrain`` stage, keyed only by :attr:`Transfer.pretrain_settings`; CLIP's base comes pre-trained from elsewhere:
``pretrains = False``), then per method, in :meth:`Transfer.transfer`: wrap the base by the cell's method, train
its λ-net alone (λ-equitune), measure it zero-shot, fine-tune it. :class:`Transfer` owns the stages, the order of the
phases, their checkpoint folders, the pre-trained weights (in the pre-training cell's working folder) and their
loading; an application fills in the hooks:

- ``base_cells(config)`` / ``run_cells(config)`` / ``base_cell_of(config, cell)``: the two stages' cells, and the
  base a run continues;
- ``build_base(config, cell)``: a fresh base network for a pre-training cell (seeded: it draws its initial weights);
- ``pretrain(config, cell, base, checkpoint)``: train ``base`` in place, return its metrics;
- ``wrap(config, cell, base)``: the cell's model around the pre-trained ``base`` (seeded: a λ-net draws its weights);
- ``lambda_parameters(config, cell, model)``: what the λ-only phase trains (default: nothing, no such phase);
- ``train_lambda(config, cell, model, parameters, checkpoint)``: train those alone, resumable from ``checkpoint``;
- ``evaluate(config, cell, model)``: the zero-shot score (a number, or a dict of them), computed once per run;
- ``finetune(config, cell, model, zero_shot, checkpoint)``: fine-tune (steps, epochs or environment steps),
  resumable from ``checkpoint``; returns the run's metrics.

Every loop saves at boundaries (steps, epochs, evaluations) with one :class:`Checkpointer`: models, optimisers,
torch's RNG and the curve, atomically and without pickle, so a resumed run equals an uninterrupted one bit for bit.

Metric vocabulary: a run records ``zero_shot`` (before fine-tuning, after any λ-only phase), ``final`` (after it)
and ``curve`` (the evaluations along it, starting with the zero-shot one); each task declares its metrics in
``Task.metrics`` with whether higher is better, which the generic report reads
(:func:`~equinlp.harness.report.best_methods`). Names already recorded by committed envelopes stay as they are
(SCAN's ``fine_tuned`` is its final exact match, CLIP's ``zero_shot_top1`` / ``final_top1``), so reruns are
recognised and reports read them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from equinlp.errors import EquinlpError
from equinlp.files import write_text_atomic
from equinlp.harness.state import STRUCTURE, load_state, rng_state, save_state, set_rng_state
from equinlp.harness.store import RunStore, read_json
from equinlp.harness.task import Stage


def _state_of(part: Any) -> Any:
    return {name: _state_of(p) for name, p in part.items()} if isinstance(part, dict) else part.state_dict()


def _load_into(part: Any, state: Any) -> None:
    if isinstance(part, dict):
        for name, p in part.items():
            _load_into(p, state[name])
    else:
        part.load_state_dict(state)


class Checkpointer:
    """One training's state at its boundaries, in ``folder`` (None: no checkpoint).

    ``parts`` are what the training changes, by name: modules, optimisers, a replay buffer (anything with
    ``state_dict``/``load_state_dict``, or a dict of them). A checkpoint holds their states, torch's RNG and any
    ``values`` (a curve, losses, a step: tensors and JSON values), written atomically by
    :func:`~equinlp.harness.state.save_state`.
    """

    def __init__(self, folder: Path | None, device: str | torch.device = "cpu", **parts: Any) -> None:
        self.folder, self.device, self.parts = folder, device, parts

    def exists(self) -> bool:
        return self.folder is not None and (self.folder / STRUCTURE).exists()

    def resume(self) -> dict[str, Any] | None:
        """Load the parts and torch's RNG from the checkpoint; returns its other values, or None if there is none."""
        if not self.exists():
            return None
        state = load_state(self.folder, self.device)
        for name, part in self.parts.items():
            _load_into(part, state[name])
        set_rng_state(state["rng"])
        return {key: value for key, value in state.items() if key not in self.parts and key != "rng"}

    def save(self, rng: dict[str, Any] | None = None, **values: Any) -> None:
        """Write the parts, torch's RNG (``rng``: the one taken at the boundary; default: now) and ``values``."""
        if self.folder is None:
            return
        state = {name: _state_of(part) for name, part in self.parts.items()}
        save_state(self.folder, {**state, "rng": rng if rng is not None else rng_state(), **values})


def remembered(path: Path, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON value, kept in ``path`` so that a resumed run does not compute it again (a zero-shot score)."""
    if path.exists():
        return read_json(path, "zero-shot result")["value"]
    value = compute()
    write_text_atomic(path, json.dumps({"value": value}) + "\n")
    return value


class Transfer:
    """A two-stage task, ``pretrain`` then ``run``, filled in by the hooks of the module docstring."""

    collective = False
    pretrains = True  # False: the base comes pre-trained from elsewhere, and the task has the ``run`` stage only
    pretrain_settings: tuple[str, ...] = ()  # the config fields pre-training depends on
    weights = "weights"  # the pre-trained network's folder, in the pre-training cell's working folder

    def plan(self, config: Any) -> list[Stage]:
        runs = Stage("run", self.run_cells(config))
        return [Stage("pretrain", self.base_cells(config), settings=self.pretrain_settings), runs] if self.pretrains else [runs]

    def run_cell(self, config: Any, stage: str, cell: dict[str, Any], store: RunStore) -> dict[str, Any]:
        if stage == "pretrain":
            base = self.build_base(config, cell)
            metrics = self.pretrain(config, cell, base, store.checkpoint_dir(stage, cell))
            save_state(store.work_dir(stage, cell) / self.weights, base.state_dict())
            return metrics
        base = self.pretrained(config, cell, store) if self.pretrains else None
        return self.transfer(config, cell, base, store)

    def transfer(self, config: Any, cell: dict[str, Any], base: torch.nn.Module | None, store: RunStore) -> dict[str, Any]:
        """One run from the pre-trained ``base``: wrap it, λ-only phase, zero-shot score, fine-tuning; its metrics.

        Each phase resumes from its own place in the run's checkpoint folder (``lambda/``, ``zero_shot.json``,
        ``finetune/``), so an interrupted run continues where it stopped and ends as an uninterrupted one."""
        checkpoint = store.checkpoint_dir("run", cell)
        model = self.wrap(config, cell, base)
        parameters = list(self.lambda_parameters(config, cell, model))
        if parameters:
            self.train_lambda(config, cell, model, parameters, checkpoint / "lambda")
        zero_shot = remembered(checkpoint / "zero_shot.json", lambda: self.evaluate(config, cell, model))
        return self.finetune(config, cell, model, zero_shot, checkpoint / "finetune")

    def pretrained(self, config: Any, cell: dict[str, Any], store: RunStore) -> torch.nn.Module:
        """The base network pre-trained for a ``run`` cell (written by its ``pretrain`` cell)."""
        base_cell = self.base_cell_of(config, cell)
        folder = store.work_dir("pretrain", base_cell) / self.weights
        if not (folder / STRUCTURE).exists():
            envelope = store.envelope_path("pretrain", base_cell)
            raise EquinlpError(f"pre-trained weights {folder} are missing; delete {envelope} to pre-train them again")
        base = self.build_base(config, base_cell)
        base.load_state_dict(load_state(folder))
        return base

    # --- the hooks: the stages' cells and pre-training ---------------------------------------------------------

    def base_cells(self, config: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def run_cells(self, config: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def base_cell_of(self, config: Any, cell: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def build_base(self, config: Any, cell: dict[str, Any]) -> torch.nn.Module:
        raise NotImplementedError

    def pretrain(self, config: Any, cell: dict[str, Any], base: torch.nn.Module, checkpoint: Path) -> dict[str, Any]:
        raise NotImplementedError

    # --- the hooks: one run's phases -----------------------------------------------------------------------------

    def wrap(self, config: Any, cell: dict[str, Any], base: torch.nn.Module | None) -> torch.nn.Module:
        raise NotImplementedError

    def lambda_parameters(self, config: Any, cell: dict[str, Any], model: torch.nn.Module) -> Iterable[torch.nn.Parameter]:
        return ()

    def train_lambda(
        self, config: Any, cell: dict[str, Any], model: torch.nn.Module, parameters: list[torch.nn.Parameter], checkpoint: Path
    ) -> None:
        raise NotImplementedError

    def evaluate(self, config: Any, cell: dict[str, Any], model: torch.nn.Module) -> Any:
        raise NotImplementedError

    def finetune(
        self, config: Any, cell: dict[str, Any], model: torch.nn.Module, zero_shot: Any, checkpoint: Path
    ) -> dict[str, Any]:
        raise NotImplementedError


def describe(cell: dict[str, Any]) -> str:
    """A run's label for progress bars and logs: its coordinates' values, ``"cartpole equitune 0"``."""
    return " ".join(str(value) for value in cell.values())
