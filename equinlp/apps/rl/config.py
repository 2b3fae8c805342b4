"""``equinlp rl run``'s settings: :class:`RLConfig` (with :class:`DQNConfig`), the environments' training lengths,
the methods and equizero's proxies. Imports no torch or gymnasium, so ``equinlp rl run --help`` starts at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from equinlp.harness import RunConfig, option
from equinlp.harness.options import validate
from equinlp.methods import registry


class Lengths(NamedTuple):
    """An environment's default training lengths in the protocol (steps)."""

    pretrain_steps: int
    steps: int


# the environments (see :mod:`equinlp.apps.rl.envs`) and their default lengths
ENV_LENGTHS: dict[str, Lengths] = {
    "cartpole": Lengths(pretrain_steps=10_000, steps=10_000),
    "acrobot": Lengths(pretrain_steps=10_000, steps=20_000),
    "gridworld": Lengths(pretrain_steps=3_000, steps=10_000),
}
METHODS = registry.token_methods()
RL_PROXIES = {"max_q": "max_logit", "entropy": "entropy", "max_prob": "max_prob"}  # name -> proxy of methods.aggregate

_DEFAULT_STEPS = ", ".join(f"{name} {lengths.pretrain_steps}" for name, lengths in ENV_LENGTHS.items())
_DEFAULT_RUN_STEPS = ", ".join(f"{name} {lengths.steps}" for name, lengths in ENV_LENGTHS.items())


@dataclass
class DQNConfig:
    """The DQN's hyper-parameters (the training length is an argument of :func:`train`)."""

    lr: float = option(5e-4, "Adam learning rate", above=0)
    batch_size: int = option(64, "transitions per update", at_least=1)
    buffer_size: int = option(50_000, "replay buffer size (transitions)", at_least=1)
    gamma: float = option(0.99, "discount factor γ", at_least=0, at_most=1)
    learning_starts: int = option(1_000, "steps of experience before the first update", at_least=0)
    target_every: int = option(500, "steps between target-network copies", at_least=1)
    eps_start: float = option(1.0, "exploration rate ε at the start of pre-training", at_least=0, at_most=1)
    eps_end: float = option(0.05, "final exploration rate ε (and the rate after pre-training)", at_least=0, at_most=1)
    eps_fraction: float = option(0.3, "fraction of pre-training over which ε decays linearly", above=0, at_most=1)
    eval_every: int = option(1_000, "steps between greedy evaluations", at_least=1)
    eval_episodes: int = option(5, "greedy episodes per evaluation (fixed seeds)", at_least=1)
    grad_clip: float = option(10.0, "gradient-norm clip", above=0)
    checkpoint_every: int = option(1_000, "steps between checkpoints (a resumed run is exact)", at_least=1, keyed=False)

    def __post_init__(self) -> None:
        validate(self)

    def epsilon(self, step: int, steps: int) -> float:
        """ε at ``step`` of ``steps``: linear from ``eps_start`` to ``eps_end`` over ``eps_fraction`` of them."""
        decay = max(1, int(self.eps_fraction * steps))
        return self.eps_end + (self.eps_start - self.eps_end) * max(0.0, 1 - step / decay)


@dataclass
class RLConfig(RunConfig):
    """Which environments, methods and seeds to run, and how (every field is a flag of ``equinlp rl run``)."""

    envs: tuple[str, ...] = option(("cartpole",), "environments", choices=tuple(ENV_LENGTHS), plan=True, flags=("--env",))
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
