"""Every example notebook runs in a real kernel (nbclient) with no unexpected error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import run_examples  # noqa: E402


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ipynb")), ids=lambda p: p.stem)
def test_example_notebook_runs(path):
    notebook = run_examples.execute(path)
    assert run_examples.unexpected_errors(notebook) == []
    assert run_examples.report(notebook), "the notebook shows nothing from tfmagic"
