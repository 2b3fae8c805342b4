"""Config fields that carry their own flag, help, choices and range, so every check of a setting is in one place.

A task's config is a plain dataclass whose fields are made with :func:`option`; :func:`validate` (called from
the config's ``__post_init__``) checks choices and ranges for the Python API and the command line alike, and
:mod:`equinlp.harness.cli` turns the same fields into flags. Field roles:

- ``plan=True``: the field enumerates cells (methods, seeds, axes...): adding a value adds cells;
- ``keyed=False``: the field cannot change a result (the output folder, CPU threads);
- every other field is a *setting*: results are keyed by all of them (see :class:`~equinlp.harness.store.RunStore`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from equinlp.errors import EquinlpError, check_name
from equinlp.files import digest

NO_QUICK = object()


def option(
    default: Any,
    help: str,
    *,
    choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    above: float | None = None,
    flags: tuple[str, ...] = (),
    plan: bool = False,
    keyed: bool = True,
    quick: Any = NO_QUICK,
    used_by: dict[str, tuple[str, ...]] | None = None,
    unrecorded: Any = NO_QUICK,
    reads: bool | Callable[[Any], bool] = False,
    cell_key: str | None = None,
) -> Any:
    """A dataclass field with its help, allowed names (a tuple, or a function giving them), range and roles.

    ``quick`` is the value ``--quick`` uses (explicit flags still win); ``flags`` are extra spellings.
    ``used_by`` limits the cells whose results depend on the setting, e.g. ``{"method": ("equizero",)}``: a
    proxy changed between two runs then refuses (or recomputes) only the equizero cells. ``unrecorded`` is
    the value of runs made before the setting existed, when it differs from today's default.

    ``reads``: the value may name a file or folder the results depend on (True: when such a path exists; or a
    function from the value to the path it reads, or None): its content's digest is a setting too
    (``NAME_digest``), so an edited file is a changed setting. ``cell_key``: a ``plan`` field's key in the
    cells (default: the name less a final ``s``).
    """
    metadata = {
        "help": help,
        "choices": choices,
        "at_least": at_least,
        "at_most": at_most,
        "above": above,
        "flags": flags,
        "plan": plan,
        "keyed": keyed,
        "quick": quick,
        "used_by": used_by,
        "unrecorded": unrecorded,
        "reads": reads,
        "cell_key": cell_key,
    }
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def choices_of(field: dataclasses.Field) -> list[str] | None:
    choices = field.metadata.get("choices")
    if choices is None:
        return None
    return list(choices() if callable(choices) else choices)


def _check_range(field: dataclasses.Field, value: Any) -> None:
    meta = field.metadata
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    where = f"{field.name} ({flag(field.name)})"
    if isinstance(value, float) and not math.isfinite(value):
        raise EquinlpError(f"{where} must be a finite number, got {value}")
    if meta.get("at_least") is not None and value < meta["at_least"]:
        raise EquinlpError(f"{where} must be at least {meta['at_least']}, got {value}")
    if meta.get("above") is not None and value <= meta["above"]:
        raise EquinlpError(f"{where} must be greater than {meta['above']}, got {value}")
    if meta.get("at_most") is not None and value > meta["at_most"]:
        raise EquinlpError(f"{where} must be at most {meta['at_most']}, got {value}")


def validate(config: Any) -> None:
    """Check every field of ``config`` made by :func:`option`: names against choices, numbers against ranges."""
    for field in dataclasses.fields(config):
        if "help" not in field.metadata:
            continue
        value = getattr(config, field.name)
        values = value if isinstance(value, tuple | list) else (value,)
        if isinstance(value, tuple | list) and field.metadata.get("plan") and not value:
            raise EquinlpError(f"{field.name} ({flag(field.name)}) needs at least one value")
        known = choices_of(field)
        for item in values:
            if known is not None and item is not None:
                check_name(field.name, item, known)
            _check_range(field, item)


def settings_fields(config_class: type) -> list[dataclasses.Field]:
    """The fields, nested dataclass configs flattened into their own fields (names are unique)."""
    flat = []
    for field in dataclasses.fields(config_class):
        nested = _dataclass_type(config_class, field)
        flat += settings_fields(nested) if nested else [field]
    return flat


def _dataclass_type(config_class: type, field: dataclasses.Field) -> type | None:
    import typing

    hint = typing.get_type_hints(config_class).get(field.name)
    return hint if dataclasses.is_dataclass(hint) else None


def defaults(config_class: type) -> dict[str, Any]:
    """The value of each field in a run that does not record it: its ``unrecorded`` value, else its default
    (nested configs flattened, tuples as lists), as :func:`resolved` would show it."""
    values = {}
    for field in settings_fields(config_class):
        value = field.default_factory() if field.default is dataclasses.MISSING else field.default
        if field.metadata.get("unrecorded", NO_QUICK) is not NO_QUICK:
            value = field.metadata["unrecorded"]
        values[field.name] = list(value) if isinstance(value, tuple) else value
    return values


def resolved(config: Any) -> dict[str, Any]:
    """Every field's value, nested configs flattened, tuples as lists (JSON's view of the config)."""
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            values.update(resolved(value))
        else:
            values[field.name] = list(value) if isinstance(value, tuple) else value
    return values


def settings(config: Any, only: Iterable[str] | None = None, cell: dict | None = None) -> dict[str, Any]:
    """The settings a result depends on: every keyed field that does not enumerate cells (or just ``only``),
    without those whose ``used_by`` excludes ``cell``, and ``KEY_digest`` for the content of each file a setting
    or the cell's coordinate reads (see ``reads`` in :func:`option`)."""
    values = resolved(config)
    roles = {f.name: f.metadata for f in settings_fields(type(config))}
    names = list(only) if only is not None else [n for n in values if roles[n].get("keyed", True) and not roles[n].get("plan")]
    chosen = {name: values[name] for name in names if _used(roles[name].get("used_by"), cell)}
    for name, role in roles.items():  # the content of the files they name
        key = cell_key(name, role) if role.get("plan") else name
        value = (cell or {}).get(key) if role.get("plan") else chosen.get(name)
        path = _file_read(role, value) if role.get("plan") or name in chosen else None
        if path is not None:
            chosen[f"{key}_digest"] = digest(path)
    return chosen


def cell_key(name: str, role: Mapping[str, Any]) -> str:
    """The key of a ``plan`` field's values in the cells (``methods`` → ``method``; ``axes``: its ``cell_key``)."""
    return role.get("cell_key") or name.removesuffix("s")


def _file_read(role: Mapping[str, Any], value: Any) -> Path | None:
    """The file or folder a setting's value reads (see ``reads``), if it exists."""
    reads = role.get("reads")
    if not reads or not isinstance(value, str):
        return None
    path = reads(value) if callable(reads) else Path(value).expanduser()
    return Path(path) if path is not None and Path(path).exists() else None


def _used(used_by: dict | None, cell: dict | None) -> bool:
    if not used_by or cell is None:
        return True
    return all(key not in cell or cell[key] in allowed for key, allowed in used_by.items())


@dataclasses.dataclass
class RunConfig:
    """The fields every task's config has (a task redefines ``out`` with its own default folder)."""

    out: str = option("results", "output folder: one JSON per finished run in OUT/runs, continued on rerun", keyed=False)
    threads: int | None = option(None, "torch CPU threads (default: torch's choice)", at_least=1, keyed=False)

    def __post_init__(self) -> None:
        validate(self)
