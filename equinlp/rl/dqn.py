"""DQN: a replay buffer, a target network, ε-greedy exploration, greedy evaluation, checkpoints.

``train`` works on any Q-module ``[B, D] -> [B, A]``, plain or equivariant: the target network is a
copy of the whole module, so an equivariant learner bootstraps from an equivariant target.

Checkpoints hold the networks, the optimiser, the replay buffer, the random states and the learning
curve; they are written atomically every ``checkpoint_every`` steps and on Ctrl-C. A resumed run
starts a fresh episode (the interrupted one is not stored) and otherwise continues where it stopped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from equinlp.files import write_atomic
from equinlp.rl.envs import EnvSpec

EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...: the same starts for every method


@dataclass
class DQNConfig:
    steps: int = 20_000
    lr: float = 5e-4
    batch_size: int = 64
    buffer_size: int = 50_000
    gamma: float = 0.99
    learning_starts: int = 1_000  # steps of experience before the first update
    target_every: int = 500  # steps between target-network copies
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_fraction: float = 0.3  # ε decays linearly from eps_start to eps_end over this fraction of the steps
    eval_every: int = 1_000
    eval_episodes: int = 5
    checkpoint_every: int = 5_000
    grad_clip: float = 10.0

    def epsilon(self, step: int) -> float:
        decay = max(1, int(self.eps_fraction * self.steps))
        return self.eps_end + (self.eps_start - self.eps_end) * max(0.0, 1 - step / decay)


class Replay:
    """A ring buffer of transitions ``(s [D], a, r, s' [D], terminated)``."""

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
        arrays = (self.states, self.actions, self.rewards, self.next_states, self.terminated)
        return tuple(torch.from_numpy(a[idx]) for a in arrays)


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
    q: nn.Module, spec: EnvSpec, config: DQNConfig, seed: int, checkpoint: Path | None = None, desc: str = "dqn"
) -> list[dict]:
    """Train ``q`` in place for ``config.steps`` environment steps; returns the learning curve.

    The curve is ``[{"step", "return"}]``: the greedy evaluation return before training (step 0),
    every ``eval_every`` steps, and after the last step. With ``checkpoint``, a run resumes from it and saves to it.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = spec.make()
    state_dim = env.observation_space.shape[0]
    target = copy.deepcopy(q)
    optimizer = torch.optim.Adam(q.parameters(), lr=config.lr)
    replay = Replay(config.buffer_size, state_dim)
    start, curve = 0, []
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        q.load_state_dict(saved["q"])
        target.load_state_dict(saved["target"])
        optimizer.load_state_dict(saved["optimizer"])
        replay, start, curve = saved["replay"], saved["step"], saved["curve"]
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
    if not curve:
        curve.append({"step": 0, "return": evaluate(q, spec, config.eval_episodes)})
    obs, _ = env.reset(seed=seed + start)

    def save(step: int) -> None:
        state = {"q": q.state_dict(), "target": target.state_dict(), "optimizer": optimizer.state_dict()}
        state.update(replay=replay, step=step, curve=curve, rng=rng.bit_generator.state, torch_rng=torch.get_rng_state())
        write_atomic(checkpoint, lambda tmp: torch.save(state, tmp))

    step = start
    try:
        for step in tqdm(range(start, config.steps), desc=desc, initial=start, total=config.steps, disable=None):
            if rng.random() < config.epsilon(step):
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
            if checkpoint is not None and (step + 1) % config.checkpoint_every == 0:
                save(step + 1)
    except KeyboardInterrupt:
        if checkpoint is not None:
            save(step)
            print(f"\ninterrupted at step {step}: saved {checkpoint}; rerun the same command to continue")
        raise
    if curve[-1]["step"] != config.steps:  # the curve always ends with the returned weights
        curve.append({"step": config.steps, "return": evaluate(q, spec, config.eval_episodes)})
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
