#!/usr/bin/env bash
# Set everything up, then execute the example notebooks headless in a real Jupyter
# kernel and print what tfmagic reported in each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/python examples/run_examples.py "$@"
