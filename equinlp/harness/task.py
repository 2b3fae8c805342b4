"""The ``Task`` protocol and ``run_task``: the one run loop of every application.

A task says what its runs are and how to compute one; the harness does the rest: it checks every cell
against the output folder before loading anything (refusing changed settings), skips finished cells,
splits the remaining ones between processes, records settings, writes envelopes, and says one thing
on Ctrl-C. Stages run in order (a stage may read the artifacts of the one before, e.g. pre-trained
weights); the processes meet at a barrier after each stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from equinlp.harness import distributed
from equinlp.harness.options import defaults, settings
from equinlp.harness.progress import progress
from equinlp.harness.results import load_envelopes
from equinlp.harness.store import RunStore

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """Cells that can run in any order and on any process. ``settings``: the config fields its results
    depend on (None: every setting of the config)."""

    name: str
    cells: list[dict[str, Any]]
    settings: tuple[str, ...] | None = None


class Task(Protocol):
    name: str  # the subcommand and the prefix of run files: "bias", "scan", ...
    config_class: type
    collective: bool  # True: every process runs every cell together, and the task splits the work inside it
    metrics: dict[str, bool]  # the metrics its runs record, each with whether higher is better (the metric schema)

    def plan(self, config: Any) -> list[Stage]:
        """The stages of cells ``config`` asks for; the last stage's cells are the runs a report shows."""

    def setup(self, config: Any) -> None:
        """Load what every cell needs (a model, a dataset); called once, only when some cell has to run."""

    def run_cell(self, config: Any, stage: str, cell: dict[str, Any], store: RunStore) -> dict[str, Any] | None:
        """Compute one cell and return its metrics (JSON values); a collective task returns None off the main process."""

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        """Titled tables built from :func:`~equinlp.harness.results.load_runs`'s frame."""

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        """Save the task's figure."""

    # optional: ``size(config, stage, cell) -> (count, unit)``, the work in one cell (e.g. ``(500, "samples")``),
    # which the one-line plan adds up


def plan_line(task: Task, config: Any, stages: list[Stage], pending: dict[str, list[dict]], out: Path) -> str:
    """``"bias: 9 runs, 4,500 samples; 3 already done, 6 to compute in OUT"``: what a run is about to do."""
    cells = [(stage.name, cell) for stage in stages for cell in stage.cells]
    todo = sum(len(c) for c in pending.values())
    amount = ""
    size = getattr(task, "size", None)
    if size is not None and cells:
        counts = [size(config, stage, cell) for stage, cell in cells]
        units = {unit for _, unit in counts}
        amount = f", {sum(n for n, _ in counts):,} {units.pop()}" if len(units) == 1 else ""
    runs = f"{len(cells):,} run{'s' * (len(cells) != 1)}{amount}"
    return f"{task.name}: {runs}; {len(cells) - todo:,} already done, {todo:,} to compute in {out}"


def _pending(store: RunStore, stages: list[Stage], config: Any) -> dict[str, list[dict]]:
    """Each stage's unfinished cells. Every process checks (so all refuse alike); only the main one deletes."""
    pending, remove, known = {}, distributed.is_main(), defaults(type(config))
    for stage in stages:
        pending[stage.name] = [
            c for c in stage.cells if store.finished(stage.name, c, settings(config, stage.settings, c), remove, known) is None
        ]
    distributed.barrier()
    return pending


def run_task(task: Task, config: Any, overwrite: bool = False) -> list[dict]:
    """Run every cell ``config`` asks for that is not finished yet; returns the last stage's envelopes."""
    if getattr(config, "threads", None):
        import torch

        torch.set_num_threads(config.threads)
    store = RunStore(config.out, task.name, overwrite)
    stages = task.plan(config)
    with store.locked():
        pending = _pending(store, stages, config)
        total = sum(len(cells) for cells in pending.values())
        log.info("%s", plan_line(task, config, stages, pending, store.out))
        try:
            if total:
                task.setup(config)
            for stage in stages:
                _run_stage(task, config, stage, pending[stage.name], store)
        except KeyboardInterrupt:
            log.warning("\ninterrupted: finished runs are in %s; rerun the same command to continue", store.out / "runs")
            raise
    last = stages[-1]
    return [e for e in load_envelopes(store.out, task.name, last.name) if e["cell"] in last.cells] if last.cells else []


def _run_stage(task: Task, config: Any, stage: Stage, cells: list[dict], store: RunStore) -> None:
    mine = cells if task.collective else distributed.my_share(cells)
    bar = progress(mine, desc=f"{task.name} {stage.name}", unit="run") if len(mine) > 1 else mine  # one run: its own bars
    for cell in bar:
        asked = settings(config, stage.settings, cell)
        store.begin(stage.name, cell, asked)
        started = time.perf_counter()
        metrics = task.run_cell(config, stage.name, cell, store)
        if not task.collective or distributed.is_main():
            store.finish(stage.name, cell, asked, metrics, time.perf_counter() - started)
            log.info("%s: done", store.cell_id(stage.name, cell))
    distributed.barrier()
