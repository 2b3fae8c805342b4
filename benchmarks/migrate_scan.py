"""Convert the SCAN result JSONs of older equinlp (one file per method, stage and seed) into run envelopes.

The old files ``{split}_{cell}_{method}_{stage}_seed{s}.json`` become one envelope per (split, cell, method,
seed) in ``FOLDER/runs/``, as ``equinlp scan run`` writes them now: metrics ``zero_shot``, ``fine_tuned`` and
``n_test``; ``config`` the run's settings read back through :class:`~equinlp.apps.scan.task.ScanConfig` (so the
group the old name left out is recorded); ``commit`` null (not recorded then); ``migrated_from`` the two old
files, which are then removed. ``equinlp scan report FOLDER`` reads the result.

    python -m benchmarks.migrate_scan reports/scan reports/scan_10k reports/scan_verb4
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from equinlp.apps.scan.task import ScanConfig, ScanTask
from equinlp.files import write_text_atomic
from equinlp.harness.options import settings
from equinlp.harness.store import SCHEMA, RunStore

STAGES = {"zero-shot": "zero_shot", "fine-tuned": "fine_tuned"}
OLD_ONLY = ("methods", "seeds", "out", "extra")  # plan fields and the old run's bookkeeping, not settings


def migrate(folder: Path) -> list[Path]:
    """Write the envelopes of ``folder``'s old result files and remove those files; returns the envelopes' paths."""
    pairs: dict[tuple, dict[str, tuple[Path, dict]]] = defaultdict(dict)
    for path in sorted(folder.glob("*_seed*.json")):
        old = json.loads(path.read_text())
        pairs[old["split"], old["cell"], old["method"], old["seed"]][old["stage"]] = (path, old)
    store, written = RunStore(folder, ScanTask.name), []
    for (split, cell, method, seed), stages in pairs.items():
        if set(stages) != set(STAGES):
            raise SystemExit(f"{folder}: {split} {cell} {method} seed {seed} has only {sorted(stages)}")
        old_config = stages["zero-shot"][1]["config"]
        config = ScanConfig(**{k: v for k, v in old_config.items() if k not in OLD_ONLY}, methods=(method,), seeds=(seed,))
        key = {"split": split, "cell": cell, "method": method, "seed": seed}
        paths, olds = zip(*(stages[stage] for stage in STAGES), strict=True)  # zero-shot, then fine-tuned
        accuracies = [old["accuracy"] for old in olds]
        envelope = {
            "schema": SCHEMA,
            "task": ScanTask.name,
            "stage": "run",
            "cell": key,
            "metrics": {**dict(zip(STAGES.values(), accuracies, strict=True)), "n_test": olds[0]["n_test"]},
            "config": settings(config),
            "seconds": round(sum(old["seconds"] for old in olds), 2),
            "version": None,
            "commit": None,
            "date": None,
            "migrated_from": [str(path) for path in paths],
        }
        path = store.envelope_path("run", key)
        write_text_atomic(path, json.dumps(envelope, indent=1) + "\n")
        written.append(path)
        for old_path in paths:
            old_path.unlink()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="folders of old SCAN result JSONs")
    for folder in parser.parse_args().folders:
        print(f"{folder}: {len(migrate(folder))} envelopes")


if __name__ == "__main__":
    main()
