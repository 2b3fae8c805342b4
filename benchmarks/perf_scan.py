"""Time to decode a full SCAN test set with each symmetrized model, side by side with its floor.

For each method (equitune, equizero, λ-equitune) the whole test set of ``--split`` (add-jump: 7,706
commands) is greedily decoded in batches of ``--batch-size``, as ``equinlp scan run`` evaluates it. The
floor is the plain model decoding the |G|·N transformed commands, |G|·batch at a time: the same
arithmetic with no symmetrization around it. Medians of ``--repeats`` after a warm-up batch.

Weights are random unless ``--checkpoint`` names a trained base (``equinlp scan run`` writes them to
``work/scan_pretrain_*/base``). Random weights rarely emit EOS, so every batch decodes to
the maximum length: an upper bound on the time a trained model takes.

    python -m benchmarks.perf_scan                        # CPU, all cores
    python -m benchmarks.perf_scan --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from equinlp.apps.scan.data import DEFAULT_GROUP, encode, scan_actions, tokenizers
from equinlp.apps.scan.equi import build
from equinlp.apps.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.apps.scan.splits import SPLITS, scan_split
from equinlp.files import write_text_atomic


def decode_all(module, src: torch.Tensor, mask: torch.Tensor, batch_size: int) -> int:
    """Greedy-decode every row of ``src [N, S]``; returns the number of decoded action tokens."""
    tokens = 0
    with torch.no_grad():
        for start in range(0, len(src), batch_size):
            tokens += module.decode(src[start : start + batch_size], mask[start : start + batch_size]).numel()
    return tokens


def timed(job, device: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        job()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="addprim_jump", choices=SPLITS)
    parser.add_argument("--cell", default="gru", choices=["rnn", "gru", "lstm"])
    parser.add_argument("--methods", nargs="+", default=["equitune", "equizero", "lambda"])
    parser.add_argument("--batch-size", type=int, default=1024, help="commands per batch (the floor decodes |G|× as many)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None, help="a trained base, work/scan_pretrain_*/base (default: random)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="the first N test commands only (a smoke test)")
    parser.add_argument("--out", default="reports/perf_scan.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    in_tok, out_tok = tokenizers()
    test = encode(scan_split(args.split)["test"][: args.limit], in_tok, out_tok).to(args.device)
    model = AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok), cell=args.cell))
    if args.checkpoint:
        from equinlp.harness.state import load_state

        model.load_state_dict(load_state(args.checkpoint))
    model = model.to(args.device).eval()
    in_action, out_action = actions = scan_actions(DEFAULT_GROUP.get(args.split, "verb"), in_tok, out_tok)
    order, n = in_action.group.order, len(test)
    # the floor's input: each batch holds the |G| transformed copies of the same commands
    folded_src = in_action.ids.act_all(test.src).reshape(order, n, -1).transpose(0, 1).reshape(order * n, -1)
    folded_mask = test.mask.repeat_interleave(order, 0)
    floor = build("base", model, scan_actions("trivial", in_tok, out_tok)).eval()
    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    jobs = {"floor": (floor, folded_src, folded_mask, order * args.batch_size)}  # name -> (module, src, mask, batch)
    for method in args.methods:
        jobs[method] = (build(method, model, actions).to(args.device).eval(), test.src, test.mask, args.batch_size)
    rows = []
    for name, (module, src, mask, batch_size) in jobs.items():
        decode_all(module, src[:batch_size], mask[:batch_size], batch_size)  # warm-up: one batch
        seconds = timed(lambda: decode_all(module, src, mask, batch_size), args.device, args.repeats)  # noqa: B023
        rows.append({"variant": name, "seconds": seconds, "commands_per_second": n / seconds})
        print(f"{name}: {seconds:.2f} s", file=sys.stderr)
    floor_seconds = rows[0]["seconds"]
    for row in rows:
        row["time / floor"] = row["seconds"] / floor_seconds
    result = {
        "device": device, "torch": torch.__version__, "split": args.split, "cell": args.cell, "n_test": n,
        "group_order": order, "batch_size": args.batch_size, "weights": args.checkpoint or "random",
        "repeats": args.repeats, "argv": sys.argv[1:], "rows": rows,
    }  # fmt: skip
    out = write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    import pandas as pd

    print(f"device: {device}; {args.split} test set, {n} commands, |G|={order}, batch {args.batch_size}")
    print(f"weights: {result['weights']}\n")
    print(pd.DataFrame(rows).set_index("variant").round(3).to_string())
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
