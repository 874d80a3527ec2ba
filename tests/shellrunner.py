"""Run notebook-like cells in a real IPython InteractiveShell in a fresh process.

TensorFlow state is process-global (eager vs. graph mode, Keras flavour), so tests
that need a particular flavour run their cells here and read back JSON:
``python shellrunner.py < cells.json`` prints one JSON object on the last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MARKER = "TFMAGIC-SHELLRUNNER-RESULT:"


def run_cells(cells: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> dict:
    """Run ``cells`` in a new process; return per-cell outputs, history and ``result``.

    A cell may set ``RESULT`` (a JSON-able value) in the user namespace; its last
    value is returned as ``result``.
    """
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__))],
        input=json.dumps(cells),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise AssertionError(f"shell runner failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def _main() -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    cells = json.loads(sys.stdin.read())
    shell = InteractiveShell.instance()
    outputs: list[dict[str, Any]] = []
    for cell in cells:
        with capture_output() as captured:
            result = shell.run_cell(cell, store_history=True)
        error = result.error_in_exec or result.error_before_exec
        outputs.append(
            {
                "stdout": captured.stdout,
                "stderr": captured.stderr,
                "displays": [o.data for o in captured.outputs],
                "error": None if error is None else f"{type(error).__name__}: {error}",
            }
        )
    import tfmagic

    payload = {
        "cells": outputs,
        "history": [r.to_dict() for r in tfmagic.history()],
        "result": shell.user_ns.get("RESULT"),
    }
    print(MARKER + json.dumps(payload, default=str))


if __name__ == "__main__":
    _main()
