"""Training and evaluation loops for SCAN, on accelerate (one process here; ``accelerate launch`` for more).

Batches are a function of the step (a seeded permutation per epoch), so a resumed run sees exactly the
batches it would have seen. A checkpoint (accelerate state + ``progress.json``) is written under a
temporary name and renamed, every ``save_every`` steps, at the end, and on Ctrl-C before re-raising.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from equinlp.scan.data import Encoded
from equinlp.scan.equi import EquiSCAN, exact_match


@dataclass
class TrainConfig:
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 5.0
    seed: int = 0
    save_every: int = 500


def batch_indices(step: int, size: int, config: TrainConfig) -> torch.Tensor:
    per_epoch = max(size // config.batch_size, 1)
    epoch, offset = divmod(step, per_epoch)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
    return order[offset * config.batch_size : (offset + 1) * config.batch_size]


def _save(accelerator: Accelerator, checkpoint: Path, step: int) -> None:
    accelerator.wait_for_everyone()
    tmp = checkpoint.with_name(f".{checkpoint.name}.tmp")
    # pickled, not safetensors: on a GPU cuDNN flattens an RNN's weights into one buffer, and safetensors
    # would drop all but one of the tensors that share it ("Removed shared tensor ..."), breaking --resume
    accelerator.save_state(str(tmp), safe_serialization=False)
    if accelerator.is_main_process:
        (tmp / "progress.json").write_text(json.dumps({"step": step}))
        shutil.rmtree(checkpoint, ignore_errors=True)
        tmp.rename(checkpoint)


def train(
    module: EquiSCAN,
    parameters: list[torch.nn.Parameter],
    data: Encoded,
    config: TrainConfig,
    checkpoint: Path | None = None,
    description: str = "train",
) -> list[float]:
    """Minimise the NLL of ``module`` (the symmetrized model) over ``parameters``; returns the losses.

    With ``checkpoint`` set, resumes from it if it exists and writes it as it goes.
    """
    torch.manual_seed(config.seed)
    accelerator = Accelerator()
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    module, optimizer = accelerator.prepare(module, optimizer)
    start = 0
    if checkpoint is not None and (checkpoint / "progress.json").exists():
        accelerator.load_state(str(checkpoint))
        start = json.loads((checkpoint / "progress.json").read_text())["step"]
    losses = []
    module.train()
    quiet = None if accelerator.is_local_main_process else True  # None: tqdm shows bars on terminals only
    bar = tqdm(range(start, config.steps), desc=description, disable=quiet, leave=False)
    step = start
    try:
        for step in bar:
            rows = batch_indices(step, len(data), config)[accelerator.process_index :: accelerator.num_processes]
            batch = data[rows].to(accelerator.device)
            logp = module(batch.src, batch.mask, batch.tgt_in)
            loss = torch.nn.functional.nll_loss(logp.reshape(-1, logp.shape[-1]), batch.tgt_out.reshape(-1), ignore_index=-100)
            optimizer.zero_grad()
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(parameters, config.clip)
            optimizer.step()
            losses.append(loss.item())
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if checkpoint is not None and (step + 1) % config.save_every == 0:
                _save(accelerator, checkpoint, step + 1)
    except KeyboardInterrupt:
        if checkpoint is not None:
            _save(accelerator, checkpoint, step)
            print(f"\ninterrupted: checkpoint at step {step} in {checkpoint}; rerun with --resume to continue")
        raise
    if checkpoint is not None:
        _save(accelerator, checkpoint, config.steps)
    module.eval()
    return losses


@torch.no_grad()
def evaluate(module: EquiSCAN, data: Encoded, batch_size: int = 1024, description: str = "evaluate") -> float:
    """Exact-match accuracy of batched greedy decoding over ``data``."""
    module.eval()
    device = next(module.parameters()).device
    correct = 0
    for start in tqdm(range(0, len(data), batch_size), desc=description, leave=False):
        batch = data[start : start + batch_size].to(device)
        correct += int(exact_match(module.decode(batch.src, batch.mask), batch.tgt_out).sum())
    return correct / len(data)
