"""One command-line builder: a task's dataclass config becomes its ``run`` flags, and ``report`` reads its runs.

Every field made with :func:`~equinlp.harness.options.option` gets a flag (``top_k`` → ``--top-k``; a
bool gets ``--x/--no-x``; a tuple takes several values, space- or comma-separated). Values are taken, in
increasing priority, from the field's default, ``--quick``, ``--config FILE`` (a JSON object of settings,
or a run envelope, whose ``config`` is reused) and the flags given. The config then validates itself, so
names (with "did you mean") and ranges are checked in one place for the CLI and the Python API alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equinlp.errors import EquinlpError, UnknownName
from equinlp.files import read_text_file
from equinlp.harness.options import NO_QUICK, cell_key, choices_of, flag, settings_fields
from equinlp.harness.store import RUNS


def _element_type(hint: Any) -> tuple[type, bool]:
    """``(element type, is_sequence)`` of a field's type hint (``int | None`` → int; ``tuple[str, ...]`` → str)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) in (tuple, list):
        return typing.get_args(hint)[0], True
    return hint, False


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _hints(config_class: type) -> dict[str, Any]:
    hints = {}
    for field in dataclasses.fields(config_class):
        hint = typing.get_type_hints(config_class)[field.name]
        hints.update(_hints(hint) if dataclasses.is_dataclass(hint) else {field.name: hint})
    return hints


def _help(field: dataclasses.Field) -> str:
    meta = field.metadata
    parts = [meta["help"]]
    known = choices_of(field)
    if known is not None:
        parts.append(f"choose from {', '.join(known)}")
    signs = (("at_least", "≥"), ("above", ">"), ("at_most", "≤"))
    bounds = [f"{sign} {meta[key]}" for key, sign in signs if meta.get(key) is not None]
    if bounds:
        parts.append(" and ".join(bounds))
    if meta.get("used_by"):
        parts.append("only for " + ", ".join(f"{k} {' / '.join(v)}" for k, v in meta["used_by"].items()))
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if default not in (None, (), [], "", False):
        parts.append(f"default {' '.join(map(str, default)) if isinstance(default, tuple | list) else default}")
    if meta["quick"] is not NO_QUICK:
        parts.append(f"--quick: {meta['quick']}")
    return "; ".join(parts).replace("%", "%%")


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """A flag for every field of ``config_class`` (nested configs flattened), plus ``--config`` and ``--quick``."""
    hints = _hints(config_class)
    fields = [f for f in settings_fields(config_class) if "help" in f.metadata]
    for field in fields:
        kind, sequence = _element_type(hints[field.name])
        names = [flag(field.name), *field.metadata["flags"]]
        common = {"dest": field.name, "default": argparse.SUPPRESS, "help": _help(field)}
        if kind is bool:
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        else:
            metavar = "NAME" if choices_of(field) is not None else {int: "N", float: "X"}.get(kind, "TEXT")
            nargs, kind = ("+", str) if sequence else (None, kind)  # sequences are split and parsed by _coerce
            parser.add_argument(*names, type=kind, nargs=nargs, metavar=metavar, **common)
    parser.add_argument("--config", metavar="FILE", help="JSON settings (or a run's JSON from OUT/runs); flags given win")
    quick = {f.name: f.metadata["quick"] for f in fields if f.metadata["quick"] is not NO_QUICK}
    if quick:
        shown = ", ".join(f"{flag(k)} {v}" for k, v in quick.items())
        parser.add_argument("--quick", action="store_true", help=f"a short first look: {shown} (flags given win)")


def _coerce(config_class: type, name: str, value: Any, source: str, text: bool = False) -> Any:
    """``value`` checked against the field's type; tuples from lists, and (``text``: from flags) "a,b" split and parsed."""
    hint = _hints(config_class)[name]
    kind, sequence = _element_type(hint)
    if value is None and not text and _optional(hint):
        return None  # JSON null for a setting that may be unset (a run's own JSON records it so)
    if sequence and isinstance(value, list | tuple) and text:
        value = [part.strip() for item in value for part in item.split(",") if part.strip()]
    items = value if isinstance(value, list | tuple) else [value]
    if text and kind in (int, float):
        try:
            items = [kind(item) for item in items]
        except ValueError as error:
            raise EquinlpError(f"{source}: {name} takes {kind.__name__} values ({error})") from error
    for item in items:
        wrong = item is not None and not (isinstance(item, kind) or (kind is float and isinstance(item, int)))
        if wrong or (kind is not bool and isinstance(item, bool)):
            raise EquinlpError(f"{source}: {name} must be {kind.__name__}, got {item!r}")
    if sequence:
        return tuple(items)
    if isinstance(value, list | tuple):
        raise EquinlpError(f"{source}: {name} takes one value, got {value!r}")
    return items[0]


