"""The experiment harness every application plugs into: options, CLI builder, run store, run loop, results.

Names are imported on first use (PEP 562), so importing one part (``options`` for a config class) does not
load the others (``results`` brings pandas and scipy).
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCES: dict[str, tuple[str, ...]] = {
    "equinlp.harness.options": ("RunConfig", "option", "resolved", "settings", "validate"),
    "equinlp.harness.results": ("format_interval", "load_runs", "t_interval"),
    "equinlp.harness.store": ("RunStore", "SettingsChanged"),
    "equinlp.harness.task": ("Stage", "Task", "run_task"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}
_SUBMODULES = ("cli", "distributed", "options", "progress", "report", "results", "state", "store", "task")

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name (or a submodule, as ``harness.distributed``) imported on first use."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value
