"""Register the wrappers with HF's Auto classes, so that a saved folder loads through HF tooling.

Once a family's module is imported (the first use of any wrapper, e.g. ``eq.equitune`` or a name of
``equinlp.models``, imports them all; a bare ``import equinlp`` loads nothing, so the command line starts at once):

- ``AutoConfig.from_pretrained(DIR)`` is an :class:`~equinlp.models.config.EquiConfig` (``model_type="equinlp"``);
- ``AutoModelForCausalLM.from_pretrained(DIR)`` / ``AutoModelForSeq2SeqLM.from_pretrained(DIR)`` return the
  wrapper, so ``pipeline("text-generation", model=DIR, tokenizer=...)`` and lm-eval's ``HFLM(pretrained=DIR)``
  generate equivariantly;
- ``"equinlp" -> "EquiCausalLM"`` joins ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``, the table in which HF looks up
  which classes are causal LMs. The Trainer reads it to shift labels by one token when it computes a
  label-smoothed loss (``label_smoothing_factor > 0``), and the text-generation pipeline to accept the model.
  The seq2seq table is left alone: lm-eval reads it first to decide that a model is seq2seq, which would
  misclassify causal folders, and seq2seq losses do not shift.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from equinlp.models.config import EquiConfig

AutoConfig.register(EquiConfig.model_type, EquiConfig, exist_ok=True)


def register_causal(wrapper: type[PreTrainedModel]) -> None:
    """``AutoModelForCausalLM`` loads an equinlp folder as ``wrapper``, and HF's causal-LM table names it."""
    AutoModelForCausalLM.register(EquiConfig, wrapper, exist_ok=True)
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault(EquiConfig.model_type, wrapper.__name__)


def register_seq2seq(wrapper: type[PreTrainedModel]) -> None:
    """``AutoModelForSeq2SeqLM`` loads an equinlp folder as ``wrapper``."""
    AutoModelForSeq2SeqLM.register(EquiConfig, wrapper, exist_ok=True)
