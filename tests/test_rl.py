"""Equivariant deep Q-learning: declared symmetries commute with the dynamics, wrapped Q-networks are
exactly equivariant, a tiny DQN learns, and runs on the harness write, skip, refuse changed settings,
resume bit for bit from checkpoints that carry no code, and report."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from equinlp.apps.rl import dqn as dqn_module
from equinlp.apps.rl.dqn import DQNConfig, evaluate, train
from equinlp.apps.rl.envs import ENVS, GridWorld, Symmetry, env_spec
from equinlp.apps.rl.qnet import EquivariantQ, QNetwork, build_q
from equinlp.apps.rl.report import table
from equinlp.apps.rl.task import TASK, RLConfig
from equinlp.cli import build_parser, main
from equinlp.errors import EquinlpError
from equinlp.harness import load_runs, run_task
from equinlp.harness.cli import config_from_args
from equinlp.harness.options import settings_fields
from equinlp.harness.state import load_state
from equinlp.symmetry.actions import LinearAction
from equinlp.symmetry.groups import cyclic, trivial
from equinlp.testing import TOLERANCE, check_equivariance, equivariance_error

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


def test_wrapped_q_values_permute_exactly_with_the_actions():
    """A smoke test: the matrix (test_equivariance_matrix.py) has every method, environment and dtype."""
    symmetry = env_spec("gridworld").symmetry
    torch.manual_seed(0)
    net = QNetwork(symmetry.state_matrices.shape[1], symmetry.action_table.shape[1], hidden=32)
    q = build_q(net, symmetry, "equizero").eval()
    states = torch.randn(16, symmetry.state_matrices.shape[1])
    errors = check_equivariance(q, states)
    assert max(errors.values()) <= TOLERANCE[torch.float32], errors
    plain = equivariance_error(net, q.in_action, q.out_action, states)
    assert max(plain.values()) > 1e-3  # the unwrapped network is not equivariant: the check can fail


@pytest.mark.parametrize("name", sorted(ENVS))
def test_base_is_the_trivial_group_whose_one_copy_is_the_bare_network(name):
    """``base`` builds the bare network, which is what the formula gives over the trivial group, bit for bit."""
    symmetry = env_spec(name).symmetry
    alone = Symmetry("identity", trivial(), symmetry.state_matrices[:1], symmetry.action_table[:1])  # element 0
    torch.manual_seed(0)
    net = QNetwork(symmetry.state_matrices.shape[1], symmetry.action_table.shape[1], hidden=32)
    assert build_q(net, symmetry, "base") is net
    states = torch.randn(16, symmetry.state_matrices.shape[1])
    with torch.no_grad():
        assert torch.equal(EquivariantQ(net, alone, "equitune")(states), net(states))


def test_bad_symmetries_and_names_are_refused():
    with pytest.raises(ValueError, match="homomorphism"):
        LinearAction(cyclic(2), torch.stack([torch.eye(2), 2 * torch.eye(2)]))
    with pytest.raises(ValueError, match="identity"):
        LinearAction(cyclic(2), torch.stack([-torch.eye(2), torch.eye(2)]))
    with pytest.raises(EquinlpError, match="unknown environment 'pong'"):
        env_spec("pong")
    with pytest.raises(EquinlpError, match="unknown equivariant method 'fair'"):
        EquivariantQ(QNetwork(4, 2), env_spec("cartpole").symmetry, "fair")
    with pytest.raises(EquinlpError, match=r"unknown methods 'equitun'; did you mean 'equitune'\?"):
        RLConfig(methods=("base", "equitun"))
    with pytest.raises(EquinlpError, match=r"unknown envs 'gridwrld'; did you mean 'gridworld'\?"):
        RLConfig(envs=("gridwrld",))


def random_policy_return(episodes: int = 5) -> float:
    class Random(torch.nn.Module):
        def forward(self, states):
            return torch.rand(states.shape[0], 4)

    torch.manual_seed(0)
    return evaluate(Random(), env_spec("gridworld"), episodes)


@pytest.mark.slow
def test_a_tiny_dqn_run_beats_a_random_policy():
    torch.manual_seed(0)
    q = build_q(QNetwork(2, 4, hidden=64), env_spec("gridworld").symmetry, "equitune")
    config = DQNConfig(learning_starts=200, eps_fraction=0.5, eval_every=2_500, lr=1e-3)
    curve = train(q, env_spec("gridworld"), config, steps=2_500, seed=0)
    assert curve[-1]["return"] > random_policy_return() + 0.5, (curve, random_policy_return())


def test_the_grid_world_starts_anywhere_but_the_goal_and_walls():
    env = GridWorld()
    starts = {tuple(np.rint(env.reset(seed=s)[0] * 3).astype(int)) for s in range(300)}
    assert (0, 0) not in starts and len(starts) == len(env.starts) == 7 * 7 - 8 - 1


# --- exact resume, checkpoints without pickle ------------------------------------------------------------


def interrupt_update_at(monkeypatch, call: int) -> None:
    """Raise KeyboardInterrupt from the ``call``-th DQN update (mid-step: the env has stepped, the buffer grown)."""
    update, calls = dqn_module._update, {"n": 0}

    def interrupting(*args):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return update(*args)

    monkeypatch.setattr(dqn_module, "_update", interrupting)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gridworld", "cartpole"])
def test_an_interrupted_training_resumes_bit_for_bit(tmp_path, monkeypatch, name):
    spec, config = env_spec(name), DQNConfig(learning_starts=50, eval_every=100, eval_episodes=2, checkpoint_every=100)

    def fresh():
        torch.manual_seed(0)
        return build_q(
            QNetwork(spec.symmetry.state_matrices.shape[1], spec.symmetry.action_table.shape[1], 16), spec.symmetry, "lambda"
        )

    whole = fresh()
    expected = train(whole, spec, config, steps=400, seed=3)
    interrupt_update_at(monkeypatch, 300)  # updates start at step 50: the 300th is step 349, mid-episode
    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(KeyboardInterrupt):
        train(fresh(), spec, config, steps=400, seed=3, checkpoint=checkpoint)
    saved = load_state(checkpoint)  # safetensors + JSON: the last step boundary before the interrupt
    assert saved["step"] == 300 and [p["step"] for p in saved["curve"]] == [0, 100, 200, 300]
    monkeypatch.undo()
    resumed = fresh()
    assert train(resumed, spec, config, steps=400, seed=3, checkpoint=checkpoint) == expected
    for key, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def tiny_run(out, *extra: str) -> list[str]:
    args = ["rl", "run", "--env", "gridworld", "--seeds", "0", "--method", "base", "equizero", "--pretrain-steps", "200"]
    return [*args, "--steps", "200", "--eval-every", "100", "--eval-episodes", "1", "--out", str(out), *extra]


def envelopes(out) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}


@pytest.mark.slow
def test_an_interrupted_cli_run_resumes_to_the_same_results(tmp_path, monkeypatch, caplog):
    quick = ["--learning-starts", "50", "--checkpoint-every", "50"]
    assert main(tiny_run(tmp_path / "whole", *quick)) == 0
    interrupt_update_at(monkeypatch, 100)  # pre-training's 100th update: step 149, mid-episode
    assert main(tiny_run(tmp_path / "cut", *quick)) == 130
    assert "rerun the same command to continue" in caplog.text
    assert not envelopes(tmp_path / "cut")
    monkeypatch.undo()
    assert main(tiny_run(tmp_path / "cut", *quick)) == 0
    whole, cut = envelopes(tmp_path / "whole"), envelopes(tmp_path / "cut")
    assert whole.keys() == cut.keys() and len(whole) == 3
    for name in whole:
        assert cut[name]["metrics"] == whole[name]["metrics"], name
    weights = [
        load_state(out / "work" / "rl_pretrain_env=gridworld_seed=0" / "weights")
        for out in (tmp_path / "whole", tmp_path / "cut")
    ]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])  # the pre-trained network, bit for bit
    assert not list((tmp_path / "cut").rglob("checkpoint"))  # removed with each finished run


class Planted:
    """A pickle that, when loaded, creates the file ``marker`` (any code could run instead)."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_planted_as_a_checkpoint_is_never_executed(tmp_path, capsys):
    out, marker = tmp_path / "rl", tmp_path / "pwned"
    torch.save(Planted(marker), tmp_path / "planted.pt")  # the crafted checkpoint of issue 15
    payload = (tmp_path / "planted.pt").read_bytes()
    (out / "checkpoints").mkdir(parents=True)  # where the previous version looked, and where this one looks
    (out / "checkpoints" / "gridworld_pretrain_seed0.pt").write_bytes(payload)
    checkpoint = out / "work" / "rl_pretrain_env=gridworld_seed=0" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "tensors.safetensors").write_bytes(payload)
    (checkpoint / "state.json").write_text("{}")
    assert main(tiny_run(out)) == 2
    assert not marker.exists()
    error = capsys.readouterr().err.strip()
    assert error.startswith("equinlp: error: checkpoint") and str(checkpoint) in error and "\n" not in error


