"""DQN: a replay buffer, a target network, ε-greedy exploration, greedy evaluation, exact checkpoints.

``train`` works on any Q-module ``[B, D] -> [B, A]``, plain or equivariant: the target network is a
copy of the whole module, so an equivariant learner bootstraps from an equivariant target.

A checkpoint is written every ``checkpoint_every`` steps, always between two steps, with everything the
next step reads: both networks, the optimiser, the replay buffer (as tensors), the exploration RNG,
torch's RNG, the training environment mid-episode (its attributes and its RNG), the step and the curve.
It is written by the harness's :class:`~equinlp.harness.protocol.Checkpointer` (safetensors + JSON: nothing in
it can run code). An interrupt, wherever it lands, leaves the last checkpoint; resuming from it repeats the steps
after it exactly, so a resumed run equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from equinlp.apps.rl.config import DQNConfig
from equinlp.apps.rl.envs import EnvSpec
from equinlp.harness.progress import progress
from equinlp.harness.protocol import Checkpointer

log = logging.getLogger(__name__)

EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...: the same starts for every method


class Replay:
    """A ring buffer of transitions ``(s [D], a, r, s' [D], terminated)``."""

    FIELDS = ("states", "actions", "rewards", "next_states", "terminated")

    def __init__(self, size: int, state_dim: int) -> None:
        self.states = np.zeros((size, state_dim), np.float32)
        self.next_states = np.zeros((size, state_dim), np.float32)
        self.actions = np.zeros(size, np.int64)
        self.rewards = np.zeros(size, np.float32)
        self.terminated = np.zeros(size, np.float32)
        self.size, self.next, self.full = size, 0, False

    def __len__(self) -> int:
        return self.size if self.full else self.next

    def add(self, s, a: int, r: float, s2, terminated: bool) -> None:
        i = self.next
        self.states[i], self.actions[i], self.rewards[i], self.next_states[i], self.terminated[i] = s, a, r, s2, terminated
        self.next = (i + 1) % self.size
        self.full = self.full or self.next == 0

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(0, len(self), batch)
        return tuple(torch.from_numpy(getattr(self, name)[idx]) for name in self.FIELDS)

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the buffer as tensors, and the write position."""
        filled = len(self)
        tensors = {name: torch.from_numpy(getattr(self, name)[:filled].copy()) for name in self.FIELDS}
        return {**tensors, "next": self.next, "full": self.full}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.FIELDS:
            values = state[name].numpy()
            getattr(self, name)[: len(values)] = values
        self.next, self.full = state["next"], state["full"]


# --- the environment's state, for an exact resume mid-episode ------------------------------------------------


def _layers(env: gym.Env) -> list[gym.Env]:
    """The wrappers from the outside in, then the environment itself."""
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def _plain(value: Any) -> Any:
    """``value`` as a checkpoint value if it is plain data (numbers, strings, arrays, tuples of numbers), else None."""
    if value is None or isinstance(value, bool | int | float | str):
        return {"value": value}
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {"array": torch.from_numpy(value.copy())}
    if isinstance(value, tuple) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return {"tuple": [v.item() if isinstance(v, np.generic) else v for v in value]}
    return None


def env_state(env: gym.Env) -> dict[str, Any]:
    """Every plain attribute of every layer of ``env`` (position, physics state, step counters) and its RNG."""
    layers = []
    for layer in _layers(env):
        values = {name: _plain(value) for name, value in vars(layer).items() if name != "_np_random"}
        layers.append({name: value for name, value in values.items() if value is not None})
    return {"layers": layers, "rng": env.unwrapped.np_random.bit_generator.state}


def set_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Put ``env`` (reset once, so that its wrappers are ready) in the state :func:`env_state` returned."""
    layers = _layers(env)
    if len(layers) != len(state["layers"]):
        raise ValueError(f"checkpointed environment has {len(state['layers'])} layers, this one {len(layers)}")
    for layer, values in zip(layers, state["layers"], strict=True):
        for name, value in values.items():
            restored = value["array"].numpy().copy() if "array" in value else value.get("value")
            setattr(layer, name, tuple(value["tuple"]) if "tuple" in value else restored)
    env.unwrapped.np_random.bit_generator.state = state["rng"]


# --- acting and learning ---------------------------------------------------------------------------------


def greedy_actions(q: nn.Module, states: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return q(torch.as_tensor(np.asarray(states), dtype=torch.float32)).argmax(-1).numpy()


def evaluate(q: nn.Module, spec: EnvSpec, episodes: int) -> float:
    """Mean return of ``episodes`` greedy episodes, stepped in lockstep (one batched Q call per step)."""
    envs = [spec.make() for _ in range(episodes)]
    obs = [env.reset(seed=EVAL_SEED + i)[0] for i, env in enumerate(envs)]
    returns, active = np.zeros(episodes), list(range(episodes))
    while active:
        actions = greedy_actions(q, np.stack([obs[i] for i in active]))
        still = []
        for i, a in zip(active, actions, strict=True):
            obs[i], r, terminated, truncated, _ = envs[i].step(int(a))
            returns[i] += r
            if not (terminated or truncated):
                still.append(i)
        active = still
    return float(returns.mean())


def train(
    q: nn.Module,
    spec: EnvSpec,
    config: DQNConfig,
    steps: int,
    seed: int,
    *,
    eps_start: float | None = None,
    checkpoint: Path | None = None,
    desc: str = "dqn",
    zero_shot: float | None = None,
) -> list[dict]:
    """Train ``q`` in place for ``steps`` environment steps; returns the learning curve.

    Args:
        q: the Q-module ``[B, D] -> [B, A]`` (plain or equivariant).
        spec: the environment.
        config: the DQN's hyper-parameters.
        steps: environment steps to train for.
        seed: seeds exploration, replay sampling and the training environment.
        eps_start: the starting ε instead of ``config.eps_start`` (``config.eps_end``: a constant ε).
        checkpoint: a folder; a run resumes from it if it holds a checkpoint, and saves to it.
        desc: the progress bar's label.
        zero_shot: the greedy return of ``q`` as it is, when already measured (the curve's step 0).

    Returns:
        ``[{"step", "return"}]``: the greedy evaluation return before training (step 0), every
        ``eval_every`` steps, and after the last step.
    """
    if eps_start is not None:
        config = dataclasses.replace(config, eps_start=eps_start)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = spec.make()
    obs, _ = env.reset(seed=seed)
    target = copy.deepcopy(q)
    optimizer = torch.optim.Adam(q.parameters(), lr=config.lr)
    replay = Replay(config.buffer_size, env.observation_space.shape[0])
    checkpointer = Checkpointer(checkpoint, q=q, target=target, optimizer=optimizer, replay=replay)
    start, curve = 0, []
    saved = checkpointer.resume()
    if saved is not None:
        rng.bit_generator.state = saved["numpy_rng"]
        set_env_state(env, saved["env"])
        start, curve, obs = saved["step"], saved["curve"], saved["obs"].numpy()
        log.info("%s: resumed at step %d from %s", desc, start, checkpoint)
    if not curve:
        curve.append({"step": 0, "return": evaluate(q, spec, config.eval_episodes) if zero_shot is None else zero_shot})

    def save(step: int) -> None:
        state = {"numpy_rng": rng.bit_generator.state, "env": env_state(env), "obs": torch.from_numpy(np.array(obs))}
        checkpointer.save(**state, step=step, curve=curve)

    for step in progress(range(start, steps), desc=desc, initial=start, total=steps):
        if rng.random() < config.epsilon(step, steps):
            action = int(rng.integers(env.action_space.n))
        else:
            action = int(greedy_actions(q, obs[None])[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, reward, next_obs, terminated)
        obs = env.reset()[0] if terminated or truncated else next_obs
        if step >= config.learning_starts:
            _update(q, target, optimizer, replay.sample(rng, config.batch_size), config)
        if (step + 1) % config.target_every == 0:
            target.load_state_dict(q.state_dict())
        if (step + 1) % config.eval_every == 0:
            curve.append({"step": step + 1, "return": evaluate(q, spec, config.eval_episodes)})
        if checkpoint is not None and (step + 1) % config.checkpoint_every == 0 and step + 1 < steps:
            save(step + 1)  # between two steps: everything the next step reads
    if curve[-1]["step"] != steps:  # the curve always ends with the returned weights
        curve.append({"step": steps, "return": evaluate(q, spec, config.eval_episodes)})
    return curve


def _update(q: nn.Module, target: nn.Module, optimizer, batch: tuple[torch.Tensor, ...], config: DQNConfig) -> None:
    states, actions, rewards, next_states, terminated = batch
    with torch.no_grad():
        bootstrap = target(next_states).max(-1).values
        goal = rewards + config.gamma * (1 - terminated) * bootstrap
    values = q(states).gather(1, actions[:, None]).squeeze(1)
    loss = nn.functional.smooth_l1_loss(values, goal)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(q.parameters(), config.grad_clip)
    optimizer.step()
