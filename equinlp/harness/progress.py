"""Progress bars for every loop that can run longer than a few seconds: counts, rate and ETA (tqdm).

Shown on a terminal, on the main process only (under torchrun every process would draw its own). Off a
terminal (a log file, CI) they stay quiet unless asked: ``equinlp --progress ...`` or ``EQUINLP_PROGRESS=1``;
``EQUINLP_PROGRESS=0`` hides them everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from equinlp.harness import distributed

if TYPE_CHECKING:
    from tqdm import tqdm

ENV = "EQUINLP_PROGRESS"


def disabled() -> bool | None:
    """tqdm's ``disable``: True (hidden), False (shown even off a terminal) or None (shown on a terminal only)."""
    if not distributed.is_main():
        return True
    wanted = os.environ.get(ENV, "").strip().lower()
    if wanted in ("1", "true", "yes", "always"):
        return False
    if wanted in ("0", "false", "no", "never"):
        return True
    return None


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` shown as the module docstring says (``desc``, ``total``, ``unit``, ``leave`` as tqdm's)."""
    from tqdm.auto import tqdm  # here, so that the command line can read ENV without loading tqdm

    return tqdm(iterable, disable=disabled(), dynamic_ncols=True, **kwargs)


def show_always() -> None:
    """``--progress``: bars even off a terminal (this process and the ones it starts)."""
    os.environ[ENV] = "1"
