"""``ModelOptions``: the language model a command loads (``--model``, ``--dtype``, ``--device-map``), as flags."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from equinlp.errors import EquinlpError
from equinlp.harness.options import option, validate
from equinlp.harness.progress import disabled
from equinlp.models.loading import DEFAULT_MODEL, DTYPES, load_model, load_tokenizer


@dataclass
class ModelOptions:
    """The language model a command loads: ``--model``, ``--dtype``, ``--device-map``.

    ``--model meta-llama/Llama-2-7b-hf --dtype bfloat16 --device-map auto`` runs a 7B model over the GPUs.
    """

    model: str = option(
        DEFAULT_MODEL,
        "'smollm2' or 'gemma3-270m' (embedded, offline; gemma needs equinlp[gemma]) or any hub id / folder",
        reads=True,
    )
    dtype: str = option("float32", "weights' dtype ('auto': the checkpoint's own)", choices=DTYPES)
    device_map: str | None = option(None, "weights' placement, e.g. 'auto' (over every GPU) or 'cuda:0' (default: CPU)")

    def __post_init__(self) -> None:
        validate(self)
        path = Path(self.model).expanduser()
        local = path.exists() or self.model.startswith((".", "/", "~")) or self.model.count("/") > 1
        if local and not (path / "config.json").is_file():
            what = "is not a model folder (it has no config.json)" if path.exists() else "does not exist"
            raise EquinlpError(f"--model {self.model} {what}; give a folder written by save_pretrained or a hub id")

    def load(self, seq2seq: bool = False, tokenizer=None):
        """``(model, tokenizer)``: see :func:`load_model` (``tokenizer``: one :meth:`load_tokenizer` gave already);
        a model that cannot be loaded is an ``EquinlpError``."""
        return self._loading(load_model, self.model, self.dtype, seq2seq, self.device_map, tokenizer)

    def load_tokenizer(self, seq2seq: bool = False):
        """The model's tokenizer alone (fast: to check the words of a group before the model loads)."""
        return self._loading(load_tokenizer, self.model, seq2seq)

    def _loading(self, load, *args):
        try:
            with hf_progress_bars():
                return load(*args)
        except OSError as error:  # no such hub id, no network, a folder without weights or tokenizer
            reason = str(error).strip().splitlines()[0]
            raise EquinlpError(f"--model {self.model} could not be loaded: {reason}") from error


@contextmanager
def hf_progress_bars() -> Iterator[None]:
    """HF's own bars ("Loading weights") follow equinlp's rule while a model loads: on a terminal, or when asked."""
    from transformers.utils import logging as hf_logging

    hidden = disabled()
    shown = hidden is False or (hidden is None and sys.stderr.isatty())
    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if shown else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()
