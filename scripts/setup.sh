#!/usr/bin/env bash
# Set up everything tfmagic's demo and tests need, on a fresh machine:
# a virtualenv in .venv with tfmagic (editable) and its test extras, and Debian's
# chromium for the JupyterLab browser tests. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -vE "^WARNING: Location|BuildBackendWarning" || true
.venv/bin/python -c "import tfmagic, tensorflow, tf_keras, playwright, nbclient" 2>/dev/null \
  || { echo "setup: the Python install failed" >&2; exit 1; }

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium not found; install Debian's 'chromium' package for the browser tests" >&2
  fi
fi
