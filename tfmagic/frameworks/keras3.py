"""Keras 3 (``keras``, also ``tf.keras`` unless ``TF_USE_LEGACY_KERAS=1``)."""

from __future__ import annotations

import collections
from typing import Any

from tfmagic.frameworks.keras_common import internal_constructors
from tfmagic.hooks import after_new
from tfmagic.registry import Registry

LABEL = "Keras 3"

# Keras 3 keeps user settings in the same global-state dict as its name counters,
# and clear_session() drops them all; these are the ones a reset must carry over.
SETTINGS = (
    "dtype_policy",
    "global_random_seed",
    "distribution",
    "flash_attention",
    "interactive_logging",
    "traceback_filtering",
    "safe_mode_saving",
    "use_legacy_config",
    "nnx_enabled",
)


def install(registry: Registry) -> dict[type, Any]:
    from keras.src.layers.layer import Layer
    from keras.src.models.model import Model
    from keras.src.models.sequential import Sequential

    # A Sequential builds an inner Functional and, without keras.Input, an InputLayer.
    made_by_keras = internal_constructors(Sequential.build, Sequential.add)

    def on_layer(layer: Any) -> None:
        if made_by_keras():
            registry.internal.add(layer)
        elif isinstance(layer, Model):
            registry.models.add(layer)
        else:
            registry.layers.add(layer)

    after_new(Layer, on_layer)
    return {Layer: on_layer}


def internal_parts(model: Any) -> list[Any]:
    """What Keras made inside ``model`` on its own (found after a late load's seed)."""
    inner = getattr(model, "_functional", None)  # a Sequential's inner Functional
    return [inner] if inner is not None else []


def name_counters() -> dict[str, int]:
    """How many objects of each auto-name prefix were made (``dense`` → 3)."""
    from keras.src.backend.common import global_state

    uids = global_state.get_global_attribute("object_name_uids")
    return dict(uids) if uids else {}


def set_name_counters(counters: dict[str, int]) -> None:
    from keras.src.backend.common import global_state

    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int, counters))


def settings() -> dict[str, Any]:
    from keras.src.backend.common import global_state

    return {
        key: value
        for key in SETTINGS
        if (value := global_state.get_global_attribute(key)) is not None
    }


def clear_keeping_settings() -> None:
    """``keras.backend.clear_session()`` minus forgetting the dtype policy and seed."""
    import keras
    from keras.src.backend.common import global_state

    kept = settings()
    keras.backend.clear_session(free_memory=False)
    for key, value in kept.items():
        global_state.set_global_attribute(key, value)


def tf_types() -> tuple[type, ...]:
    """Keras 3 objects that are not TF trackables but hold TF state."""
    from keras.src.backend.common.keras_tensor import KerasTensor
    from keras.src.callbacks.callback import Callback

    return (KerasTensor, Callback)
