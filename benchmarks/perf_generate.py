"""Speed and memory of equivariant generate(), side by side with its floor and with the reference-style loop.

For each model, group order |G| and batch size B, three ways to produce the same greedy tokens:

- ``equinlp``: ``eq.equitune(model, act).generate(prompts)``: all copies in one batch, KV cache on;
- ``floor``: plain HF ``generate`` on the |G|·B transformed prompts (what equinlp cannot beat);
- ``naive``: the reference code's loop: one prompt at a time, one forward per group element per step,
  the whole context recomputed each step (no KV cache).

With ``--compile``, HF's fast path instead: ``floor`` and ``equinlp`` eager, and each again with
``cache_implementation="static"`` and the decoding step compiled (``torch.compile``, ``mode="reduce-overhead"``:
CUDA graphs on a GPU), named ``floor-compiled`` and ``equinlp-compiled``; orders 2, 3, 6 by default. The
compiled cells warm up twice (compilation, then CUDA graph recording) and start from a reset dynamo cache.

Each cell: a warm-up, then ``--repeats`` timed runs; the median is kept. Peak memory is measured above
the loaded model: on a CPU the process's peak RSS, so every cell runs in a fresh subprocess; on a GPU
the CUDA allocator's peak, reset before each cell, so cells share one process per model.
Writes one JSON (after every cell) and prints a table with the ratios.

Models: ``tiny`` (a random 2-layer Llama, milliseconds), ``smollm2`` (the embedded model), any hub id or
local folder, or ``random:FOLDER``: the architecture and tokenizer of FOLDER with random weights (same
FLOPs and memory, for machines that cannot hold the weights; timing only).

    python -m benchmarks.perf_generate                       # tiny + embedded model, CPU
    python -m benchmarks.perf_generate --device cuda --batch-sizes 1 8 32 64
    python -m benchmarks.perf_generate --compile --device cuda --dtype bfloat16 --models random:smollm2 \
        --new-tokens 64 --repeats 5 --out reports/gpu/perf_generate_compile.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import equinlp as eq
from equinlp.files import write_text_atomic

GROUPS = {  # |G| -> generators (word cycles); 6 = gender × race
    1: [],
    2: [[("man", "woman"), ("he", "she")]],
    3: [[("Black", "White", "Asian")]],
    6: [[("man", "woman"), ("he", "she")], [("Black", "White", "Asian")]],
}
PROMPTS = [
    "The man said that he was known for",
    "The woman worked as a nurse and she",
    "The Black person was described as",
    "The White person had a job as",
    "The Asian person earned money by",
    "The man had a part-time job as",
    "The woman was regarded as",
    "The Black person started working as",
]


def load(name: str, device: str, dtype: torch.dtype = torch.float32):
    if name.startswith("random:"):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        folder = name.removeprefix("random:")
        if folder == "smollm2":  # the embedded model's architecture and tokenizer
            from equinlp.models.loading import embedded_model_path

            folder = str(embedded_model_path())
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype)
        tok = AutoTokenizer.from_pretrained(folder)
        tok.pad_token = tok.pad_token or tok.eos_token
        tok.padding_side = "left"
    elif name == "tiny":
        from equinlp.testing import WORDS, tiny_causal_lm, word_tokenizer

        tok = word_tokenizer(
            [*WORDS, *"The said known for described had job earned money by part-time regarded started working".split()]
        )
        model = tiny_causal_lm(len(tok), "llama", width=64).to(dtype)
    else:
        model, tok = eq.load_model(name, dtype=dtype)
    return model.to(device).eval(), tok


def action_for(tok, order: int):
    if order == 1:
        return eq.TokenPermutation(eq.trivial(), torch.arange(len(tok))[None])
    return eq.vocab_permutation(tok, *GROUPS[order])


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _proc_status_mib(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process from /proc (Linux), in MiB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def reset_peak_memory(device: str) -> float:
    """Reset the peak counter and return the memory in use now (MiB), the baseline the peak is measured from.

    On a CPU the peak RSS (VmHWM) is reset through /proc/self/clear_refs, so that loading the model, which
    can peak higher than generation, does not hide the generation's peak.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux: the lifetime peak, an upper bound
        pass
    return _proc_status_mib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return _proc_status_mib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB


