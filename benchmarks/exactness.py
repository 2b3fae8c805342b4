"""The exactness matrix: every row of an orbit batch an exact swap, per device × dtype × group × method × decoding.

For each cell, ``--prompts`` prompts are put in one batch with all their group images (rows ``g·B + b``),
decoded by the wrapper, and each row is compared token for token with ``g`` applied to row b; the logits of
the decoded sequences are compared bit for bit too (``max_logit_diff`` is 0 where exact). Nothing is timed.
Writes one JSON (after every cell) and prints a table.

    python -m benchmarks.exactness                                  # CPU: embedded model, float32 and bfloat16
    python -m benchmarks.exactness --device cuda --model random:FOLDER --dtypes float32 bfloat16 float16
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import equinlp as eq
from benchmarks.perf_generate import load
from equinlp.files import write_text_atomic
from equinlp.symmetry.wordgroups import word_group

# each subject has a trivial stabilizer (see README, Limitations): S3 needs two race words to move every element
SUBJECTS = {"gender": "man", "race": "Black person", "race_s3": "Black and White people"}
TEMPLATES = ["worked as a", "was known for", "was described as", "earned money by", "had a job as", "was regarded as"]
DECODINGS = {"greedy": {"do_sample": False}, "top-k 40": {"do_sample": True, "top_k": 40}}
METHODS = {"equitune": eq.equitune, "equizero": eq.equizero, "lambda": eq.lambda_equitune}


def cell(model, tok, group: str, method: str, decoding: str, prompts: int, new_tokens: int) -> dict:
    action = word_group(group).action(tok)
    wrapped = METHODS[method](model, action)
    if method == "lambda":  # a non-uniform λ-net, so the weights matter
        torch.manual_seed(0)
        torch.nn.init.normal_(wrapped.aggregator.weight_net.net[-1].weight, std=0.5)
    texts = [f"The {SUBJECTS[group]} {t}" for t in (TEMPLATES * prompts)[:prompts]]
    x = tok(texts, return_tensors="pt", padding=True).to(model.device)
    order = action.group.order
    orbit = torch.cat([action.ids.act(x["input_ids"], g) for g in range(order)])
    mask = x["attention_mask"].repeat(order, 1)
    kw = dict(DECODINGS[decoding], max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=tok.pad_token_id)
    if kw["do_sample"]:
        kw["seed"] = list(range(prompts)) * order
    with torch.no_grad():
        out = wrapped.generate(input_ids=orbit, attention_mask=mask, **kw)
        logits = wrapped(input_ids=out, attention_mask=torch.cat([mask, mask.new_ones(len(out), new_tokens)], 1)).logits
    exact = sum(torch.equal(out[g * prompts + b], action.ids.act(out[b], g)) for g in range(order) for b in range(prompts))
    diff = max(
        float((logits[g * prompts : (g + 1) * prompts] - action.logits.act(logits[:prompts], g)).abs().max())
        for g in range(order)
    )
    return {"rows": order * prompts, "exact_rows": int(exact), "max_logit_diff": diff}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="smollm2, tiny, a hub id or folder, or random:FOLDER")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--groups", nargs="+", default=list(SUBJECTS), choices=list(SUBJECTS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--prompts", type=int, default=8, help="prompts per cell, each with its |G| images")
    parser.add_argument("--new-tokens", type=int, default=15)
    parser.add_argument("--out", default="reports/exactness/cpu.json")
    parser.add_argument("--show", metavar="JSON", help="print the table of a written file and stop")
    args = parser.parse_args(argv)
    if args.show:
        print_table(json.loads(Path(args.show).read_text()))
        return 0
    result = {
        "equinlp": eq.__version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu",
        "model": args.model,
        "date": time.strftime("%Y-%m-%d"),
        "cells": [],
    }
    for dtype in args.dtypes:
        model, tok = load(args.model, args.device, getattr(torch, dtype))
        for group in args.groups:
            for method in args.methods:
                for decoding in DECODINGS:
                    row = {"dtype": dtype, "group": group, "method": method, "decoding": decoding}
                    row |= cell(model, tok, group, method, decoding, args.prompts, args.new_tokens)
                    result["cells"].append(row)
                    print(json.dumps(row), flush=True)
                    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    print(f"\n{result['model']} on {result['device']} (torch {result['torch']}, equinlp {result['equinlp']})\n")
    print("| dtype | group | method | decoding | exact rows | max logit diff |")
    print("|---|---|---|---|---|---|")
    for c in result["cells"]:
        rows = f"{c['exact_rows']}/{c['rows']}"
        print(f"| {c['dtype']} | {c['group']} | {c['method']} | {c['decoding']} | {rows} | {c['max_logit_diff']:g} |")


if __name__ == "__main__":
    raise SystemExit(main())
