"""TensorFlow itself: variables, traced functions, graph ops, allocator memory.

Only ever called once ``tensorflow`` is in ``sys.modules``; nothing here imports
TensorFlow on its own.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from tfmagic import hooks
from tfmagic.hooks import after_call, after_init
from tfmagic.registry import Registry


def install(registry: Registry) -> dict[type, Any]:
    """Wrap the constructors that create variables and ``tf.function``s."""
    from tensorflow.core.function.polymorphism import function_cache
    from tensorflow.python.eager.polymorphic_function import polymorphic_function
    from tensorflow.python.ops import ref_variable, resource_variable_ops

    # _UnreadVariable is a view that shares its parent's handle: not new storage.
    unread = resource_variable_ops._UnreadVariable

    def on_variable(variable: Any) -> None:
        if type(variable) is not unread:
            registry.variables.add(variable, variable_bytes(variable))

    def on_function(function: Any) -> None:
        registry.functions.add(function)
        # experimental_get_tracing_count() is len() of this cache.
        registry.watch_traces(function._function_cache, function)

    kinds: dict[type, Any] = {
        resource_variable_ops.BaseResourceVariable: on_variable,
        ref_variable.RefVariable: on_variable,
        polymorphic_function.Function: on_function,
    }
    # RefVariable.__init__ makes its ops itself (a resource variable's subclass makes
    # them before calling the wrapped base __init__).
    hiders = {ref_variable.RefVariable: op_stack_hider()}
    for cls, on_new in kinds.items():
        after_init(cls, on_new, hiders.get(cls))
    after_call(function_cache.FunctionCache, "add", registry.cache_changed)
    after_call(function_cache.FunctionCache, "lookup", registry.cache_used)
    return kinds


def op_stack_hider() -> hooks.FrameHider:
    """For ``hooks``: keeps its frames out of the Python stacks TF records for graph ops
    (a ``tf_stack`` filter, as TF's own ``CurrentModuleFilter``), where ops are recorded."""
    from tensorflow.python.eager import context
    from tensorflow.python.util import tf_stack

    ours = frozenset({hooks.after_call.__code__.co_filename})  # as frames name it

    class HideHooks(tf_stack.StackTraceFilter):
        def get_filtered_filenames(self) -> frozenset[str]:
            return ours | self.parent.get_filtered_filenames()  # and what was filtered already

    def hider() -> AbstractContextManager[Any] | None:
        # Eager ops record no stack; only graph building (TF1, a tf.function trace) does.
        return None if context.executing_eagerly() else HideHooks()

    return hider


def variable_bytes(variable: Any) -> int:
    """Bytes of a variable's value; 0 when its shape is not fully known."""
    try:
        elements = variable.shape.num_elements()
        return int(elements or 0) * int(variable.dtype.size)
    except Exception:  # noqa: BLE001 - e.g. string variables have no fixed size
        return 0


def memory_by_device() -> dict[str, int]:
    """Current TF allocator bytes per device, without initialising the runtime.

    Reading devices would initialise TensorFlow's eager context, after which the
    user can no longer call ``tf.config.set_visible_devices`` or enable memory
    growth; so until something else has initialised it, report nothing.
    """
    ctx, devices = _stat_devices()
    memory: dict[str, int] = {}
    for name in devices:
        try:
            memory[name] = int(ctx.get_memory_info(name)["current"])
        except Exception:  # noqa: BLE001 - a device that stopped giving stats is left out
            continue
    return memory


def memory_info_by_device() -> dict[str, dict[str, int]]:
    """``{"CPU:0": {"current": bytes, "peak": bytes}}`` for every device with allocator
    stats (CPU, GPU, pluggable devices alike); ``{}`` until the runtime is initialised."""
    ctx, devices = _stat_devices()
    info: dict[str, dict[str, int]] = {}
    for name in devices:
        try:
            raw = ctx.get_memory_info(name)
            info[name] = {"current": int(raw["current"]), "peak": int(raw["peak"])}
        except Exception:  # noqa: BLE001
            continue
    return info


def peak_memory_by_device() -> dict[str, int]:
    """The allocator's peak bytes per device since its last reset (or since the start)."""
    return {name: values["peak"] for name, values in memory_info_by_device().items()}


def reset_peak_memory() -> None:
    """Set each device's peak counter to its current use (about a µs per device).

    Does nothing before the runtime is initialised: the counters start at zero then.
    """
    ctx, devices = _stat_devices()
    for name in devices:
        try:
            ctx.reset_memory_stats(name)
        except Exception:  # noqa: BLE001 - never break a cell over a counter
            continue


# (context handle, names of the devices with allocator stats): devices cannot change
# once the runtime is initialised, so they are listed once per handle.
_devices_cache: tuple[Any, list[str]] = (None, [])


def _stat_devices() -> tuple[Any, list[str]]:
    """The eager context and its devices with allocator stats; none before it is initialised."""
    global _devices_cache
    from tensorflow.python.eager import context

    ctx = context.context()
    if not getattr(ctx, "_initialized", False):
        return ctx, []
    handle = ctx._context_handle
    if _devices_cache[0] is handle and handle is not None:
        return ctx, _devices_cache[1]
    names = []
    for device in ctx.list_logical_devices():
        name = device.name.replace("/device:", "")
        try:
            ctx.get_memory_info(name)
        except Exception:  # noqa: BLE001 - e.g. a device whose allocator keeps no stats
            continue
        names.append(name)
    _devices_cache = (handle, names)
    return ctx, names


def eager_tensor_bytes(value: Any) -> int | None:
    """Bytes of an eager tensor's buffer; None for anything else."""
    from tensorflow.python.framework.ops import EagerTensor

    if not isinstance(value, EagerTensor):
        return None
    return variable_bytes(value)


def is_imported() -> bool:
    return "tensorflow" in sys.modules


def state_types() -> tuple[type, ...]:
    """TF state whose insides are TF's business: trackables (variables, modules, Keras 2
    and 3 layers, optimizers, datasets; tf.function too), tensors, graphs, sessions."""
    from tensorflow.python.client.session import BaseSession
    from tensorflow.python.framework.ops import Graph
    from tensorflow.python.framework.tensor import Tensor
    from tensorflow.python.trackable.base import Trackable

    return (Trackable, Tensor, Graph, BaseSession)


def tf_types() -> tuple[type, ...]:
    """``state_types()`` plus traced functions: everything that counts as TF state."""
    from tensorflow.python.eager.polymorphic_function.concrete_function import (
        ConcreteFunction,
    )
    from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function

    return (*state_types(), Function, ConcreteFunction)


def clear_kernel_cache() -> None:
    """Drop cached eager kernels (as clear_session does), if the runtime is up."""
    from tensorflow.python.eager import context

    ctx = context.context()
    if getattr(ctx, "_initialized", False):
        ctx.clear_kernel_cache()


def captured_variables(function: Any) -> tuple[list[Any], int]:
    """The variables a traced ``tf.function`` uses, and how many of those have died.

    A FuncGraph keeps only weak references to its variables, but its captured resource
    handles keep their storage alive: a dead one means the function updates weights
    that no Python object (no model) has any more.
    """
    alive: dict[int, Any] = {}
    dead: set[int] = set()
    for concrete in function._list_all_concrete_functions():
        for ref in concrete.graph._weak_variables:
            variable = ref()
            if variable is None:
                dead.add(id(ref))
            else:
                alive[id(variable)] = variable
    return list(alive.values()), len(dead)


def prune_dead_custom_gradients() -> int:
    """Drop gradient-registry entries whose traced graphs only use variables that died.

    Every trace of a ``tf.custom_gradient`` in graph mode (Keras 3's optimizer does one
    per traced train step) registers ``CustomGradient-N`` in a global registry that is
    never pruned (tensorflow/tensorflow#97697). The entry's closure holds the traced
    FuncGraph, whose captures hold the dead model's variable buffers: allocator memory
    that no reset frees. An entry is dropped only when every FuncGraph it reaches has
    variables and all of them are dead, so such a graph could not run again anyway.
    """
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    dead = [
        name
        for name, entry in list(registry.items())
        if name.startswith("CustomGradient-") and _only_dead_graphs(entry.get("type"))
    ]
    for name in dead:
        del registry[name]
    return len(dead)


def _only_dead_graphs(function: Any, max_depth: int = 4) -> bool:
    graphs, _ = _reach(function, max_depth)
    return bool(graphs) and all(
        bool(g._weak_variables) and all(ref() is None for ref in g._weak_variables) for g in graphs
    )


def _reach(function: Any, max_depth: int = 4) -> tuple[list[Any], list[Any]]:
    """The traced graphs a gradient function's closures reach, and what else they hold."""
    graphs: list[Any] = []
    held: list[Any] = []
    seen: set[int] = set()
    todo = [(function, 0)]
    while todo:
        obj, depth = todo.pop()
        if id(obj) in seen or depth > max_depth:
            continue
        seen.add(id(obj))
        graph = obj if hasattr(obj, "_weak_variables") else getattr(obj, "graph", None)
        if hasattr(graph, "_weak_variables"):
            graphs.append(graph)
            continue
        held.append(obj)
        if isinstance(obj, (list, tuple)):
            todo += [(item, depth + 1) for item in obj]
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                todo.append((cell.cell_contents, depth + 1))
            except ValueError:
                continue  # an empty cell
    return graphs, held


_HELD_BY = "_tfmagic_custom_gradients"  # on a variable, while one collection runs


class _Holder:
    __slots__ = ("__weakref__", "function")

    def __init__(self, function: Any) -> None:
        self.function = function


def collect_with_custom_gradients(collect: Callable[[], object]) -> tuple[int, int]:
    """Run ``collect`` (one garbage collection) so that it also frees the traced graphs
    of the leaked ``CustomGradient-N`` entries whose variables die in it.

    Pruning needs the variables dead, so after a plain collection what the pruned
    entries held (most of a trained model's objects) needs a second one. Instead, while
    ``collect`` runs, the registry keeps only a weak proxy of each such entry's function
    and the live variables of its graphs hold the function (an attribute on each): it is
    garbage in the same pass exactly when all of them are. Afterwards the functions that
    live go back and the attribute goes. Entries whose closures hold their own variables
    (they would keep each other alive) are left to ``prune_dead_custom_gradients`` after
    the collection. Returns (entries gone with the collection, entries pruned after it,
    whose graphs only a further collection frees).
    """
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    handed = _hand_to_variables(registry)
    try:
        collect()
    finally:
        gone = _take_back(registry, handed)
    return gone, prune_dead_custom_gradients()


Handed = tuple[str, dict[str, Any], "weakref.ref[Any]", list["weakref.ref[Any]"]]


def _hand_to_variables(registry: dict[str, Any]) -> list[Handed]:
    handed: list[Handed] = []
    for name, entry in list(registry.items()):
        if not name.startswith("CustomGradient-"):
            continue
        function = entry.get("type")
        graphs, held = _reach(function)
        if not graphs or not all(g._weak_variables for g in graphs):
            continue  # never pruned
        live = {id(v): v for g in graphs for ref in g._weak_variables if (v := ref()) is not None}
        if not live or any(id(o) in live or id(getattr(o, "_value", o)) in live for o in held):
            continue  # all dead already, or held by the entry itself: pruned after
        holder, attached = _Holder(function), []
        try:
            for variable in live.values():
                vars(variable).setdefault(_HELD_BY, []).append(holder)
                attached.append(variable)
            refs = [weakref.ref(v) for v in live.values()]
            handed.append((name, entry, weakref.ref(function), refs))
            entry["type"] = weakref.proxy(function)
        except TypeError:  # a variable without __dict__ or weak references: leave it
            for variable in attached:
                vars(variable)[_HELD_BY].remove(holder)
            if handed and handed[-1][0] == name:
                handed.pop()
    return handed


def _take_back(registry: dict[str, Any], handed: list[Handed]) -> int:
    functions = [ref() for _, _, ref, _ in handed]  # strong again before any holder goes
    for _, _, _, variables in handed:
        for ref in variables:
            variable = ref()
            if variable is not None:
                variable.__dict__.pop(_HELD_BY, None)
    gone = 0
    for (name, entry, _, _), function in zip(handed, functions, strict=True):
        if function is not None:
            entry["type"] = function
        elif registry.get(name) is entry:
            del registry[name]
            gone += 1
    return gone
