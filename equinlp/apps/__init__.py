"""The applications, each a task filled into the harness: ``generate``, ``bias``, ``scan``, ``vision``, ``rl``.

An application imports the layers below it and never another application. :data:`TASKS` names every task
(the ``task`` of its envelopes) and where it lives, apart from the command line's groups: ``vision`` hosts two
tasks (CNN and CLIP runs).
"""

from __future__ import annotations

from typing import NamedTuple


class Registered(NamedTuple):
    """A task: the command group whose ``report`` reads its runs, and its ``"module:attribute"`` (a class is
    instantiated; see :func:`equinlp.harness.cli.load_task`), and its config class's, in a module that imports
    no torch, pandas or transformers (``equinlp GROUP run --help`` reads only it)."""

    group: str
    source: str
    config: str


TASKS: dict[str, Registered] = {
    "bias": Registered("bias", "equinlp.apps.bias.task:BiasTask", "equinlp.apps.bias.config:BiasConfig"),
    "scan": Registered("scan", "equinlp.apps.scan.task:ScanTask", "equinlp.apps.scan.config:ScanConfig"),
    "rl": Registered("rl", "equinlp.apps.rl.task:TASK", "equinlp.apps.rl.config:RLConfig"),
    "vision": Registered("vision", "equinlp.apps.vision.task:VisionTask", "equinlp.apps.vision.config:VisionConfig"),
    "clip": Registered("vision", "equinlp.apps.vision.clip_task:CLIPTask", "equinlp.apps.vision.config:CLIPConfig"),
}
