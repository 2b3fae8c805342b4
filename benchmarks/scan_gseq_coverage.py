"""Exact match of trained G-seq2seq bases on the test commands a group's permutations reach from training, and on the rest.

A symmetrized base can only answer the reachable commands (``equinlp scan coverage``); a layer-wise equivariant
model can also answer the others, if it generalizes compositionally. This splits its test score in two::

    python benchmarks/scan_gseq_coverage.py reports/scan_gseq_direction_recipe

prints one JSON line per seed and writes them to ``RESULTS/coverage.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from equinlp.apps.scan.coverage import reachable
from equinlp.apps.scan.task import ScanConfig, ScanTask, make_module
from equinlp.apps.scan.train import evaluate
from equinlp.files import write_text_atomic
from equinlp.harness import RunStore
from equinlp.harness.options import settings_fields

log = logging.getLogger(__name__)


def split_scores(results: Path) -> list[dict]:
    """``[{"seed", "reachable", "unreachable", "n_reachable", "n_unreachable"}]`` for each run in ``results``."""
    envelopes = [json.loads(p.read_text()) for p in sorted((results / "runs").glob("scan_split=*.json"))]
    task, rows = ScanTask(), []
    for envelope in envelopes:
        known = {f.name for f in settings_fields(ScanConfig)}
        settings = {k: v for k, v in envelope["config"].items() if k in known}
        config = ScanConfig(**settings, split=envelope["cell"]["split"], cell=envelope["cell"]["cell"], out=str(results))
        task.setup(config)
        seed = envelope["cell"]["seed"]
        model = task.pretrained(config, envelope["cell"], RunStore(results, "scan"))
        module = make_module("base", model, task.data.actions("trivial"), config.cell, config.proxy)
        reached = torch.tensor(reachable(config.split, config.group)[: len(task.data.test)])  # --test-limit: the first N
        row = {"seed": seed}
        for name, rows_of in (("reachable", reached), ("unreachable", ~reached)):
            subset = task.data.test[rows_of]
            row[name] = evaluate(module, subset, description=f"{name} seed {seed}") if len(subset) else None
            row[f"n_{name}"] = int(rows_of.sum())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a G-seq2seq results folder (the --out of equinlp scan run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = split_scores(args.results)
    for row in rows:
        print(json.dumps(row))
    write_text_atomic(args.results / "coverage.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
