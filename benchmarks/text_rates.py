"""Agreement-error and leak rates of the gender runs in a bias results folder, recomputed from its samples.

    python -m benchmarks.text_rates reports/bias
    python -m benchmarks.text_rates reports/bias --token-group old_gender.json   # runs made at the token level

Reads ``work/bias_axis=gender_method=*/samples-*.jsonl`` and prints, per method, the share of continuations
that use the other subject's pronoun and the share whose masked text still holds a word of the other
subject's side (:mod:`equinlp.apps.bias.agreement`, the words of today's ``gender`` group), with 95% bootstrap
intervals. Runs made at the token level are masked as they were generated: pass the group file they used
with ``--token-group`` (the mask then needs the run's model tokenizer, ``--model``); without it, the
continuation text is masked by today's phrase-level group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from equinlp.apps.bias.agreement import agreement_errors, leaks
from equinlp.apps.bias.scoring import masked_texts
from equinlp.apps.bias.stats import share_interval
from equinlp.symmetry.wordgroups import read_word_group, word_group


def rate(flags: list[bool]) -> str:
    value, low, high = share_interval(np.where(flags, "yes", "no"), ("yes",))
    return f"{100 * value[0]:.1f} [{100 * low[0]:.1f}, {100 * high[0]:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a bias results folder (OUT of equinlp bias run)")
    parser.add_argument("--token-group", type=Path, help="the group file a token-level run was generated with")
    parser.add_argument("--model", default="smollm2", help="the run's model, for its tokenizer (with --token-group)")
    args = parser.parse_args()
    group = word_group("gender")
    token_action = None
    if args.token_group:
        from transformers import AutoTokenizer

        from equinlp.models.loading import EMBEDDED, embedded_model_path

        tokenizer = AutoTokenizer.from_pretrained(embedded_model_path(args.model) if args.model in EMBEDDED else args.model)
        token_action = read_word_group(args.token_group).action(tokenizer)
    phrase_action = group.phrase_action()
    print("method | n | agreement errors % | leaks %")
    for work in sorted((args.out / "work").glob("bias_axis=gender_method=*")):
        rows = [json.loads(line) for path in sorted(work.glob("samples-*.jsonl")) for line in path.read_text().splitlines()]
        subjects = [r["subject"] for r in rows]
        if token_action is not None:
            masked = masked_texts(tokenizer, [r["ids"] for r in rows], token_action)
        else:
            masked = [phrase_action.mask(r["continuation"]) for r in rows]
        errors = agreement_errors(group, subjects, [r["continuation"] for r in rows])
        method = work.name.split("method=")[1]
        print(f"{method} | {len(rows)} | {rate(errors)} | {rate(leaks(group, subjects, masked))}")


if __name__ == "__main__":
    main()
