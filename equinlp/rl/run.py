"""The paper's protocol: pre-train a plain DQN, then continue training it as each variant.

Per seed, the plain DQN is pre-trained once (``OUT/pretrained/{env}_seed{s}.pt``); every method then
starts from those weights with a fresh replay buffer and ε fixed at ``eps_end``, so the curves differ
only by the wrapper. Step 0 of each curve is the variant's zero-shot return (no further training).

One JSON per run: ``OUT/runs/{env}_{method}_seed{s}.json`` with the curve, the zero-shot return, the
final return (mean of the last three evaluations) and the mean over the curve. Runs already written
are skipped; an interrupted run resumes from its checkpoint (``OUT/checkpoints``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from equinlp.files import write_atomic, write_text_atomic
from equinlp.rl.dqn import DQNConfig, train
from equinlp.rl.envs import env_spec
from equinlp.rl.qnet import METHODS, QNetwork, build_q


@dataclass
class RLConfig:
    env: str = "cartpole"
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    pretrain_steps: int | None = None  # None: the environment's default
    steps: int | None = None
    proxy: str = "max_q"
    hidden: int = 128
    out: str = "results/rl"
    dqn: DQNConfig = field(default_factory=DQNConfig)

    def __post_init__(self) -> None:
        spec = env_spec(self.env)
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
        self.pretrain_steps = self.pretrain_steps or spec.pretrain_steps
        self.steps = self.steps or spec.steps


def _network(config: RLConfig) -> QNetwork:
    symmetry = env_spec(config.env).symmetry
    return QNetwork(symmetry.state_matrices.shape[1], symmetry.action_table.shape[1], config.hidden)


def pretrained(config: RLConfig, seed: int, log=print) -> QNetwork:
    """The plain DQN pre-trained with ``seed`` (trained once, then read from ``OUT/pretrained``)."""
    out = Path(config.out)
    path = out / "pretrained" / f"{config.env}_seed{seed}.pt"
    torch.manual_seed(seed)
    net = _network(config)
    if path.exists():
        net.load_state_dict(torch.load(path))
        return net
    dqn = DQNConfig(**{**asdict(config.dqn), "steps": config.pretrain_steps})
    checkpoint = out / "checkpoints" / f"{config.env}_pretrain_seed{seed}.pt"
    curve = train(net, env_spec(config.env), dqn, seed, checkpoint, desc=f"{config.env} pre-train seed {seed}")
    write_atomic(path, lambda tmp: torch.save(net.state_dict(), tmp))
    write_text_atomic(path.with_suffix(".json"), json.dumps({"env": config.env, "seed": seed, "curve": curve}) + "\n")
    checkpoint.unlink(missing_ok=True)
    log(f"pre-trained {config.env} seed {seed}: return {curve[-1]['return']:.1f}")
    return net


def run_one(config: RLConfig, method: str, seed: int, log=print) -> dict:
    """Continue the pre-trained DQN as ``method``; writes and returns the run's JSON."""
    out = Path(config.out)
    path = out / "runs" / f"{config.env}_{method}_seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    spec = env_spec(config.env)
    q = build_q(pretrained(config, seed, log), spec.symmetry, method, config.proxy)
    dqn = DQNConfig(**{**asdict(config.dqn), "steps": config.steps, "eps_start": config.dqn.eps_end})
    checkpoint = out / "checkpoints" / f"{config.env}_{method}_seed{seed}.pt"
    curve = train(q, spec, dqn, seed + 1_000, checkpoint, desc=f"{config.env} {method} seed {seed}")
    returns = [point["return"] for point in curve]
    result = {
        "env": config.env,
        "method": method,
        "seed": seed,
        "proxy": config.proxy if method == "equizero" else None,
        "symmetry": spec.symmetry.description,
        "pretrain_steps": config.pretrain_steps,
        "steps": config.steps,
        "zero_shot": returns[0],
        "final": float(np.mean(returns[-3:])),
        "mean_over_curve": float(np.mean(returns)),
        "curve": curve,
        "dqn": asdict(dqn),
    }
    write_text_atomic(path, json.dumps(result, indent=1) + "\n")
    checkpoint.unlink(missing_ok=True)
    log(f"{config.env} {method} seed {seed}: zero-shot {result['zero_shot']:.2f}, final {result['final']:.2f}")
    return result


def run(config: RLConfig, log=print) -> list[dict]:
    """Every (seed, method) of the protocol; returns the runs' results."""
    return [run_one(config, method, seed, log) for seed in config.seeds for method in config.methods]
