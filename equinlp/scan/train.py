"""Training and evaluation loops for SCAN: one cell trains in one process (no gradient sync between processes).

Batches are a function of the step (a seeded permutation per epoch), so a resumed run sees exactly the
batches it would have seen. A checkpoint (:func:`~equinlp.harness.state.save_state`: safetensors + JSON, no
pickle) holds the module, the optimizer, the losses so far and torch's RNG states *at a step boundary*; it is
written every ``save_every`` steps, at the end, and on Ctrl-C. A Ctrl-C in the middle of a step saves the state
from before that step (its dropout draws are replayed on resume), so a resumed run equals an uninterrupted one
bit for bit; one inside the optimizer's update keeps the last periodic checkpoint instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from equinlp.harness.progress import progress
from equinlp.harness.state import load_state, rng_state, save_state, set_rng_state
from equinlp.scan.data import Encoded
from equinlp.scan.equi import EquiSCAN, exact_match

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 5.0
    seed: int = 0
    save_every: int = 500


def device() -> torch.device:
    """This process's device: its own GPU under ``accelerate launch``/``torchrun``, else cuda:0 or the CPU."""
    from equinlp.harness import distributed

    return distributed.processes().device


def batch_indices(step: int, size: int, config: TrainConfig) -> torch.Tensor:
    """The rows of ``step``'s batch ``[batch_size]``: epoch ``e`` visits the data in a permutation seeded by (seed, e)."""
    per_epoch = max(size // config.batch_size, 1)
    epoch, offset = divmod(step, per_epoch)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
    return order[offset * config.batch_size : (offset + 1) * config.batch_size]


def step_loss(module: EquiSCAN, batch: Encoded) -> torch.Tensor:
    """Mean NLL of the targets under the symmetrized model (teacher forcing)."""
    logp = module(batch.src, batch.mask, batch.tgt_in)
    return torch.nn.functional.nll_loss(logp.reshape(-1, logp.shape[-1]), batch.tgt_out.reshape(-1), ignore_index=-100)


def train(
    module: EquiSCAN,
    parameters: list[torch.nn.Parameter],
    data: Encoded,
    config: TrainConfig,
    checkpoint: Path | None = None,
    description: str = "train",
) -> list[float]:
    """Minimise the NLL of ``module`` (the symmetrized model, on its device) over ``parameters``; returns the losses.

    With ``checkpoint`` set, resumes from it if it exists and writes it as it goes (see the module docstring).
    """
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    losses: list[float] = []
    if checkpoint is not None and checkpoint.exists():
        state = load_state(checkpoint)
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        losses = state["losses"]
    at = _Boundary(len(losses), rng_state(), losses)
    place = next(module.parameters()).device
    module.train()
    bar = progress(total=config.steps, initial=at.step, desc=description, leave=False)
    try:
        while at.step < config.steps:
            batch = data[batch_indices(at.step, len(data), config)].to(place)
            loss = step_loss(module, batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.clip)
            at.updating = True  # from here to the next boundary the weights are neither before nor after
            optimizer.step()
            at = _Boundary(at.step + 1, rng_state(), [*at.losses, loss.item()])
            bar.update()
            if checkpoint is not None and at.step % config.save_every == 0 and at.step < config.steps:
                _save(checkpoint, module, optimizer, at)
    except KeyboardInterrupt:  # the harness says what to do; here the state before the interrupted step is kept
        if checkpoint is not None and not at.updating:
            _save(checkpoint, module, optimizer, at)
            log.debug("%s: checkpoint at step %d in %s", description, at.step, checkpoint)
        raise
    finally:
        bar.close()
    if checkpoint is not None:
        _save(checkpoint, module, optimizer, at)  # a finished training resumes instantly
    module.eval()
    return at.losses


@dataclass
class _Boundary:
    """The state between two steps: steps done, torch's RNG then, the losses; ``updating`` while a step writes weights."""

    step: int
    rng: dict
    losses: list[float]
    updating: bool = False


def _save(checkpoint: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, at: _Boundary) -> None:
    state = {"model": module.state_dict(), "optimizer": optimizer.state_dict(), "rng": at.rng, "losses": at.losses}
    save_state(checkpoint, state)


@torch.no_grad()
def evaluate(module: EquiSCAN, data: Encoded, batch_size: int = 1024, description: str = "evaluate") -> float:
    """Exact-match accuracy of batched greedy decoding over ``data``."""
    module.eval()
    place = next(module.parameters()).device
    correct = 0
    for start in progress(range(0, len(data), batch_size), desc=description, leave=False):
        batch = data[start : start + batch_size].to(place)
        correct += int(exact_match(module.decode(batch.src, batch.mask), batch.tgt_out).sum())
    return correct / len(data)
