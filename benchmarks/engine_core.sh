#!/usr/bin/env bash
# Engine-core figures for the README: prefill and decode speed on the
# Qwen3-0.6B-shaped model, f32 and bf16, batch 1 and 8, 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(benchmarks/make_qwen3_06b_shape.sh)
for dtype in f32 bf16; do
  for batch in 1 8; do
    echo "== dtype $dtype, batch $batch"
    build/bin/musespark bench --model "$model" --threads 2 --dtype "$dtype" --batch "$batch" \
      --prompt-tokens 128 --gen-tokens 32
  done
done
