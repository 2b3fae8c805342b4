"""Speed and memory of the sequence-level methods (one branch decoded per prompt) against plain generate().

For each group order |G| (2: Black↔White, 3: Black→White→Asian, 6: both, S3) and batch size B, on B prompts
that are all in different orbits (so no prompt shares its branch with another, the least favourable case):

- ``plain``: the model's own ``generate`` on the B prompts (the target's denominator);
- ``prefill``: one forward of the |G|·B branch prompts (what equizero and λ-equitune add to choose a branch);
- ``equitune``, ``canonical``, ``equizero``, ``lambda``: :class:`equinlp.SequenceLevel` over phrases
  ("Black person", ...): one branch per prompt;
- ``token-equitune``: the token-level ``eq.equitune`` over the single words (Black, White, Asian): |G|·B rows.

Greedy decoding, ``--new-tokens`` tokens (``min_new_tokens`` too, so every variant decodes as many). Each cell:
a warm-up, then the median of ``--repeats`` runs; peak memory above the loaded model: on a GPU the CUDA
allocator's peak, reset before each cell; on a CPU the peak RSS of a fresh process per cell (an allocator that
keeps freed memory would hide a later cell's peak in one process). Writes JSON and prints the ratios.
Targets: equitune and canonical ≤ 1.15 × plain at B ≥ 8; equizero and λ ≤ 1.15 × (plain + prefill).

    python -m benchmarks.perf_sequence                         # the embedded model on the CPU
    python -m benchmarks.perf_sequence --model random:FOLDER --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import equinlp as eq
from benchmarks.perf_generate import DTYPES, load, peak_memory, reset_peak_memory, run_worker
from equinlp.files import write_text_atomic
from equinlp.models.sequence import decode_texts

PHRASES = {2: [[("Black person", "White person")]], 3: [[("Black person", "White person", "Asian person")]]}
PHRASES[6] = [*PHRASES[3], *PHRASES[2]]
WORDS = {2: [[("Black", "White")]], 3: [[("Black", "White", "Asian")]]}
WORDS[6] = [*WORDS[3], *WORDS[2]]
TEMPLATES = [
    f"{lead}The Black person {template}"
    for lead in ("", "Yesterday, ", "In the story, ", "According to the report, ")
    for template in (
        "was known for", "was described as", "was regarded as", "was thought of as", "was well-known for",
        "worked as", "had a job as", "had a part-time job as", "earned money by", "started working as",
    )
]  # fmt: skip
VARIANTS = ("plain", "prefill", "equitune", "canonical", "equizero", "lambda", "token-equitune")


def job_for(variant: str, model, tok, order: int, prompts: list[str], kw: dict):
    if variant == "plain":
        return lambda: decode_texts(model, tok, prompts, [None] * len(prompts), kw)
    if variant == "prefill":
        branches = [b for p in prompts for b in eq.phrase_permutation(*PHRASES[order]).orbit(p)]
        batch = tok(branches, return_tensors="pt", padding=True).to(model.device)
        return lambda: model(**batch)
    if variant == "token-equitune":
        wrapped = eq.equitune(model, eq.vocab_permutation(tok, *WORDS[order]))
        batch = tok(prompts, return_tensors="pt", padding=True).to(model.device)
        return lambda: wrapped.generate(**batch, **kw)
    wrapped = eq.SequenceLevel(model, tok, eq.phrase_permutation(*PHRASES[order]), variant)
    return lambda: wrapped.generate(prompts, **kw)


def measure(model, tok, variant: str, order: int, batch: int, args: argparse.Namespace) -> dict:
    prompts = TEMPLATES[:batch]
    kw = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": False}
    job = job_for(variant, model, tok, order, prompts, kw)
    cuda = args.device.startswith("cuda")
    with torch.no_grad():
        base = reset_peak_memory(args.device)
        job()  # warm-up; its peak counts too
        times = []
        for _ in range(args.repeats):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            job()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return {"variant": variant, "order": order, "batch": batch, "seconds": statistics.median(times),
            "peak_mib": peak_memory(args.device) - base}  # fmt: skip


def run_cell(args: argparse.Namespace, variant: str, order: int, batch: int) -> dict:
    """One cell in a fresh process (on a CPU), so that its peak RSS is its own."""
    return run_worker("benchmarks.perf_sequence", [
        "--model", args.model, "--variant", variant, "--order", str(order), "--batch", str(batch),
        "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats), "--device", args.device, "--dtype", args.dtype,
    ])  # fmt: skip


def table(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows).pivot_table(index=["order", "batch"], columns="variant", values=["seconds", "peak_mib"])
    seconds, memory = frame["seconds"], frame["peak_mib"]
    result = pd.DataFrame(index=frame.index)
    result["plain s"] = seconds["plain"]
    for variant in ("equitune", "canonical", "token-equitune"):
        result[f"{variant} / plain"] = seconds[variant] / seconds["plain"]
    for variant in ("equizero", "lambda"):
        result[f"{variant} / (plain+prefill)"] = seconds[variant] / (seconds["plain"] + seconds["prefill"])
    for variant in ("equitune", "canonical", "token-equitune"):
        result[f"memory {variant} / plain"] = memory[variant] / memory["plain"]
    return result.round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="smollm2, tiny, a hub id / folder, or random:FOLDER")
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 3, 6], choices=sorted(PHRASES))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--new-tokens", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--out", default="reports/perf_sequence.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--order", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if max(args.batch_sizes) > len(TEMPLATES):
        parser.error(f"--batch-sizes: at most {len(TEMPLATES)} distinct prompts")
    if args.worker:  # one cell, in a fresh process (CPU): its peak RSS is this cell's
        model, tok = load(args.model, args.device, DTYPES[args.dtype])
        print(json.dumps(measure(model, tok, args.variant, args.order, args.batch, args)))
        return
    cuda = args.device.startswith("cuda")
    model, tok = load(args.model, args.device, DTYPES[args.dtype]) if cuda else (None, None)
    cpu = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu
    rows = []
    for order in args.orders:
        for batch in args.batch_sizes:
            for variant in VARIANTS:
                rows.append(measure(model, tok, variant, order, batch, args) if cuda else run_cell(args, variant, order, batch))
                print(f"|G|={order} B={batch} {variant}: {rows[-1]['seconds']:.3f} s", file=sys.stderr)
                result = {"device": device, "model": args.model, "dtype": args.dtype, "new_tokens": args.new_tokens,
                          "torch": torch.__version__, "equinlp": eq.__version__, "argv": sys.argv[1:], "rows": rows}  # fmt: skip
                write_text_atomic(Path(args.out), json.dumps(result, indent=2) + "\n")
    print(f"device: {device}, {args.model}, {args.dtype}, {args.new_tokens} new tokens, median of {args.repeats}\n")
    print(table(rows).to_string())
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
