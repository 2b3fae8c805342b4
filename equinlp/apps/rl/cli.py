"""``equinlp rl run | report``: the harness's builder over :class:`~equinlp.apps.rl.task.RLConfig`."""

from __future__ import annotations

import argparse

from equinlp.harness.cli import REPORT_HELP, add_lazy_subcommands, add_report_command, add_run_command

EXAMPLES = """examples:
  equinlp rl run --env cartpole --method equizero --seeds 0 --out results/rl
  equinlp rl run --env cartpole gridworld --seeds 0 1 2 3 4 --out reports/rl   # the docs' results figure
  equinlp rl run --env gridworld --quick --seeds 0 --gamma 0.95 --out results/rl_quick
  equinlp rl report reports/rl
"""

DESCRIPTION = (
    "The paper's protocol: per env and seed, a plain DQN is pre-trained once; each method then continues from "
    "those weights (fresh replay buffer, ε = --eps-end). Finished runs in OUT/runs are skipped, an interrupted "
    "one resumes exactly from its last checkpoint, and a rerun with other settings is refused (or --overwrite). "
    "Curves are greedy evaluation returns on fixed seeds."
)


RUN_HELP = "pre-train a plain DQN per env and seed, continue it as each method, write one JSON per run"


def add_arguments(parser: argparse.ArgumentParser, chosen: str | None = None) -> None:
    builders = {"run": (RUN_HELP, _add_run), "report": (REPORT_HELP, _add_report)}
    add_lazy_subcommands(parser, "rl_command", chosen, builders)


def _add_run(sub, name: str, help_text: str) -> None:
    from equinlp.apps.rl.task import TASK

    add_run_command(sub, TASK, name, help=help_text, description=DESCRIPTION)


def _add_report(sub, name: str, help_text: str) -> None:
    from equinlp.apps.rl.task import TASK

    add_report_command(sub, TASK, name=name, help=help_text)
