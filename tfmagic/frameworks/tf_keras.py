"""tf_keras (Keras 2; ``tf.keras`` when ``TF_USE_LEGACY_KERAS=1``)."""

from __future__ import annotations

import collections
import sys
from typing import Any

from tfmagic import importwatch
from tfmagic.frameworks.keras_common import internal_constructors
from tfmagic.frameworks.tf_core import op_stack_hider
from tfmagic.hooks import after_init
from tfmagic.registry import Registry

LABEL = "tf_keras"


def install(registry: Registry) -> dict[type, Any]:
    from tf_keras.src.engine import base_layer, sequential, training

    # A Sequential without an Input layer makes its own (``dense_input``).
    made_by_keras = internal_constructors(
        sequential.Sequential.add, sequential.Sequential._build_graph_network_for_inferred_shape
    )

    def on_layer(layer: Any) -> None:
        if made_by_keras():
            registry.internal.add(layer)
        elif isinstance(layer, training.Model):
            registry.models.add(layer)
        else:
            registry.layers.add(layer)

    kinds: dict[type, Any] = {base_layer.Layer: on_layer}
    # A layer's __init__ may add weights: ops, in graph mode.
    hider = op_stack_hider()
    after_init(base_layer.Layer, on_layer, hider)

    # base_layer_v1.Layer (TF1 graph mode) does not call base_layer.Layer.__init__; it
    # is wrapped when tf_keras itself imports it (importing it here would be a change).
    def on_v1_import(module: Any) -> None:
        after_init(module.Layer, on_layer, hider)

    importwatch.when_imported("tf_keras.src.engine.base_layer_v1", on_v1_import)
    v1 = sys.modules.get("tf_keras.src.engine.base_layer_v1")
    if v1 is not None:
        kinds[v1.Layer] = on_layer
    return kinds


def internal_parts(model: Any) -> list[Any]:
    """The input layer a Sequential made itself (``<first layer>_input``), if any."""
    from tf_keras.src.engine import sequential

    if not isinstance(model, sequential.Sequential) or not model.layers:
        return []
    made = f"{model.layers[0].name}_input"
    return [layer for layer in getattr(model, "_input_layers", ()) if layer.name == made]


def _uid_map() -> collections.defaultdict[tuple[str, str], int]:
    from tf_keras.src import backend

    return backend.get_default_graph_uid_map()


def name_counters() -> dict[str, int]:
    """Name counters of the current default graph, ``namespace/prefix`` → count."""
    from tensorflow.python.framework import ops
    from tf_keras.src import backend

    uids = backend.PER_GRAPH_OBJECT_NAME_UIDS.get(ops.get_default_graph(), {})
    return {f"{ns}/{name}" if ns else name: n for (ns, name), n in uids.items()}


def set_name_counters(counters: dict[str, int]) -> None:
    uids = _uid_map()
    uids.clear()
    for key, n in counters.items():
        ns, _, name = key.rpartition("/")
        uids[(ns, name)] = n


def clear_keeping_settings() -> None:
    """``tf_keras.backend.clear_session()``; its dtype policy and floatx are module
    globals that clear_session() leaves alone, so there is nothing to carry over."""
    import tf_keras

    tf_keras.backend.clear_session()


def tf_types() -> tuple[type, ...]:
    """tf_keras objects that are not TF trackables but hold TF state (History → model)."""
    from tf_keras.src.callbacks import Callback

    return (Callback,)
