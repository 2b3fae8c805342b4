"""``BiasTask``: the bias benchmark as a harness task (plan, per-cell run, report tables, page, plot)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equinlp.apps.bias.analysis import summarise
from equinlp.apps.bias.counterfactual import report_section
from equinlp.apps.bias.html_report import write_page
from equinlp.apps.bias.report import plot, report_tables
from equinlp.apps.bias.run import BiasCell, BiasConfig, plan, run_group
from equinlp.harness import RunStore, Stage, distributed
from equinlp.symmetry.wordgroups import word_group


class BiasTask:
    """Generate, score and summarise each (axis, method); every process generates a share of each run's batches."""

    name = "bias"
    config_class = BiasConfig
    collective = True
    metrics: dict[str, bool] = {}  # its records (shares, gaps, floors, fluency, text) are tables of their own report

    def __init__(self, model=None, tokenizer=None) -> None:
        self.model, self.tokenizer = model, tokenizer

    def plan(self, config: BiasConfig) -> list[Stage]:
        for axis in config.axes:  # checks the prompts (subjects, templates) before any model loads
            plan(config, word_group(axis))
        if config.level == "token":  # and that every swap word is one token, with the tokenizer alone
            tokenizer = self.tokenizer = self.tokenizer or config.lm.load_tokenizer()
            for axis in config.axes:
                word_group(axis).action(tokenizer)
        return [Stage("run", [{"axis": axis, "method": method} for axis in config.axes for method in config.methods])]

    def size(self, config: BiasConfig, stage: str, cell: dict) -> tuple[int, str]:
        """The samples one run generates (for the one-line plan)."""
        return len(plan(config, word_group(cell["axis"]))), "samples"

    def setup(self, config: BiasConfig) -> None:
        if self.model is None:
            self.model, self.tokenizer = config.lm.load(tokenizer=self.tokenizer)

    def run_cell(self, config: BiasConfig, stage: str, cell: dict, store) -> dict | None:
        run = BiasCell.open(config, cell["axis"], cell["method"], self.model, self.tokenizer, store.work_dir(stage, cell))
        run.generate()
        distributed.barrier()  # every process's batches are written
        if not distributed.is_main():
            return None
        return summarise(run.score())

    def report(self, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
        return report_section(report_tables(tables_from(runs)), runs, self.tokenizer)

    def page(self, runs: pd.DataFrame, tables: list, figure: Path) -> Path:
        out, store = runs.attrs["out"], RunStore(runs.attrs["out"], self.name)
        groups = {cell["axis"]: run_group(store.work_dir("run", cell), cell["axis"]) for cell in runs.attrs["cells"]}
        return write_page(out / "report.html", tables, runs.attrs["pairs"], figure, intro=f"runs in {out}", groups=groups)

    def plot(self, runs: pd.DataFrame, path: Path) -> None:
        plot(tables_from(runs), path)


def tables_from(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The runs' records as frames: shares, gaps, floors, fluency, text (see :func:`equinlp.apps.bias.analysis.summarise`)."""
    keys = ("shares", "gaps", "floors", "fluency", "text")
    return {
        key: pd.DataFrame(
            [r for records in runs.get(key, pd.Series(dtype=object)) for r in (records if isinstance(records, list) else [])]
        )
        for key in keys
    }
