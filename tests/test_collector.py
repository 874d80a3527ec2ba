"""``collector``: TF's import frozen out of the collections tfmagic runs, and what that
must not change. Fresh processes with real TensorFlow (``run_cells``), no mocks."""

from __future__ import annotations

import json
import textwrap

import pytest
from shellrunner import run_cells

IMPORTS = "import tensorflow as tf, keras, numpy as np, gc, tfmagic\nfrom tfmagic import collector"
DEFINE = """\
def fit_once():
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.ones((4, 16), "float32"), np.ones((4, 2), "float32"))
    return model
"""
FULL_GCS = (
    "full = []\n"
    "gc.callbacks.append(lambda phase, info: phase == 'start' and info['generation'] == 2"
    " and full.append(1))"
)
GRADIENTS = (
    "from tensorflow.python.framework import ops\n"
    "print('GRADS', sum(k.startswith('CustomGradient-') for k in ops._gradient_registry._registry))"
)
STATE = ("variables", "variable_bytes", "memory_total", "models", "layers")
# Prints the collector's status as one JSON line (cells print: a RESULT dict bound in
# the notebook would itself be something a freeze must not capture).
SHOW = "print('STATUS', __import__('json').dumps(collector.status().__dict__))"
SNAPSHOT = (
    "print('STATE', __import__('json').dumps({k: getattr(tfmagic.snapshot(), k) for k in "
    + repr(STATE)
    + "}))"
)


def printed(out: dict, tag: str) -> list:
    """The JSON each cell printed after ``tag``, in order."""
    found = []
    for cell in out["cells"]:
        assert cell["error"] is None, cell["error"]
        for line in cell["stdout"].splitlines():
            if line.startswith(tag + " "):
                found.append(json.loads(line[len(tag) + 1 :]))
    return found


def test_import_is_frozen_and_reset_frees_what_it_freed_before():
    """Stale trained models pinned by Out[N]: the reset leaves the same variables and
    allocator bytes with freezing on as off, and as a fresh process that built only the
    kept model, in one full collection; collections then walk only what the notebook built."""
    stale = ["fit_once()"] * 4  # the last expression: Out[N] pins each model
    run = ["%load_ext tfmagic", IMPORTS, SHOW, DEFINE, "kept = fit_once()", *stale, FULL_GCS]
    after = [
        "%tf_reset",
        "gc.callbacks.pop()\nprint('FULL', len(full))",
        GRADIENTS,
        SNAPSHOT,
        SHOW,
        "print('HEAP', len(gc.get_objects()))",
        "loss = kept.train_on_batch(np.ones((4, 16)), np.ones((4, 2)))",  # still trains
    ]
    on = run_cells([*run, *after])
    off = run_cells([run[0], "%config TFMagics.freeze_imports = False", *run[1:], *after])
    fresh = run_cells(
        ["%load_ext tfmagic", IMPORTS, DEFINE, "kept = fit_once()", GRADIENTS, SNAPSHOT]
    )

    frozen, frozen_after = printed(on, "STATUS")
    assert frozen["frozen"] and frozen["frozen_objects"] > 100_000, frozen
    assert frozen_after["frozen"] and frozen_after["deep_collections"] == 0
    assert not printed(off, "STATUS")[0]["frozen"] and printed(off, "STATUS")[0]["withheld"]
    state_on, state_off = printed(on, "STATE")[0], printed(off, "STATE")[0]
    assert state_on == state_off == printed(fresh, "STATE")[0]
    assert state_on["models"] == 1 and state_on["variables"] > 0
    heap = int(on["cells"][-2]["stdout"].split()[-1])
    assert heap < frozen["frozen_objects"] / 5  # what a collection still walks
    # One full collection, which also took TF's leaked custom-gradient entries of the
    # dead models with it (the kept model's stay: it trains on).
    assert printed(on, "FULL") == printed(off, "FULL") == [1]
    assert printed(on, "GRADS") == printed(off, "GRADS") == printed(fresh, "GRADS")


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras", "tf1"])
def test_nothing_frozen_becomes_garbage_a_reset_should_free(flavour):
    """After a workload, isolated re-runs and resets, unfreezing and collecting
    everything frees nothing more: the freeze kept no garbage alive."""
    env = {"TF_USE_LEGACY_KERAS": "1"} if flavour == "tf_keras" else {}
    keras = "tf_keras as keras" if flavour == "tf_keras" else "keras"
    cells = ["%load_ext tfmagic", f"import tensorflow as tf, {keras}, numpy as np, gc, tfmagic"]
    if flavour == "tf1":
        cells += [
            "tf.compat.v1.disable_eager_execution()",
            "w = tf.compat.v1.get_variable('w', shape=[64, 64])\n"
            "sess = tf.compat.v1.Session()\nsess.run(tf.compat.v1.global_variables_initializer())",
            *[
                "%%tf_isolated\nq = tf.compat.v1.get_variable('q', shape=[8])\ns = tf.compat.v1.Session()"
            ]
            * 2,
            "del w",
            "%tf_reset",
        ]
    else:
        build = (
            "m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])\n"
            "m.compile(optimizer='adam', loss='mse')\n"
            "m.fit(np.ones((8, 8)), np.ones((8, 4)), verbose=0)\n"
        )
        cells += [
            build + "m",
            build + "m",
            "keras.backend.clear_session()",
            "@tf.function\ndef f(x):\n    return x * 2\nf(tf.ones(3))",
            "del f",
            "tf.compat.v1.reset_default_graph()",
            "%tf_reset",
            "%%tf_isolated\n" + build + "m",
            "%%tf_isolated\n" + build + "m",
            "%tf_reset",
        ]
    cells.append(
        textwrap.dedent(
            """\
            from tfmagic import collector
            frozen = collector.status().frozen
            gc.collect()  # what any collection frees (made since the freeze)
            before = tfmagic.snapshot()
            made_since = {id(o) for o in gc.get_objects()}
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.unfreeze()
            gc.collect()
            gc.set_debug(0)
            freed = len(gc.garbage)
            freed_made_since = sum(id(o) in made_since for o in gc.garbage)
            gc.garbage.clear()
            gc.collect()
            after = tfmagic.snapshot()
            RESULT = {
                "frozen": frozen,
                "freed": freed,
                "freed_made_since": freed_made_since,
                "same": [(getattr(before, k), getattr(after, k)) for k in ("variables",
                         "variable_bytes", "models", "layers", "sessions", "memory_total")],
            }
            """
        )
    )
    out = run_cells(cells, env=env)
    assert not [c["error"] for c in out["cells"] if c["error"]]
    result = out["result"]
    assert result["frozen"]
    assert result["freed_made_since"] == 0 and result["freed"] == 0, result
    assert all(a == b for a, b in result["same"]), result["same"]


