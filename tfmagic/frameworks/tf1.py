"""TF1 graph mode: sessions and default graphs (``tf.compat.v1``)."""

from __future__ import annotations

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


def graph_is_nested() -> bool:
    """True inside ``with graph.as_default()`` (where ``reset_default_graph`` asserts)."""
    from tensorflow.python.framework import ops

    return not ops._default_graph_stack.is_cleared()
