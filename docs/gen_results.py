"""Write the docs' results pages from the committed run envelopes, so that the docs cannot drift from them.

For every ``reports/NAME/runs`` folder: ``docs/results/NAME.md`` with the tables ``equinlp APP report
reports/NAME`` prints and its figure, plus ``docs/results/index.md`` linking them. The pages are build
outputs (git-ignored); ``make docs`` runs this before ``mkdocs build --strict``.

    python -m docs.gen_results            # from the repository root
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from equinlp.apps import TASKS
from equinlp.harness.cli import load_task

ROOT = Path(__file__).resolve().parents[1]
REPORTS, OUT = ROOT / "reports", ROOT / "docs" / "results"

log = logging.getLogger("docs.gen_results")


def task_of(folder: Path) -> str:
    """The task of a results folder: the one its envelopes name."""
    names = {json.loads(path.read_text())["task"] for path in sorted((folder / "runs").glob("*.json"))}
    if len(names) != 1:
        raise SystemExit(f"{folder}: expected the runs of one task, found {sorted(names)}")
    return names.pop()


def page(folder: Path) -> str:
    """The markdown page of one results folder: its tables as the report command prints them, and its figure."""
    from equinlp.harness.results import load_runs

    name = task_of(folder)
    task, command = load_task(TASKS[name].source), TASKS[name].group
    runs = load_runs(folder, name)
    count = len(list((folder / "runs").glob("*.json")))
    lines = [
        f"# {folder.name}",
        "",
        f"Generated from the {count} run envelopes in `reports/{folder.name}/runs`: the tables that "
        f"`equinlp {command} report reports/{folder.name}` prints.",
    ]
    for title, table in task.report(runs):
        lines += ["", f"**{title}**", "", "```text", table.to_string(), "```"]
    figure = OUT / f"{folder.name}.png"
    task.plot(runs, figure)
    if figure.exists():
        lines += ["", f"![{folder.name}]({figure.name})"]
    return "\n".join(lines) + "\n"


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    folders = sorted(path.parent for path in REPORTS.glob("*/runs") if any(path.glob("*.json")))
    intro = "Every page below is generated from the committed run envelopes by `python -m docs.gen_results`."
    index = ["# Results", "", intro, ""]
    for folder in folders:
        (OUT / f"{folder.name}.md").write_text(page(folder))
        command = f"equinlp {TASKS[task_of(folder)].group} report reports/{folder.name}"
        index.append(f"- [{folder.name}]({folder.name}.md): `{command}`")
        log.info("docs/results/%s.md", folder.name)
    (OUT / "index.md").write_text("\n".join(index) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
