"""%%tf_isolated and %tf_reset through real InteractiveShells, for each flavour."""

from __future__ import annotations

import weakref

import pytest
from IPython.core.error import UsageError
from shellrunner import run_cells

import tfmagic

MODEL_CELL = (
    "%%tf_isolated\n"
    "iso_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])\n"
    "[layer.name for layer in iso_model.layers], iso_model"
)


def live_names():
    from tfmagic.registry import REGISTRY

    return [layer.name for layer in REGISTRY.layers if not layer.name.startswith("input")]


def test_isolated_reruns_keep_names_and_counts_and_release_out(shell, run):
    run("other_cell_layer = keras.layers.Dense(2)")  # alive, from another cell
    run(MODEL_CELL)
    one = tfmagic.snapshot()
    names = shell.user_ns["_"][0]
    first_model = weakref.ref(shell.user_ns["_"][1])
    first_count = tfmagic.history()[-1].execution_count
    for expected_run in (2, 3, 4):
        _, captured = run(MODEL_CELL)
        assert shell.user_ns["_"][0] == names
        assert tfmagic.history()[-1].run_index == expected_run
        assert tfmagic.history()[-1].isolated
        assert "grew" not in captured.stderr
    now = tfmagic.snapshot()
    assert (now.variables, now.models, now.variable_bytes) == (
        one.variables,
        one.models,
        one.variable_bytes,
    )
    assert first_count not in shell.user_ns["Out"]
    assert first_model() is None
    alive = live_names()
    assert len(alive) == len(set(alive)), alive


def test_error_in_isolated_cell_fails_the_cell_and_restores_names(shell, run):
    from tfmagic.frameworks import keras3

    before = keras3.name_counters()
    result, _ = run("%%tf_isolated\nkeras.layers.Dense(1)\n1 / 0", expect_error=True)
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    again, _ = run("%%tf_isolated\nkeras.layers.Dense(1)\n1 / 0", expect_error=True)
    assert isinstance(again.error_in_exec, ZeroDivisionError)
    after = keras3.name_counters()
    assert after["dense"] == before.get("dense", 0) + 1  # the re-run reused its first name


def test_interrupt_in_isolated_cell_fails_the_cell(run):
    result, _ = run("%%tf_isolated\nraise KeyboardInterrupt", expect_error=True)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)


def test_combined_with_other_cell_magics_and_strategy_scope(shell, run):
    cell = (
        "%%tf_isolated\n%%capture captured_iso\n"
        "strategy = tf.distribute.OneDeviceStrategy('/cpu:0')\n"
        "with strategy.scope():\n"
        "    dist_model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])\n"
        "print('built', dist_model.layers[0].name)"
    )
    run(cell)
    once = tfmagic.snapshot().variables
    run(cell)
    run(cell)
    assert tfmagic.snapshot().variables == once
    assert "built dense" in shell.user_ns["captured_iso"].stdout
    run("%%capture outer_capture\n%%tf_isolated\nprint('inside')")
    assert "inside" in shell.user_ns["outer_capture"].stdout


def test_isolated_python_twin(shell, run):
    cell = "with tfmagic.isolated('twin'):\n    twin = keras.layers.Dense(5)\ntwin_name = twin.name"
    run("import tfmagic")
    run(cell)
    first = shell.user_ns["twin_name"]
    run(cell)
    assert shell.user_ns["twin_name"] == first


@pytest.mark.parametrize("line", ["--bogus", "--key"])
def test_isolated_bad_options(shell, line):
    with pytest.raises(UsageError):
        shell.run_cell_magic("tf_isolated", line, "ran = True")
    assert "ran" not in shell.user_ns


def test_reset_frees_output_pins_keeps_bound_models_settings_and_names(shell, run):
    run(
        "keras.mixed_precision.set_global_policy('mixed_float16')\n"
        "keras.utils.set_random_seed(1234)\n"
        "kept = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])"
    )
    for _ in range(3):
        run("keras.Sequential([keras.Input((3,)), keras.layers.Dense(8)])")  # pinned by Out
    run("import gc; gc.collect()")
    before = tfmagic.snapshot()
    report = shell.run_line_magic("tf_reset", "-o")
    after = tfmagic.snapshot()
    assert any(p.startswith("Out[") for p in report.dropped_outputs)
    assert "kept" in report.kept_names and "kept" in shell.user_ns
    assert after.models < before.models and after.variables < before.variables
    assert {layer.name for layer in shell.user_ns["kept"].layers} <= set(live_names())
    run(
        "from keras.src.backend.common import global_state\n"
        "settings = (str(keras.mixed_precision.global_policy().name), keras.config.floatx(),"
        " global_state.get_global_attribute('global_random_seed'))\n"
        "keras.mixed_precision.set_global_policy('float32')"
    )
    assert shell.user_ns["settings"] == ("mixed_float16", "float32", 1234)
    # Plain clear_session() would restart at `dense` and make this collide.
    run("extended = keras.Sequential(kept.layers[:-1] + [keras.layers.Dense(2)])")
    names = [layer.name for layer in shell.user_ns["extended"].layers]
    assert len(names) == len(set(names))


