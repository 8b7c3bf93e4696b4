#!/usr/bin/env bash
# `musespark serve` soak (serve_soak.mjs): --requests requests of mixed kinds
# (default 1000: plain and streamed chat completions, n: 2, /v1/musespark/ask,
# /health, /v1/models; ~15% cut off by the client, ~15% malformed) from
# --clients concurrent clients (default 16) against one server on loopback
# (--parallel 2 --max-queue 8 --threads 1 --max-body-mb 1 --api-key), with a
# deadline per request. Prints statuses by kind, latency, requests/s, the
# server's RSS over the run and /health's counters; ends `soak: PASS` or
# `soak: FAIL (...)` (exit 1).
#
#   benchmarks/serve_soak.sh [MODEL_DIR] [--requests N] [--clients C]
#
# MODEL_DIR defaults to models/musespark-mini. Other options of serve_soak.mjs
# (--parallel, --max-queue, --threads, --deadline, --seed, --sample,
# --max-late-growth-mib, --think-ms, --target-503, --only) pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/musespark-mini
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --*) [[ $# -ge 2 ]] || { echo "$1 needs a value" >&2; exit 2; }; args+=("$1" "$2"); shift 2 ;;
    *) model=$1; shift ;;
  esac
done
exec node benchmarks/serve_soak.mjs --bin build/bin/musespark --model "$model" "${args[@]}"
