"""``equinlp rl run | report``: the harness's builder over :class:`~equinlp.rl.task.RLConfig`."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  equinlp rl run --env cartpole --method equizero --seeds 0 --out results/rl
  equinlp rl run --env cartpole gridworld --seeds 0 1 2 3 4 --out reports/rl   # the README's figure
  equinlp rl run --env gridworld --quick --seeds 0 --gamma 0.95 --out results/rl_quick
  equinlp rl report reports/rl
"""

DESCRIPTION = (
    "The paper's protocol: per env and seed, a plain DQN is pre-trained once; each method then continues from "
    "those weights (fresh replay buffer, ε = --eps-end). Finished runs in OUT/runs are skipped, an interrupted "
    "one resumes exactly from its last checkpoint, and a rerun with other settings is refused (or --overwrite). "
    "Curves are greedy evaluation returns on fixed seeds."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from equinlp.harness.cli import add_report_command, add_run_command
    from equinlp.rl.task import TASK

    sub = parser.add_subparsers(dest="rl_command", required=True)
    help_text = "pre-train a plain DQN per env and seed, continue it as each method, write one JSON per run"
    add_run_command(sub, TASK, "run", help=help_text, description=DESCRIPTION)
    add_report_command(sub, TASK)
