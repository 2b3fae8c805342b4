"""The harness: options and their checks, the CLI builder, the run store, the run loop (1 and 2 processes)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from equinlp.apps import TASKS
from equinlp.errors import EquinlpError, UnknownName
from equinlp.harness import SettingsChanged, Stage, load_runs, run_task, t_interval
from equinlp.harness.cli import add_config_arguments, config_from_args, load_task
from equinlp.harness.protocol import Checkpointer
from equinlp.harness.report import best_methods, interval_table
from equinlp.harness.state import load_state, save_state
from tests.toy_task import ToyConfig, ToyTask


def parse(*argv: str) -> ToyConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ToyConfig)
    return config_from_args(ToyConfig, parser.parse_args(list(argv)))


def calls(out: Path) -> list[dict]:
    path = out / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- options and the CLI builder -----------------------------------------------------------------------


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownName, match=r"unknown name 'alpah'; did you mean 'alpha'\? \(choose from alpha, beta\)"):
        ToyConfig(name="alpah")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, r"steps \(--steps\) must be at least 1, got 0"),
        ({"scale": 0.0}, r"scale \(--scale\) must be greater than 0"),
        ({"scale": float("nan")}, "must be a finite number"),
        ({"seeds": ()}, r"seeds \(--seeds\) needs at least one value"),
        ({"threads": 0}, "threads"),
    ],
)
def test_ranges_are_checked_in_the_config(kwargs, message):
    with pytest.raises(EquinlpError, match=message):
        ToyConfig(**kwargs)


def test_every_field_has_a_flag_and_tuples_take_commas():
    config = parse("--seeds", "1,2", "5", "--scale", "3", "--noisy", "--name", "beta", "--out", "x")
    assert config == ToyConfig(seeds=(1, 2, 5), scale=3.0, noisy=True, name="beta", out="x")
    assert parse("--no-noisy").noisy is False


def test_explicit_flags_beat_quick_and_config_files(tmp_path):
    assert (parse("--quick").steps, parse("--quick").scale) == (3, 2.0)
    assert parse("--quick", "--steps", "7").steps == 7
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"steps": 5, "seeds": [9]}))
    assert (parse("--config", str(settings)).steps, parse("--config", str(settings)).seeds) == (5, (9,))
    assert parse("--config", str(settings), "--steps", "6").steps == 6
    assert parse("--quick", "--config", str(settings)).steps == 5  # the file was asked for explicitly


def test_a_run_envelope_is_a_config_file(tmp_path):
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), steps=4, seeds=(0,)))
    envelope = tmp_path / "runs" / "toy_seed=0.json"
    assert parse("--config", str(envelope)).steps == 4


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"stepz": 3}', r"unknown setting 'stepz'; did you mean 'steps'\?.* in --config"),
        ('{"steps": "3"}', "steps must be int, got '3'"),
        ('{"steps": [3]}', "steps takes one value"),
        ("[1, 2]", "must hold a JSON object"),
        ("{", "is not valid JSON"),
    ],
)
def test_bad_config_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(EquinlpError, match=message):
        parse("--config", str(path))


# --- the store and the run loop ------------------------------------------------------------------------


def test_finished_runs_are_skipped_and_new_cells_added(tmp_path):
    task = ToyTask()
    first = run_task(task, ToyConfig(out=str(tmp_path), seeds=(0, 1)))
    assert [e["metrics"]["value"] for e in first] == [10.0, 11.0]
    again = run_task(task, ToyConfig(out=str(tmp_path), seeds=(0, 1)))
    assert again == first and task.setups == 1  # nothing to do: no model loaded
    run_task(task, ToyConfig(out=str(tmp_path), seeds=(0, 1, 2)))
    assert [c["seed"] for c in calls(tmp_path) if c["stage"] == "run"] == [0, 1, 2]


def test_envelopes_record_provenance_and_the_settings(tmp_path):
    (envelope,) = run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(3,), scale=2.0))
    assert envelope["task"] == "toy" and envelope["cell"] == {"seed": 3}
    assert {"version", "commit", "date", "seconds"} <= set(envelope)
    assert envelope["config"] == {"scale": 2.0, "steps": 10, "name": "alpha", "noisy": False, "table": None}  # not out, seeds
    runs = load_runs(tmp_path, "toy")
    assert list(runs["value"]) == [16.0] and runs["config"][0]["scale"] == 2.0


def test_a_changed_setting_is_refused_naming_it_or_recomputed(tmp_path):
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,)))
    with pytest.raises(SettingsChanged, match=r"scale=1.0 there, 2.0 now.*--overwrite"):
        run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,), scale=2.0))
    (envelope,) = run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,), scale=2.0), overwrite=True)
    assert envelope["config"]["scale"] == 2.0
    # a stage keyed by fewer settings is kept when only the others change
    assert [c["stage"] for c in calls(tmp_path)] == ["prepare", "run", "run"]


def test_a_started_cell_with_other_settings_is_refused(tmp_path):
    """Work folders (samples, checkpoints) carry their settings too: a half-done run is never continued with others."""
    task, config = ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,))
    from equinlp.harness.options import settings
    from equinlp.harness.store import RunStore

    RunStore(tmp_path, "toy").begin("run", {"seed": 0}, {**settings(config), "steps": 99})
    with pytest.raises(SettingsChanged, match="steps=99 there, 10 now"):
        run_task(task, config)
    assert task.setups == 0  # refused before loading anything


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(EquinlpError, match="is a file"):
        run_task(ToyTask(), ToyConfig(out=str(tmp_path / "file")))


def test_damaged_envelopes_are_named(tmp_path):
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,)))
    (tmp_path / "runs" / "toy_seed=0.json").write_text('{"task": "to')
    with pytest.raises(EquinlpError, match=r"toy_seed=0.json is damaged.*delete it"):
        run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,)))


@pytest.mark.distributed
def test_two_processes_split_the_cells(tmp_path):
    """torchrun with 2 CPU processes: every cell computed once, the same envelopes as one process."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "from equinlp.harness import run_task\n"
        "from tests.toy_task import ToyConfig, ToyTask\n"
        "run_task(ToyTask(), ToyConfig(out=sys.argv[1]))\n"
    )
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path / "two")]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    run_task(ToyTask(), ToyConfig(out=str(tmp_path / "one")))
    two = calls(tmp_path / "two")
    done = sorted((c["stage"], c.get("seed", -1)) for c in two)
    assert done == [("prepare", -1), ("run", 0), ("run", 1), ("run", 2), ("run", 3)]
    assert {c["rank"] for c in two if c["stage"] == "run"} == {0, 1}
    columns = ["seed", "value", "curve"]
    assert load_runs(tmp_path / "two")[columns].equals(load_runs(tmp_path / "one")[columns])


