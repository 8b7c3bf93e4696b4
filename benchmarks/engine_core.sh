#!/usr/bin/env bash
# Engine-core figures for the README: prefill and decode speed on the
# Qwen3-0.6B-shaped model, 2 threads: f32 and bf16 on libtorch alone
# (MUSESPARK_KERNELS=none), bf16, int8 and q4 on our decode kernels, batch 1 and 8.
# Usage: benchmarks/engine_core.sh [gen-tokens (32)] [prompt-tokens (128)]
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(benchmarks/make_qwen3_06b_shape.sh)
gen=${1:-32}
prompt=${2:-128}
run() {  # label, env, dtype, batch
  echo "== $1, dtype $3, batch $4"
  env $2 build/bin/musespark bench --model "$model" --threads 2 --dtype "$3" --batch "$4" \
    --prompt-tokens "$prompt" --gen-tokens "$gen"
}
for batch in 1 8; do
  run libtorch MUSESPARK_KERNELS=none f32 "$batch"
  run libtorch MUSESPARK_KERNELS=none bf16 "$batch"
  run kernels MUSESPARK_KERNELS=avx512 bf16 "$batch"
  run kernels MUSESPARK_KERNELS=avx512 int8 "$batch"
  run kernels MUSESPARK_KERNELS=avx512 q4 "$batch"
done
