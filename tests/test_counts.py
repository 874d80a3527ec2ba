"""Snapshot counts equal a full gc scan, for each flavour (one fresh process each)."""

from __future__ import annotations

import pytest
from shellrunner import run_cells

# Runs in the user namespace after the flavour cells; compares with a heap walk.
COMPARE = """
import gc, tfmagic
from tensorflow.python.ops import resource_variable_ops
from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function
gc.collect()
objs = gc.get_objects()
variables = [o for o in objs if isinstance(o, tf.Variable)
             and type(o) is not resource_variable_ops._UnreadVariable]
# Keras's own parts are not what the user built: a Keras 3 Sequential's inner
# Functional, and the input layer a tf_keras Sequential makes (`<first layer>_input`).
own = set()
for o in objs:
    if isinstance(o, LAYER) and isinstance(o.__dict__.get('_functional'), MODEL):
        own.add(id(o.__dict__['_functional']))
    if isinstance(o, LAYER) and type(o).__name__ == 'Sequential' and o.layers:
        own.update(id(i) for i in getattr(o, '_input_layers', ()) if i.name == o.layers[0].name + '_input')
layers_ = [o for o in objs if isinstance(o, LAYER) and id(o) not in own]
def nbytes(v):
    return (v.shape.num_elements() or 0) * v.dtype.size
scan = {
    'variables': len(variables),
    'variable_bytes': sum(nbytes(v) for v in variables),
    'models': sum(isinstance(o, MODEL) for o in layers_),
    'layers': sum(not isinstance(o, MODEL) for o in layers_),
    'sessions': sum(isinstance(o, tf.compat.v1.Session.__mro__[1]) and not o._closed for o in objs),
    'traces': sum(o.experimental_get_tracing_count() for o in objs if isinstance(o, Function)),
}
snap = tfmagic.snapshot().to_dict()
RESULT = {'scan': scan, 'snap': {k: snap[k] for k in scan}}
"""

KERAS3 = [
    "%load_ext tfmagic",
    "import tensorflow as tf\nimport keras\nLAYER, MODEL = keras.layers.Layer, keras.Model",
    "m1 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])\n"
    # train_on_batch: fit() would also trace tf.data's internal functions, which then
    # die; their traces stay in the total ("seen since load") but a scan cannot see them.
    "m1.compile('adam', 'mse')\nm1.train_on_batch(tf.zeros([8, 4]), tf.zeros([8, 2]))",
    "inp = keras.Input((3,))\nm2 = keras.Model(inp, keras.layers.Dense(5)(inp))\n"
    "loose = keras.layers.Dense(3)\nloose.build((None, 7))",
    "v = tf.Variable(tf.ones([100, 100]))\nv.assign_add(tf.ones([100, 100]))\n"
    "@tf.function\ndef f(x):\n    return x * 2\nf(1); f(2.0); f(tf.constant([1.0]))",
    "del m2, inp",  # dropped objects must leave the counts too
]

TF_KERAS = [
    # tfmagic loaded late: objects made before it are found by the one-time seed.
    "import os\nimport tensorflow as tf\nimport tf_keras\n"
    "LAYER, MODEL = tf_keras.layers.Layer, tf_keras.Model\n"
    "early = tf_keras.Sequential([tf_keras.layers.Dense(4, input_shape=(3,))])",
    "%load_ext tfmagic",
    "Dense = tf_keras.layers.Dense\n"
    "m = tf_keras.Sequential([Dense(8, input_shape=(4,)), Dense(1)])\n"
    "m.compile('sgd', 'mse')\nm.train_on_batch(tf.zeros([4, 4]), tf.zeros([4, 1]))\n"
    "assert tf.keras.layers.Dense.__module__.startswith('tf_keras')",
]

TF1 = [
    "%load_ext tfmagic",
    "import tensorflow as tf\nimport tf_keras\ntf.compat.v1.disable_eager_execution()\n"
    "LAYER, MODEL = tf_keras.layers.Layer, tf_keras.Model",
    "with tf.compat.v1.variable_scope('weight_def'):\n"
    "    w = tf.compat.v1.get_variable('weights', shape=[10, 20])\n"
    "    b = tf.compat.v1.get_variable('bias', shape=[20], dtype=tf.float64)\n"
    "y = tf.matmul(tf.ones([1, 10]), w)",
    "s1 = tf.compat.v1.Session()\ns1.run(tf.compat.v1.global_variables_initializer())\n"
    "s2 = tf.compat.v1.Session()\ns2.close()\nisess = tf.compat.v1.InteractiveSession()",
    "m = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(2,))])",
]


@pytest.mark.parametrize(
    ("cells", "env"),
    [(KERAS3, {}), (TF_KERAS, {"TF_USE_LEGACY_KERAS": "1"}), (TF1, {"TF_USE_LEGACY_KERAS": "1"})],
    ids=["keras3", "tf_keras", "tf1-graph"],
)
def test_counts_equal_gc_scan(cells, env):
    out = run_cells([*cells, COMPARE], env=env)
    errors = [c["error"] for c in out["cells"] if c["error"]]
    assert not errors
    scan, snap = out["result"]["scan"], out["result"]["snap"]
    assert snap == scan
    assert scan["variables"] > 0 and scan["models"] > 0 and scan["layers"] > 0


def test_traces_of_dead_functions_stay_counted():
    out = run_cells(
        [
            "%load_ext tfmagic",
            "import tensorflow as tf, tfmagic\nbefore = tfmagic.snapshot().traces",
            "f = tf.function(lambda x: x + 1)\nf(1); f(2.0)\ndel f\nimport gc; gc.collect()",
            "RESULT = tfmagic.snapshot().traces - before",
        ]
    )
    assert out["result"] == 2
    assert out["history"][-2]["delta"]["traces"] == 2


MODELS_ONCE = [
    "%load_ext tfmagic",
    "import tensorflow as tf\nimport {keras} as keras",
    "seq = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])",
    "seq_auto = keras.Sequential([keras.layers.Dense(4)])\nseq_auto.build((None, 3))",
    "inp = keras.Input((3,))\nfunctional = keras.Model(inp, keras.layers.Dense(2)(inp))",
    "class Sub(keras.Model):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.d = keras.layers.Dense(2)\n"
    "    def call(self, x):\n"
    "        return self.d(x)\n"
    "sub = Sub()\nsub(tf.ones((1, 3)))",
]


@pytest.mark.parametrize("legacy", [False, True], ids=["keras3", "tf_keras"])
def test_each_model_the_user_builds_counts_once(legacy):
    cells = [c.format(keras="tf_keras" if legacy else "keras") for c in MODELS_ONCE]
    out = run_cells(cells, env={"TF_USE_LEGACY_KERAS": "1"} if legacy else {})
    assert [c["error"] for c in out["cells"]] == [None] * len(cells)
    deltas = [r["delta"] for r in out["history"][-4:]]
    assert [d["models"] for d in deltas] == [1, 1, 1, 1]
    # The layers the user made: keras.Input's input layer and two Dense; one Dense (no
    # input layer of Keras's own); an input layer and a Dense; one Dense.
    assert [d["layers"] for d in deltas] == [3, 1, 2, 1]