# --- settings: flags, ranges, changed settings ------------------------------------------------------------


def parse(*argv: str) -> RLConfig:
    args = build_parser(["rl", "run", *argv]).parse_args(["rl", "run", *argv])
    return config_from_args(RLConfig, args)


def test_every_field_has_a_flag_and_quick_does_not_override_explicit_flags():
    names = [f.name for f in settings_fields(RLConfig)]
    assert len(names) == len(set(names))  # nested DQN fields flattened without a clash
    config = parse("--gamma", "0.9", "--buffer-size", "100", "--target-every", "7", "--quick", "--steps", "50")
    assert (config.dqn.gamma, config.dqn.buffer_size, config.dqn.target_every) == (0.9, 100, 7)
    assert (config.steps, config.pretrain_steps) == (50, 2_000)  # --quick fills only what was not given
    assert parse("--env", "gridworld", "acrobot").envs == ("gridworld", "acrobot")
    stages = TASK.plan(parse("--env", "gridworld", "gridworld", "--seeds", "0,0", "--method", "base"))
    assert [len(stage.cells) for stage in stages] == [1, 1]  # a name given twice is one cell
    assert parse().threads == 1 and parse("--threads", "2").threads == 2


@pytest.mark.parametrize(
    "flags, culprit",
    [
        (["--steps", "0"], "--steps"),
        (["--pretrain-steps", "-5"], "--pretrain-steps"),
        (["--eval-episodes", "0"], "--eval-episodes"),
        (["--eps-end", "2"], "--eps-end"),
        (["--gamma", "1.5"], "--gamma"),
        (["--buffer-size", "0"], "--buffer-size"),
        (["--eval-every", "0"], "--eval-every"),
        (["--seeds", "-1"], "--seeds"),
        (["--env", "gridwrld"], "did you mean 'gridworld'"),
    ],
)
def test_out_of_range_numbers_are_one_line_before_any_run(tmp_path, capsys, flags, culprit):
    out = tmp_path / "rl"
    assert main(tiny_run(out, *flags)) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("equinlp: error:") and culprit in error and "\n" not in error
    assert not out.exists()


