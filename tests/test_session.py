"""The session's rules are shared by the magics, the Python twins and the buttons."""

from __future__ import annotations

import weakref

import pytest
from IPython.core.error import UsageError

import tfmagic
from tfmagic import extension

pytestmark = pytest.mark.fast


def test_negative_last_is_refused_by_the_twin_and_the_magic(shell, run):
    run("x_for_stats = 1")
    with pytest.raises(ValueError, match="last takes a count of 0 or more, not -2"):
        tfmagic.graph_stats(last=-2)
    with pytest.raises(UsageError, match="not -2"):
        shell.run_line_magic("tf_graph_stats", "-n -2")
    assert len(tfmagic.graph_stats(last=1).records) == 1


def test_unknown_cell_and_keep_names_raise_value_errors_in_python(shell):
    with pytest.raises(ValueError, match=r"no recorded cell ran as In\[99999\]"):
        tfmagic.graph_stats(cell=99999)
    with pytest.raises(ValueError, match="unknown variables: no_such_name"):
        tfmagic.reset(hard=True, keep=("no_such_name",))
    with pytest.raises(ValueError, match="not imported here"):
        tfmagic.reload("no_such_module_anywhere")


def test_python_twin_of_isolated_records_and_releases_like_the_magic(shell, run):
    cell = (
        "with tfmagic.isolated():\n"
        "    twin_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "twin_model"
    )
    run("import tfmagic")
    run(cell)
    first = weakref.ref(shell.user_ns["_"])
    once = tfmagic.snapshot()
    assert tfmagic.history()[-1].isolated
    _, captured = run(cell)
    record = tfmagic.history()[-1]
    assert record.isolated and record.run_index == 2
    assert "grew" not in captured.stderr
    assert first() is None  # its Out[N] pin was released and it was collected
    assert tfmagic.snapshot().variables == once.variables


def test_history_limit_below_one_is_refused_and_keeps_its_value(shell, run):
    magics = next(c for c in shell.configurables if type(c).__name__ == "TFMagics")
    shell.run_line_magic("config", "TFMagics.history_limit = 7")
    try:
        shell.run_line_magic("config", "TFMagics.history_limit = 0")
        assert magics.history_limit == 7
        assert extension.loaded().tracker.history.maxlen == 7
    finally:
        shell.run_line_magic("config", "TFMagics.history_limit = 1000")
    assert extension.loaded().tracker.history.maxlen == 1000
