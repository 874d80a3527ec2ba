"""Live TF/Keras objects, counted in O(1) through weak references.

Counting by walking the heap costs time in proportion to every Python object the
user has. Instead, the constructors of the few TF classes that matter are wrapped
once, when TensorFlow (or Keras) is imported (``hooks``), and each new instance is
remembered by a weak reference. A count is then ``len()`` of a dict and the byte total is a
running sum kept up to date by the weak-reference callbacks.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


class LiveSet:
    """The live instances of one kind, with an optional running byte total."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._refs: dict[int, weakref.ref[Any]] = {}
        self._sizes: dict[int, int] = {}
        self.total_bytes = 0
        # Where each object came from (a tracker's ``Birth``), and the objects made
        # since the tracker last asked; None while no tracker records births.
        self._births: dict[int, Any] = {}
        self.newborn: list[weakref.ref[Any]] | None = None

    def add(self, obj: Any, nbytes: int = 0) -> None:
        key = id(obj)
        known = self._refs.get(key)
        if known is not None and known() is obj:
            return
        ref = weakref.ref(obj, functools.partial(self._forget, key))
        self._refs[key] = ref
        if nbytes:
            self._sizes[key] = nbytes
            self.total_bytes += nbytes
        if self.newborn is not None:
            self.newborn.append(ref)

    def discard(self, obj: Any) -> None:
        """Stop tracking ``obj`` (it was filed under the wrong kind)."""
        ref = self._refs.get(id(obj))
        if ref is not None and ref() is obj:
            self._forget(id(obj), ref)

    def _forget(self, key: int, ref: weakref.ref[Any]) -> None:
        if self._refs.get(key) is not ref:
            return  # the id was already reused by a newer object
        del self._refs[key]
        self.total_bytes -= self._sizes.pop(key, 0)
        self._births.pop(key, None)

    def take_newborn(self) -> list[Any]:
        """Objects added since the last call that are still alive."""
        if not self.newborn:
            return []
        born = [obj for ref in self.newborn if (obj := ref()) is not None]
        self.newborn.clear()
        return born

    def set_birth(self, obj: Any, birth: Any) -> None:
        if obj in self:
            self._births[id(obj)] = birth

    def birth_of(self, obj: Any) -> Any:
        return self._births.get(id(obj)) if obj in self else None

    def __len__(self) -> int:
        return len(self._refs)

    def __iter__(self) -> Iterator[Any]:
        for ref in list(self._refs.values()):
            obj = ref()
            if obj is not None:
                yield obj

    def __contains__(self, obj: object) -> bool:
        ref = self._refs.get(id(obj))
        return ref is not None and ref() is obj


@dataclass
class _WatchedCache:
    """A tracked ``tf.function``'s trace cache: whose it is, and its traces counted so far."""

    owner: weakref.ref[Any]
    traces: int


class Registry:
    """Every kind tfmagic counts, plus the running count of ``tf.function`` traces."""

    def __init__(self) -> None:
        self.variables = LiveSet("variable")
        self.layers = LiveSet("layer")
        self.models = LiveSet("model")
        # Layers and models Keras makes on its own (a Sequential's inner Functional, its
        # automatic input layer): not what the user built, so not counted; kept for names.
        self.internal = LiveSet("internal layer")
        self.graphs = LiveSet("graph")  # user tf.Graphs (not FuncGraphs: those are traces)
        self.sessions = LiveSet("session")
        self.functions = LiveSet("function")
        self.traces = 0
        self._caches: dict[int, _WatchedCache] = {}  # by id of a tf.function's trace cache
        # Top-level modules ("tensorflow", "keras", "tf_keras") whose classes are wrapped.
        self.installed: set[str] = set()
        # tf.functions called since the tracker last asked (for stale-capture warnings),
        # by id of their trace cache.
        self.called: dict[int, weakref.ref[Any]] = {}

    def cache_used(self, cache: Any) -> None:
        """A tracked ``tf.function`` was called: each call looks up its trace cache."""
        watched = self._caches.get(id(cache))
        if watched is not None and id(cache) not in self.called:
            self.called[id(cache)] = watched.owner

    def take_called(self) -> list[Any]:
        # Swapped, not iterated in place: a tf.function called from another thread (tf.data,
        # a callback) may add to it meanwhile.
        called, self.called = self.called, {}
        return [f for ref in called.values() if (f := ref()) is not None]

    @property
    def kinds(self) -> tuple[LiveSet, ...]:
        return (self.models, self.layers, self.variables, self.functions, self.sessions)

    def record_births(self, on: bool) -> None:
        for live in self.kinds:
            live.newborn = [] if on else None

    def watch_traces(self, cache: Any, owner: Any) -> None:
        """Count the traces in ``owner``'s function cache, now and as it grows.

        The total keeps a function's traces after it dies ("seen since load"), as
        ``experimental_get_tracing_count()`` would have said just before.
        """
        key = id(cache)
        if key in self._caches:
            return
        self._caches[key] = _WatchedCache(weakref.ref(owner), len(cache))
        self.traces += len(cache)
        weakref.finalize(owner, self._forget_cache, key)

    def _forget_cache(self, key: int) -> None:
        self._caches.pop(key, None)
        self.called.pop(key, None)

    def cache_changed(self, cache: Any) -> None:
        watched = self._caches.get(id(cache))
        if watched is None:
            return  # a cache that belongs to no tracked tf.function
        now = len(cache)
        self.traces += max(0, now - watched.traces)
        watched.traces = now


# Process-wide, like the hooks that fill it: they outlive %reload_ext.
REGISTRY = Registry()


def seed_from_heap(kinds: dict[type, Callable[[Any], None]]) -> None:
    """Register instances that already existed before the constructors were wrapped.

    Runs once, and only when tfmagic is loaded after TensorFlow was imported; the
    per-cell path never walks the heap. An exact-type set lookup instead of
    ``isinstance`` keeps it fast: TF's abstract base classes make isinstance slow.
    Frozen objects (``gc.freeze()``), which ``gc.get_objects()`` does not list, are seen too.
    """
    from tfmagic import collector

    handlers: dict[type, list[Callable[[Any], None]]] = {}
    for cls, on_new in kinds.items():
        for sub in _with_subclasses(cls):
            handlers.setdefault(sub, []).append(on_new)
    for obj in collector.every_object():
        for on_new in handlers.get(type(obj), ()):
            on_new(obj)


def _with_subclasses(cls: type) -> set[type]:
    seen: set[type] = {cls}
    todo = [cls]
    while todo:
        subclasses: list[type] = type.__subclasses__(todo.pop())
        for sub in subclasses:
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return seen