def test_late_load_tf_objects_made_before_are_freed():
    """A model built before a late ``%load_ext`` and deleted afterwards is freed by the
    reset (the freeze is withheld while it lives); one already garbage at the load is
    collected before anything is frozen."""
    alive = run_cells(
        [
            "import tensorflow as tf, keras, numpy as np, weakref, gc",
            DEFINE,
            "m = fit_once()",
            "%load_ext tfmagic",
            "from tfmagic import collector, snapshot\n" + SHOW,
            "r = weakref.ref(m)\ndel m",
            "%tf_reset",
            "RESULT = {'freed': r() is None, 'models': snapshot().models}",
        ]
    )
    status = printed(alive, "STATUS")[0]
    assert not status["frozen"] and "`m`" in status["withheld"], status
    assert alive["result"] == {"freed": True, "models": 0}

    dropped = run_cells(
        [
            "import tensorflow as tf, keras, numpy as np, gc",
            DEFINE,
            "fit_once()\nfit_once()\npass",  # garbage: nothing pins them
            "%load_ext tfmagic",
            "from tfmagic import collector, snapshot\n"
            + SHOW
            + "\nprint('MODELS', snapshot().models)",
        ]
    )
    status = printed(dropped, "STATUS")[0]
    assert status["frozen"], status
    assert dropped["cells"][-1]["stdout"].split()[-1] == "0"


def test_user_objects_alive_at_a_freeze_and_dropped_later_are_freed(tmp_path):
    """A cyclic object the notebook holds keeps the import from being frozen, so the
    reset frees it; a class in a user module is frozen but watched: replaced by a reload,
    it is collected (with the model it held) by the next collection, which freezes again."""
    notebook = run_cells(
        [
            "class Node:\n    pass\nnode = Node()\nnode.me = node",
            "%load_ext tfmagic",
            IMPORTS,
            SHOW,
            "import weakref\nr = weakref.ref(node)\ndel node",
            "%tf_reset",
            "RESULT = r() is None",
        ]
    )
    status = printed(notebook, "STATUS")[0]
    assert not status["frozen"] and "`node`" in status["withheld"], status
    assert notebook["result"] is True

    (tmp_path / "helper.py").write_text("class Net:\n    kept = []\n")
    module = run_cells(
        [
            f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport helper",
            "%load_ext tfmagic",
            IMPORTS,
            SHOW,
            "helper.Net.kept.append(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))",
            "import importlib\nimportlib.reload(helper)\nimportlib.invalidate_caches()",
            "print('MODELS', tfmagic.snapshot().models)",
            "%tf_reset",
            "print('MODELS', tfmagic.snapshot().models)",
            SHOW,
        ]
    )
    first, last = printed(module, "STATUS")
    assert first["frozen"] and "module helper: Net" in first["watched"], first
    models = [c["stdout"].split()[-1] for c in module["cells"] if c["stdout"].startswith("MODELS")]
    assert models == ["1", "0"]  # the old class held the model; the reset freed both
    assert last["deep_collections"] == 1 and last["frozen"], last

    holder = "class Holder:\n    kept = []"
    redefined = run_cells(
        [
            holder,
            "%load_ext tfmagic",
            IMPORTS,
            SHOW,
            "Holder.kept.append(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))",
            holder,  # re-run: the frozen class is garbage now, with the model it holds
            "%tf_reset",
            "print('MODELS', tfmagic.snapshot().models)",
            SHOW,
        ]
    )
    first, last = printed(redefined, "STATUS")
    assert first["frozen"] and "the notebook: Holder" in first["watched"], first
    assert redefined["cells"][-2]["stdout"].split() == ["MODELS", "0"]
    assert last["deep_collections"] == 1 and last["frozen"], last