def test_reset_dry_run_hard_and_keep(shell, run):
    run("hard_a = keras.layers.Dense(2)\nhard_b = tf.Variable(1.0)\nplain = [1, 2, 3]")
    dry = shell.run_line_magic("tf_reset", "--hard --dry-run -o")
    assert {"hard_a", "hard_b"} <= set(dry.deleted_names)
    assert "hard_a" in shell.user_ns and dry.dry_run
    assert "would delete" in str(dry)
    report = shell.run_line_magic("tf_reset", "--hard --keep hard_b -o")
    assert "hard_a" not in shell.user_ns and "hard_a" in report.deleted_names
    assert "hard_b" in shell.user_ns and "hard_b" in report.kept_names
    assert shell.user_ns["plain"] == [1, 2, 3] and "keras" in shell.user_ns
    with pytest.raises(UsageError, match="unknown variables: nope"):
        shell.run_line_magic("tf_reset", "--keep nope")


def test_tf1_isolated_get_variable_sessions_and_reset():
    out = run_cells(
        [
            "%load_ext tfmagic",
            "import tensorflow as tf, tfmagic\ntf.compat.v1.disable_eager_execution()\n"
            "tf.compat.v1.set_random_seed(5)\nglobal_graph = tf.compat.v1.get_default_graph()",
            *[
                "%%tf_isolated\n"
                "with tf.compat.v1.variable_scope('weight_def'):\n"
                "    w = tf.compat.v1.get_variable('weights', shape=[3, 3])\n"
                "sess = tf.compat.v1.Session()\n"
                "sess.run(tf.compat.v1.global_variables_initializer())\n"
                "sessions = globals().setdefault('all_sessions', [])\n"
                "sessions.append(sess)"
            ]
            * 3,
            "with sess.graph.as_default():  # later cells add ops to the cell's graph\n"
            "    value = sess.run(tf.reduce_sum(w * 0))\n"
            "RESULT = {'closed': [s._closed for s in all_sessions], 'value': float(value),"
            " 'same_global': tf.compat.v1.get_default_graph() is global_graph,"
            " 'global_ops': global_graph.version}",
            "%%tf_isolated\nraise KeyboardInterrupt",
            "RESULT['restored'] = tf.compat.v1.get_default_graph() is global_graph",
            "isess = tf.compat.v1.InteractiveSession()\n"
            "with tf.Graph().as_default():\n"
            "    nested = tfmagic.reset()\n"
            "RESULT['nested_skipped'] = nested.skipped\n"
            "RESULT['nested_closed'] = nested.closed_sessions",
            "%tf_reset",
            "RESULT['seed'] = tf.compat.v1.get_default_graph().seed",
        ]
    )
    errors = [c["error"] for c in out["cells"] if c["error"]]
    assert errors == ["KeyboardInterrupt: "]
    result = out["result"]
    assert result["closed"] == [True, True, False]
    assert result["value"] == 0.0 and result["same_global"] and result["global_ops"] == 0
    assert result["restored"]
    assert "run %tf_reset outside" in result["nested_skipped"][0]
    assert any("InteractiveSession" in s for s in result["nested_closed"])
    assert result["seed"] == 5


def test_tf_keras_isolated_names_and_reset_keeps_policy():
    cell = (
        "%%tf_isolated\n"
        "m = tf_keras.Sequential([tf_keras.layers.Dense(4, input_shape=(3,)), tf_keras.layers.Dense(1)])\n"
        "names.append([l.name for l in m.layers])"
    )
    out = run_cells(
        [
            "%load_ext tfmagic",
            "import tensorflow as tf, tf_keras, tfmagic\nnames = []\n"
            "tf_keras.mixed_precision.set_global_policy('mixed_float16')",
            "keep = tf_keras.layers.Dense(2)",
            cell,
            "first = tfmagic.snapshot().variables",
            cell,
            cell,
            "RESULT = {'names': names, 'same': tfmagic.snapshot().variables == first}",
            "%tf_reset",
            "RESULT['policy'] = tf_keras.mixed_precision.global_policy().name",
        ],
        env={"TF_USE_LEGACY_KERAS": "1"},
    )
    assert not [c["error"] for c in out["cells"] if c["error"]]
    result = out["result"]
    assert result["names"][0] == result["names"][1] == result["names"][2]
    assert result["same"] and result["policy"] == "mixed_float16"
