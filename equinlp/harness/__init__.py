"""The experiment harness every application plugs into: options, CLI builder, run store, run loop, results."""

from equinlp.harness.options import RunConfig, option, resolved, settings, validate
from equinlp.harness.results import format_interval, load_runs, t_interval
from equinlp.harness.store import RunStore, SettingsChanged
from equinlp.harness.task import Stage, Task, run_task

__all__ = [
    "RunConfig",
    "RunStore",
    "SettingsChanged",
    "Stage",
    "Task",
    "format_interval",
    "load_runs",
    "option",
    "resolved",
    "run_task",
    "settings",
    "t_interval",
    "validate",
]
