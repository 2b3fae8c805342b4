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
RUN_DESCRIPTION = (
    "Generate for every demographic prompt with each method, score, and summarise: one run per (axis, method). "
    "Sample i of every subject uses seed i, so the subjects' samples are paired. Finished runs are kept; an "
    "interrupted one continues from its last written batch; a changed setting is refused (--overwrite recomputes). "
    "Under torchrun / accelerate launch the processes share every run's batches, with the same samples as one process."
)

add_arguments = app_arguments(
    "bias_command",
    {
        "run": Command(RUN_HELP, run=TASKS["bias"].source, config=TASKS["bias"].config, description=RUN_DESCRIPTION),
        "report": Command(REPORT_HELP, report=(("bias", TASKS["bias"].source),)),
    },
)
