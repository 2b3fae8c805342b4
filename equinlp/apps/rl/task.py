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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from equinlp.apps.rl.dqn import DQNConfig, train
from equinlp.apps.rl.envs import ENVS, EnvSpec, env_spec
from equinlp.apps.rl.qnet import METHODS, RL_PROXIES, QNetwork, build_q
from equinlp.apps.rl.report import LEGEND, plot, table
from equinlp.harness import RunConfig, RunStore, option
from equinlp.harness.protocol import Transfer

log = logging.getLogger(__name__)

WEIGHTS = "weights"  # the pre-trained network, in the pre-training cell's working folder
RUN_SEED_OFFSET = 1_000  # continued training is seeded seed + 1000, pre-training seed
_DEFAULT_STEPS = ", ".join(f"{name} {spec.pretrain_steps}" for name, spec in ENVS.items())
_DEFAULT_RUN_STEPS = ", ".join(f"{name} {spec.steps}" for name, spec in ENVS.items())


@dataclass
class RLConfig(RunConfig):
    """Which environments, methods and seeds to run, and how (every field is a flag of ``equinlp rl run``)."""

    envs: tuple[str, ...] = option(("cartpole",), "environments", choices=tuple(ENVS), plan=True, flags=("--env",))
    methods: tuple[str, ...] = option(METHODS, "methods", choices=METHODS, plan=True, flags=("--method",))
    seeds: tuple[int, ...] = option((0, 1, 2, 3, 4), "seeds (the paper's protocol: 5)", at_least=0, plan=True)
    pretrain_steps: int | None = option(
        None, f"plain-DQN pre-training steps (default: the environment's: {_DEFAULT_STEPS})", at_least=1, quick=2_000
    )
    steps: int | None = option(
        None, f"steps of continued training (default: the environment's: {_DEFAULT_RUN_STEPS})", at_least=1, quick=3_000
    )
    proxy: str = option(
        "max_q",
        "equizero's proxy (max_q: the copy with the largest max Q)",
        choices=tuple(RL_PROXIES),
        used_by={"method": ("equizero",)},
    )
    hidden: int = option(128, "width of the Q-network's two hidden layers", at_least=1)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    threads: int | None = option(
        1,
        "torch CPU threads (1 here, unlike the other apps: the Q-networks are tiny, more threads only add overhead)",
        at_least=1,
        keyed=False,
    )
    out: str = option("results/rl", "output folder: one JSON per finished run in OUT/runs, continued on rerun", keyed=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.dqn, DQNConfig):
            raise TypeError(f"dqn must be a DQNConfig, got {type(self.dqn).__name__}")


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
    description = (
        "The paper's protocol: per env and seed, a plain DQN is pre-trained once; each method then continues from "
        "those weights (fresh replay buffer, ε = --eps-end). Finished runs in OUT/runs are skipped, an interrupted "
        "one resumes exactly from its last checkpoint, and a rerun with other settings is refused (or --overwrite). "
        "Curves are greedy evaluation returns on fixed seeds."
    )

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

    def transfer(self, config: RLConfig, cell: dict[str, Any], net: QNetwork, store: RunStore) -> dict[str, Any]:
        """The method's Q-network continues from the pre-trained one; step 0 of its curve is the zero-shot return."""
        spec, seed = env_spec(cell["env"]), cell["seed"]
        q = build_q(net, spec.symmetry, cell["method"], config.proxy)
        steps = config.steps or spec.steps
        desc = f"{cell['env']} {cell['method']} seed {seed}"
        eps, checkpoint = config.dqn.eps_end, store.checkpoint_dir("run", cell)
        curve = train(q, spec, config.dqn, steps, seed + RUN_SEED_OFFSET, eps_start=eps, checkpoint=checkpoint, desc=desc)
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
