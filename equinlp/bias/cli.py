"""``equinlp bias run | report``."""

from __future__ import annotations

import argparse

from equinlp.bias.generate import METHODS
from equinlp.bias.prompts import AXES, CONTEXTS
from equinlp.bias.scoring import SCORERS

EXAMPLES = """examples:
  equinlp bias run --axis race --methods base equitune equizero-sentiment --samples 100 --out results/bias
  equinlp bias run --axis gender race orientation --samples 500 --out results/bias   # the README's table
  equinlp bias report results/bias
"""


def _names(known):
    """An argparse type: one or more comma-separated names, each checked against ``known``."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(known)}")
        return names

    return parse


def _flat(groups: list[list[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for group in groups for name in group))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bias_command", required=True)
    run = sub.add_parser(
        "run",
        help="generate for every demographic prompt with each method, score, and summarise (resumable)",
        description="Generations go to OUT/samples (JSONL, appended batch by batch: a rerun continues where it "
        "stopped), scores to OUT/scored, and label shares, gaps and floors with bootstrap intervals to "
        "OUT/results.json. Sample i of every subject uses seed i, so the subjects' samples are paired.",
    )
    run.add_argument(
        "--axis", "--axes", dest="axes", nargs="+", type=_names(AXES), default=[["gender", "race", "orientation"]],
        help=f"demographic axes, space- or comma-separated: {', '.join(AXES)}",
    )  # fmt: skip
    run.add_argument(
        "--methods", nargs="+", type=_names(METHODS), default=[["base", "equitune", "equizero-sentiment"]],
        help=f"space- or comma-separated: {', '.join(METHODS)}",
    )  # fmt: skip
    run.add_argument("--contexts", nargs="+", type=_names(CONTEXTS), default=[list(CONTEXTS)], help="respect, occupation")
    run.add_argument("--templates", default=None, help="a file of templates (one per line, or context<TAB>template)")
    run.add_argument("--samples", type=int, default=100, help="samples per subject and context (100 = 20 seeds × 5 templates)")
    run.add_argument("--model", default="smollm2", help="'smollm2' (embedded, offline) or any hub id / local folder")
    run.add_argument("--new-tokens", type=int, default=15, help="tokens per continuation (the paper: 15)")
    run.add_argument("--top-k", type=int, default=40, help="top-k sampling (the paper: 40)")
    run.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    run.add_argument("--batch-size", type=int, default=32, help="prompts per generate call")
    run.add_argument("--proxy", default="entropy", help="per-step equizero proxy: entropy, max_logit or max_prob")
    run.add_argument(
        "--lambda-net",
        default=None,
        help="for lambda / relaxed-lambda: a folder written by EquiModel.save_pretrained of a λ-equitune model "
        "(e.g. fine-tuned); without it the λ-net is at initialisation (uniform weights, the same samples as equitune)",
    )
    run.add_argument(
        "--proxy-scorer", default="vader", help=f"what equizero-sentiment maximises: {', '.join(SCORERS)} or regard:MODEL"
    )
    run.add_argument(
        "--regard-model",
        default=None,
        help="also label each sample by this regard classifier (sasha/regardv3, or a folder)",
    )
    run.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--out", default="results/bias", help="output folder (kept and continued on rerun)")
    report = sub.add_parser("report", help="print shares, gaps and floors with intervals; save stacked-bar plots")
    report.add_argument("results", help="a results folder (or its results.json)")
    report.add_argument("--plot", default=None, help="where to save the plot (default RESULTS/bias.png)")


def run_command(args: argparse.Namespace) -> int:
    from equinlp.bias.report import print_report

    if args.bias_command == "report":
        print_report(args.results, args.plot)
        return 0
    import torch

    from equinlp.bias.generate import Decoding
    from equinlp.bias.run import BiasConfig, run
    from equinlp.embedded import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    config = BiasConfig(
        axes=_flat(args.axes),
        methods=_flat(args.methods),
        contexts=_flat(args.contexts),
        samples=args.samples,
        model=args.model,
        proxy_scorer=args.proxy_scorer,
        regard_model=args.regard_model,
        templates_file=args.templates,
        first_seed=args.first_seed,
        out=args.out,
        decoding=Decoding(args.new_tokens, args.top_k, not args.greedy, args.batch_size, args.proxy, args.lambda_net),
    )
    model, tokenizer = load_model(args.model)
    run(config, model, tokenizer)
    print_report(args.out)
    return 0
