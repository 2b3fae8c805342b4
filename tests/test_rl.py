"""Equivariant deep Q-learning: declared symmetries commute with the dynamics, wrapped Q-networks are
exactly equivariant, a tiny DQN learns, and runs write, skip, resume and report."""

import json

import numpy as np
import pytest
import torch

from equinlp.actions import LinearAction
from equinlp.cli import main
from equinlp.groups import cyclic
from equinlp.rl import dqn as dqn_module
from equinlp.rl.dqn import DQNConfig, evaluate, train
from equinlp.rl.envs import ENVS, GridWorld, env_spec
from equinlp.rl.qnet import EquivariantQ, QNetwork, build_q
from equinlp.rl.report import load_runs, table
from equinlp.rl.run import RLConfig, run
from equinlp.testing import TOLERANCE, equivariance_error

pytestmark = pytest.mark.usefixtures("one_thread")


def visited_states(name: str, count: int = 30) -> list[np.ndarray]:
    """Observations met along random-action rollouts (realistic states, not just starts)."""
    spec, rng, states = env_spec(name), np.random.default_rng(0), []
    env = spec.make()
    obs, _ = env.reset(seed=0)
    while len(states) < count:
        states.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    return states


def step_from(name: str, obs: np.ndarray, action: int):
    spec = env_spec(name)
    env = spec.make()
    env.reset(seed=0)
    spec.set_state(env, obs)
    next_obs, reward, terminated, _, _ = env.step(action)
    return next_obs, reward, terminated


@pytest.mark.parametrize("name", list(ENVS))
def test_the_dynamics_commute_with_the_declared_symmetry(name):
    symmetry = env_spec(name).symmetry
    matrices, table_ = symmetry.state_matrices, symmetry.action_table
    for obs in visited_states(name):
        for a in range(table_.shape[1]):
            next_obs, reward, terminated = step_from(name, obs, a)
            for g in range(symmetry.group.order):
                moved = step_from(name, (matrices[g] @ obs).astype(np.float32), int(table_[g, a]))
                np.testing.assert_allclose(moved[0], matrices[g] @ next_obs, atol=1e-5)
                assert moved[1:] == (reward, terminated)


def test_a_wrong_symmetry_is_caught_by_the_same_check():
    # CartPole's mirror without swapping the actions is not a symmetry: the check above would fail
    obs = visited_states("cartpole", 5)[-1]
    mirror = np.diag([-1.0, -1.0, -1.0, -1.0])
    kept = step_from("cartpole", (mirror @ obs).astype(np.float32), 0)[0]
    assert not np.allclose(kept, mirror @ step_from("cartpole", obs, 0)[0], atol=1e-5)


@pytest.mark.parametrize("name", list(ENVS))
@pytest.mark.parametrize("method", ["equitune", "equizero", "lambda"])
def test_wrapped_q_values_permute_exactly_with_the_actions(name, method, dtype):
    symmetry = env_spec(name).symmetry
    torch.manual_seed(0)
    net = QNetwork(symmetry.state_matrices.shape[1], symmetry.action_table.shape[1], hidden=32)
    q = build_q(net, symmetry, method)
    if method == "lambda":  # far from the uniform start, so the weights matter
        torch.nn.init.normal_(q.aggregator.weight_net.net[-1].weight, std=3.0)
    q.to(dtype).eval()
    states = torch.randn(16, symmetry.state_matrices.shape[1], dtype=dtype)
    errors = equivariance_error(q, q.state_action, q.q_action, states)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
    plain = equivariance_error(net, q.state_action, q.q_action, states)
    assert max(plain.values()) > 1e-3  # the unwrapped network is not equivariant: the check can fail


def test_bad_symmetries_and_names_are_refused():
    with pytest.raises(ValueError, match="homomorphism"):
        LinearAction(cyclic(2), torch.stack([torch.eye(2), 2 * torch.eye(2)]))
    with pytest.raises(ValueError, match="identity"):
        LinearAction(cyclic(2), torch.stack([-torch.eye(2), torch.eye(2)]))
    with pytest.raises(ValueError, match="unknown environment"):
        env_spec("pong")
    with pytest.raises(ValueError, match="unknown equivariant method"):
        EquivariantQ(QNetwork(4, 2), env_spec("cartpole").symmetry, "fair")
    with pytest.raises(ValueError, match="unknown methods"):
        RLConfig("cartpole", methods=("base", "fair"))


