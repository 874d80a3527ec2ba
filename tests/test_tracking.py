"""Per-cell records through a real InteractiveShell: deltas, run_index, warnings, hooks."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from shellrunner import run_cells

import tfmagic
from tfmagic import extension


def last_record():
    return tfmagic.history()[-1]


def test_keras_rerun_pinned_by_out_grows_and_warns(run):
    cell = "keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])"
    _, first = run(cell)
    one = last_record()
    # One Sequential is one model (its inner Functional is Keras's own).
    assert (one.run_index, one.delta.models, one.delta.variables) == (1, 1, 2)
    assert "tfmagic:" not in first.stderr
    _, second = run(cell)
    two = last_record()
    # Out[N] keeps the first model alive, so the re-run adds to it.
    assert two.run_index == 2 and two.delta.models == 1 and two.delta.variables == 2
    assert two.delta.names.get("sequential") == 1
    assert "run 2 of this cell grew variables +2" in second.stderr
    assert f"pinned by Out[{one.execution_count}]" in second.stderr
    assert "%%tf_isolated" in second.stderr


def test_rerun_whose_old_model_is_unreachable_prints_no_note(run):
    # A Keras model is a reference cycle: after the re-binding the old one is garbage,
    # not alive; the record and the note must say what is really still reachable.
    cell = "unpinned = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])"
    run(cell)
    _, second = run(cell)
    two = last_record()
    assert two.run_index == 2
    assert (two.delta.models, two.delta.variables) == (0, 0)
    assert "tfmagic:" not in second.stderr


def test_redefined_tf_function_retraces_each_run(run):
    cell = "@tf.function\ndef step(x):\n    return x * 2\nstep(tf.constant(1.0))"
    for expected_run in (1, 2, 3):
        _, captured = run(cell)
        record = last_record()
        assert record.run_index == expected_run
        assert record.delta.traces == 1
    assert "traces +1" in captured.stderr


def test_same_source_in_a_new_cell_counts_as_rerun_without_cell_id(run):
    run("x_rerun = 1")
    run("x_rerun = 1")
    assert last_record().run_index == 2
    assert last_record().delta.grew() == []


def test_error_is_recorded_and_left_untouched(run):
    result, _ = run("raise KeyError('boom')", expect_error=True)
    assert isinstance(result.error_in_exec, KeyError)
    assert last_record().raised and last_record().error == "KeyError"


def test_nested_run_cell_records_the_outer_cell_once(run):
    before = len(tfmagic.history())
    run("%%capture\nnested_value = 41 + 1")
    assert len(tfmagic.history()) == before + 1
    assert last_record().label == "%%capture"


def test_blank_cell_is_not_recorded(shell):
    before = len(tfmagic.history())
    shell.run_cell("   ", store_history=True)
    assert len(tfmagic.history()) == before


def test_probe_failure_never_breaks_the_cell_and_is_shown_once(shell, run):
    tracker = extension.loaded().tracker
    real_probe = tracker.probe

    def broken_probe():
        raise RuntimeError("TF exploded while being probed")

    tracker.probe = broken_probe
    try:
        result, first = run("after_broken = 1 + 1")
        assert result.success and shell.user_ns["after_broken"] == 2
        _, second = run("after_broken_again = 3")
    finally:
        tracker.probe = real_probe
    assert first.stderr.count("internal error in pre_run_cell") == 1
    assert "internal error" not in second.stderr


def test_warning_can_be_switched_off_by_config(shell, run):
    shell.run_line_magic("config", "TFMagics.warn_on_growth = False")
    try:
        run("grown = []")
        cell = "grown.append(keras.layers.Dense(2))\ngrown[-1].build((None, 2))"
        run(cell)
        _, captured = run(cell)
        assert last_record().delta.variables == 2
        assert "tfmagic:" not in captured.stderr
    finally:
        shell.run_line_magic("config", "TFMagics.warn_on_growth = True")


def test_graph_stats_options_and_result_object(shell, run):
    run("stats_probe = keras.layers.Dense(3)")
    count = last_record().execution_count
    stats = shell.run_line_magic("tf_graph_stats", f"--cell {count} -o")
    assert [r.execution_count for r in stats.records] == [count]
    assert len(shell.run_line_magic("tf_graph_stats", "-n 2 -o").records) == 2
    assert stats.to_dict()["now"]["tensorflow"] is True
    assert "TF state now" in str(stats) and "<table" in stats._repr_html_()
    assert tfmagic.graph_stats(last=1).records[-1].execution_count == count


@pytest.mark.parametrize("bad", ["--nope", "-n", "-n two", "-n -3", "--cell 100000", "extra"])
def test_graph_stats_bad_input_is_a_one_line_usage_error(shell, bad):
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("tf_graph_stats", bad)
    assert "\n" not in str(info.value)


def test_tf1_get_variable_rerun_and_ops_growing_in_a_loop():
    out = run_cells(
        [
            "%load_ext tfmagic",
            "import tensorflow as tf\ntf.compat.v1.disable_eager_execution()",
            "with tf.compat.v1.variable_scope('weight_def'):\n"
            "    w = tf.compat.v1.get_variable('weights', shape=[4, 4])",
            "with tf.compat.v1.variable_scope('weight_def'):\n"
            "    w = tf.compat.v1.get_variable('weights', shape=[4, 4])",
            "for i in range(50):\n    tf.constant(i)",
            "for i in range(50):\n    tf.constant(i)",
            "sess = tf.compat.v1.Session()",
        ]
    )
    history = out["history"]
    first, rerun, loop1, loop2, session = history[-5:]
    assert first["delta"]["variables"] == 1 and first["delta"]["ops"] > 0
    assert first["delta"]["variable_bytes"] == 64
    assert rerun["run_index"] == 2 and rerun["raised"] and rerun["error"] == "ValueError"
    assert "already exists" in out["cells"][3]["error"]
    assert (loop1["delta"]["ops"], loop2["delta"]["ops"]) == (50, 50)
    assert loop2["run_index"] == 2
    assert "run 2 of this cell grew ops +50" in out["cells"][5]["stderr"]
    assert session["delta"]["sessions"] == 1


def test_ops_count_in_every_user_graph_not_only_the_default_one():
    build = "x = tf.constant(1.0)\nfor _ in range(50):\n    x = x + 1.0"
    out = run_cells(
        [
            "%load_ext tfmagic",
            "import tensorflow as tf\ntf.compat.v1.disable_eager_execution()",
            f"%%tf_isolated\n{build}",
            "g = tf.Graph()\nwith g.as_default():\n"
            + "\n".join("    " + line for line in build.splitlines()),
            # A tf.function's trace is a FuncGraph: counted as traces, not as a user graph.
            "f = tf.function(lambda v: v * 2.0)\nf.get_concrete_function(tf.TensorSpec([]))\n"
            "from tfmagic.registry import REGISTRY\n"
            "RESULT = sorted({type(g).__name__ for g in REGISTRY.graphs})",
        ]
    )
    assert [c["error"] for c in out["cells"]] == [None] * 5
    isolated, own_graph, traced = out["history"][-3:]
    # 101 ops: the constant, then 50 constants and 50 adds.
    assert (isolated["delta"]["ops"], isolated["delta"]["graphs"]) == (101, 1)
    assert (own_graph["delta"]["ops"], own_graph["delta"]["graphs"]) == (101, 1)
    assert traced["delta"]["traces"] == 1 and out["result"] == ["Graph"]
