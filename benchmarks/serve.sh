#!/usr/bin/env bash
# `musespark serve` under load: requests per second and latency (p50, p95) at
# 1, 4 and 16 concurrent clients, each request a small Thinking question
# (2 agents, 32 thinking and 16 answer tokens each) with its own seed.
#
#   benchmarks/serve.sh [MODEL_DIR]
#
# MODEL_DIR defaults to the embedded default model (models/musespark-mini).
# Environment: REQUESTS per level (default 24), PARALLEL (the server's
# --parallel, default 1), THREADS (--threads; default: cores / PARALLEL).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/musespark-mini}
out=$(mktemp)
build/bin/musespark serve --model "$model" --port 0 --quiet ${THREADS:+--threads "$THREADS"} \
  --parallel "${PARALLEL:-1}" --max-queue 32 >"$out" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 300); do grep -q listening "$out" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$out" | tail -1)
echo "model: $model (--parallel ${PARALLEL:-1}${THREADS:+, --threads $THREADS})"
node benchmarks/serve_load.mjs "$url" --clients 1,4,16 --requests "${REQUESTS:-24}"
