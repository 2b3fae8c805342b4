"""Training and evaluation loops for SCAN: one cell trains in one process (no gradient sync between processes).

Batches are a function of the step (a seeded permutation per epoch), so a resumed run sees exactly the
batches it would have seen. A checkpoint (:class:`~equinlp.harness.protocol.Checkpointer`: safetensors + JSON,
no pickle) holds the module, the optimizer, the losses so far and torch's RNG states *at a step boundary*; it is
written every ``save_every`` steps, at the end, and on Ctrl-C. A Ctrl-C in the middle of a step saves the state
from before that step (its dropout draws are replayed on resume), so a resumed run equals an uninterrupted one
bit for bit; one inside the optimizer's update keeps the last periodic checkpoint instead.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from equinlp.apps.scan.data import Encoded
from equinlp.apps.scan.equi import EquiSCAN, exact_match
from equinlp.harness.progress import progress
from equinlp.harness.protocol import Checkpointer
from equinlp.harness.state import rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 5.0
    seed: int = 0
    save_every: int = 500
    schedule: str = "constant"
    validate_every: int = 250  # with a validation set: exact match on it every N steps and at the end


@dataclass
class Trained:
    """What :func:`train` reports: the loss of every step and, with a validation set, the kept (best) step and its
    exact match there."""

    losses: list[float]
    best_step: int | None = None
    validation: float | None = None


def learning_rate(step: int, config: TrainConfig) -> float:
    """The rate of update ``step`` (0-based): ``lr`` throughout, or decaying to 0 linearly or along a half cosine.

    A function of the step alone, so a resumed run uses the very same rates.
    """
    done = step / config.steps
    if config.schedule == "linear":
        return config.lr * (1 - done)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * done))
    return config.lr


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


def hold_out(data: Encoded, fraction: float) -> tuple[Encoded, Encoded | None]:
    """``(training rows, validation rows)``: a fixed ``fraction`` of ``data`` (one seeded permutation), or ``None``."""
    count = round(len(data) * fraction)
    if count == 0:
        return data, None
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    return data[order[count:].sort().values], data[order[:count].sort().values]


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
    validation: Encoded | None = None,
) -> Trained:
    """Minimise the NLL of ``module`` (the symmetrized model, on its device) over ``parameters``.

    With ``checkpoint`` set, resumes from it if it exists and writes it as it goes (see the module docstring).
    With ``validation``, greedy exact match on it is measured every ``validate_every`` steps and at the end, and
    ``module`` ends with the weights of the best one (the earliest on a tie); that best is part of the checkpoint.
    """
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    checkpointer = Checkpointer(checkpoint, model=module, optimizer=optimizer)
    state = checkpointer.resume()
    at = _Boundary(0, {}, []) if state is None else _Boundary(len(state["losses"]), {}, state["losses"], state.get("best"))
    at.rng = rng_state()
    place = next(module.parameters()).device
    module.train()
    bar = progress(total=config.steps, initial=at.step, desc=description, leave=False)
    try:
        while True:
            if validation is not None:
                _validate(module, validation, config, at)
            if at.step >= config.steps:
                break
            batch = data[batch_indices(at.step, len(data), config)].to(place)
            loss = step_loss(module, batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.clip)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(at.step, config)
            at.updating = True  # from here to the next boundary the weights are neither before nor after
            optimizer.step()
            at = _Boundary(at.step + 1, rng_state(), [*at.losses, loss.item()], at.best)
            bar.update()
            if at.step % config.save_every == 0 and at.step < config.steps:
                _save(checkpointer, at)
    except KeyboardInterrupt:  # the harness says what to do; here the state before the interrupted step is kept
        if not at.updating:
            _save(checkpointer, at)
            log.debug("%s: checkpoint at step %d in %s", description, at.step, checkpoint)
        raise
    finally:
        bar.close()
    _save(checkpointer, at)  # a finished training resumes instantly
    module.eval()
    if at.best is None:
        return Trained(at.losses)
    module.load_state_dict(at.best["model"])
    return Trained(at.losses, at.best["step"], at.best["score"])


def _validate(module: EquiSCAN, validation: Encoded, config: TrainConfig, at: _Boundary) -> None:
    """At a validation step not measured yet, measure it and keep the weights if they beat the best so far."""
    due = at.step > 0 and (at.step % config.validate_every == 0 or at.step == config.steps)
    if not due or (at.best is not None and at.best["validated"] >= at.step):
        return
    score = evaluate(module, validation, description=f"validate step {at.step}")
    module.train()
    set_rng_state(at.rng)  # greedy decoding draws nothing, but the boundary's RNG is the one to continue from
    if at.best is None or score > at.best["score"]:
        weights = {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}
        at.best = {"model": weights, "score": score, "step": at.step, "validated": at.step}
    at.best["validated"] = at.step
    log.info("validation exact match %.4f at step %d (best %.4f at %d)", score, at.step, at.best["score"], at.best["step"])


@dataclass
class _Boundary:
    """The state between two steps: steps done, torch's RNG then, the losses, the best validated weights so far
    (``{"model", "score", "step", "validated"}``, the last the latest step measured); ``updating`` while a step
    writes weights."""

    step: int
    rng: dict
    losses: list[float]
    best: dict | None = None
    updating: bool = False


def _save(checkpointer: Checkpointer, at: _Boundary) -> None:
    """The boundary ``at``: the weights, the optimizer, torch's RNG then, the losses and the best validated weights."""
    checkpointer.save(at.rng, losses=at.losses, **({} if at.best is None else {"best": at.best}))


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
