"""Convert the RL results committed before the harness (``reports/rl``) into run envelopes, once.

The old layout had ``runs/{env}_{method}_seed{s}.json`` (a flat record with a ``dqn`` dict) and
``pretrained/{env}_seed{s}.json`` + ``.pt`` (a pickled state dict). This writes, in the same folder:

- ``runs/rl_env=E_method=M_seed=S.json``: the ``run`` envelope, with the settings those runs used
  (checked against the old record) and ``"migrated_from"``; ``commit`` and ``version`` are null, the
  date is the old file's last commit date;
- ``runs/rl_pretrain_env=E_seed=S.json`` and ``work/rl_pretrain_env=E_seed=S/weights`` (safetensors),
  so ``equinlp rl run --env cartpole gridworld --out reports/rl`` finds every cell finished;

then deletes the old files (the ``.pt`` pickles are read with ``weights_only=True``: tensors only).

    python benchmarks/migrate_rl.py reports/rl
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from equinlp.apps.rl.dqn import DQNConfig
from equinlp.apps.rl.envs import env_spec
from equinlp.apps.rl.task import PRETRAIN_SETTINGS, WEIGHTS, RLConfig
from equinlp.files import write_text_atomic
from equinlp.harness import RunStore, settings
from equinlp.harness.state import save_state
from equinlp.harness.store import SCHEMA

NOT_SETTINGS = ("steps", "eps_start", "checkpoint_every")  # the old dqn record's per-run length and ε, and no result


def commit_date(path: Path) -> str | None:
    done = subprocess.run(["git", "log", "-1", "--format=%cI", "--", str(path)], capture_output=True, text=True)
    return done.stdout.strip() or None


def config_of(record: dict, out: Path) -> RLConfig:
    """The new config those runs used; refuses a record whose settings the new config cannot express."""
    spec = env_spec(record["env"])
    old = {k: v for k, v in record["dqn"].items() if k not in NOT_SETTINGS}
    dqn = DQNConfig(**old)
    assert record["dqn"]["eps_start"] == dqn.eps_end, record  # continued training ran at a constant ε = eps_end
    return RLConfig(
        envs=(record["env"],),
        methods=(record["method"],),
        seeds=(record["seed"],),
        pretrain_steps=None if record["pretrain_steps"] == spec.pretrain_steps else record["pretrain_steps"],
        steps=None if record["steps"] == spec.steps else record["steps"],
        proxy=record["proxy"] or "max_q",
        hidden=128,  # the old RLConfig's width; the old records do not carry it
        out=str(out),
        dqn=dqn,
    )


def envelope(stage: str, cell: dict, metrics: dict, config: dict, source: Path) -> dict:
    return {
        "schema": SCHEMA,
        "task": "rl",
        "stage": stage,
        "cell": cell,
        "metrics": metrics,
        "config": config,
        "seconds": None,
        "version": None,
        "commit": None,
        "date": commit_date(source),
        "migrated_from": str(source),
    }


def migrate(out: Path) -> int:
    store, count = RunStore(out, "rl"), 0
    old_runs = sorted(p for p in (out / "runs").glob("*_seed*.json") if not p.name.startswith("rl_"))
    for path in old_runs:
        record = json.loads(path.read_text())
        config = config_of(record, out)
        cell = {"env": record["env"], "method": record["method"], "seed": record["seed"]}
        keys = ("zero_shot", "final", "mean_over_curve", "steps", "pretrain_steps", "symmetry", "curve")
        metrics = {k: record[k] for k in keys}
        write_text_atomic(
            store.envelope_path("run", cell), json.dumps(envelope("run", cell, metrics, settings(config), path), indent=1) + "\n"
        )
        pre = {"env": record["env"], "seed": record["seed"]}
        pre_json = out / "pretrained" / f"{record['env']}_seed{record['seed']}.json"
        if pre_json.exists() and not store.envelope_path("pretrain", pre).exists():
            curve = json.loads(pre_json.read_text())["curve"]
            metrics = {"steps": record["pretrain_steps"], "final": curve[-1]["return"], "curve": curve}
            body = envelope("pretrain", pre, metrics, settings(config, PRETRAIN_SETTINGS), pre_json)
            weights = torch.load(pre_json.with_suffix(".pt"), weights_only=True)  # tensors only: no code runs
            save_state(store.work_dir("pretrain", pre) / WEIGHTS, weights)
            write_text_atomic(store.envelope_path("pretrain", pre), json.dumps(body, indent=1) + "\n")
        count += 1
    for path in old_runs:
        path.unlink()
    for path in sorted((out / "pretrained").glob("*")) if (out / "pretrained").exists() else []:
        path.unlink()
    if (out / "pretrained").exists():
        (out / "pretrained").rmdir()
    return count


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/rl")
    print(f"migrated {migrate(folder)} runs in {folder}")
