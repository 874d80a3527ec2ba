"""tfmagic's wrappers on TF/Keras callables are invisible (issue: Keras 3 layers without
``__init__`` failed with ``KeyError: 'args'`` because getfullargspec saw the wrapper)."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest
from shellrunner import run_cells

from tfmagic import hooks, incidents


class Point:
    """A point."""

    def __init__(self, x: int, y: int = 0, *, label: str = "p") -> None:
        self.x, self.y, self.label = x, y, label

    def moved(self, dx: int) -> Point:
        return Point(self.x + dx, self.y, label=self.label)


@pytest.mark.fast
def test_wrapper_looks_like_the_original_to_inspect_and_readers():
    class Traced(Point):
        pass

    original = Traced.__init__
    before = (
        inspect.signature(Traced),
        inspect.getfullargspec(Traced.__init__),
        inspect.signature(Traced.__init__),
    )
    seen: list[object] = []
    hooks.after_init(Point, seen.append)
    try:
        assert hooks.is_wrapper(Point.__init__) and Point.__init__ is not original
        after = (
            inspect.signature(Traced),
            inspect.getfullargspec(Traced.__init__),
            inspect.signature(Traced.__init__),
        )
        assert after == before
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            assert getattr(Point.__init__, attr) == getattr(original, attr)
        assert inspect.unwrap(Point.__init__) is original
        p = Traced(1, y=2, label="q")
        assert seen == [p]
        assert copy.deepcopy(p).__dict__ == p.__dict__
        point = Point(3, label="r")  # a module-level class: picklable by reference
        assert pickle.loads(pickle.dumps(point)).__dict__ == point.__dict__
        assert seen == [p, point]
    finally:
        Point.__init__ = original  # type: ignore[method-assign]


@pytest.mark.fast
def test_exceptions_pass_through_and_callback_failures_become_incidents():
    class Strict:
        def __init__(self, n: int) -> None:
            if n < 0:
                raise ValueError(f"n must be >= 0, got {n}")

    def broken(obj: object) -> None:
        raise RuntimeError("tfmagic bug")

    hooks.after_init(Strict, broken)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        Strict(-1)
    assert isinstance(Strict(1), Strict)  # the callback's failure is not the user's
    assert any("tfmagic bug" in i.error for i in incidents.all_incidents())


@pytest.mark.fast
def test_signature_of_an_original_that_carries_its_own_signature():
    def original(self, *args, **kwargs):  # like tf_decorator-made functions
        return None

    original.__signature__ = inspect.signature(lambda self, units, activation=None: None)  # type: ignore[attr-defined]

    class Layer:
        __init__ = original

    hooks.after_init(Layer, lambda obj: None)
    assert inspect.getfullargspec(Layer.__init__) == inspect.getfullargspec(original)
    assert inspect.signature(Layer.__init__) == inspect.signature(original)


SCALE = (
    "import inspect, tempfile, os\n"
    "class Scale(keras.layers.Layer):\n"
    "    def call(self, x):\n"
    "        return 2 * x\n"
    "layer = Scale()\n"
    "model = keras.Sequential([keras.Input((2,)), Scale()])\n"
    "path = os.path.join(tempfile.mkdtemp(), 'scale.keras')\n"
    "model.save(path)\n"
    "loaded = keras.models.load_model(path, custom_objects={'Scale': Scale})\n"
    "RESULT = [str(inspect.getfullargspec(Scale.__init__)), layer.get_config()['trainable'],\n"
    "          float(loaded(tf.ones((1, 2)))[0, 0])]"
)


@pytest.mark.parametrize("legacy", [False, True], ids=["keras3", "tf_keras"])
def test_layer_without_init_constructs_saves_and_loads(legacy):
    # Keras 3 reads getfullargspec(cls.__init__) to build a default config.
    keras = "import tf_keras as keras" if legacy else "import keras"
    cells = [f"import tensorflow as tf\n{keras}", SCALE]
    env = {"TF_USE_LEGACY_KERAS": "1"} if legacy else {}
    plain = run_cells(cells, env=env)
    tracked = run_cells(["%load_ext tfmagic", *cells], env=env)
    assert [c["error"] for c in tracked["cells"]] == [None] * 3
    assert tracked["result"] == plain["result"]
    assert tracked["result"][2] == 2.0


# Every graph op TF makes records the Python stack, printed in errors ("Detected at node
# ... defined at"). Collects, from each graph the cells made, the files of those frames.
OP_STACK_FILES = """\
import gc
from tensorflow.python.framework import ops as _ops
_files = set()
for _graph in [g for g in gc.get_objects() if isinstance(g, _ops.Graph)]:
    for _op in _graph.get_operations():
        _files.update(frame.filename for frame in _op.traceback)
RESULT = {"files": sorted(_files), "error": _error}
"""
TF_FUNCTION_FAILS = """\
import tensorflow as tf

@tf.function
def checked(x):
    return tf.debugging.check_numerics(x, "boom")

try:
    checked(tf.constant([float("nan")]))
except tf.errors.InvalidArgumentError as error:
    _error = str(error)
"""
GRAPH_MODE_LAYERS = """\
import tensorflow as tf
import tf_keras as keras
tf.compat.v1.disable_eager_execution()

class Linear(keras.layers.Layer):
    def __init__(self, units=3):
        super().__init__()
        self.w = self.add_weight(shape=(2, units), initializer="ones")  # ops, in __init__

    def call(self, x):
        return tf.matmul(x, self.w)

ref = tf.compat.v1.Variable([1.0], use_resource=False, name="ref")
res = tf.compat.v1.get_variable("res", [2], use_resource=True)
y = Linear()(tf.compat.v1.placeholder(tf.float32, (None, 2)))
with tf.compat.v1.Session() as sess:
    sess.run(tf.compat.v1.global_variables_initializer())
    try:
        sess.run(tf.debugging.check_numerics(ref / 0.0 * 0.0, "boom"))
    except tf.errors.InvalidArgumentError as error:
        _error = str(error)
"""


@pytest.mark.parametrize(
    "cell, env",
    [(TF_FUNCTION_FAILS, {}), (GRAPH_MODE_LAYERS, {"TF_USE_LEGACY_KERAS": "1"})],
    ids=["tf_function", "tf1_tf_keras"],
)
def test_no_tfmagic_frame_in_the_stacks_tf_records_for_ops(cell, env):
    # The same cell numbers (they name the cells' files), with and without tfmagic.
    plain = run_cells(["pass", cell, OP_STACK_FILES], env=env)
    tracked = run_cells(["%load_ext tfmagic", cell, OP_STACK_FILES], env=env)
    assert [c["error"] for c in tracked["cells"]] == [None] * 3
    assert plain["result"]["files"], "the cell made no graph ops"
    assert not [f for f in tracked["result"]["files"] if "tfmagic" in f]
    assert tracked["result"] == plain["result"]
    assert "boom" in tracked["result"]["error"]
