"""Environments and their symmetries, declared as data.

A symmetry is a group acting on states by matrices and on actions by a permutation, such that the
dynamics commute with it: stepping ``g·s`` with ``g·a`` gives ``g·s'`` and the same reward
(``tests/test_rl.py`` checks this on random states). ``table[g][a]`` is the action that g sends a to.

- ``cartpole`` (CartPole-v1): the mirror x → −x. Every state coordinate changes sign (position,
  velocity, angle, angular velocity); push-left ↔ push-right.
- ``acrobot`` (Acrobot-v1): the mirror θ → −θ of both joints. The observation is
  (cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2), so the sines and velocities change sign; torque −1 ↔ +1.
- ``gridworld``: a 7×7 grid, goal at the centre, walls in a pattern that quarter turns leave fixed.
  The observation is the agent's (x, y) relative to the centre, divided by 3. C4 rotates it, and the
  moves up → left → down → right → up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from equinlp.apps.rl.config import ENV_LENGTHS
from equinlp.errors import check_name
from equinlp.symmetry.actions import LinearAction, TokenPermutation
from equinlp.symmetry.groups import Group, cyclic


@dataclass(frozen=True)
class Symmetry:
    """A group acting on an environment: ``state_matrices[g]`` on observations, ``action_table[g]`` on actions."""

    description: str
    group: Group
    state_matrices: np.ndarray  # [G, D, D]
    action_table: np.ndarray  # [G, A]

    def state_action(self) -> LinearAction:
        return LinearAction(self.group, torch.as_tensor(self.state_matrices))

    def action_permutation(self) -> TokenPermutation:
        """The permutation of the actions; ``.logits`` acts on Q-value vectors ``[B, A]``."""
        return TokenPermutation(self.group, torch.as_tensor(self.action_table))


# --- the grid world ---------------------------------------------------------------------------------

GRID_RADIUS = 3  # a 7×7 grid, cells -3..3 on each axis, goal at (0, 0)
MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))  # up, right, down, left
WALLS = frozenset({(2, 1), (-1, 2), (-2, -1), (1, -2), (2, -1), (1, 2), (-2, 1), (-1, -2)})  # two C4 orbits


class GridWorld(gym.Env):
    """Reach the centre of a 7×7 grid: reward +1 there (the episode ends), −0.01 per other step, 50 steps.

    A move into a wall or off the grid leaves the agent where it is. The start is uniform over the free
    cells other than the goal, a distribution that rotations leave unchanged.
    """

    metadata = {"render_modes": []}

    def __init__(self, max_steps: int = 50) -> None:
        self.max_steps = max_steps
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        r = range(-GRID_RADIUS, GRID_RADIUS + 1)
        self.starts = [(x, y) for x in r for y in r if (x, y) not in WALLS and (x, y) != (0, 0)]
        self.position = (GRID_RADIUS, GRID_RADIUS)
        self.steps = 0

    def _obs(self) -> np.ndarray:
        return np.asarray(self.position, dtype=np.float32) / GRID_RADIUS

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = self.starts[int(self.np_random.integers(len(self.starts)))]
        self.steps = 0
        return self._obs(), {}

    def step(self, action: int):
        dx, dy = MOVES[int(action)]
        x, y = self.position[0] + dx, self.position[1] + dy
        if max(abs(x), abs(y)) <= GRID_RADIUS and (x, y) not in WALLS:
            self.position = (x, y)
        self.steps += 1
        reached = self.position == (0, 0)
        return self._obs(), 1.0 if reached else -0.01, reached, self.steps >= self.max_steps, {}


# --- the registry ---------------------------------------------------------------------------------


def _mirror(state_signs: list[float], action_table: list[int], description: str) -> Symmetry:
    matrices = np.stack([np.eye(len(state_signs)), np.diag(state_signs)])
    return Symmetry(description, cyclic(2), matrices, np.array([list(range(len(action_table))), action_table]))


def _quarter_turns() -> Symmetry:
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    matrices = np.stack([np.linalg.matrix_power(rotation, k) for k in range(4)]).round()
    table = [[MOVES.index(tuple(int(v) for v in matrices[k] @ np.array(m))) for m in MOVES] for k in range(4)]
    return Symmetry("C4: quarter turns of the grid; up → left → down → right", cyclic(4), matrices, np.array(table))


def _set_cartpole(env: gym.Env, obs: np.ndarray) -> None:
    env.unwrapped.state = np.asarray(obs, dtype=np.float64)


def _set_acrobot(env: gym.Env, obs: np.ndarray) -> None:
    c1, s1, c2, s2, v1, v2 = np.asarray(obs, dtype=np.float64)
    env.unwrapped.state = np.array([np.arctan2(s1, c1), np.arctan2(s2, c2), v1, v2])


def _set_grid(env: gym.Env, obs: np.ndarray) -> None:
    env.unwrapped.position = tuple(int(v) for v in np.rint(np.asarray(obs) * GRID_RADIUS))


@dataclass(frozen=True)
class EnvSpec:
    """How to make an environment, its symmetry, and default training lengths for the protocol."""

    make: Callable[[], gym.Env]
    symmetry: Symmetry
    set_state: Callable[[gym.Env, np.ndarray], None]  # put the environment in the state an observation shows
    pretrain_steps: int
    steps: int


ENVS: dict[str, EnvSpec] = {
    "cartpole": EnvSpec(
        lambda: gym.make("CartPole-v1"),
        _mirror([-1.0, -1.0, -1.0, -1.0], [1, 0], "C2: the mirror x → −x; push left ↔ push right"),
        _set_cartpole,
        *ENV_LENGTHS["cartpole"],
    ),
    "acrobot": EnvSpec(
        lambda: gym.make("Acrobot-v1"),
        _mirror([1.0, -1.0, 1.0, -1.0, -1.0, -1.0], [2, 1, 0], "C2: the mirror θ → −θ; torque −1 ↔ +1"),
        _set_acrobot,
        *ENV_LENGTHS["acrobot"],
    ),
    "gridworld": EnvSpec(
        GridWorld,
        _quarter_turns(),
        _set_grid,
        *ENV_LENGTHS["gridworld"],
    ),
}


def env_spec(name: str) -> EnvSpec:
    return ENVS[check_name("environment", name, ENVS)]