def read_config_file(path: str | Path, config_class: type) -> dict[str, Any]:
    """The settings in a JSON file (flat names, or a run envelope's ``config``), checked against the fields."""
    path = Path(path)
    try:
        data = json.loads(read_text_file(path, "--config"))
    except json.JSONDecodeError as error:
        raise EquinlpError(f"--config {path} is not valid JSON ({error})") from error
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and "metrics" in data:
        data = _envelope_settings(path, data, config_class)
    if not isinstance(data, dict):
        raise EquinlpError(f"--config {path} must hold a JSON object of settings")
    known = [f.name for f in settings_fields(config_class)]
    for name in data:
        if name not in known:
            raise UnknownName("setting", name, known, hint=f"in --config {path}")
    return {name: _coerce(config_class, name, value, f"--config {path}") for name, value in data.items()}


def _envelope_settings(path: Path, envelope: dict, config_class: type) -> dict[str, Any]:
    """A run envelope's settings, its cell (``{"axis": "race"}`` → ``axes: ["race"]``) and its folder as ``out``,
    so ``--config OUT/runs/RUN.json`` asks for that one run, where it was made."""
    data = {k: v for k, v in envelope["config"].items() if not k.endswith("_digest")}  # digests are of files, not flags
    plan_fields = {cell_key(f.name, f.metadata): f for f in settings_fields(config_class) if f.metadata.get("plan")}
    for key, value in envelope.get("cell", {}).items():
        field = plan_fields.get(key)
        if field is not None:
            data[field.name] = [value] if _element_type(_hints(config_class)[field.name])[1] else value
    if path.parent.name == RUNS and "out" in {f.name for f in settings_fields(config_class)}:
        data["out"] = str(path.parent.parent)
    return data


def build_config(config_class: type, values: dict[str, Any]) -> Any:
    """``config_class`` from flat ``values`` (nested configs take their own fields); the config validates itself."""
    kwargs = {}
    for field in dataclasses.fields(config_class):
        hint = typing.get_type_hints(config_class)[field.name]
        if dataclasses.is_dataclass(hint):
            kwargs[field.name] = build_config(hint, values)
        elif field.name in values:
            kwargs[field.name] = values[field.name]
    return config_class(**kwargs)


def config_from_args(config_class: type, args: argparse.Namespace) -> Any:
    """The config of a parsed command line: defaults < ``--quick`` < ``--config FILE`` < flags given."""
    fields = settings_fields(config_class)
    values: dict[str, Any] = {}
    if getattr(args, "quick", False):
        values.update({f.name: f.metadata["quick"] for f in fields if f.metadata.get("quick", NO_QUICK) is not NO_QUICK})
    if getattr(args, "config", None):
        values.update(read_config_file(args.config, config_class))
    given = {f.name: getattr(args, f.name) for f in fields if hasattr(args, f.name)}
    values.update({name: _coerce(config_class, name, value, flag(name), text=True) for name, value in given.items()})
    return build_config(config_class, values)


REPORT_HELP = "print the tables of a results folder and save its figure"


@dataclass(frozen=True)
class Command:
    """One subcommand of an application, declared without importing it: it runs a task (``run``: the task's
    ``"module:attribute"``, imported only when the command runs; ``config``: its config class's, from a module
    that imports no torch, read for the flags), reports the runs of tasks (``report``: task name → source; the
    folder's runs say which), or is the app's own (``build(subparsers, name, help)``). ``description``: the
    ``run --help`` text (default: ``help``)."""

    help: str
    run: str | None = None
    config: str | None = None
    description: str = ""
    report: tuple[tuple[str, str], ...] = ()
    build: Callable[[Any, str, str], None] | None = None


def load_object(source: str) -> Any:
    """The object named by ``"module:attribute"``."""
    module, attribute = source.split(":")
    return getattr(importlib.import_module(module), attribute)


def load_task(source: str) -> Any:
    """The task named by ``"module:attribute"`` (a class is instantiated)."""
    task = load_object(source)
    return task() if isinstance(task, type) else task