def random_policy_return(episodes: int = 5) -> float:
    class Random(torch.nn.Module):
        def forward(self, states):
            return torch.rand(states.shape[0], 4)

    torch.manual_seed(0)
    return evaluate(Random(), env_spec("gridworld"), episodes)


def test_a_tiny_dqn_run_beats_a_random_policy():
    torch.manual_seed(0)
    q = build_q(QNetwork(2, 4, hidden=64), env_spec("gridworld").symmetry, "equitune")
    config = DQNConfig(steps=2_500, learning_starts=200, eps_fraction=0.5, eval_every=2_500, lr=1e-3)
    curve = train(q, env_spec("gridworld"), config, seed=0)
    assert curve[-1]["return"] > random_policy_return() + 0.5, (curve, random_policy_return())


def test_an_interrupted_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    spec, config = env_spec("gridworld"), DQNConfig(steps=600, learning_starts=100, eval_every=200, checkpoint_every=100)
    checkpoint = tmp_path / "run.pt"
    calls = {"n": 0}
    update = dqn_module._update

    def interrupt_at_350(*args):
        calls["n"] += 1
        if calls["n"] == 250:  # updates start at step 100: the 250th is step 349
            raise KeyboardInterrupt
        return update(*args)

    monkeypatch.setattr(dqn_module, "_update", interrupt_at_350)
    with pytest.raises(KeyboardInterrupt):
        train(QNetwork(2, 4, hidden=16), spec, config, seed=0, checkpoint=checkpoint)
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["step"] == 349 and [p["step"] for p in saved["curve"]] == [0, 200]
    monkeypatch.setattr(dqn_module, "_update", update)
    curve = train(QNetwork(2, 4, hidden=16), spec, config, seed=0, checkpoint=checkpoint)
    assert [p["step"] for p in curve] == [0, 200, 400, 600]


def test_the_protocol_writes_one_json_per_run_skips_finished_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "rl"
    dqn = DQNConfig(learning_starts=100, eval_every=200, eval_episodes=2)
    config = RLConfig("gridworld", seeds=(0, 1), pretrain_steps=300, steps=400, hidden=16, out=str(out), dqn=dqn)
    results = run(config, log=lambda *_: None)
    assert len(results) == 8 and len(list((out / "runs").glob("*.json"))) == 8
    record = json.loads((out / "runs" / "gridworld_equizero_seed1.json").read_text())
    assert {"env", "method", "seed", "zero_shot", "final", "curve", "proxy", "symmetry"} <= set(record)
    assert [p["step"] for p in record["curve"]] == [0, 200, 400]
    # every method starts from the same pre-trained network: the base run's zero-shot return is the pre-trained one
    pretrained = json.loads((out / "pretrained" / "gridworld_seed1.json").read_text())
    base_seed1 = next(r for r in results if r["method"] == "base" and r["seed"] == 1)
    assert base_seed1["zero_shot"] == pretrained["curve"][-1]["return"]
    assert not list((out / "checkpoints").glob("*.pt"))
    again = run(config, log=lambda *_: None)
    assert [r["final"] for r in again] == [r["final"] for r in results]
    assert table(load_runs(out)).shape == (4, 6)
    assert main(["rl", "report", str(out)]) == 0
    assert "mean_over_curve" in capsys.readouterr().out and (out / "rl.png").stat().st_size > 10_000


def test_the_grid_world_starts_anywhere_but_the_goal_and_walls():
    env = GridWorld()
    starts = {tuple(np.rint(env.reset(seed=s)[0] * 3).astype(int)) for s in range(300)}
    assert (0, 0) not in starts and len(starts) == len(env.starts) == 7 * 7 - 8 - 1


def test_the_cli_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "rl"
    args = ["rl", "run", "--env", "gridworld", "--seeds", "0", "--method", "base", "equizero", "--pretrain-steps", "200"]
    args += ["--steps", "200", "--eval-every", "100", "--eval-episodes", "1", "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == ["gridworld_base_seed0.json", "gridworld_equizero_seed0.json"]
    assert "equizero" in capsys.readouterr().out and (out / "rl.png").exists()