# --- checkpoints and intervals -------------------------------------------------------------------------


def test_state_round_trips_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    curve = [{"step": 1, "x": None}]
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "curve": curve, "pair": (1, "a")}
    save_state(tmp_path / "ckpt", state)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["state.json", "tensors.safetensors"]
    back = load_state(tmp_path / "ckpt")
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(back["optimizer"])  # int keys of the optimizer state survive
    assert torch.equal(back["model"]["weight"], model.weight) and back["curve"] == state["curve"] and back["pair"] == (1, "a")
    (tmp_path / "ckpt" / "state.json").write_text("{")
    with pytest.raises(EquinlpError, match="checkpoint .*ckpt is damaged"):
        load_state(tmp_path / "ckpt")


def test_the_checkpointer_resumes_parts_rng_and_values(tmp_path):
    """Modules, a dict of optimisers and torch's RNG come back as saved; the other values are returned."""
    model = torch.nn.Linear(3, 2)
    optimizers = {"lambda": torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)}
    model(torch.randn(4, 3)).sum().backward()
    optimizers["lambda"].step()
    assert Checkpointer(tmp_path / "ckpt", model=model).resume() is None  # nothing saved yet
    Checkpointer(tmp_path / "ckpt", model=model, optimizers=optimizers).save(curve=[{"step": 1}])
    expected = torch.rand(3)
    fresh, fresh_optimizers = torch.nn.Linear(3, 2), {"lambda": torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)}
    values = Checkpointer(tmp_path / "ckpt", model=fresh, optimizers=fresh_optimizers).resume()
    assert values == {"curve": [{"step": 1}]} and torch.equal(torch.rand(3), expected)
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_optimizers["lambda"].state_dict()["state"][0]["momentum_buffer"] is not None
    Checkpointer(None, model=model).save(curve=[])  # no folder: no checkpoint


def test_the_generic_table_orders_methods_by_the_registry():
    runs = pd.DataFrame(
        {"env": ["a"] * 4, "method": ["lambda", "base", "equizero", "base"], "seed": [0, 0, 0, 1], "score": [1.0, 2.0, 3.0, 4.0]}
    )
    table = interval_table(runs, ["env", "method"], {"score": "score"}, digits=1)
    assert list(table.index.get_level_values("method")) == ["base", "equizero", "lambda"]
    assert table.loc[("a", "base"), "seeds"] == 2 and table.loc[("a", "lambda"), "score"] == "1.0"


def test_every_registered_task_declares_its_metrics_and_committed_runs_record_them():
    """The metric schema: each task names its metrics (higher is better?), and the committed envelopes use those names."""
    committed = {}
    for path in sorted((Path(__file__).parents[1] / "reports").glob("*/runs/*.json")):
        envelope = json.loads(path.read_text())
        if envelope["stage"] == "run":
            committed.setdefault(envelope["task"], set()).update(envelope["metrics"])
    for name, registered in TASKS.items():
        task = load_task(registered.source)
        assert task.name == name and all(isinstance(higher, bool) for higher in task.metrics.values())
        assert set(task.metrics) <= committed.get(name, set(task.metrics)), name


