"""TF1 graph mode: sessions and default graphs (``tf.compat.v1``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tfmagic.hooks import after_init
from tfmagic.registry import Registry


def install(registry: Registry) -> dict[type, Any]:
    from tensorflow.python.client import session

    kinds: dict[type, Any] = {session.BaseSession: registry.sessions.add}
    after_init(session.BaseSession, registry.sessions.add)
    return kinds


def open_sessions(registry: Registry) -> list[Any]:
    return [s for s in registry.sessions if not getattr(s, "_closed", True)]


def fresh_graph_if_graph_mode() -> Any:
    """A new ``tf.Graph`` in TF1 graph mode; None when executing eagerly (or no TF)."""
    if "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.eager import context
    from tensorflow.python.framework import ops

    if context.executing_eagerly():
        return None
    return ops.Graph()


def reset_default_graph_keeping_seed(before_reset: Callable[[], None]) -> None:
    """``tf.compat.v1.reset_default_graph()``, keeping the graph-level random seed.

    ``before_reset`` runs first (clearing the Keras sessions, which reset it too).
    """
    from tensorflow.python.framework import ops

    seed = ops.get_default_graph().seed
    before_reset()
    ops.reset_default_graph()
    ops.get_default_graph().seed = seed


def graph_is_nested() -> bool:
    """True inside ``with graph.as_default()`` (where ``reset_default_graph`` asserts)."""
    from tensorflow.python.framework import ops

    return not ops._default_graph_stack.is_cleared()
