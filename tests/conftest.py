from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def shell():
    """One real InteractiveShell with tfmagic loaded and Keras 3 imported, shared by
    the tests that only look at deltas (importing TensorFlow takes seconds)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "tfmagic")
    result = ip.run_cell("import tensorflow as tf\nimport keras", store_history=True)
    result.raise_error()
    yield ip
    ip.run_line_magic("unload_ext", "tfmagic")


@pytest.fixture
def run(shell):
    """Run one cell like a notebook would; fail the test if tfmagic's hooks broke it."""
    from IPython.utils.capture import capture_output

    def run_cell(source: str, expect_error: bool = False):
        with capture_output() as captured:
            result = shell.run_cell(source, store_history=True)
        if not expect_error:
            result.raise_error()
        return result, captured

    return run_cell


# Modules whose every test runs in this process without TensorFlow state of its own.
FAST_MODULES = {"test_core_plain", "test_render"}


def pytest_collection_modifyitems(items):
    """``pytest -m fast``: pure core tests and tests on the shared in-process shell."""
    for item in items:
        if item.module.__name__ in FAST_MODULES or "shell" in item.fixturenames:
            item.add_marker(pytest.mark.fast)
