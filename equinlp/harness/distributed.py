"""Which process am I: accelerate's ``PartialState``, read the same way by every runner.

One process (``equinlp ...``) is rank 0 of 1. Under ``accelerate launch --num_processes N`` (GPUs) or
``ACCELERATE_USE_CPU=true torchrun --nproc_per_node N`` (CPU) each process gets its share of a plan with
:func:`my_share`; work is split by position (round robin), so every process computes the same plan and no
item is done twice, and the main process merges and writes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from typing import TypeVar

T = TypeVar("T")


def _wants_cpu() -> bool:
    import torch

    return os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()


@cache
def processes():
    """The (cached) ``accelerate.PartialState``; gloo on CPU, nccl on GPUs."""
    from accelerate import PartialState

    return PartialState(cpu=_wants_cpu())


def launched() -> bool:
    """Whether this process was started by a launcher (torchrun, accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return processes().process_index if launched() else 0


def world_size() -> int:
    return processes().num_processes if launched() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait until every process arrives (nothing to wait for in one process)."""
    if launched():
        processes().wait_for_everyone()


def my_share(items: Sequence[T]) -> list[T]:
    """This process's items: ``items[rank::world_size]`` (every item goes to exactly one process)."""
    return list(items[rank() :: world_size()])