def test_a_rerun_with_a_setting_the_old_key_left_out_is_refused_or_recomputed(tmp_path, capsys):
    out = tmp_path / "rl"
    assert main(tiny_run(out)) == 0
    before = envelopes(out)
    for flags, difference, cell in [
        (["--proxy", "entropy"], "proxy='max_q' there, 'entropy' now", "method=equizero"),  # only equizero uses it
        (["--steps", "300"], "steps=200 there, 300 now", "method=base"),
    ]:
        capsys.readouterr()
        assert main(tiny_run(out, *flags)) == 2
        error = capsys.readouterr().err
        assert difference in error and f"rl_env=gridworld_{cell}_seed=0" in error and "--overwrite" in error
    assert envelopes(out) == before  # nothing was touched
    assert main([*tiny_run(out, "--steps", "300"), "--overwrite"]) == 0
    after = envelopes(out)
    assert after["rl_pretrain_env=gridworld_seed=0.json"] == before["rl_pretrain_env=gridworld_seed=0.json"]  # kept
    assert [p["step"] for p in after["rl_env=gridworld_method=base_seed=0.json"]["metrics"]["curve"]] == [0, 100, 200, 300]


# --- the protocol end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_protocol_writes_one_envelope_per_run_skips_finished_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "rl"
    dqn = DQNConfig(learning_starts=100, eval_every=150, eval_episodes=2)
    config = RLConfig(envs=("gridworld",), seeds=(0, 1), pretrain_steps=300, steps=300, hidden=16, out=str(out), dqn=dqn)
    results = run_task(TASK, config)
    assert len(results) == 8 and len(list((out / "runs").glob("rl_env=*.json"))) == 8
    record = next(r for r in results if r["cell"] == {"env": "gridworld", "method": "equizero", "seed": 1})
    assert {"zero_shot", "final", "mean_over_curve", "curve", "symmetry", "steps"} <= set(record["metrics"])
    assert record["config"]["proxy"] == "max_q" and record["config"]["steps"] == 300
    assert [p["step"] for p in record["metrics"]["curve"]] == [0, 150, 300]
    # every method starts from the same pre-trained network: the base run's zero-shot return is the pre-trained one
    pretrained = json.loads((out / "runs" / "rl_pretrain_env=gridworld_seed=1.json").read_text())
    base_seed1 = next(r for r in results if r["cell"] == {"env": "gridworld", "method": "base", "seed": 1})
    assert base_seed1["metrics"]["zero_shot"] == pretrained["metrics"]["final"]
    assert not list(out.rglob("checkpoint"))
    assert run_task(TASK, config) == results  # finished: nothing recomputed
    assert table(load_runs(out, "rl")).shape == (4, 4)
    assert main(["rl", "report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "t-interval" in printed and "mean_over_curve" in printed and (out / "rl.png").stat().st_size > 10_000


def test_the_committed_results_load_through_the_harness():
    runs = load_runs(Path(__file__).parents[1] / "reports" / "rl", "rl")
    assert len(runs) == 40 and set(runs.groupby(["env", "method"]).size()) == {5}
    assert all(isinstance(path, str) for path in runs["config"].map(lambda c: c["proxy"]))
