"""TF1 graph mode: sessions and default graphs (``tf.compat.v1``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tfmagic.hooks import after_init
from tfmagic.registry import Registry


def install(registry: Registry) -> dict[type, Any]:
    from tensorflow.python.client import session
    from tensorflow.python.framework import func_graph, ops

    def on_graph(graph: Any) -> None:
        # A FuncGraph is a tf.function's trace (counted as traces), not a user graph.
        if not isinstance(graph, func_graph.FuncGraph):
            registry.graphs.add(graph)

    kinds: dict[type, Any] = {session.BaseSession: registry.sessions.add, ops.Graph: on_graph}
    for cls, on_new in kinds.items():
        after_init(cls, on_new)
    default = ops._default_graph_stack._global_default_graph  # made before the hook, if at all
    if default is not None:
        on_graph(default)
    return kinds


def graph_ops(registry: Registry) -> int:
    """Operations in every live user graph (a graph never removes ops). O(graphs)."""
    return sum(int(graph.version) for graph in registry.graphs)


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


def colliding_variable(error: BaseException, name: str) -> Any:
    """The variable that made ``get_variable(name)`` raise "already exists": read from the
    variable store in the raising frame, so it is the one in the graph that collided."""
    tb = error.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_get_single_variable":
            store = tb.tb_frame.f_locals.get("self")
            found = getattr(store, "_vars", {}).get(name, found)
        tb = tb.tb_next
    return found


def graph_is_nested() -> bool:
    """True inside ``with graph.as_default()`` (where ``reset_default_graph`` asserts)."""
    from tensorflow.python.framework import ops

    return not ops._default_graph_stack.is_cleared()