def app_arguments(dest: str, commands: dict[str, Command]) -> Callable[[argparse.ArgumentParser, str | None], None]:
    """An application's ``add_arguments(parser, chosen)``: its subcommands, only ``chosen`` built, so ``equinlp
    APP --help`` lists them without importing any task (no torch, no pandas), and ``APP run --help`` imports only
    the config's module."""

    def add_arguments(parser: argparse.ArgumentParser, chosen: str | None = None) -> None:
        sub = parser.add_subparsers(dest=dest, required=True)
        for name, command in commands.items():
            if name != chosen:
                sub.add_parser(name, help=command.help, add_help=False)
            elif command.build is not None:
                command.build(sub, name, command.help)
            elif command.run is not None:
                config_class = load_object(command.config) if command.config else None
                add_run_command(sub, command.run, name, command.help, command.description, config_class)
            else:
                add_report_command(sub, dict(command.report), name=name, help=command.help)

    return add_arguments


def add_run_command(
    sub, task, name: str = "run", help: str = "", description: str = "", config_class: type | None = None
) -> argparse.ArgumentParser:
    """``equinlp TASK run``: the config's fields as flags, ``--overwrite``; runs, then prints the report.
    ``task``: a task, or its ``"module:attribute"``, imported when the command runs (then ``config_class``, its
    config, is given)."""
    config_class = config_class or task.config_class
    parser = sub.add_parser(name, help=help, description=description or help)
    add_config_arguments(parser, config_class)
    parser.add_argument("--overwrite", action="store_true", help="recompute runs in --out that were made with other settings")

    def handler(args: argparse.Namespace) -> int:
        from equinlp.harness import distributed
        from equinlp.harness.task import run_task

        config = config_from_args(config_class, args)  # bad settings are refused before the task's libraries load
        chosen = load_task(task) if isinstance(task, str) else task
        run_task(chosen, config, overwrite=args.overwrite)
        if distributed.is_main():
            print_report(chosen, config.out)
        return 0

    parser.set_defaults(handler=handler)
    return parser


def add_report_command(sub, tasks: dict[str, str], name: str = "report", help: str = REPORT_HELP) -> argparse.ArgumentParser:
    """``equinlp APP report OUT``: the tables of the runs in OUT, and the figure. ``tasks``: name → ``"module:attribute"``,
    imported when the command runs; with several (``vision``: CNN runs and CLIP runs), the folder's runs say which
    one reports (default: the first)."""
    first = next(iter(tasks))
    parser = sub.add_parser(name, help=help)
    parser.add_argument("results", help="a results folder (the --out of a run)")
    parser.add_argument("--plot", default=None, help=f"where to save the figure (default RESULTS/{first}.png)")

    def handler(args: argparse.Namespace) -> int:
        chosen = first
        if len(tasks) > 1:
            from equinlp.harness.results import load_envelopes

            found = {envelope["task"] for envelope in load_envelopes(args.results)}
            chosen = next((t for t in tasks if t in found), first)
        print_report(load_task(tasks[chosen]), args.results, args.plot)
        return 0

    parser.set_defaults(handler=handler)
    return parser


BEST_TITLE = (
    "best method per experiment and metric (↑ higher is better, ↓ lower), by seed mean; "
    "≈: not told apart from it by 95% t-intervals over seeds"
)


def print_report(task, out: str | Path, plot_path: str | Path | None = None) -> list:
    """Print the task's tables for the runs under ``out`` and save its figure; returns the tables."""
    from equinlp.harness.report import best_methods
    from equinlp.harness.results import load_runs, mark_mixed, mixed_settings

    runs = load_runs(out, task.name)
    best = best_methods(runs, task.metrics)
    tables = tables_made = task.report(runs) + ([(BEST_TITLE, best)] if best is not None else [])
    mixed = mixed_settings(runs)
    if mixed is not None:  # said in the tables, and first
        tables = [("Runs made with different settings (each table's 'settings' column says which)", mixed)]
        tables += mark_mixed(tables_made, mixed)
    for title, table in tables:
        print(f"\n{title}")
        print(table.to_string())
    path = Path(plot_path) if plot_path else Path(out) / f"{task.name}.png"
    task.plot(runs, path)
    print(f"\nplot: {path}")
    if hasattr(task, "page"):  # a browsable page beside the figure (the bias report's report.html)
        print(f"page: {task.page(runs, tables, path)}")
    return tables
