"""One small module per flavour; this one starts tracking each as it is imported.

The only package that imports TensorFlow's and Keras's internals (``tensorflow.python.*``,
``keras.src.*``, ``tf_keras.src.*``), and only once the flavour itself is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

from tfmagic import collector, importwatch, incidents
from tfmagic.frameworks import keras3, tf1, tf_core, tf_keras
from tfmagic.registry import Registry, seed_from_heap

Installer = Callable[[Registry], dict[type, Any]]

# Top-level module → what to wrap once it has been imported.
INSTALLERS: dict[str, tuple[Installer, ...]] = {
    "tensorflow": (tf_core.install, tf1.install),
    "keras": (keras3.install,),
    "tf_keras": (tf_keras.install,),
}


class KerasFlavour(Protocol):
    """What each Keras flavour module (``keras3``, ``tf_keras``) provides."""

    LABEL: str  # e.g. "Keras 3", as reports name it

    def install(self, registry: Registry) -> dict[type, Any]:
        """Wrap the layer constructors; return class → handler for seeding from the heap."""
        ...

    def name_counters(self) -> dict[str, int]:
        """Auto-name counters now (``dense`` → 3)."""
        ...

    def set_name_counters(self, counters: dict[str, int]) -> None: ...

    def clear_keeping_settings(self) -> None:
        """``clear_session()`` that keeps the dtype policy, floatx and random seed."""
        ...

    def tf_types(self) -> tuple[type, ...]:
        """The flavour's classes that hold TF state without being TF trackables."""
        ...

    def internal_parts(self, model: Any) -> list[Any]:
        """Layers and models Keras made inside ``model`` on its own (not the user's)."""
        ...


# The import watch's pending callbacks: process-wide, like the hooks they install.
_callbacks: list[Callable[[ModuleType], None]] = []
_watching: set[str] = set()


def start_tracking(registry: Registry) -> None:
    """Track each flavour from its import on; seed once from the heap if already imported."""
    already: dict[type, Any] = {}
    for name, installers in INSTALLERS.items():
        if name in registry.installed or name in _watching:
            continue  # %reload_ext: the wrappers from the first load still count
        if name in sys.modules:
            for install in installers:
                already.update(install(registry))
            registry.installed.add(name)
        else:
            callback = _installing(registry, name, installers)
            _callbacks.append(callback)
            _watching.add(name)
            importwatch.when_imported(name, callback)
    if already:
        seed_from_heap(already)
        _set_aside_internal_parts(registry)
    if "tensorflow" in registry.installed:
        collector.freeze_after_import()  # loaded after the import (seeded first): if clean


def _set_aside_internal_parts(registry: Registry) -> None:
    """After a seed, which cannot see who constructed what: move the parts Keras made
    inside the models found (a Sequential's inner model) out of the user's counts."""
    for flavour in keras_flavours():
        for model in list(registry.models):
            for part in flavour.internal_parts(model):
                for live in (registry.models, registry.layers):
                    if part in live:
                        live.discard(part)
                registry.internal.add(part)


def stop_tracking() -> None:
    """Forget pending installs. Wrapped constructors stay: they are cheap and idempotent."""
    for callback in _callbacks:
        importwatch.forget(callback)
    _callbacks.clear()
    _watching.clear()


def _installing(
    registry: Registry, name: str, installers: tuple[Installer, ...]
) -> Callable[[ModuleType], None]:
    def on_import(module: ModuleType) -> None:
        # Runs inside the user's ``import tensorflow``: it must never make that fail.
        try:
            for install in installers:
                install(registry)
            registry.installed.add(name)
            collector.freeze_after_import(name)  # what the import left: out of gc's way
        except Exception as exc:  # noqa: BLE001
            incidents.record(f"tracking {name}", exc)

    return on_import


def keras_flavours() -> list[KerasFlavour]:
    """The Keras flavour modules of this process that have been imported."""
    flavours: list[KerasFlavour] = []
    if "keras" in sys.modules and "keras.src.backend.common.global_state" in sys.modules:
        flavours.append(keras3)
    if "tf_keras" in sys.modules and "tf_keras.src.backend" in sys.modules:
        flavours.append(tf_keras)
    return flavours


def tf_types() -> tuple[type, ...]:
    """Every class whose instances count as TF/Keras state, for the flavours imported."""
    if "tensorflow" not in sys.modules:
        return ()
    types = tf_core.tf_types()
    for flavour in keras_flavours():
        types += flavour.tf_types()
    return types


Slot = tuple[Callable[[], dict[str, Any]], str]  # (namespace now, name in it)


def replaceable_state() -> list[Slot]:
    """Process-global TF/Keras state that resets and ``clear_session()`` replace (the TF1
    default graph, Keras 3's state trackers, tf_keras's graph and session): where each
    lives, so that ``collector`` can tell when a frozen one was replaced yet not freed."""
    slots: list[Slot] = []
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import ops

        slots.append((lambda: vars(ops._default_graph_stack), "_global_default_graph"))
    if "keras.src.backend.common.global_state" in sys.modules:
        from keras.src.backend.common import global_state

        for name in ("GLOBAL_STATE_TRACKER", "GLOBAL_SETTINGS_TRACKER"):
            slots.append((lambda: vars(global_state), name))
    if "tf_keras.src.backend" in sys.modules:
        from tf_keras.src import backend

        slots.append((lambda: vars(backend._GRAPH), "graph"))
        slots.append((lambda: vars(backend._SESSION), "session"))
        slots.append((lambda: vars(backend), "_GRAPH_LEARNING_PHASES"))
    return slots


def holds_tf_object(obj: object, types: tuple[type, ...] | None = None, depth: int = 2) -> bool:
    """``obj`` is TF state, or a container or plain object that holds some within ``depth``
    steps (``[model, history]``, ``{'m': model}``, a ``History`` whose ``.model`` is one)."""
    types = types if types is not None else tf_types()
    if not types:
        return False
    if isinstance(obj, types):
        return True
    if depth == 0 or isinstance(obj, (str, bytes, int, float, bool, type(None), ModuleType, type)):
        return False
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = obj
    else:
        children = getattr(obj, "__dict__", {}).values()
    return any(holds_tf_object(child, types, depth - 1) for child in list(children)[:1000])
