"""``equinlp`` command line. Subcommands live in COMMANDS: name -> (help, module).

Each module has ``EXAMPLES``, ``add_arguments(parser)`` and ``run_command(args)``, and is imported only when
its subcommand runs (``equinlp --help`` imports no application: no gymnasium, no vision stack).
Strings become objects only here: a group name becomes a word group, a method name an aggregator.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time

import torch

from equinlp.errors import EquinlpError
from equinlp.methods import BASE, config_for, method_names
from equinlp.wordgroups import word_group_names

METHODS = method_names(with_base=True)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="smollm2", help="'smollm2' (embedded, offline) or any hub id / local folder")
    parser.add_argument(
        "--group",
        default="gender",
        choices=word_group_names(),
        help="word group from data/groups: gender, race (Black→White→Asian), race2 (Black↔White), orientation",
    )
    parser.add_argument("--proxy", default="entropy", help="equizero proxy loss: entropy, max_logit or max_prob")


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=20, help="tokens to generate (default 20)")
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--top-k", type=int, default=None, help="top-k sampling (the paper uses 40)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed; swapped prompts share it (default 0)")


def decoding_kwargs(args: argparse.Namespace) -> dict:
    kwargs = {"max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample}
    if args.do_sample:
        kwargs.update({k: v for k, v in (("top_k", args.top_k), ("top_p", args.top_p), ("temperature", args.temperature)) if v})
    else:  # the model's generation config may ask for sampling settings; greedy ignores them
        kwargs.update(top_k=None, top_p=None, temperature=None)
    return kwargs


def build_method(model: torch.nn.Module, action, method: str, proxy: str):
    """The wrapped model for a method name; ``base`` is the model under the trivial group, so that it decodes
    with the same seeded sampler as the methods (each row's draw its own, equal seeds for a prompt's swaps)."""
    from equinlp.actions import TokenPermutation
    from equinlp.models import wrap_method

    if method not in METHODS:
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method == BASE:
        return wrap_method(model, TokenPermutation.identity(action.vocab_size), config_for("equitune"))
    return wrap_method(model, action, config_for(method, proxy=proxy))


# --- equinlp generate -------------------------------------------------------------------------------


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="+", help="one or more prompts, e.g. 'The woman worked as'")
    parser.add_argument("--method", default="equitune", choices=METHODS, help="method compared with the base model")
    add_model_arguments(parser)
    add_decoding_arguments(parser)


def run_generate(args: argparse.Namespace) -> int:
    from equinlp.embedded import load_model
    from equinlp.wordgroups import word_group

    started = time.perf_counter()
    model, tokenizer = load_model(args.model)
    group = word_group(args.group)
    action = group.action(tokenizer)
    print(f"model {args.model} · group {group.name} (order {action.group.order}, {len(action.moved)} tokens moved)")
    decoding = f"sampling, seed {args.seed}" if args.do_sample else "greedy"
    print(f"decoding: {decoding}, {args.max_new_tokens} new tokens\n")
    methods = ["base"] + ([args.method] if args.method != "base" else [])
    for prompt in args.prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        orbit = torch.cat([action.ids.act(ids, g) for g in range(action.group.order)])  # [G, T]: prompt and its swaps
        fixed = [g for g in range(1, action.group.order) if torch.equal(orbit[g], orbit[0])]
        if fixed:
            print(f"note: the group leaves this prompt unchanged under {len(fixed)} of its elements (no swap word?)")
        for method in methods:
            wrapped = build_method(model, action, method, args.proxy)
            extra = {"seed": args.seed} if args.do_sample else {}
            with torch.no_grad():
                out = wrapped.generate(input_ids=orbit, attention_mask=torch.ones_like(orbit), **decoding_kwargs(args), **extra)
            continuation = out[:, orbit.shape[1] :]
            consistent = all(torch.equal(continuation[g], action.ids.act(continuation[0], g)) for g in range(action.group.order))
            verdict = "swap-consistent" if consistent else "NOT swap-consistent"
            print(f"[{method}] {verdict}")
            for g in range(action.group.order):
                text = tokenizer.decode(continuation[g], skip_special_tokens=True)
                print(f"  {tokenizer.decode(orbit[g])!s:<30} |{text}")
            print()
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


GENERATE_EXAMPLES = """examples:
  equinlp generate "The woman worked as" --group gender --method equitune
  equinlp generate "The Black person was known for" --group race --method equizero --do-sample --top-k 40
  equinlp generate "The gay person was described as" --group orientation --model HuggingFaceTB/SmolLM2-360M
"""


# name -> (help, module with EXAMPLES, add_arguments and run_command), imported when the subcommand runs
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("continue a prompt and its group-swapped versions with the base and an equivariant model", __name__),
    "bias": (
        "debiased generation benchmark: Sheng et al. prompts, masked sentiment, gaps with bootstrap intervals",
        "equinlp.bias.cli",
    ),
    "scan": (
        "SCAN compositional generalization: export the splits, run base/equitune/equizero/λ-equitune, report",
        "equinlp.scan.cli",
    ),
    "rl": (
        "equivariant deep Q-learning: pre-train a DQN, continue it as base/equitune/equizero/λ-equitune, report",
        "equinlp.rl.cli",
    ),
    "vision": (
        "invariant CNNs and CLIP under rotations and flips: pre-train upright, evaluate and fine-tune rotated, report",
        "equinlp.vision.cli",
    ),
}
EXAMPLES = GENERATE_EXAMPLES
add_arguments, run_command = add_generate_arguments, run_generate  # this module is the generate subcommand's


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in ``argv`` gets its arguments (and its module imported)."""
    parser = argparse.ArgumentParser(
        prog="equinlp",
        description="Group-equivariant wrappers for pretrained LMs and vision models (equitune, equizero, λ-equitune). "
        "Runs offline on the embedded SmolLM2-135M-Instruct by default. Add --debug anywhere for tracebacks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    for name, (help_text, module_name) in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_text, description=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        formatter = argparse.RawDescriptionHelpFormatter
        command = sub.add_parser(name, help=help_text, description=help_text, epilog=module.EXAMPLES, formatter_class=formatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run_command)
    return parser


def _setup_logging(debug: bool) -> None:
    """Progress messages on stderr: the main process at INFO, the others at WARNING (no message twice)."""
    from equinlp.harness import distributed

    main_process = not distributed.launched() or distributed.is_main()
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    logging.getLogger("equinlp").setLevel(logging.DEBUG if debug else logging.INFO if main_process else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run a command; a bad input or a damaged file is one line on stderr and exit code 2 (``--debug``: traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    _setup_logging(debug)
    try:
        args = build_parser(argv).parse_args(argv)
        handler = getattr(args, "handler", None) or args.run
        return handler(args)
    except KeyboardInterrupt:
        return 130  # the run loop has said where the finished work is and how to continue
    except EquinlpError as error:
        if debug:
            raise
        print(f"equinlp: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
