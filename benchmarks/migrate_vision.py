"""Convert the CNN results committed before the harness into run envelopes, so ``equinlp vision report`` reads them.

    python benchmarks/migrate_vision.py reports/vision

Before the harness, ``equinlp vision run`` wrote ``OUT/runs/{dataset}_{arch}_{method}_seed{s}.json`` (the
curve, ``zero_shot``, ``final`` and the config) and ``OUT/pretrained/{dataset}_{arch}_e{E}_n{N}.json`` (the
upright accuracy). Each becomes the envelope the harness writes for that cell (``OUT/runs/vision_...json``),
its settings computed from the old config by :class:`~equinlp.apps.vision.task.VisionConfig`, so rerunning the
command that made them finds every run done. Each envelope names its source in ``migrated_from``; its
``version`` and ``commit`` are null (the old files did not record them), its ``date`` is the git commit
date of the old file. The old files are removed. Running it again changes nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from equinlp.apps.vision.task import PRETRAIN_SETTINGS, VisionConfig
from equinlp.files import write_text_atomic
from equinlp.harness import RunStore, settings
from equinlp.harness.store import SCHEMA


def committed(path: Path) -> str | None:
    """The date of the last commit that touched ``path`` (None outside git)."""
    done = subprocess.run(["git", "log", "-1", "--format=%cI", "--", str(path)], capture_output=True, text=True)
    return done.stdout.strip() or None


def envelope(stage: str, cell: dict, metrics: dict, config: dict, source: Path) -> dict:
    return {
        "schema": SCHEMA,
        "task": "vision",
        "stage": stage,
        "cell": cell,
        "metrics": metrics,
        "config": config,
        "seconds": None,
        "version": None,
        "commit": None,
        "date": committed(source),
        "migrated_from": str(source),
    }


def migrate(out: Path) -> list[Path]:
    """Write the envelopes of the old files under ``out`` and remove those files; returns the envelopes written."""
    store, written = RunStore(out, "vision"), []
    old_runs = [p for p in sorted((out / "runs").glob("*.json")) if "task" not in json.loads(p.read_text())]
    pretrained = {}
    for path in sorted((out / "pretrained").glob("*.json")):
        record = json.loads(path.read_text())
        pretrained[record["arch"]] = (path, record)
    configs = {}
    for path in old_runs:
        run = json.loads(path.read_text())
        old = {k: tuple(v) if isinstance(v, list) else v for k, v in run["config"].items()}
        config = VisionConfig(**old)
        configs.setdefault(run["arch"], config)
        upright = pretrained[run["arch"]][1]["upright_test_accuracy"]
        metrics = {"zero_shot": run["zero_shot"], "final": run["final"], "curve": run["curve"], "upright": upright}
        cell = {"arch": run["arch"], "method": run["method"], "seed": run["seed"]}
        written.append(store.envelope_path("run", cell))
        write_text_atomic(written[-1], json.dumps(envelope("run", cell, metrics, settings(config), path), indent=1) + "\n")
        path.unlink()
    for arch, (path, record) in pretrained.items():
        if arch not in configs:
            continue
        keep = ("image_size", "pretrain_images", "optimizer", "upright_test_accuracy", "upright_test_images")
        metrics = {k: record[k] for k in keep}
        config = settings(configs[arch], PRETRAIN_SETTINGS)
        written.append(store.envelope_path("pretrain", {"arch": arch}))
        write_text_atomic(written[-1], json.dumps(envelope("pretrain", {"arch": arch}, metrics, config, path), indent=1) + "\n")
        path.unlink()
    if (out / "pretrained").exists() and not any((out / "pretrained").iterdir()):
        (out / "pretrained").rmdir()
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a results folder of the old `equinlp vision run`")
    for path in migrate(parser.parse_args().out):
        print(path)
