"""Convert a bias results folder of equinlp 0.1 (``samples/``, ``scored/``, ``results.json``) to the harness layout.

    python -m benchmarks.migrate_bias reports/bias

Each (axis, method) becomes a run: its samples (in plan order) and scored CSV move into
``work/bias_axis=…_method=…/``, and its envelope in ``runs/`` holds the summary computed now from the scored
CSV, with ``migrated_from`` naming the old files. The numbers are the old ones: the summary reads the same
scores with the same bootstrap seeds (checked against the old ``results.json``). The old files are removed.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from equinlp.apps.bias.analysis import summarise
from equinlp.apps.bias.generate import Decoding
from equinlp.apps.bias.run import BiasConfig, plan, samples_digest, write_scored
from equinlp.harness import RunStore, settings
from equinlp.harness.model_options import ModelOptions


def new_config(old: dict, out: Path) -> BiasConfig:
    decoding = dict(old["decoding"])
    decoding["max_new_tokens"] = decoding.pop("new_tokens")
    contexts = tuple(old["contexts"]) if set(old["contexts"]) != {"respect", "occupation"} else None
    return BiasConfig(
        axes=tuple(old["axes"]), methods=tuple(old["methods"]), contexts=contexts, samples=old["samples"],
        templates=old["templates_file"], first_seed=old["first_seed"], proxy_scorer=old["proxy_scorer"],
        regard_model=old["regard_model"], lm=ModelOptions(old["model"]), decoding=Decoding(**decoding), out=str(out),
    )  # fmt: skip


def migrate(out: Path) -> None:
    old = json.loads((out / "results.json").read_text())
    config = new_config(old["config"], out)
    store = RunStore(out, "bias")
    for axis in config.axes:
        order = {(p.subject, p.context, p.template, s): i for i, (p, s) in enumerate(plan(config, axis))}
        for method in config.methods:
            cell = {"axis": axis, "method": method}
            samples_path, scored_path = out / "samples" / f"{axis}_{method}.jsonl", out / "scored" / f"{axis}_{method}.csv"
            rows = sorted((json.loads(line) for line in samples_path.read_text().splitlines()), key=lambda r: order[
                (r["subject"], r["context"], r["template"], r["seed"])])  # fmt: skip
            work = store.begin("run", cell, settings(config))
            (work / "samples-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            scored = pd.read_csv(scored_path, keep_default_na=False, na_values=[""])
            scored[["prompt", "continuation"]] = scored[["prompt", "continuation"]].fillna("")
            key = ["subject", "context", "template", "seed"]
            scored = scored.set_index(key).loc[[tuple(r[k] for k in key) for r in rows]].reset_index()[scored.columns]
            write_scored(work, scored, samples_digest(pd.DataFrame(rows)))
            metrics = summarise(scored)
            expected = {k: [r for r in old[k] if r["axis"] == axis and r["method"] == method] for k in metrics}
            assert json.loads(json.dumps(metrics)) == expected, f"{axis} {method}: the summary differs from results.json"
            store.finish("run", cell, settings(config), metrics, 0.0, migrated_from=[str(samples_path), str(scored_path)])
    for name in ("samples", "scored"):
        shutil.rmtree(out / name)
    (out / "results.json").unlink()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    migrate(parser.parse_args().out)