def measure(model, tok, model_name: str, variant: str, order: int, batch_size: int, args: argparse.Namespace) -> dict:
    """Time one (variant, |G|, B) cell of a loaded model; peak memory is above what is allocated now."""
    torch.manual_seed(0)
    action = action_for(tok, order)
    prompts = (PROMPTS * (batch_size // len(PROMPTS) + 1))[:batch_size]
    batch = tok(prompts, return_tensors="pt", padding=True).to(args.device)
    kw = {
        "max_new_tokens": args.new_tokens,
        "min_new_tokens": args.new_tokens,
        "do_sample": False,
        "pad_token_id": tok.pad_token_id,
    }
    if variant.endswith("-compiled"):
        torch._dynamo.reset()  # each compiled cell compiles for its own shapes, from a clean slate
        kw.update(compile_keywords(args))
    if variant.startswith("equinlp"):
        wrapped = eq.equitune(model, action)

        def job():
            return wrapped.generate(**batch, **kw)
    elif variant.startswith("floor"):
        folded = {
            "input_ids": action.ids.act_all(batch["input_ids"]),
            "attention_mask": batch["attention_mask"].repeat(order, 1),
        }

        def job():
            return model.generate(**folded, **kw)
    else:
        job = naive_loop(model, action, batch, args.new_tokens)
    # the naive loop is one prompt at a time: one prompt warms it up as well as the whole batch would
    warm_up = naive_loop(model, action, {k: v[:1] for k, v in batch.items()}, args.new_tokens) if variant == "naive" else job
    cuda = args.device.startswith("cuda")
    repeats = 1 if variant == "naive" else args.repeats
    with torch.no_grad():
        base_memory = reset_peak_memory(args.device)  # peak measured above the loaded model
        for _ in range(2 if variant.endswith("-compiled") else 1):  # compile, then record the CUDA graphs
            warm_up()  # its peak counts too: the timed runs repeat the same work
        if cuda:
            torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            job()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "model": model_name, "variant": variant, "order": order, "batch": batch_size, "new_tokens": args.new_tokens,
        "seconds": seconds, "tokens_per_second": batch_size * args.new_tokens / seconds,
        "ms_per_token": 1000 * seconds / args.new_tokens,
        "peak_mib": peak_memory(args.device) - base_memory, "repeats": repeats, "dtype": args.dtype,
    }  # fmt: skip


def compile_keywords(args: argparse.Namespace) -> dict:
    """HF's fast path: a static cache and the decoding step compiled (on a CPU too, where HF would not)."""
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, dynamic=False, backend=args.compile_backend, mode="reduce-overhead")
    config._compile_all_devices = True
    return {"cache_implementation": "static", "compile_config": config}


def worker(args: argparse.Namespace) -> dict:
    """One cell in this process (CPU: a fresh process per cell, so the peak RSS is this cell's)."""
    model, tok = load(args.model, args.device, DTYPES[args.dtype])
    return measure(model, tok, args.model, args.variant, args.order, args.batch, args)


def naive_loop(model, action, batch, new_tokens: int):
    """The reference EquiGPT2 decoding: per prompt, per step, one uncached forward per group element.

    Returns a job that returns each prompt's ids followed by its ``new_tokens`` greedy tokens.
    """
    order = action.group.order

    def job() -> list[torch.Tensor]:
        outputs = []
        for row in range(batch["input_ids"].shape[0]):
            ids = batch["input_ids"][row][batch["attention_mask"][row].bool()][None]
            for _ in range(new_tokens):
                logits = torch.stack(
                    [
                        action.logits.act(model(action.ids.act(ids, g)).logits[:, -1], int(action.group.inv[g]))
                        for g in range(order)
                    ]
                )
                ids = torch.cat([ids, logits.mean(0).argmax(-1, keepdim=True)], 1)
            outputs.append(ids[0])
        return outputs

    return job


def run_worker(module: str, argv: list[str]) -> dict:
    """One benchmark cell in a fresh process (``python -m MODULE --worker ARGV``, offline), so that its peak RSS
    is its own; the process prints the cell's row as its last line of JSON."""
    command = [sys.executable, "-m", module, "--worker", *argv]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1])
    if out.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cell(args: argparse.Namespace, model: str, variant: str, order: int, batch: int) -> dict:
    return run_worker("benchmarks.perf_generate", [
        "--model", model, "--variant", variant, "--order", str(order), "--batch", str(batch),
        "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats), "--device", args.device, "--dtype", args.dtype,
        "--compile-backend", args.compile_backend,
    ])  # fmt: skip


