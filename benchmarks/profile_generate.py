"""Where equivariant generate() spends its time: cProfile, with equinlp's own functions listed.

python -m benchmarks.profile_generate                  # embedded SmolLM2, |G|=6, B=8, 15 tokens, CPU
python -m benchmarks.profile_generate --model tiny --order 2 --batch 32
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import torch

import equinlp as eq
from benchmarks.perf_generate import GROUPS, PROMPTS, action_for, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--order", type=int, default=6, choices=sorted(GROUPS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    model, tok = load(args.model, args.device)
    prompts = (PROMPTS * (args.batch // len(PROMPTS) + 1))[: args.batch]
    batch = tok(prompts, return_tensors="pt", padding=True).to(args.device)
    wrapped = eq.equitune(model, action_for(tok, args.order))
    tokens = args.new_tokens
    kwargs = {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.no_grad():
        wrapped.generate(**batch, **kwargs)  # warm-up
        profiler = cProfile.Profile()
        profiler.enable()
        wrapped.generate(**batch, **kwargs)
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    ours = {k: v for k, v in stats.stats.items() if "/equinlp/" in k[0] and k[2] != "generate"}
    hooks = sum(v[3] for k, v in ours.items() if k[2] in ("_fold_inputs", "_combine_outputs", "_keep_features"))
    print(f"{args.model}, |G|={args.order}, B={args.batch}, {args.new_tokens} tokens on {args.device}: {total:.2f} s profiled")
    print(f"equinlp's hooks (fold inputs, combine outputs): {hooks:.3f} s = {100 * hooks / total:.1f}% of generate\n")
    for (path, line, name), v in sorted(ours.items(), key=lambda kv: -kv[1][3])[:8]:
        print(f"  {v[3]:7.3f} s cumulative  {100 * v[3] / total:5.1f}%  {path.split('/equinlp/')[-1]}:{line} {name}")
    print()
    stats.sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main()
