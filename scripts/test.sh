#!/usr/bin/env bash
# Set everything up, then run the linters, the type checker and the whole test suite:
# first the fast tier (pure core, in-process shells), then everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check tfmagic tests benchmarks examples
.venv/bin/ruff format --check tfmagic tests benchmarks examples
.venv/bin/mypy
export TF_CPP_MIN_LOG_LEVEL=3
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest -m fast
exec .venv/bin/python -m pytest -m "not fast"
