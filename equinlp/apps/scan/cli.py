"""``equinlp scan export | run | report | coverage``: ``run`` and ``report`` come from the harness's builder."""

from __future__ import annotations

import argparse

from equinlp.apps import TASKS
from equinlp.harness.cli import REPORT_HELP, Command, app_arguments

EXAMPLES = """examples:
  equinlp scan export --split addprim_jump --out scan_data/addprim_jump
  equinlp scan run --split addprim_jump --cell gru --quick --out results/scan_quick
  equinlp scan run --split template_around_right --cell lstm --seeds 0 1 2 --out results/scan
  equinlp scan report results/scan
  equinlp scan coverage --split template_around_right --group direction
"""


EXPORT_HELP = "write a split's train.txt and test.txt in the official format"
RUN_HELP = "pre-train the base models, evaluate methods zero-shot and fine-tuned (finished runs kept, interrupted continued)"
COVERAGE_HELP = "share of test commands a group maps into the training set: the zero-shot ceiling"


def _add_export(sub, name: str, help_text: str) -> None:
    from equinlp.apps.scan.splits import SPLITS

    export = sub.add_parser(name, help=help_text)
    export.add_argument("--split", required=True, choices=SPLITS)
    export.add_argument("--out", required=True, help="folder for train.txt and test.txt")
    export.set_defaults(handler=export_command)


def _add_coverage(sub, name: str, help_text: str) -> None:
    from equinlp.apps.scan.config import GROUPS
    from equinlp.apps.scan.splits import SPLITS

    cover = sub.add_parser(name, help=help_text)
    cover.add_argument("--split", default="addprim_jump", choices=SPLITS)
    cover.add_argument("--group", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    cover.set_defaults(handler=coverage_command)


def export_command(args: argparse.Namespace) -> int:
    from equinlp.apps.scan.splits import export_split

    for part, path in export_split(args.split, args.out).items():
        print(f"{part}: {path} ({sum(1 for _ in path.open())} lines)")
    return 0


def coverage_command(args: argparse.Namespace) -> int:
    from equinlp.apps.scan.coverage import coverage

    for group in args.group:
        result = coverage(args.split, group)
        print(f"{args.split} · {group}: {100 * result['reachable']:.1f}% of {result['test']} test commands reachable")
    return 0


add_arguments = app_arguments(
    "scan_command",
    {
        "export": Command(EXPORT_HELP, build=_add_export),
        "run": Command(RUN_HELP, run=TASKS["scan"].source, config=TASKS["scan"].config),
        "coverage": Command(COVERAGE_HELP, build=_add_coverage),
        "report": Command(REPORT_HELP, report=(("scan", TASKS["scan"].source),)),
    },
)
