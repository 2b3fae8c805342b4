"""What ``generate(..., batch_independent=True)`` costs: one padded call against one call per prompt.

Both decode the same prompts (of mixed lengths) with the same wrapper, seeded top-k sampling; the median
of ``--repeats`` timed runs after a warm-up. The ratio is batch-independent time over one-call time, from the
same run. Writes a JSON and prints a table.

    python -m benchmarks.batch_independent                                   # embedded SmolLM2, CPU
    python -m benchmarks.batch_independent --models tiny --batch-sizes 1 8 32
    python -m benchmarks.batch_independent --device cuda --dtype bfloat16 --models random:FOLDER
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import pandas as pd
import torch

import equinlp as eq
from benchmarks.perf_generate import PROMPTS, load
from equinlp.files import write_text_atomic


def seconds(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(model, tokenizer, batch_size: int, new_tokens: int, repeats: int) -> dict:
    action = eq.vocab_permutation(tokenizer, [("man", "woman"), ("he", "she")])
    wrapped = eq.equitune(model, action)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch_size)]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left").to(model.device)
    kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": True, "top_k": 40, "seed": 0}
    kwargs["pad_token_id"] = tokenizer.pad_token_id
    with torch.no_grad():
        together = seconds(lambda: wrapped.generate(**batch, **kwargs), repeats)
        apart = seconds(lambda: wrapped.generate(**batch, **kwargs, batch_independent=True), repeats)
    return {"batch_size": batch_size, "one_call_s": together, "batch_independent_s": apart, "ratio": apart / together}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", default="results/batch_independent.json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        model, tokenizer = load(name, args.device, getattr(torch, args.dtype))
        for batch_size in args.batch_sizes:
            rows.append(
                {
                    "model": name,
                    "device": args.device,
                    "dtype": args.dtype,
                    **measure(model, tokenizer, batch_size, args.new_tokens, args.repeats),
                }
            )
            write_text_atomic(args.out, json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    print(pd.DataFrame(rows).drop(columns=["device", "dtype"]).round(3).to_string(index=False))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
