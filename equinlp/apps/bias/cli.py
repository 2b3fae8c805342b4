"""``equinlp bias run | report``."""

from __future__ import annotations

import argparse

from equinlp.harness.cli import REPORT_HELP, add_lazy_subcommands, add_report_command, add_run_command

EXAMPLES = """examples:
  equinlp bias run --axis race --methods base equitune equizero-sentiment --samples 100 --out results/bias
  equinlp bias run --axis gender race orientation --samples 250 --out reports/bias   # the docs' results table
  equinlp bias run --model meta-llama/Llama-2-7b-hf --dtype bfloat16 --device-map auto --out results/bias_7b
  ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 -m equinlp bias run --axis race --out results/bias   # 2 processes
  equinlp bias report results/bias
"""

DESCRIPTION = (
    "Generate for every demographic prompt with each method, score, and summarise: one run per (axis, method). "
    "Sample i of every subject uses seed i, so the subjects' samples are paired. Finished runs are kept; an "
    "interrupted one continues from its last written batch; a changed setting is refused (--overwrite recomputes). "
    "Under torchrun / accelerate launch the processes share every run's batches, with the same samples as one process."
)


RUN_HELP = "generate, score and summarise per axis and method (resumable)"


def add_arguments(parser: argparse.ArgumentParser, chosen: str | None = None) -> None:
    builders = {"run": (RUN_HELP, _add_run), "report": (REPORT_HELP, _add_report)}
    add_lazy_subcommands(parser, "bias_command", chosen, builders)


def _add_run(sub, name: str, help_text: str) -> None:
    from equinlp.apps.bias.task import BiasTask

    add_run_command(sub, BiasTask(), name, help=help_text, description=DESCRIPTION)


def _add_report(sub, name: str, help_text: str) -> None:
    from equinlp.apps.bias.task import BiasTask

    add_report_command(sub, BiasTask(), name=name, help=help_text)
