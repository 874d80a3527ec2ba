#!/usr/bin/env bash
# Set everything up, then run every benchmark (each prints medians and ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
for bench in benchmarks/*.py; do
  echo "== $bench"
  .venv/bin/python "$bench" "$@"
done
