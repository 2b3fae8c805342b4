"""Equivariance checks users can call.

``equivariance_error(fn, in_action, out_action, x)`` is the generic check (after e3nn's): for every
group element g, the largest difference between ``fn(g·x)`` and ``g·fn(x)``, for any function and any
action (token ids, logits, images, vectors, invariant outputs). ``check_equivariance(module, x)`` is the same
check for a module that declares its actions (``in_action``, ``out_action``), as every equinlp wrapper does.

``assert_equivariant(model, action, inputs)`` is the language-model check built on it: for every group
element g, the model's logits on ``g·x`` are ``g`` applied to its logits on ``x`` (within ``atol``) and
greedy generation from ``g·x`` is ``g`` applied to the generation from ``x``, token for token. It raises
``AssertionError`` with the element, the size and place of the largest difference, and the decoded
sequences when a tokenizer is given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from equinlp.symmetry.actions import Action, TokenPermutation
from equinlp.symmetry.groups import Group

Inputs = torch.Tensor | tuple[torch.Tensor | None, ...]
Actions = Action | tuple[Action | None, ...]

# max |fn(g·x) - g·fn(x)| a wrapper that is exact up to summation order stays under (float64: e3nn's value)
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}


def _acted(action: Actions, x: Inputs, g: int) -> Inputs:
    """``g·x``; a tuple of inputs takes a tuple of actions, one each (``None`` leaves an input alone)."""
    if not isinstance(x, tuple):
        return _checked(action).act(x, g)
    if not isinstance(action, tuple) or len(action) != len(x):
        count = len(action) if isinstance(action, tuple) else "one"
        raise ValueError(f"{count} actions for {len(x)} inputs: give a tuple with one per input (None leaves one alone)")
    return tuple(t if a is None or t is None else _checked(a).act(t, g) for a, t in zip(action, x, strict=True))


def _checked(action: Action) -> Action:
    if isinstance(action, TokenPermutation):
        raise TypeError("a TokenPermutation acts on token ids and on logits alike: pass action.ids or action.logits")
    return action


def _group(*actions: Actions) -> Group:
    flat = [a for x in actions for a in (x if isinstance(x, tuple) else (x,)) if a is not None]
    if not flat or any(a.group != flat[0].group for a in flat):
        raise ValueError("the input and output actions must be of one group (build them with vocab_permutation_pair)")
    return flat[0].group


def _difference(got: Inputs, expected: Inputs) -> torch.Tensor | None:
    """``|got - expected|`` elementwise (``inf`` where either is NaN), or ``None`` when the shapes differ."""
    if isinstance(got, tuple):  # several outputs: compared one by one, shown as one flat vector
        parts = [_difference(a, b) for a, b in zip(got, expected, strict=True)]
        return None if any(p is None for p in parts) else torch.cat([p.flatten() for p in parts])
    if got.shape != expected.shape:
        return None
    diff = torch.where(got == expected, 0.0, (got.double() - expected.double()).abs())  # equal infinities: 0
    return diff.nan_to_num(nan=float("inf"))


def _largest(diff: torch.Tensor | None) -> float:
    return float("inf") if diff is None else float(diff.max()) if diff.numel() else 0.0


def equivariance_error(
    fn: Callable[..., Any], in_action: Actions, out_action: Actions, x: Inputs, *, reference: Inputs | None = None
) -> dict[int, float]:
    """For every element g, the largest ``|fn(g·x) - g·fn(x)|``: 0 for all g means exactly equivariant.

    Works for any action (``.ids`` / ``.logits`` of a :class:`TokenPermutation`, :class:`ImageTransform`,
    :class:`Invariant`, :class:`LinearAction`) and any callable, e.g. ``lambda ids: model(input_ids=ids).logits``.

    Args:
        fn: the function to check; called as ``fn(x)``, or ``fn(*x)`` for a tuple of inputs.
        in_action: the action on ``x``; for a tuple ``x``, one action per input (``None`` leaves an input,
            such as an attention mask, alone).
        out_action: the action on ``fn``'s output (a tuple for a tuple of outputs).
        x: a tensor, or a tuple of tensors.
        reference: ``fn(x)`` when the caller has it already (saves one call of an expensive ``fn``).
    Returns:
        ``{g: error}`` for every element, the identity included (it shows whether ``fn`` is deterministic:
        dropout left on gives an error there). ``inf`` where shapes differ (e.g. generations of other lengths).
    """
    group = _group(in_action, out_action)
    call = (lambda args: fn(*args)) if isinstance(x, tuple) else fn
    with torch.no_grad():
        y = call(x) if reference is None else reference
        return {g: _largest(_difference(call(_acted(in_action, x, g)), _acted(out_action, y, g))) for g in range(group.order)}


def check_equivariance(module: Any, x: Inputs | dict[str, torch.Tensor], *, reference: Any = None) -> dict[int, float]:
    """:func:`equivariance_error` of ``module`` under the actions it declares, ``module.in_action`` on its inputs
    and ``module.out_action`` on its output (escnn's ``in_type``/``out_type``, e3nn's ``irreps_in``/``irreps_out``).

    Every equinlp wrapper declares them: ``EquiModel`` (HF LMs), the vision ``InvariantClassifier``, RL's
    ``EquivariantQ``, SCAN's ``EquiSCAN`` and ``CanonicalSCAN``.

    - ``x`` a tensor: ``module(x)``, ``in_action`` acting on ``x``.
    - ``x`` a tuple (positional inputs) or a dict (keyword inputs, as an HF model takes them): the inputs that
      ``module.token_inputs`` names (``{name: "in" | "out"}``) take that action; the others (masks) are left alone.
      Without ``token_inputs``, the first input takes ``in_action``.
    - A :class:`TokenPermutation` acts on token ids going in and on logits coming out. An output with ``.logits``
      (an HF ``ModelOutput``) is compared by its logits.

    Returns:
        ``{g: error}`` as :func:`equivariance_error`.
    """
    inputs, outputs = _on_ids(module.in_action), _on_logits(module.out_action)
    if not isinstance(x, tuple | dict):
        return equivariance_error(lambda t: _logits(module(t)), inputs, outputs, x, reference=reference)
    names = tuple(x) if isinstance(x, dict) else tuple(inspect.signature(module.forward).parameters)[: len(x)]
    sides = getattr(module, "token_inputs", None) or {names[0]: "in"}
    acting = {"in": inputs, "out": _on_ids(module.out_action)}
    actions = tuple(acting.get(sides.get(name)) for name in names)

    def call(*args: torch.Tensor) -> Any:
        return _logits(module(**dict(zip(names, args, strict=True))) if isinstance(x, dict) else module(*args))

    return equivariance_error(call, actions, outputs, tuple(x.values()) if isinstance(x, dict) else x, reference=reference)


def _on_ids(action: Action | TokenPermutation) -> Action:
    return action.ids if isinstance(action, TokenPermutation) else action


def _on_logits(action: Action | TokenPermutation) -> Action:
    return action.logits if isinstance(action, TokenPermutation) else action


def _logits(output: Any) -> Any:
    return output.logits if hasattr(output, "logits") else output


def _describe(ids: torch.Tensor, tokenizer: Any) -> str:
    return repr(tokenizer.decode(ids)) if tokenizer is not None else str(ids.tolist())


def _fitted(action: TokenPermutation, layer: torch.nn.Module | None) -> TokenPermutation:
    """``action`` on the vocabulary of an embedding or LM head, which may be padded past the tokenizer's."""
    return action if layer is None else action.resized(layer.weight.shape[0])


