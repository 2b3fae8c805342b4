"""Equizero's two selection rules and equitune's two decodings, zero-shot on the same trained SCAN bases.

For each run folder of ``equinlp scan run`` (its pre-trained bases in ``work/scan_pretrain_*/base``), the
whole test set of the base's split is decoded greedily, zero-shot, four ways:

- equizero, ``--equizero-score decoded`` (equinlp): every copy decodes alone; the copy with the lowest mean
  proxy (minus the log max-probability) over the steps it decoded, up to its EOS;
- equizero, ``--equizero-score paper`` (the reference code): the copy with the highest arithmetic mean of
  the max probability over all 50 rows, the rows after EOS counting as 1/V;
- equitune, ``--equitune-decoding joint`` (equinlp): the copies' log-probs combined at every step, g·token
  fed back to copy g;
- equitune, ``--equitune-decoding per-copy`` (the reference code): every copy decodes alone, the
  pulled-back log-probs averaged position by position.

Reported per base: exact-match accuracy of each, the share of commands on which the two equizero rules
pick different copies (and different outputs), and the mean output length under each rule. A rerun into
the same ``--out`` keeps the rows of bases it already holds and adds the new ones (``argv``: every run's).

    equinlp scan run --split addprim_jump --cell gru --seeds 0 --pretrain-steps 1000 --method equizero \\
        --finetune-steps 1 --test-limit 50 --threads 1 --out results/sel/addprim_jump
    python -m benchmarks.scan_selection results/sel/addprim_jump results/sel/template_around_right \\
        --threads 1 --out reports/cpu/scan_selection.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from equinlp.apps.scan.data import DEFAULT_GROUP, encode, scan_actions, tokenizers
from equinlp.apps.scan.equi import build, exact_match
from equinlp.apps.scan.model import AttnSeq2Seq, Seq2SeqConfig
from equinlp.apps.scan.splits import scan_split
from equinlp.files import write_text_atomic
from equinlp.harness.state import load_state
from equinlp.models.tokenizers import EOS

VARIANTS = {  # name -> (method, build options)
    "equizero decoded": ("equizero", {"equizero_score": "decoded"}),
    "equizero paper": ("equizero", {"equizero_score": "paper"}),
    "equitune joint": ("equitune", {"equitune_decoding": "joint"}),
    "equitune per-copy": ("equitune", {"equitune_decoding": "per-copy"}),
}


def bases(folder: Path) -> list[tuple[dict, Path]]:
    """``(cell, weights folder)`` of every pre-trained base in a run folder; the cell read from its folder name."""
    found = []
    for weights in sorted(folder.glob("work/scan_pretrain_*/base")):
        fields = weights.parent.name.removeprefix("scan_pretrain_").split("_cell=")
        cell, seed = fields[1].split("_seed=")
        found.append(({"split": fields[0].removeprefix("split="), "cell": cell, "seed": int(seed)}, weights))
    if not found:
        raise SystemExit(f"{folder}: no work/scan_pretrain_*/base (run `equinlp scan run --out {folder}` first)")
    return found


def base_key(weights: Path) -> str:
    """A base named by its pre-training cell and settings, not by where this machine keeps it."""
    settings = json.loads((weights.parent / "settings.json").read_text())
    return f"{weights.parent.name} {json.dumps(settings, sort_keys=True)}"


def lengths(tokens: torch.Tensor) -> torch.Tensor:
    """``[B, L] -> [B]``: the number of tokens up to and including the first EOS (L when there is none)."""
    eos = tokens == EOS
    return torch.where(eos.any(1), eos.int().argmax(1) + 1, tokens.shape[1])


def compare(cell: dict, weights: Path, batch_size: int, limit: int | None = None) -> dict:
    in_tok, out_tok = tokenizers()
    test = encode(scan_split(cell["split"])["test"][:limit], in_tok, out_tok)
    model = AttnSeq2Seq(Seq2SeqConfig(len(in_tok), len(out_tok), cell=cell["cell"]))
    model.load_state_dict(load_state(weights))
    group = DEFAULT_GROUP.get(cell["split"], "verb")
    actions = scan_actions(group, in_tok, out_tok)
    outputs, copies = {}, {}
    for name, (method, options) in VARIANTS.items():
        module = build(method, model, actions, proxy="max_prob", **options).eval()
        decoded, chosen = [], []
        for start in range(0, len(test), batch_size):
            batch = test[start : start + batch_size]
            if method == "equizero":
                tokens, element = module.choose_copy(batch.src, batch.mask)
                chosen.append(element)
            else:
                tokens = module.decode(batch.src, batch.mask)
            decoded.append(tokens)
        width = max(t.shape[1] for t in decoded)
        outputs[name] = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in decoded])
        if chosen:
            copies[name] = torch.cat(chosen)
        print(f"{cell['split']} seed {cell['seed']}: {name} done", file=sys.stderr)
    accuracy = {name: 100 * exact_match(tokens, test.tgt_out).float().mean().item() for name, tokens in outputs.items()}
    zero, paper = outputs["equizero decoded"], outputs["equizero paper"]
    width = max(zero.shape[1], paper.shape[1])
    padded = [torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in (zero, paper)]
    return {
        **cell,
        "group": group,
        "base": base_key(weights),
        "n_test": len(test),
        "accuracy": accuracy,
        "different_copy": 100 * (copies["equizero decoded"] != copies["equizero paper"]).float().mean().item(),
        "different_output": 100 * (padded[0] != padded[1]).any(1).float().mean().item(),
        "mean_length": {name: lengths(outputs[name]).float().mean().item() for name in ("equizero decoded", "equizero paper")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="--out folders of `equinlp scan run`")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="the first N test commands only (a smoke test)")
    parser.add_argument("--out", default="reports/cpu/scan_selection.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    old = json.loads(Path(args.out).read_text()) if Path(args.out).exists() and not args.limit else {"rows": [], "argv": []}
    done = {row.get("base"): row for row in old["rows"]}  # a rerun adds new bases and keeps the rows it has
    rows = [
        done.get(base_key(weights)) or compare(cell, weights, args.batch_size, args.limit)
        for folder in args.folders
        for cell, weights in bases(folder)
    ]
    device = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    result = {"device": device, "torch": torch.__version__, "argv": [*old["argv"], sys.argv[1:]], "rows": rows}
    out = write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    import pandas as pd

    table = pd.DataFrame(
        [
            {
                "split": r["split"], "seed": r["seed"], "n": r["n_test"], **{f"{k} (%)": v for k, v in r["accuracy"].items()},
                "different copy (%)": r["different_copy"], "different output (%)": r["different_output"],
                **{f"length, {k.removeprefix('equizero ')}": v for k, v in r["mean_length"].items()},
            }
            for r in rows
        ]
    )  # fmt: skip
    print(table.round(2).to_string(index=False))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
