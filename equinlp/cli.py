"""``equinlp`` command line. Subcommands live in COMMANDS: name -> (help, module).

Each module has ``EXAMPLES`` and ``add_arguments(parser, chosen)`` (which sets ``handler``, the function that
runs the parsed command; ``chosen`` is the word after the subcommand, e.g. ``run``), and is imported only when
its subcommand runs. ``equinlp --help`` imports neither torch nor any application, and ``equinlp APP --help``
builds only the names of the app's own subcommands (tests/test_startup.py keeps it so).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from equinlp.errors import EquinlpError
from equinlp.harness.progress import show_always

# Which optional extra provides a module, so a command that lacks one says what to install.
# top-level module -> the extra of pyproject.toml that installs it
EXTRAS = {
    "gguf": "embedded",
    "vaderSentiment": "bias",
    "textblob": "bias",
    "gymnasium": "rl",
    "sklearn": "vision",
    "PIL": "vision",
    "peft": "peft",
    "lm_eval": "lm-eval",
}


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """``"this command needs gymnasium: pip install 'equinlp[rl]'"`` for a module of an extra, else None."""
    module = (error.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    return f"this command needs {module}: pip install 'equinlp[{extra}]'" if extra else None


# name -> (help, module with EXAMPLES and add_arguments, which sets the handler), imported when the subcommand runs
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": (
        "continue a prompt and its group-swapped versions with the base and an equivariant model",
        "equinlp.apps.generate",
    ),
    "bias": (
        "debiased generation benchmark: Sheng et al. prompts, masked sentiment, gaps with bootstrap intervals",
        "equinlp.apps.bias.cli",
    ),
    "scan": (
        "SCAN compositional generalization: export the splits, run base/equitune/equizero/λ-equitune, report",
        "equinlp.apps.scan.cli",
    ),
    "rl": (
        "equivariant deep Q-learning: pre-train a DQN, continue it as base/equitune/equizero/λ-equitune, report",
        "equinlp.apps.rl.cli",
    ),
    "vision": (
        "invariant CNNs and CLIP under rotations and flips: pre-train upright, evaluate and fine-tune rotated, report",
        "equinlp.apps.vision.cli",
    ),
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (the full usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in ``argv`` gets its arguments (and its module imported)."""
    parser = Parser(
        prog="equinlp",
        description="Group-equivariant wrappers for pretrained LMs and vision models (equitune, equizero, λ-equitune). "
        "Runs offline on the embedded SmolLM2-135M-Instruct by default. Add --debug anywhere for tracebacks, "
        "--progress for progress bars off a terminal (on a terminal they are always shown).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    chosen, then = (words + [None, None])[:2]
    for name, (help_text, module_name) in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_text, description=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        formatter = argparse.RawDescriptionHelpFormatter
        command = sub.add_parser(name, help=help_text, description=help_text, epilog=module.EXAMPLES, formatter_class=formatter)
        module.add_arguments(command, then)
    return parser


def _setup_logging(debug: bool) -> None:
    """Progress messages on stderr: the main process at INFO, the others at WARNING (no message twice)."""
    main_process = os.environ.get("RANK", "0") == "0"  # set by torchrun and accelerate launch
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    logging.getLogger("equinlp").setLevel(logging.DEBUG if debug else logging.INFO if main_process else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run a command; a bad input or a damaged file is one line on stderr and exit code 2 (``--debug``: traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if "--progress" in argv:
        show_always()
    argv = [a for a in argv if a not in ("--debug", "--progress")]
    _setup_logging(debug)
    try:
        args = build_parser(argv).parse_args(argv)
        return args.handler(args)
    except KeyboardInterrupt:
        return 130  # the run loop has said where the finished work is and how to continue
    except BrokenPipeError:  # `equinlp scan report DIR | head`: the reader has what it wanted
        sys.stderr.close()  # nothing more to say, and no second error when Python flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE
    except (EquinlpError, ModuleNotFoundError) as error:
        message = missing_extra_message(error) if isinstance(error, ModuleNotFoundError) else str(error)
        if debug or message is None:
            raise
        print(f"equinlp: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