def _layer(model: Any, getter: str) -> torch.nn.Module | None:
    get = getattr(model, getter, None)
    return get() if callable(get) else None


def _fixed_note(action: TokenPermutation, prompt: torch.Tensor) -> str:
    """For a failing row ``prompt: [T]``: the inherent limit, when some element h ≠ e has ``h·prompt == prompt``."""
    fixed = [h for h in range(1, action.group.order) if torch.equal(action.ids.act(prompt, h), prompt)]
    if not fixed:
        return ""
    return (
        f"\n  the prompt is fixed by {action.group.element_name(fixed[0])}: a word and its swap tie exactly there, "
        "and no choice is symmetric (see README Limitations)"
    )


def assert_equivariant(
    model: Any,
    action: TokenPermutation | tuple[TokenPermutation, TokenPermutation],
    inputs: dict[str, torch.Tensor],
    *,
    atol: float = 0.0,
    generate: bool = True,
    max_new_tokens: int = 8,
    tokenizer: Any = None,
    generate_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Check ``model(g·x) == g·model(x)`` for every element g of the action's group.

    The logits go through :func:`equivariance_error`, padding ignored, within ``atol``: 0 by default, since
    equinlp's wrappers are exact by construction (pass a tolerance for a model equivariant only up to
    rounding). Greedy (or seeded) generation is compared token for token. Actions are resized to the
    model's vocabulary when its embeddings are padded past the tokenizer's (GPT-2, SmolLM2).

    Args:
        model: a wrapped (or any) LM whose ``forward`` returns ``.logits`` and which has ``generate``.
        action: the action it should be equivariant under, or ``(in_action, out_action)``.
        inputs: ``input_ids`` ``[B, T]`` and optionally ``attention_mask``.
        generate_kwargs: passed to ``generate`` (default greedy); with ``do_sample=True`` each pair of
            calls is seeded alike, which checks seeded sampling sample by sample.
    Returns:
        ``{"max_logit_diff": ...}``.
    Raises:
        AssertionError naming the element and showing the difference.
    """
    __tracebackhide__ = True
    in_action, out_action = action if isinstance(action, tuple) else (action, action)
    in_action = _fitted(in_action, _layer(model, "get_input_embeddings"))
    out_action = _fitted(out_action, _layer(model, "get_output_embeddings"))
    group = in_action.group
    seq2seq = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    kwargs = {"do_sample": False, "max_new_tokens": max_new_tokens, **(generate_kwargs or {})}
    prompt = (inputs["input_ids"], inputs.get("attention_mask"))

    def keywords(ids: torch.Tensor, mask: torch.Tensor | None, **more: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_ids": ids, **({} if mask is None else {"attention_mask": mask}), **more}

    def run_generate(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        torch.manual_seed(0)
        return model.generate(**keywords(ids, mask), **kwargs)

    generated = run_generate(*prompt) if generate else None
    if seq2seq:  # decoder inputs: the generated targets (or one start token)
        start = model.config.decoder_start_token_id
        targets = generated if generated is not None else torch.full((prompt[0].shape[0], 1), start)
        x, ids_actions = (*prompt, targets), (in_action.ids, None, out_action.ids)

        def logits(ids: torch.Tensor, mask: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
            return model(**keywords(ids, mask, decoder_input_ids=targets)).logits

    else:  # the prompt plus the continuation, so swapped words appear in the outputs too
        ids, mask = prompt if generated is None else (generated, _extended(prompt[1], generated))
        x, ids_actions = (ids, mask), (in_action.ids, None)

        def logits(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            out = model(**keywords(ids, mask)).logits
            return out if mask is None else out.masked_fill(~mask.bool()[..., None], 0.0)  # padding is not compared

    errors = equivariance_error(logits, ids_actions, out_action.logits, x)
    for g, error in errors.items():
        if error > atol:
            diff = _difference(logits(*_acted(ids_actions, x, g)), out_action.logits.act(logits(*x), g))
            b, t, v = (int(i) for i in torch.nonzero(diff == diff.max())[0])
            raise AssertionError(
                f"not equivariant under {_element(group, g)}: logits differ by {error:.3g} > {atol:g} at batch {b}, "
                f"position {t}, token {v}; input {_describe(_acted(ids_actions, x, g)[0][b], tokenizer)}"
            )
    if generated is not None:
        errors_ids = equivariance_error(run_generate, (in_action.ids, None), out_action.ids, prompt, reference=generated)
        for g, error in errors_ids.items():
            if error:
                got, expected = run_generate(*_acted((in_action.ids, None), prompt, g)), out_action.ids.act(generated, g)
                b = next(i for i in range(len(got)) if got.shape != expected.shape or not torch.equal(got[i], expected[i]))
                raise AssertionError(
                    f"generation not equivariant under {_element(group, g)}, row {b}:\n"
                    f"  generate(g·x) = {_describe(got[b], tokenizer)}\n  g·generate(x) = {_describe(expected[b], tokenizer)}"
                    + _fixed_note(in_action, prompt[0][b])
                )
    return {"max_logit_diff": max(errors.values())}


def _element(group: Group, g: int) -> str:
    if g == 0:
        return f"the identity of {group.name} (the model is not deterministic: dropout on? call .eval())"
    return f"{group.element_name(g)} (element {g} of {group.name})"


def _extended(mask: torch.Tensor | None, generated: torch.Tensor) -> torch.Tensor | None:
    """The prompt's attention mask ``[B, T]`` extended with ones over the continuation: ``[B, T + new]``."""
    return None if mask is None else torch.cat([mask, mask.new_ones(mask.shape[0], generated.shape[1] - mask.shape[1])], 1)
