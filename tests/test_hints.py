"""The "already exists" hint names the right cause, and its advice, applied, works."""

from __future__ import annotations

from shellrunner import run_cells

SETUP = [
    "%load_ext tfmagic",
    "import numpy as np\nimport tensorflow as tf\ntf.compat.v1.disable_eager_execution()\n"
    "x = np.ones((2, 3), dtype='float32')",
    # A forecast() that builds its variables on every call: the reported case.
    "class Forecaster:\n"
    "    def forecast(self, inputs):\n"
    "        features = tf.compat.v1.placeholder(tf.float32, shape=[None, 3])\n"
    "        with tf.compat.v1.variable_scope('weight_def'):\n"
    "            w = tf.compat.v1.get_variable('weights', shape=[3, 1],\n"
    "                                          initializer=tf.compat.v1.ones_initializer())\n"
    "        with tf.compat.v1.Session() as sess:\n"
    "            sess.run(tf.compat.v1.global_variables_initializer())\n"
    "            return sess.run(tf.matmul(features, w), {features: inputs})",
]


def hint_of(cell: dict) -> str:
    lines = [line for line in cell["stderr"].splitlines() if line.startswith("tfmagic:")]
    assert len(lines) == 1, cell["stderr"]
    return lines[0]


def test_same_run_collision_advises_building_once_and_that_works():
    out = run_cells(
        [
            *SETUP,
            "f = Forecaster()\nf.forecast(x)\nf.forecast(x)",  # fails on the second call
            # The advice, applied: each call in a graph of its own ...
            "def forecast_in_own_graph(inputs):\n"
            "    with tf.Graph().as_default():\n"
            "        return Forecaster().forecast(inputs)\n"
            "forecast_in_own_graph(x); RESULT = forecast_in_own_graph(x).tolist()",
        ]
    )
    failed, fixed = out["cells"][-2], out["cells"][-1]
    assert failed["error"].startswith("ValueError: Variable weight_def/weights already exists")
    hint = hint_of(failed)
    assert "this same run of In[4] created it" in hint
    assert "Build them once" in hint and "%%tf_isolated" not in hint
    assert fixed["error"] is None and out["result"] == [[3.0], [3.0]]


def test_same_run_collision_inside_an_isolated_cell_names_this_run():
    out = run_cells(
        [
            *SETUP,
            "f = Forecaster()\nf.forecast(x)",  # the default graph now has the variable too
            "%%tf_isolated\nf.forecast(x)\nf.forecast(x)",
        ]
    )
    hint = hint_of(out["cells"][-1])
    assert "this same run of In[5] created it" in hint, hint


def test_earlier_run_collision_advises_isolation_and_that_works():
    out = run_cells(
        [
            *SETUP,
            "f = Forecaster()\nf.forecast(x)",
            "f.forecast(x)",  # another cell: the variable is from In[4]
            "%%tf_isolated\nRESULT = f.forecast(x).tolist()",
            "%%tf_isolated\nRESULT = f.forecast(x).tolist()",
        ]
    )
    failed = out["cells"][-3]
    hint = hint_of(failed)
    assert "It was created by In[4] (run 1 of that cell)" in hint
    assert "%%tf_isolated" in hint
    assert [c["error"] for c in out["cells"][-2:]] == [None, None]
    assert out["result"] == [[3.0], [3.0]]
