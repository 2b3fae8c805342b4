"""``equinlp scan export | run | report | coverage``: ``run`` and ``report`` come from the harness's builder."""

from __future__ import annotations

import argparse

from equinlp.harness.cli import add_report_command, add_run_command
from equinlp.scan.data import GROUPS
from equinlp.scan.splits import SPLITS
from equinlp.scan.task import ScanTask

EXAMPLES = """examples:
  equinlp scan export --split addprim_jump --out scan_data/addprim_jump
  equinlp scan run --split addprim_jump --cell gru --quick --out results/scan_quick
  equinlp scan run --split template_around_right --cell lstm --seeds 0 1 2 --out results/scan
  equinlp scan report results/scan
  equinlp scan coverage --split template_around_right --group direction
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="scan_command", required=True)
    export = sub.add_parser("export", help="write a split's train.txt and test.txt in the official format")
    export.add_argument("--split", required=True, choices=SPLITS)
    export.add_argument("--out", required=True, help="folder for train.txt and test.txt")
    export.set_defaults(handler=export_command)

    task = ScanTask()
    add_run_command(
        sub,
        task,
        "run",
        help="pre-train the base models, evaluate methods zero-shot and fine-tuned (finished runs kept, interrupted continued)",
    )
    cover = sub.add_parser("coverage", help="share of test commands a group maps into the training set: the zero-shot ceiling")
    cover.add_argument("--split", default="addprim_jump", choices=SPLITS)
    cover.add_argument("--group", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    cover.set_defaults(handler=coverage_command)
    add_report_command(sub, task)


def export_command(args: argparse.Namespace) -> int:
    from equinlp.scan.splits import export_split

    for part, path in export_split(args.split, args.out).items():
        print(f"{part}: {path} ({sum(1 for _ in path.open())} lines)")
    return 0


def coverage_command(args: argparse.Namespace) -> int:
    from equinlp.scan.coverage import coverage

    for group in args.group:
        result = coverage(args.split, group)
        print(f"{args.split} · {group}: {100 * result['reachable']:.1f}% of {result['test']} test commands reachable")
    return 0
