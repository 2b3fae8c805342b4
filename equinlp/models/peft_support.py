"""PEFT adapters under an equinlp wrapper: apply PEFT first, then wrap.

    peft_model = get_peft_model(base, LoraConfig(...))   # adapters trainable, base frozen
    m = eq.lambda_equitune(peft_model, action)           # or equitune / equizero

A ``PeftModel`` runs its transformers model two ways: ``forward`` through its tuner, ``generate`` by
calling the transformers model's own ``generate``, which never enters the ``PeftModel``. So the folding
hooks go on the innermost transformers model (:func:`hook_target`): both paths run through it.

Any model of token ids is made equivariant by the wrapper, adapters included, as long as the adapter
leaves the token ids and the batch to the wrapper. Adapters that inject their own embeddings or cache
rows of batch ``B`` (prompt learning, adaption prompts, activated LoRA) are refused by
:func:`refuse_unsupported_peft`, and so are adapter layers outside a ``PeftModel``, e.g. injected into the
wrapper's base (``get_peft_model(eq.equitune(base, act), cfg)``, ``inject_adapter_in_model``): equinlp could not save them.

``save_pretrained`` writes the adapters in PEFT's own format to ``<dir>/adapter`` (:func:`save_adapters`)
and ``eq.from_pretrained(base, dir)`` puts them back on the plain base model (:func:`load_adapters`).
peft is imported only when a model could be a PEFT model (peft already imported), or a saved folder holds adapters.
"""

from __future__ import annotations

import os
import shutil
import sys
from operator import attrgetter
from pathlib import Path
from types import ModuleType

from torch import nn

from equinlp.files import write_folder_atomic

ADAPTER_DIR = "adapter"
NATURAL_ORDER = "apply PEFT first, then wrap: eq.equitune(get_peft_model(base, config), action)"


def _peft() -> ModuleType | None:
    """The peft module if it is imported (a model can only be a PEFT model then), else None."""
    return sys.modules.get("peft")


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (LoRA and the other tuners, wrapped by ``get_peft_model``)."""
    peft = _peft()
    return peft is not None and isinstance(model, peft.PeftModel)


def _adapter_layers(model: nn.Module) -> list[nn.Module]:
    """PEFT's injected layers in ``model`` (LoRA layers, modules-to-save copies, trainable tokens)."""
    if _peft() is None:
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer | AuxiliaryTrainingWrapper)]


def refuse_unsupported_peft(base: nn.Module) -> None:
    """Raise ``ValueError`` for PEFT set-ups the wrapper cannot make equivariant or cannot save.

    Raises:
        ValueError: for a ``PeftMixedModel``; for an active prompt-learning, adaption-prompt or activated-LoRA
            adapter (they pass embeddings, caches or offsets of batch ``B`` past the wrapper's folding); for
            adapter layers injected into a model that is not a ``PeftModel`` (``save_pretrained`` would drop them).
    """
    peft = _peft()
    if peft is None:
        return
    if isinstance(base, peft.PeftMixedModel):
        raise ValueError(f"PeftMixedModel is not supported (PEFT cannot save it); {NATURAL_ORDER}")
    if not is_peft_model(base):
        if _adapter_layers(base):
            raise ValueError(
                f"PEFT adapter layers were injected into the wrapped model ({type(base).__name__}), e.g. by get_peft_model"
                f"(eq.equitune(...)) or inject_adapter_in_model, and save_pretrained would drop them; {NATURAL_ORDER}"
            )
        return
    config = base.active_peft_config
    if config.is_prompt_learning or config.is_adaption_prompt:
        raise ValueError(
            f"PEFT adapter {base.active_adapter!r} ({config.peft_type}) feeds its own embeddings or cache rows past "
            "the wrapper, which acts on token ids only; use a weight adapter such as LoRA"
        )
    if getattr(config, "alora_invocation_tokens", None) is not None:
        raise ValueError(
            f"activated LoRA (alora_invocation_tokens on adapter {base.active_adapter!r}) locates offsets per row "
            "before the wrapper folds the group into the batch; use plain LoRA"
        )


def hook_target(base: nn.Module) -> nn.Module:
    """The module whose forward the wrapper's folding hooks wrap: ``base``, or the transformers model in a PeftModel.

    ``PeftModel.forward`` reaches that model through its tuner and ``PeftModel.generate`` calls its
    ``generate``, so hooks there see every step of both. Refuses what :func:`refuse_unsupported_peft` refuses.
    """
    refuse_unsupported_peft(base)
    return base.get_base_model() if is_peft_model(base) else base


def base_parameters(base: nn.Module) -> list[nn.Parameter]:
    """The base model's own parameters, without PEFT adapter weights (what "the base was fine-tuned" looks at)."""
    layers = _adapter_layers(base) if is_peft_model(base) else []
    adapter = set()
    for layer in layers:
        for name in layer.adapter_layer_names:
            try:
                part = attrgetter(name)(layer)
            except AttributeError:
                continue
            adapter.update(id(p) for p in ([part] if isinstance(part, nn.Parameter) else part.parameters()))
    return [p for p in base.parameters() if id(p) not in adapter]


def save_adapters(base: nn.Module, directory: str | os.PathLike, base_fine_tuned: bool = False) -> None:
    """Write a PeftModel's adapters to ``<directory>/adapter`` in PEFT's format (nothing for other models).

    Written to a temporary folder and renamed, so an interrupted save leaves the old one.

    Raises:
        ValueError: if ``base_fine_tuned`` (its own weights changed, not only the adapters): a PeftModel
            saves adapters only, so those changes would be lost.
    """
    refuse_unsupported_peft(base)
    directory = Path(directory)
    if not is_peft_model(base):
        shutil.rmtree(directory / ADAPTER_DIR, ignore_errors=True)  # a stale one would be loaded back
        return
    if base_fine_tuned:
        raise ValueError(
            "the base weights under the PEFT adapters changed, and a PeftModel saves its adapters only; freeze them "
            "(get_peft_model does) or merge_and_unload() and wrap the merged model"
        )
    write_folder_atomic(Path(directory) / ADAPTER_DIR, base.save_pretrained)


def load_adapters(base: nn.Module, directory: str | os.PathLike, is_trainable: bool = False) -> nn.Module:
    """Put the adapters saved in ``<directory>/adapter`` back on ``base``; ``base`` itself if there are none.

    Args:
        base: the plain base model (not a PeftModel).
        directory: a folder written by the wrapper's ``save_pretrained``.
        is_trainable: load the adapters trainable (to go on training), rather than PEFT's default, frozen.
    Returns:
        A ``PeftModel`` around ``base``, or ``base``.
    """
    folder = Path(directory) / ADAPTER_DIR
    if not folder.is_dir():
        return base
    if is_peft_model(base):
        raise ValueError(f"{folder} holds the adapters to load: pass the plain base model, not a PeftModel")
    from peft import PeftModel

    return PeftModel.from_pretrained(base, folder, is_trainable=is_trainable)
