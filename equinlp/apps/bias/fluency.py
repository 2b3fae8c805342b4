"""Fluency cost: perplexity of each continuation under the base model, given its prompt."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from equinlp.harness.progress import progress


@torch.no_grad()
def perplexities(
    model, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], batch_size: int = 32, pad_id: int = 0
) -> list[float]:
    """``exp(mean NLL)`` of each continuation's tokens given its prompt; ``nan`` for an empty continuation.

    Sequences are right-padded (positions then need no care); the prompt tokens are not scored.
    """
    device = next(model.parameters()).device
    results: list[float] = []
    for start in progress(range(0, len(prompts), batch_size), desc="perplexity", leave=False):
        chunk = slice(start, start + batch_size)
        rows = [list(p) + list(c) for p, c in zip(prompts[chunk], continuations[chunk], strict=True)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        scored = torch.zeros_like(ids, dtype=torch.bool)
        for i, (row, prompt) in enumerate(zip(rows, prompts[chunk], strict=True)):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
            scored[i, len(prompt) : len(row)] = True
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:].to(device), reduction="none").cpu()
        target = scored[:, 1:]
        counts = target.sum(1)
        mean = (nll * target).sum(1) / counts.clamp(min=1)
        results += [float(torch.exp(m)) if n else float("nan") for m, n in zip(mean, counts, strict=True)]
    return results
