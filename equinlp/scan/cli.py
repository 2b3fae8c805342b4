"""``equinlp scan export | run | report``."""

from __future__ import annotations

import argparse
from pathlib import Path

from equinlp.scan.data import GROUPS
from equinlp.scan.equi import METHODS
from equinlp.scan.model import CELLS
from equinlp.scan.splits import SPLITS

QUICK = {"pretrain_steps": 1000, "finetune_steps": 150, "lambda_steps": 80}

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

    run = sub.add_parser("run", help="pre-train (or reuse) the base model, evaluate methods zero-shot and fine-tuned")
    run.add_argument("--split", default="addprim_jump", choices=SPLITS)
    run.add_argument(
        "--cell", default="gru", choices=[*sorted(CELLS), "t5"], help="base seq2seq: attention RNN/GRU/LSTM, or a small T5"
    )
    run.add_argument("--method", "--methods", dest="methods", nargs="+", default=list(METHODS), choices=METHODS)
    run.add_argument("--group", default="", choices=["", *GROUPS], help="default: verb (add-jump), direction (around-right)")
    run.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default 0)")
    run.add_argument("--pretrain-steps", type=int, default=3000, help="base model training steps (batch 128)")
    run.add_argument("--finetune-steps", type=int, default=500, help="fine-tuning steps through the symmetrized model")
    run.add_argument("--lambda-steps", type=int, default=300, help="λ-net-only steps before λ-equitune's zero-shot eval")
    run.add_argument("--proxy", default="max_prob", help="equizero proxy (the paper's 'top1' is max_prob)")
    run.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test commands only")
    run.add_argument("--quick", action="store_true", help=f"a short schedule that shows the effect in minutes: {QUICK}")
    run.add_argument("--out", default="results/scan", help="folder for one JSON per run (kept and skipped on rerun)")
    run.add_argument("--resume", action="store_true", help="continue interrupted training from its checkpoint")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")

    cover = sub.add_parser("coverage", help="share of test commands a group maps into the training set: the zero-shot ceiling")
    cover.add_argument("--split", default="addprim_jump", choices=SPLITS)
    cover.add_argument("--group", nargs="+", default=list(GROUPS), choices=list(GROUPS))

    report = sub.add_parser("report", help="table (method × split, mean ± std over seeds) and a bar plot")
    report.add_argument("results", help="folder of result JSONs")
    report.add_argument("--plot", default=None, help="where to save the plot (default RESULTS/scan.png)")


def run_command(args: argparse.Namespace) -> int:
    if args.scan_command == "export":
        from equinlp.scan.splits import export_split

        for part, path in export_split(args.split, args.out).items():
            print(f"{part}: {path} ({sum(1 for _ in path.open())} lines)")
        return 0
    if args.scan_command == "coverage":
        from equinlp.scan.coverage import coverage

        for group in args.group:
            result = coverage(args.split, group)
            print(f"{args.split} · {group}: {100 * result['reachable']:.1f}% of {result['test']} test commands reachable")
        return 0
    if args.scan_command == "run":
        import torch

        from equinlp.scan.run import RunConfig, run

        if args.threads:
            torch.set_num_threads(args.threads)
        schedule = QUICK if args.quick else {}
        config = RunConfig(
            split=args.split,
            cell=args.cell,
            methods=tuple(args.methods),
            seeds=tuple(args.seeds),
            group=args.group,
            pretrain_steps=schedule.get("pretrain_steps", args.pretrain_steps),
            finetune_steps=schedule.get("finetune_steps", args.finetune_steps),
            lambda_steps=schedule.get("lambda_steps", args.lambda_steps),
            proxy=args.proxy,
            test_limit=args.test_limit,
            out=args.out,
        )
        out = Path(args.out)
        if not args.resume and (out / "checkpoints").exists():
            import shutil

            shutil.rmtree(out / "checkpoints")  # start fine-tuning afresh; finished results are kept
        run(config)
        return report(out, None)
    return report(Path(args.results), args.plot)


def report(results: Path, plot_path: str | None) -> int:
    from equinlp.scan.report import load_results, plot, table

    frame = load_results(results)
    print("\nexact-match accuracy (%), mean ± std (seeds)")
    print(table(frame).to_string())
    saved = plot(frame, plot_path or results / "scan.png")
    print(f"\nplot: {saved}")
    return 0