STALE_CELLS = [
    "%load_ext tfmagic",
    IMPORTS,
    "kept = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])",
    *["keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])"] * 2,
    "cbs = [keras.callbacks.History()]\n"
    "cbs[0].set_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))",
    "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\n"
    "opt = keras.optimizers.SGD(0.1)",
    "@tf.function\ndef step(x):\n    with tf.GradientTape() as tape:\n"
    "        loss = tf.reduce_sum(model(x))\n"
    "    grads = tape.gradient(loss, model.trainable_variables)\n"
    "    opt.apply_gradients(zip(grads, model.trainable_variables))\n    return loss",
    "step(tf.ones([2, 4]))",
    "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])",
    "RESULT = {'stale': sorted(str(s) for s in tfmagic.stale()),"
    " 'frozen': collector.status().frozen}",
]


def test_stale_finds_the_same_objects_and_pins_frozen_or_not():
    on = run_cells([STALE_CELLS[0], "%config TFMagics.freeze_imports = True", *STALE_CELLS[1:]])
    on = on["result"]
    off = run_cells([STALE_CELLS[0], "%config TFMagics.freeze_imports = False", *STALE_CELLS[1:]])
    assert on["frozen"] and not off["result"]["frozen"]
    assert on["stale"] == off["result"]["stale"]
    text = "\n".join(on["stale"])
    assert len(on["stale"]) >= 2 and "Out[" in text and "step" in text


def test_switch_off_on_and_unload_leave_the_collector_as_found():
    count = "print('COUNT', gc.get_freeze_count())"
    ours = run_cells(
        [
            "%load_ext tfmagic",
            IMPORTS,
            count,
            "%config TFMagics.freeze_imports = False",
            count,
            "%config TFMagics.freeze_imports = True",
            count,
            "%unload_ext tfmagic",
            count,
        ]
    )
    counts = [
        int(c["stdout"].split()[-1]) for c in ours["cells"] if c["stdout"].startswith("COUNT")
    ]
    assert counts[0] > 100_000 and counts[1] == 0 and counts[2] > 100_000 and counts[3] == 0

    theirs_first = run_cells(
        [
            "import gc\ngc.freeze()",
            count,
            "%load_ext tfmagic",
            IMPORTS,
            SHOW,
            "%unload_ext tfmagic",
            count,
        ]
    )
    before, after = [
        int(c["stdout"].split()[-1])
        for c in theirs_first["cells"]
        if c["stdout"].startswith("COUNT")
    ]
    status = printed(theirs_first, "STATUS")[0]
    assert not status["frozen"] and "someone else" in status["withheld"], status
    assert 0 < after <= before  # theirs stays frozen; tfmagic added nothing to it

    theirs_after = run_cells(
        ["%load_ext tfmagic", IMPORTS, "gc.freeze()", SHOW, "%unload_ext tfmagic", count]
    )
    status = printed(theirs_after, "STATUS")[0]
    assert not status["frozen"] and "someone else" in status["withheld"], status
    assert int(theirs_after["cells"][-1]["stdout"].split()[-1]) > 100_000  # left frozen


def test_late_load_counts_tf_objects_someone_else_froze():
    """``gc.get_objects()`` does not list frozen objects: seeding the registry at a late
    ``%load_ext`` still finds a model the user froze with ``gc.freeze()``."""
    out = run_cells(
        [
            "import tensorflow as tf, keras, gc",
            "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])",
            "gc.freeze()",
            "%load_ext tfmagic",
            "import tfmagic\nRESULT = [tfmagic.snapshot().models, gc.get_freeze_count() > 0]",
        ]
    )
    assert out["result"] == [1, True]
