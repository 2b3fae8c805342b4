"""The paper's names for the three methods: ``equitune``, ``equizero`` and ``lambda_equitune``.

Each wraps the model with :func:`~equinlp.models.wrap` by its registered method name (the registry builds the
config and the aggregator): one formula, ``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)``, three weightings.
"""

from __future__ import annotations

from torch import nn

from equinlp.methods.aggregate import Proxy
from equinlp.models import EquiModel, wrap


def equitune(model: nn.Module, action, *, sampler: str = "equivariant", general_tokens=None) -> EquiModel:
    """equitune (group averaging): ``M_G(x) = (1/|G|) Σ_g g⁻¹ M(g x)``.

    Args:
        model: an ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` (left untouched: ``.unwrap()``).
        action: a ``TokenPermutation`` (e.g. from :func:`vocab_permutation`), or ``(in_action, out_action)``.
        sampler: ``equivariant`` (seeded sampling commutes with the group) or ``hf``.
        general_tokens: token ids (e.g. from :func:`general_token_ids`) for the relaxed variant (R-EquiGPT2):
            those tokens take the identity copy's logits. Words the group moves are refused.

    Returns the wrapper in eval mode (call ``.train()`` to train).

    Examples:

    ```python
    >>> import equinlp as eq
    >>> from equinlp.testing import tiny_causal_lm, word_tokenizer
    >>> tok = word_tokenizer()
    >>> m = eq.equitune(tiny_causal_lm(len(tok)), eq.vocab_permutation(tok, [("man", "woman")]))
    >>> m.equi_config.method, m.training
    ('equitune', False)
    ```
    """
    return wrap(model, action, method="equitune", sampler=sampler, relaxed_tokens=_ids(general_tokens))


def equizero(
    model: nn.Module,
    action,
    proxy: str | Proxy = "entropy",
    *,
    straight_through: bool = True,
    sampler: str = "equivariant",
    general_tokens=None,
) -> EquiModel:
    """equizero: ``g*⁻¹ M(g* x)`` with ``g* = argmin_g proxy(g⁻¹ M(g x))``; straight-through when training.

    Args:
        model, action, sampler, general_tokens: as for :func:`equitune`.
        proxy: ``entropy``, ``max_logit``, ``max_prob`` or a callable ``[G, B, ..., V] -> [G, B, ...]``
            (a custom callable must be passed again to :func:`from_pretrained`).
        straight_through: when training, the value is the selected copy's and the gradient the mean's.

    Examples:

    ```python
    >>> import equinlp as eq
    >>> from equinlp.testing import tiny_causal_lm, word_tokenizer
    >>> tok = word_tokenizer()
    >>> m = eq.equizero(tiny_causal_lm(len(tok)), eq.vocab_permutation(tok, [("he", "she")]), proxy="max_prob")
    >>> m.equi_config.proxy, m.equi_config.straight_through
    ('max_prob', True)
    ```
    """
    return wrap(
        model, action, method="equizero", proxy=proxy, straight_through=straight_through, sampler=sampler,
        relaxed_tokens=_ids(general_tokens),
    )  # fmt: skip


def lambda_equitune(
    model: nn.Module,
    action,
    weight_net: nn.Module | None = None,
    *,
    hidden: int = 100,
    dropout: float = 0.5,
    sampler: str = "equivariant",
    general_tokens=None,
) -> EquiModel:
    """λ-equitune: ``Σ_g λ(g x) g⁻¹ M(g x) / Σ_g λ(g x)``, λ a small positive network on features of ``g x``.

    Args:
        model, action, sampler, general_tokens: as for :func:`equitune`.
        weight_net: a custom λ-net ``[G, B, T, D] -> [G, B, T]`` (pass it again to :func:`from_pretrained`).
        hidden, dropout: the default λ-net's (the paper's MLP on the LM head's input; it starts uniform,
            i.e. as equitune). Dropout acts only in training mode.

    Examples:

    ```python
    >>> import equinlp as eq
    >>> from equinlp.testing import tiny_causal_lm, word_tokenizer
    >>> tok = word_tokenizer()
    >>> m = eq.lambda_equitune(tiny_causal_lm(len(tok)), eq.vocab_permutation(tok, [("man", "woman")]), hidden=32)
    >>> m.equi_config.weight_net_hidden, m.num_parameters() > m.unwrap().num_parameters()
    (32, True)
    ```
    """
    return wrap(
        model, action, method="lambda", weight_net=weight_net, weight_net_hidden=hidden, weight_net_dropout=dropout,
        sampler=sampler, relaxed_tokens=_ids(general_tokens),
    )  # fmt: skip


def _ids(general_tokens) -> list[int]:
    return [] if general_tokens is None else [int(i) for i in general_tokens]