def table(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows).drop_duplicates(["model", "variant", "order", "batch"], keep="last")  # a rerun's cell wins
    if frame.variant.str.endswith("-compiled").any():
        return compiled_table(frame)
    wide = frame.pivot_table(index=["model", "order", "batch"], columns="variant", values=["seconds", "peak_mib"])
    result = pd.DataFrame(index=wide.index)
    result["equinlp s"] = wide["seconds"]["equinlp"]
    result["floor s"] = wide["seconds"]["floor"]
    result["time / floor"] = result["equinlp s"] / result["floor s"]
    result["memory / floor"] = wide["peak_mib"]["equinlp"] / wide["peak_mib"]["floor"]
    if "naive" in wide["seconds"]:
        result["naive s"] = wide["seconds"]["naive"]
        result["speed-up vs naive"] = result["naive s"] / result["equinlp s"]
    result["equinlp tok/s"] = frame[frame.variant == "equinlp"].set_index(["model", "order", "batch"])["tokens_per_second"]
    return result.round(3)


def compiled_table(frame):
    """``--compile``: ms per generated token (the whole batch's step) of the four variants, the two targets
    (equinlp compiled ≤ 1.10× the compiled floor, ≥ 3× faster than equinlp eager) and the memory ratio."""
    import pandas as pd

    wide = frame.pivot_table(index=["model", "order", "batch"], columns="variant", values=["ms_per_token", "peak_mib"])
    ms, mib = wide["ms_per_token"], wide["peak_mib"]
    result = pd.DataFrame(index=wide.index)
    for variant in ("floor", "floor-compiled", "equinlp", "equinlp-compiled"):
        result[f"{variant} ms/tok"] = ms.get(variant)
    result["compiled / compiled floor"] = ms["equinlp-compiled"] / ms["floor-compiled"]
    result["speed-up vs eager equinlp"] = ms["equinlp"] / ms["equinlp-compiled"]
    result["compiled MiB"] = mib["equinlp-compiled"]
    result["memory / compiled floor"] = mib["equinlp-compiled"] / mib["floor-compiled"]
    return result.round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--orders", type=int, nargs="+", choices=sorted(GROUPS), help="default 1 2 3 6 (2 3 6 with --compile)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--naive-batch-sizes", type=int, nargs="+", default=[1, 8], help="the naive loop is slow: these B only")
    parser.add_argument("--new-tokens", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="model weights and activations")
    parser.add_argument("--out", default="reports/perf_generate.json")
    parser.add_argument("--compile", action="store_true", help="eager vs static cache + compiled step (see above)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('eager': a quick check)")
    # one cell, in a subprocess
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="tiny", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="equinlp", help=argparse.SUPPRESS)
    parser.add_argument("--order", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--show", nargs="+", metavar="JSON", help="print the table of earlier results instead of measuring")
    args = parser.parse_args()
    args.orders = args.orders or ([2, 3, 6] if args.compile else [1, 2, 3, 6])
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.show:
        results = [json.loads(Path(f).read_text()) for f in args.show]
        print(f"device: {', '.join(sorted({r['device'] for r in results}))}\n")
        print(table([row for r in results for row in r["rows"]]).to_string())
        return
    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    cuda = args.device.startswith("cuda")
    for model in args.models:
        loaded = load(model, args.device, DTYPES[args.dtype]) if cuda else None
        for order in args.orders:
            for batch in args.batch_sizes:
                if args.compile:
                    variants = ["floor", "floor-compiled", "equinlp", "equinlp-compiled"]
                else:
                    variants = ["equinlp", "floor"] + (["naive"] if batch in args.naive_batch_sizes else [])
                for variant in variants:
                    if loaded:
                        rows.append(measure(*loaded, model, variant, order, batch, args))
                    else:
                        rows.append(run_cell(args, model, variant, order, batch))
                    print(f"{model} |G|={order} B={batch} {variant}: {rows[-1]['seconds']:.3f} s", file=sys.stderr)
                    # written after every cell (atomically), so an interrupted run keeps what it measured
                    result = {"device": device, "torch": torch.__version__, "equinlp": eq.__version__, "rows": rows}
                    result["argv"] = sys.argv[1:]
                    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    compiled = f", compiled with {args.compile_backend}" if args.compile else ""
    print(f"device: {device}, {args.dtype}, {args.new_tokens} new tokens, median of {args.repeats}{compiled}\n")
    print(table(rows).to_string())
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
