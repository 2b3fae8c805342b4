#!/usr/bin/env bash
# The GPU variant of the benchmarks, one command (a few minutes on one GPU):
#
#   bash benchmarks/gpu.sh [MODEL] [OUT_DIR]
#
# MODEL: the embedded `smollm2` (default), a hub id or folder, or `random:FOLDER` (FOLDER's architecture and
# tokenizer with random weights: the same cost, for a machine that cannot hold the weights).
# Writes OUT_DIR/perf_generate.json and OUT_DIR/perf_scan.json (default reports/gpu) and prints both tables.
set -euo pipefail
model=${1:-smollm2}
out=${2:-reports/gpu}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
python=${PYTHON:-python}
"$python" -m benchmarks.perf_scan --device cuda --repeats 5 --out "$out/perf_scan.json"
"$python" -m benchmarks.perf_generate --device cuda --models tiny "$model" --orders 1 2 3 6 \
    --batch-sizes 1 8 32 64 --naive-batch-sizes 1 8 --repeats 5 --out "$out/perf_generate.json"
