"""The benchmarks run, and their baselines compute what they claim to (timings are not asserted here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import equinlp as eq
from benchmarks.perf_generate import PROMPTS, action_for, load, naive_loop

ROOT = Path(__file__).parents[1]


def test_naive_loop_gives_the_same_tokens_as_equitune_generate():
    model, tok = load("tiny", "cpu")
    action = action_for(tok, 6)
    batch = tok(PROMPTS[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        fast = eq.equitune(model, action).generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)
        naive = naive_loop(model, action, batch, 5)()
    for row, ids in enumerate(naive):
        assert fast[row, -5:].tolist() == ids[-5:].tolist()


def run(module: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{module}.json"
    command = [sys.executable, "-m", f"benchmarks.{module}", *args, "--device", "cpu", "--repeats", "1", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "written" in result.stdout
    return json.loads(out.read_text())


@pytest.mark.slow
def test_perf_generate_writes_a_row_per_cell(tmp_path):
    args = ["--models", "tiny", "--orders", "2", "--batch-sizes", "2", "--naive-batch-sizes", "2", "--new-tokens", "3"]
    result = run("perf_generate", *args, tmp_path=tmp_path)
    assert sorted(r["variant"] for r in result["rows"]) == ["equinlp", "floor", "naive"]
    assert all(r["seconds"] > 0 and r["order"] == 2 and r["batch"] == 2 for r in result["rows"])


@pytest.mark.slow
def test_perf_scan_times_every_method_against_the_floor(tmp_path):
    result = run("perf_scan", "--limit", "64", "--batch-size", "32", "--threads", "1", tmp_path=tmp_path)
    assert [r["variant"] for r in result["rows"]] == ["floor", "equitune", "equizero", "lambda"]
    assert result["n_test"] == 64 and result["group_order"] == 2
    assert result["rows"][0]["time / floor"] == 1.0


@pytest.mark.slow
def test_scan_gseq_coverage_splits_the_test_score_in_two(tmp_path, one_thread):
    from benchmarks.scan_gseq_coverage import split_scores
    from equinlp.apps.scan.task import ScanConfig, ScanTask
    from equinlp.harness import load_runs, run_task

    config = ScanConfig(
        split="template_around_right", cell="grnn", g_hidden=4, pretrain_steps=2, finetune_steps=0, batch_size=8,
        out=str(tmp_path),
    )  # fmt: skip
    run_task(ScanTask(), config)
    (row,) = split_scores(tmp_path)
    assert (row["n_reachable"], row["n_unreachable"]) == (3756, 720)
    correct = row["reachable"] * row["n_reachable"] + row["unreachable"] * row["n_unreachable"]
    assert round(correct) == round(load_runs(tmp_path, "scan")["zero_shot"].iloc[0] * 4476)
