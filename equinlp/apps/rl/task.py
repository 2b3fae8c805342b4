"""The paper's protocol as a harness task: pre-train a plain DQN, then continue training it as each variant.

Two stages (see :mod:`equinlp.harness.task`):

- ``pretrain``, one cell per env × seed: a plain DQN trained with ε going ``eps_start`` → ``eps_end``; its
  weights stay in ``work/rl_pretrain_env=E_seed=S/weights`` (safetensors). Its results depend only on
  :data:`PRETRAIN_SETTINGS`, so changing ``--steps`` or ``--proxy`` keeps the pre-trained networks.
- ``run``, one cell per env × method × seed: the pre-trained network, wrapped by the method, continues
  with a fresh replay buffer and ε fixed at ``eps_end``, so the curves differ only by the wrapper. Step 0
  of each curve is the variant's zero-shot return (no further training).

A run's metrics: the curve, the zero-shot return, the final return (mean of the last three evaluations)
and the mean over the curve; ``equinlp rl report`` builds its table and figure from them.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from equinlp.apps.rl.config import DQNConfig, RLConfig
from equinlp.apps.rl.dqn import evaluate, train
from equinlp.apps.rl.envs import EnvSpec, env_spec
from equinlp.apps.rl.qnet import QNetwork, build_q
from equinlp.apps.rl.report import LEGEND, plot, table
from equinlp.harness.protocol import Transfer, describe

log = logging.getLogger(__name__)

WEIGHTS = "weights"  # the pre-trained network, in the pre-training cell's working folder
RUN_SEED_OFFSET = 1_000  # continued training is seeded seed + 1000, pre-training seed
# the settings pre-training depends on: not the methods' --steps or --proxy, nor what cannot change results
PRETRAIN_SETTINGS = ("pretrain_steps", "hidden") + tuple(
    f.name for f in dataclasses.fields(DQNConfig) if f.metadata.get("keyed", True)
)


def network(config: RLConfig, spec: EnvSpec) -> QNetwork:
    """A fresh plain Q-network for ``spec`` (initialised from torch's current RNG)."""
    symmetry = spec.symmetry
    return QNetwork(symmetry.state_matrices.shape[1], symmetry.action_table.shape[1], config.hidden)


class RLTask(Transfer):
    """``equinlp rl``: environments and DQN on the harness (cells split across processes, exact resume)."""

    name = "rl"
    config_class = RLConfig
    metrics = {"zero_shot": True, "final": True, "mean_over_curve": True}  # greedy returns
    pretrain_settings = PRETRAIN_SETTINGS
    weights = WEIGHTS

    def base_cells(self, config: RLConfig) -> list[dict[str, Any]]:
        return [{"env": e, "seed": s} for e in _distinct(config.envs) for s in _distinct(config.seeds)]

    def run_cells(self, config: RLConfig) -> list[dict[str, Any]]:
        envs, methods, seeds = (_distinct(v) for v in (config.envs, config.methods, config.seeds))
        return [{"env": e, "method": m, "seed": s} for e in envs for m in methods for s in seeds]

    def base_cell_of(self, config: RLConfig, cell: dict[str, Any]) -> dict[str, Any]:
        return {"env": cell["env"], "seed": cell["seed"]}

    def setup(self, config: RLConfig) -> None:
        """Nothing to load: every cell builds its own environment and network."""

    def build_base(self, config: RLConfig, cell: dict[str, Any]) -> QNetwork:
        """A fresh plain Q-network, initialised from the cell's seed."""
        torch.manual_seed(cell["seed"])
        return network(config, env_spec(cell["env"]))

    def pretrain(self, config: RLConfig, cell: dict[str, Any], net: QNetwork, checkpoint: Path) -> dict[str, Any]:
        spec, seed = env_spec(cell["env"]), cell["seed"]
        steps = config.pretrain_steps or spec.pretrain_steps
        desc = f"{cell['env']} pre-train seed {seed}"
        curve = train(net, spec, config.dqn, steps, seed, checkpoint=checkpoint, desc=desc)
        log.info("pre-trained %s seed %d: return %.2f", cell["env"], seed, curve[-1]["return"])
        return {"steps": steps, "final": curve[-1]["return"], "curve": curve}

    def wrap(self, config: RLConfig, cell: dict[str, Any], net: QNetwork) -> torch.nn.Module:
        """The method's Q-network around the pre-trained one (``base``: the network itself)."""
        return build_q(net, env_spec(cell["env"]).symmetry, cell["method"], config.proxy)

    def evaluate(self, config: RLConfig, cell: dict[str, Any], q: torch.nn.Module) -> float:
        """The zero-shot greedy return: step 0 of the run's curve."""
        return evaluate(q, env_spec(cell["env"]), config.dqn.eval_episodes)

    def finetune(self, config: RLConfig, cell: dict[str, Any], q: torch.nn.Module, zero_shot: float, checkpoint: Path) -> dict:
        """Training continues with a fresh replay buffer and ε fixed at ``eps_end``; the curve starts at the zero-shot return."""
        spec, seed, desc = env_spec(cell["env"]), cell["seed"], describe(cell)
        steps, eps = config.steps or spec.steps, config.dqn.eps_end
        seeded = {"eps_start": eps, "checkpoint": checkpoint, "desc": desc, "zero_shot": zero_shot}
        curve = train(q, spec, config.dqn, steps, seed + RUN_SEED_OFFSET, **seeded)
        returns = [point["return"] for point in curve]
        metrics = {"zero_shot": returns[0], "final": float(np.mean(returns[-3:])), "mean_over_curve": float(np.mean(returns))}
        log.info("%s: zero-shot %.2f, final %.2f", desc, metrics["zero_shot"], metrics["final"])
        metrics.update(steps=steps, pretrain_steps=config.pretrain_steps or spec.pretrain_steps)
        return {**metrics, "symmetry": spec.symmetry.description, "curve": curve}

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        return [(LEGEND, table(runs))]

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        plot(runs, path)


def _distinct(values) -> list:
    return list(dict.fromkeys(values))


TASK = RLTask()
