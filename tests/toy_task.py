"""A task with no model: the harness's tests run it in one and in two processes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from equinlp.harness import RunConfig, Stage, option


@dataclass
class ToyConfig(RunConfig):
    seeds: tuple[int, ...] = option((0, 1, 2, 3), "seeds", plan=True)
    scale: float = option(1.0, "multiplier", above=0, quick=2.0)
    steps: int = option(10, "steps", at_least=1, quick=3)
    name: str = option("alpha", "a name", choices=("alpha", "beta"))
    noisy: bool = option(False, "a switch")
    table: str | None = option(None, "a file the values read", reads=True)
    out: str = option("results/toy", "output folder", keyed=False)


class ToyTask:
    name = "toy"
    config_class = ToyConfig
    collective = False
    metrics = {"value": True}  # the metric schema: higher is better

    def __init__(self) -> None:
        self.setups = 0

    def plan(self, config: ToyConfig) -> list[Stage]:
        return [Stage("prepare", [{"part": "shared"}], settings=("steps",)), Stage("run", [{"seed": s} for s in config.seeds])]

    def setup(self, config: ToyConfig) -> None:
        self.setups += 1

    def run_cell(self, config: ToyConfig, stage: str, cell: dict, store) -> dict:
        work = store.work_dir(stage, cell)
        with open(work.parent.parent / "calls.jsonl", "a") as log:  # every call, from every process
            log.write(json.dumps({"stage": stage, **cell, "rank": int(os.environ.get("RANK", 0))}) + "\n")
        if stage == "prepare":
            (work / "artifact.txt").write_text(str(config.steps))
            return {"steps": config.steps}
        shared = int((store.work_dir("prepare", {"part": "shared"}) / "artifact.txt").read_text())
        table = open(config.table).read() if config.table else None
        return {"value": cell["seed"] * config.scale + shared, "curve": [1, 2], "table": table}

    def report(self, runs):
        return [("values", runs[["seed", "value"]].sort_values("seed").reset_index(drop=True))]

    def plot(self, runs, path) -> None:
        path.write_text("plot")
