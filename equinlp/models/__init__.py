"""The wrappers: HF causal and seq2seq LMs made equivariant, their config, saving, generation and loading.

Model families are a plain dict from family name to wrapper class (``FAMILIES``), filled as each family's
module defines its class; adding one is one file. The public names below resolve on first use (PEP 562), so
``equinlp.models.loading`` or ``equinlp.models.tokenizers`` can be imported without the wrapper stack; the first
use of a name imports every family, which registers them with HF's Auto classes.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = (
    "FAMILIES",
    "EquiCausalLM",
    "EquiModel",
    "EquiSeq2SeqLM",
    "family_of",
    "feature_size",
    "from_pretrained",
    "wrap",
    "wrap_method",
)

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("equinlp.models.wrapping"), name)
    globals()[name] = value
    return value