def test_t_interval():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low == pytest.approx(2 - 4.302652729911275 / 3**0.5) and high == pytest.approx(2 + 2.484138)
    assert t_interval([5.0])[0] == 5.0


def test_a_folder_in_use_is_refused_and_a_dead_runs_lock_taken_over(tmp_path, caplog):
    """A live run holds the lock (an flock, with its name in the file); once it is gone, the lock is free."""
    holder = (
        "import fcntl, json, os, socket, sys, time\n"
        "f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.write(json.dumps({'host': socket.gethostname(), 'pid': os.getpid(), 'since': 'then'})); f.flush()\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    sleeper = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline().strip() == "held"
        with pytest.raises(EquinlpError, match=rf"in use by another run \(process {sleeper.pid} .*use another --out"):
            run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,)))
        assert calls(tmp_path) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,)))  # the holder is gone: taken over
    assert "no longer runs" in caplog.text and not (tmp_path / ".lock").exists()


def test_a_setting_added_later_keeps_older_runs_at_its_default(tmp_path):
    run_task(ToyTask(), ToyConfig(out=str(tmp_path), seeds=(0,)))
    envelope = tmp_path / "runs" / "toy_seed=0.json"
    data = json.loads(envelope.read_text())
    del data["config"]["noisy"]  # as written by a version without that setting
    envelope.write_text(json.dumps(data))
    task = ToyTask()
    run_task(task, ToyConfig(out=str(tmp_path), seeds=(0,)))
    assert task.setups == 0  # kept: the setting's default is what the older version did
    with pytest.raises(SettingsChanged, match="noisy=False there, True now"):
        run_task(task, ToyConfig(out=str(tmp_path), seeds=(0,), noisy=True))


def test_a_setting_used_by_some_cells_refuses_only_those(tmp_path):
    from dataclasses import dataclass

    from equinlp.harness import option

    @dataclass
    class Config(ToyConfig):
        methods: tuple[str, ...] = option(("base", "equizero"), "methods", plan=True)
        proxy: str = option("entropy", "equizero's proxy", used_by={"method": ("equizero",)})

    class Task(ToyTask):
        config_class = Config

        def plan(self, config):
            return [Stage("run", [{"method": m} for m in config.methods])]

        def run_cell(self, config, stage, cell, store):
            return {"proxy": config.proxy if cell["method"] == "equizero" else None}

    run_task(Task(), Config(out=str(tmp_path)))
    with pytest.raises(SettingsChanged, match="method=equizero made with other settings .proxy='entropy' there"):
        run_task(Task(), Config(out=str(tmp_path), proxy="max_prob"))
    run_task(Task(), Config(out=str(tmp_path), proxy="max_prob", methods=("base",)))  # base never used it: kept
    assert json.loads((tmp_path / "runs" / "toy_method=base.json").read_text())["config"].get("proxy") is None


def test_the_best_method_follows_each_metrics_direction_and_names_those_the_seeds_cannot_separate():
    rows = [
        {"env": "grid", "method": method, "seed": seed, "reward": reward, "loss": loss, "upright": 0.9}
        for method, rewards, losses in [
            ("base", (1.0, 1.2, 1.1), (5, 5, 5)),
            ("equitune", (3.0, 3.1, 2.9), (4, 4.2, 3.8)),
            ("lambda", (2.9, 3.2, 3.0), (9, 9, 9)),
        ]
        for seed, (reward, loss) in enumerate(zip(rewards, losses, strict=True))
    ]
    runs = pd.DataFrame(rows)
    runs.attrs["cells"] = [{"env": r["env"], "method": r["method"], "seed": r["seed"]} for r in rows]
    table = best_methods(runs, {"reward": True, "loss": False, "upright": True, "absent": True})
    assert list(table.columns) == ["reward ↑", "loss ↓"] and list(table.index) == ["grid"]  # upright: no method changes it
    assert table.loc["grid", "reward ↑"] == "lambda ≈ equitune"  # means 3.03 and 3.0: the intervals overlap
    assert table.loc["grid", "loss ↓"] == "equitune"  # the lowest, and base's 5 lies outside its interval
    one_experiment = runs.drop(columns="env")  # CLIP's runs: no coordinate but the method
    one_experiment.attrs["cells"] = [{k: v for k, v in c.items() if k != "env"} for c in runs.attrs["cells"]]
    assert best_methods(one_experiment, {"reward": True}).index.tolist() == ["all runs"]
    one_seed = runs[runs["seed"] == 0].copy()
    one_seed.attrs["cells"] = [c for c in runs.attrs["cells"] if c["seed"] == 0]
    assert best_methods(one_seed, {"reward": True}).loc["grid", "reward ↑"] == "equitune (1 seed)"
    alone = runs[runs["method"] == "base"].copy()
    alone.attrs["cells"] = [c for c in runs.attrs["cells"] if c["method"] == "base"]
    assert best_methods(alone, {"reward": True}) is None
    assert best_methods(runs, {"text": True}) is None
