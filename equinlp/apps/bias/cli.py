"""``equinlp bias run | report``: the harness's commands over :class:`~equinlp.apps.bias.task.BiasTask`."""

from __future__ import annotations

from equinlp.apps import TASKS
from equinlp.harness.cli import REPORT_HELP, Command, app_arguments

EXAMPLES = """examples:
  equinlp bias run --axis race --methods base equitune equizero-sentiment --samples 100 --out results/bias
  equinlp bias run --axis gender race orientation --samples 250 --out reports/bias   # the docs' results table
  equinlp bias run --model meta-llama/Llama-2-7b-hf --dtype bfloat16 --device-map auto --out results/bias_7b
  ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 -m equinlp bias run --axis race --out results/bias   # 2 processes
  equinlp bias report results/bias
"""

RUN_HELP = "generate, score and summarise per axis and method (resumable)"

add_arguments = app_arguments(
    "bias_command",
    {"run": Command(RUN_HELP, run=TASKS["bias"].source), "report": Command(REPORT_HELP, report=(TASKS["bias"].source,))},
)
