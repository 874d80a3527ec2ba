"""stale(), stale tf.function captures, error hints and %tf_reload, in fresh processes."""

from __future__ import annotations

import textwrap

import pytest
from shellrunner import run_cells

SETUP = ["%load_ext tfmagic", "import tensorflow as tf, keras, tfmagic"]
MODEL = "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\nopt = keras.optimizers.SGD(0.1)"
STEP = """@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss"""
TRAIN = "for _ in range(3):\n    train_step(tf.ones([4, 3]), tf.zeros([4, 2]))"
STALE = "RESULT = [(s.kind, s.label, list(s.pinned_by)) for s in tfmagic.stale()]"


def test_silent_stale_training_is_named_after_the_cell_and_by_stale():
    out = run_cells([*SETUP, MODEL, STEP, TRAIN, MODEL, TRAIN, STALE])
    first_train, second_train = out["cells"][4], out["cells"][6]
    assert "train_step" not in first_train["stderr"]
    warning = [line for line in second_train["stderr"].splitlines() if "train_step" in line]
    assert len(warning) == 1 and "still training the old weights" in warning[0]
    kinds = {(kind, label.split(":")[0]) for kind, label, _ in out["result"]}
    assert ("tf.function", "train_step") in kinds
    assert ["train_step"] in [pins for kind, _, pins in out["result"] if kind == "tf.function"]


def test_no_false_alarm_when_model_and_step_are_rebuilt_together():
    together = MODEL + "\n" + STEP
    out = run_cells([*SETUP, together, TRAIN, together, TRAIN, together, TRAIN, STALE])
    assert not any("tfmagic: train_step" in c["stderr"] for c in out["cells"])
    assert out["result"] == []


def test_output_pinned_model_is_stale_with_its_pins_and_hard_reset_clears_all():
    cell = "keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])"
    out = run_cells(
        [
            *SETUP,
            cell,
            cell,
            "cbs = [keras.callbacks.History()]\ncbs[0].set_model(__)",
            STALE + "\nBEFORE = RESULT",
            "%tf_reset --hard",
            STALE + "\nRESULT = {'before': BEFORE, 'after': RESULT}",
        ]
    )
    before = out["result"]["before"]
    assert len(before) == 1
    kind, label, pins = before[0]
    assert kind == "model" and "from In[3], run 1" in label  # SETUP is In[1] and In[2]
    assert "Out[3]" in pins and "cbs[0]._model" in pins  # Keras 3 History keeps ._model
    assert out["result"]["after"] == []


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (
            [
                "tf.compat.v1.disable_eager_execution()",
                "w = tf.compat.v1.get_variable('weight_def/weights', shape=[2])",
                "w = tf.compat.v1.get_variable('weight_def/weights', shape=[2])",
            ],
            "`weight_def/weights` is already in this graph. It was created by In[4]",
        ),
        (
            [
                "tf.compat.v1.disable_eager_execution()",
                "g = tf.Graph()\nwith g.as_default():\n    a = tf.constant(1.0)",
                "b = a + tf.constant(2.0)",
            ],
            "the tensors come from two graphs",
        ),
        (
            ["g = tf.Graph()\ng.finalize()", "with g.as_default():\n    tf.constant(1)"],
            "the graph was finalized",
        ),
        (
            ["with tf.Graph().as_default():\n    tf.compat.v1.reset_default_graph()"],
            "a graph is still entered",
        ),
        (
            [
                "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])",
                "keras.backend.clear_session()",
                "keras.Sequential(m.layers[:-1] + [keras.layers.Dense(2)])",
            ],
            "Keras names were reused",
        ),
        (
            [
                "@tf.function\ndef f(x):\n    v = tf.Variable(1.0)\n    return v + x",
                "f(1.0)",
            ],
            "made new variables on a later trace",
        ),
        (
            [
                "tf.compat.v1.disable_eager_execution()",
                "g = tf.Graph()\nwith g.as_default():\n    a = tf.constant(1.0)\n"
                "sess = tf.compat.v1.Session(graph=tf.Graph())",
                "sess.run(a)",
            ],
            "the session was made for another graph",
        ),
    ],
    ids=[
        "already-exists",
        "same-graph",
        "finalized",
        "nested-reset",
        "unique-names",
        "singleton",
        "session-graph",
    ],
)
def test_error_hints_follow_the_real_error(cells, expected):
    out = run_cells([*SETUP, *cells])
    last = out["cells"][-1]
    assert last["error"], "the cell should fail with the real TF error"
    hints = [line for line in last["stderr"].splitlines() if line.startswith("tfmagic:")]
    assert len(hints) == 1 and expected in hints[0], last["stderr"]


def test_tf_reload_rebinds_module_names_with_clean_keras_names(tmp_path):
    module = tmp_path / "netdef.py"
    source = textwrap.dedent(
        """
        import keras
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense({units})])
        """
    )
    module.write_text(source.format(units=4))

    def edit(units: int) -> str:
        return f"open({str(module)!r}, 'w').write({source.format(units=units)!r})"

    out = run_cells(
        [
            *SETUP,
            f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nfrom netdef import net as my_net",
            "other = keras.layers.Dense(1)",  # moves the name counters on
            edit(7),
            "report = %tf_reload netdef -o",
            "RESULT = {'units': my_net.layers[-1].units, 'name': my_net.layers[-1].name,"
            " 'rebound': report.rebound, 'text': str(report)}",
            # What users try first: a plain reload leaves `net` old; %tf_reload still finds it.
            "from netdef import net",
            edit(9),
            "import importlib, netdef\nnetdef = importlib.reload(netdef)",
            "RESULT['plain'] = net.layers[-1].units",
            "%tf_reload netdef",
            "RESULT['after'] = net.layers[-1].units",
            "%tf_reload not_a_module_xyz",
        ]
    )
    result = out["result"]
    assert result["units"] == 7 and result["name"] == "dense"
    assert result["rebound"] == {"my_net": "net"}
    assert "rebound: my_net (= netdef.net)" in result["text"]
    assert (result["plain"], result["after"]) == (7, 9)
    assert "UsageError" in out["cells"][-1]["error"]
    assert "import it first" in out["cells"][-1]["error"]
