"""One SCAN experiment: pre-train (or reuse) the base model, then evaluate each method zero-shot and fine-tuned.

Per seed:
1. The base seq2seq is trained from scratch on the split's train set, or loaded from the cache
   (``$EQUINLP_CACHE/scan/...``; the training checkpoint there makes an interrupted pre-training resumable).
2. For each method: zero-shot (λ-equitune first trains its λ-net alone, base frozen, as the paper does),
   then fine-tuned: every parameter trained through the symmetrized model for ``finetune_steps``.
3. Each (method, stage) writes one JSON to ``out``; an existing result is kept (so ``--resume`` skips it).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

from equinlp.embedded import cache_dir
from equinlp.files import write_atomic, write_text_atomic
from equinlp.scan.data import DEFAULT_GROUP, encode, scan_actions, tokenizers
from equinlp.scan.equi import METHODS, build
from equinlp.scan.hf import HFSeq2Seq, joint_tokenizer, tiny_t5
from equinlp.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.scan.splits import scan_split
from equinlp.scan.train import TrainConfig, evaluate, train

STAGES = ("zero-shot", "fine-tuned")


@dataclass
class RunConfig:
    split: str = "addprim_jump"
    cell: str = "gru"
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0,)
    group: str = ""  # default: verb for add-jump, direction for around-right
    pretrain_steps: int = 3000
    finetune_steps: int = 500
    lambda_steps: int = 300
    batch_size: int = 128
    lr: float = 3e-3
    finetune_lr: float = 3e-4
    proxy: str = "max_prob"
    test_limit: int | None = None
    out: str = "results/scan"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.group = self.group or DEFAULT_GROUP.get(self.split, "verb")
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")


def _write_json(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def scan_tokenizers(cell: str):
    """``(in_tokenizer, out_tokenizer)``; T5 shares one joint vocabulary between its two sides."""
    if cell == "t5":
        joint = joint_tokenizer()
        return joint, joint
    return tokenizers()


def new_model(cell: str, in_tok, out_tok) -> torch.nn.Module:
    if cell == "t5":
        return tiny_t5(len(in_tok))
    return AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok), cell=cell))


def make_module(config: RunConfig, method: str, model: torch.nn.Module, actions) -> torch.nn.Module:
    """The symmetrized model with the SCAN loop interface (``forward`` log-probs, ``decode``)."""
    if config.cell == "t5":
        return HFSeq2Seq(model, actions, method, config.proxy)
    return build(method, model, actions, proxy=config.proxy)


def pretrained_base(config: RunConfig, seed: int, train_data, in_tok, out_tok) -> torch.nn.Module:
    """The base model for (split, cell, seed, schedule), trained once and cached."""
    name = f"{config.cell}_steps{config.pretrain_steps}_bs{config.batch_size}_lr{config.lr:g}_seed{seed}"
    folder = cache_dir() / "scan" / config.split / name
    torch.manual_seed(seed)
    model = new_model(config.cell, in_tok, out_tok)
    weights = folder / "model.safetensors"
    if weights.exists():
        model.load_state_dict(load_file(str(weights)))
        return model.to(Accelerator().device).eval()
    folder.mkdir(parents=True, exist_ok=True)
    base = make_module(config, "base", model, scan_actions("trivial", in_tok, out_tok))
    schedule = TrainConfig(config.pretrain_steps, config.batch_size, config.lr, seed=seed)
    train(base, list(model.parameters()), train_data, schedule, folder / "checkpoint", f"pre-train {config.cell} seed {seed}")
    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}  # T5 ties weights
    write_atomic(weights, lambda tmp: save_file(tensors, str(tmp)))
    return model.eval()


def run(config: RunConfig, log=print) -> list[dict]:
    """Run every (seed, method, stage) of ``config``; returns the result records (also written as JSON)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    in_tok, out_tok = scan_tokenizers(config.cell)
    split = scan_split(config.split)
    train_data = encode(split["train"], in_tok, out_tok)
    test_data = encode(split["test"][: config.test_limit] if config.test_limit else split["test"], in_tok, out_tok)
    group_actions = scan_actions(config.group, in_tok, out_tok)
    records = []
    for seed in config.seeds:
        base_model = pretrained_base(config, seed, train_data, in_tok, out_tok)
        for method in config.methods:
            actions = scan_actions("trivial", in_tok, out_tok) if method == "base" else group_actions
            torch.manual_seed(seed)
            module = make_module(config, method, copy.deepcopy(base_model), actions)
            for stage in ("zero-shot", "fine-tuned"):
                name = f"{config.split}_{config.cell}_{method}_{stage}_seed{seed}"
                path = out / f"{name}.json"
                done_stages = [
                    out / f"{config.split}_{config.cell}_{method}_{s}_seed{seed}.json" for s in ("zero-shot", "fine-tuned")
                ]
                if all(p.exists() for p in done_stages):
                    records.append(json.loads(path.read_text()))
                    log(f"{name}: kept {records[-1]['accuracy']:.4f}")
                    continue
                started = time.perf_counter()
                steps = 0
                if stage == "zero-shot" and method == "lambda":  # λ-net alone, base frozen
                    params = list(module.aggregator.parameters())
                    schedule = TrainConfig(config.lambda_steps, config.batch_size, config.lr, seed=seed)
                    train(module, params, train_data, schedule, out / "checkpoints" / name, f"λ-net {name}")
                    steps = config.lambda_steps
                elif stage == "fine-tuned":
                    schedule = TrainConfig(config.finetune_steps, config.batch_size, config.finetune_lr, seed=seed + 1)
                    train(
                        module, list(module.parameters()), train_data, schedule, out / "checkpoints" / name, f"fine-tune {name}"
                    )
                    steps = config.finetune_steps
                if path.exists():  # the training above resumed instantly from its finished checkpoint
                    records.append(json.loads(path.read_text()))
                    continue
                accuracy = evaluate(module, test_data, description=name)
                record = {
                    "split": config.split,
                    "cell": config.cell,
                    "method": method,
                    "stage": stage,
                    "seed": seed,
                    "group": "trivial" if method == "base" else config.group,
                    "accuracy": accuracy,
                    "n_test": len(test_data),
                    "train_steps": steps,
                    "seconds": round(time.perf_counter() - started, 1),
                    "config": asdict(config),
                }
                _write_json(path, record)
                records.append(record)
                log(f"{name}: {accuracy:.4f}")
    return records
