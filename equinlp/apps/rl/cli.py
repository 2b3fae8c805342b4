"""``equinlp rl run | report``: the harness's commands over :class:`~equinlp.apps.rl.task.RLTask`."""

from __future__ import annotations

from equinlp.apps import TASKS
from equinlp.harness.cli import REPORT_HELP, Command, app_arguments

EXAMPLES = """examples:
  equinlp rl run --env cartpole --method equizero --seeds 0 --out results/rl
  equinlp rl run --env cartpole gridworld --seeds 0 1 2 3 4 --out reports/rl   # the docs' results figure
  equinlp rl run --env gridworld --quick --seeds 0 --gamma 0.95 --out results/rl_quick
  equinlp rl report reports/rl
"""

RUN_HELP = "pre-train a plain DQN per env and seed, continue it as each method, write one JSON per run"
RUN_DESCRIPTION = (
    "The paper's protocol: per env and seed, a plain DQN is pre-trained once; each method then continues from "
    "those weights (fresh replay buffer, ε = --eps-end). Finished runs in OUT/runs are skipped, an interrupted "
    "one resumes exactly from its last checkpoint, and a rerun with other settings is refused (or --overwrite). "
    "Curves are greedy evaluation returns on fixed seeds."
)

add_arguments = app_arguments(
    "rl_command",
    {
        "run": Command(RUN_HELP, run=TASKS["rl"].source, config=TASKS["rl"].config, description=RUN_DESCRIPTION),
        "report": Command(REPORT_HELP, report=(("rl", TASKS["rl"].source),)),
    },
)
