#!/usr/bin/env bash
# Thinking (8 agents) against Instant on the Qwen3-0.6B-shaped model.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(benchmarks/make_qwen3_06b_shape.sh)
for dtype in f32 bf16; do
  build/bin/bench_modes "$model" --agents 8 --tokens 64 --threads 2 --dtype "$dtype" --repeat 2
done
