"""The CI subset of the do-no-harm corpus (benchmarks/corpus.py): real TF docs and Keras
guide notebooks, every cell run twice, plain, tracked (`%load_ext tfmagic`) and under
`%%tf_isolated`. tfmagic must add no error and must record every cell run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import corpus  # noqa: E402


@pytest.mark.parametrize("name", corpus.QUICK)
def test_tfmagic_adds_no_error_and_records_every_run(name):
    path = corpus.CORPUS / f"{name}.ipynb"
    if not path.exists():
        pytest.skip(f"the notebook corpus is not here: {path} (set TFMAGIC_CORPUS)")
    result = corpus.run_notebook(path, corpus.PASSES)
    report = corpus.report(result)
    assert set(result.passes) == set(corpus.PASSES), f"a pass did not run\n{report}"
    assert result.passes["plain"].failure is None, f"the plain pass failed\n{report}"
    assert result.new_errors["tracked"] == [], f"new errors under tracking\n{report}"
    assert result.new_errors["isolated"] == [], f"new errors under %%tf_isolated\n{report}"
    assert all(result.passes[m].all_recorded for m in ("tracked", "isolated")), (
        f"tfmagic did not record every cell run\n{report}"
    )
    assert result.ok, report
