"""Garbage collection that costs what the notebook built, not what ``import tensorflow`` did.

What it does to the collector
    Right after TensorFlow (and a Keras imported with it) finishes importing, and when
    ``%load_ext tfmagic`` comes after that import, tfmagic runs one full collection and
    then ``gc.freeze()``: every object alive at that moment moves to the collector's
    permanent generation, which collections never traverse. ``collect()``, which
    ``%tf_reset``, ``%%tf_isolated`` re-runs, ``%tf_reload`` and ``stale()`` call instead
    of ``gc.collect()``, then walks only objects made since. Nothing else changes:
    reference counting frees frozen objects as usual, and ``gc.unfreeze()`` (tfmagic's
    ``%unload_ext``, or ``c.TFMagics.freeze_imports = False``) gives them back.

Why
    ``import tensorflow, keras`` leaves about 300,000 objects that live as long as the
    process. A full collection traverses them all (~150 ms on two cores) however little
    the notebook made, and a reset needs one or two of them.

What keeps it correct
    A frozen object is never collected, so tfmagic freezes only a heap in which nothing
    that could later become garbage that matters is alive (``_why_not_clean``): no TF
    object the notebook made (variables, layers, models, graphs, sessions, its own
    ``tf.function``s), no container, instance or closure bound to a notebook name, in the
    output history, in a running notebook frame or in a user module, and no recorded last
    error (its traceback holds frames). Modules, library classes and functions, plain
    functions and objects the collector does not track (numbers, strings, arrays) are
    allowed; classes and functions defined in the notebook or a user module, and TF's and
    Keras's replaceable global state (the TF1 default graph, the Keras state trackers:
    ``frameworks.replaceable_state``) are allowed but *watched*: they can only die by
    being replaced (a re-run cell, a reload, a reset, ``clear_session()``), and when one
    was replaced while still alive (cyclic garbage, or held by some), the next
    ``collect()`` unfreezes, collects everything once, and freezes again only if the
    heap is clean. Garbage that exists when freezing is collected first. When the heap
    is not clean the freeze is withheld and ``collect()`` is a full collection, as
    without tfmagic; it freezes after any later full collection that finds the heap
    clean. tfmagic never freezes on top of someone else's ``gc.freeze()``, and gives up
    its freeze (leaving it in place) if someone freezes more after it. ``status()`` says
    what it did and why not.
"""

from __future__ import annotations

import gc
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# Where the standard library and installed packages live: their classes and functions
# stay referenced by their modules for the life of the process.
_PREFIXES = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
_TF_STATE = ("variables", "models", "layers", "internal", "graphs", "sessions")
_ATOMS = (types.ModuleType, types.BuiltinFunctionType, types.MethodWrapperType)


@dataclass(frozen=True)
class Status:
    """What tfmagic has done to the collector (for tests, benchmarks and curiosity)."""

    enabled: bool
    frozen: bool  # the permanent generation holds tfmagic's freeze
    frozen_objects: int  # gc.get_freeze_count(), whoever froze them
    watched: tuple[str, ...]  # frozen objects whose replacement makes collect() thaw once
    withheld: str | None  # why the last attempt did not freeze
    deep_collections: int  # full collections of a frozen heap since it started


class _State:
    def __init__(self) -> None:
        self.enabled = False
        self.shell: Any = None
        self.registry: Any = None
        self.frozen = False  # the permanent generation is tfmagic's
        self.count_after = 0  # gc.get_freeze_count() right after tfmagic's last freeze
        self.watch: list[_Watched] = []
        self.withheld: str | None = None
        self.given_up = False  # someone else froze or unfroze since: leave it to them
        self.deep = 0


@dataclass(frozen=True)
class _Watched:
    """A frozen class or function that dies only by being replaced in its namespace."""

    namespace: Callable[[], dict[str, Any] | None]  # None once its module is gone
    name: str
    ref: weakref.ref[Any]
    label: str  # e.g. "module helper: Net"

    def replaced(self) -> bool:
        value = self.ref()
        if value is None:
            return False
        namespace = self.namespace()
        return namespace is None or namespace.get(self.name) is not value


_state = _State()


# -- the session's side ---------------------------------------------------------------
def start(shell: Any, registry: Any, enabled: bool) -> None:
    """Before tracking starts: whose notebook, which registry, and whether to freeze.

    Without a shell (``tfmagic.reset()`` in a script) nothing is frozen: the census needs
    the notebook's names.
    """
    _state.shell = shell
    _state.registry = registry
    _state.enabled = enabled and shell is not None


def stop() -> None:
    """``%unload_ext``: give back what tfmagic froze; forget the shell."""
    restore()
    _state.enabled = False
    _state.shell = None
    _state.given_up = False
    _state.withheld = None


def set_enabled(on: bool) -> None:
    """``c.TFMagics.freeze_imports``: off unfreezes what tfmagic froze; on tries now."""
    _state.enabled = on and _state.shell is not None
    if not _state.enabled:
        restore()
        _state.withheld = "turned off (c.TFMagics.freeze_imports = False)"
    elif "tensorflow" in sys.modules:
        _state.given_up = False
        _try_freeze(collected=False)


def restore() -> None:
    """Unfreeze what tfmagic froze, unless someone else froze objects on top since."""
    if _owns_freeze():
        gc.unfreeze()
    _state.frozen = False
    _state.watch.clear()


def status() -> Status:
    _owns_freeze()
    return Status(
        enabled=_state.enabled,
        frozen=_state.frozen,
        frozen_objects=gc.get_freeze_count(),
        watched=tuple(w.label for w in _state.watch),
        withheld=_state.withheld,
        deep_collections=_state.deep,
    )


# -- the import watch's side ----------------------------------------------------------
def freeze_after_import(name: str | None = None) -> bool:
    """Freeze what the import of ``name`` (or everything imported so far) left alive.

    Called by the import watch right after TensorFlow, Keras or tf_keras executed, and
    once by ``%load_ext`` when TensorFlow was imported before. An import nested in
    another watched one (Keras inside ``import tensorflow``) leaves it to the outer one.
    """
    if not _state.enabled or _state.given_up:
        return False
    for other in ("tensorflow", "keras", "tf_keras"):
        module = sys.modules.get(other)
        spec = getattr(module, "__spec__", None)
        if other != name and getattr(spec, "_initializing", False):
            return False
    return _try_freeze(collected=False)


# -- the call sites' side ---------------------------------------------------------------
def collect() -> int:
    """``gc.collect()`` for the notebook: only objects made since the freeze, if frozen.

    If a watched frozen class or function was replaced while still alive, the frozen
    set may hold garbage: unfreeze, collect everything once, freeze again if clean.
    """
    if _state.frozen:
        # No gc.get_freeze_count() here: it walks every frozen object.
        if not any(w.replaced() for w in _state.watch) or not _owns_freeze():
            return gc.collect()
        gc.unfreeze()
        _state.frozen = False
        _state.watch.clear()
        _state.deep += 1
    found = gc.collect()
    if _state.enabled and not _state.given_up and "tensorflow" in sys.modules:
        _try_freeze(collected=True)
    return found


def collect_and_prune() -> int:
    """``collect()`` that also drops TF's leaked custom-gradient entries of dead models,
    with the traced graphs they held; returns how many entries went.

    One pass: entries whose variables are already dead are pruned first, and the others
    are held by their variables while the collection runs, so they go with them
    (``tf_core.collect_with_custom_gradients``). Only an entry that holds its own
    variables is judged after the collection; what it held then needs a second pass,
    which walks only objects made since the freeze.
    """
    from tfmagic.frameworks import tf_core

    if not tf_core.is_imported():
        collect()
        return 0
    first = tf_core.prune_dead_custom_gradients()
    gone, after = tf_core.collect_with_custom_gradients(collect)
    if after:
        gc.collect()  # the frozen part cannot be what the entries held: all made since
    return first + gone + after


def every_object() -> list[Any]:
    """``gc.get_objects()`` including frozen objects (which it does not list).

    Only someone else's freeze can be in place when tfmagic seeds its registry (it
    freezes only after that): their frozen set is listed by unfreezing and freezing
    again, which also freezes what was not frozen yet, as a ``gc.freeze()`` now would.
    """
    if not gc.get_freeze_count():
        return gc.get_objects()
    gc.unfreeze()
    try:
        return gc.get_objects()
    finally:
        gc.freeze()


# -- freezing ---------------------------------------------------------------------------
def _owns_freeze() -> bool:
    """Whether tfmagic's freeze is in place and still only tfmagic's; notice if not."""
    if not _state.frozen:
        return False
    count = gc.get_freeze_count()
    if count == 0 or count > _state.count_after:
        # Someone unfroze (respect that), or froze more on top (theirs to undo now).
        _state.frozen = False
        _state.watch.clear()
        _state.given_up = True
        _state.withheld = (
            "someone else called gc.unfreeze() after tfmagic froze"
            if count == 0
            else "someone else called gc.freeze() after tfmagic did: the freeze is theirs now"
        )
        return False
    _state.count_after = count  # frozen objects freed by reference counting
    return True


def _try_freeze(collected: bool) -> bool:
    if _owns_freeze():
        gc.collect()  # a later import: freeze what it added, and only what is alive
        return _freeze_if_clean()
    if gc.get_freeze_count():
        _state.withheld = "objects frozen by someone else (gc.freeze()) are in place"
        return False
    watch: list[_Watched] = []
    why = _census(watch, registry=None)  # cheap: before collecting
    if why is None and not collected:
        gc.collect()  # nothing that is already garbage may be frozen
    return _freeze_if_clean() if why is None else _withhold(why)


def _freeze_if_clean() -> bool:
    watch: list[_Watched] = []
    why = _census(watch, registry=_state.registry)
    if why is not None:
        return _withhold(why)
    gc.freeze()
    _state.frozen = True
    _state.count_after = gc.get_freeze_count()
    _state.watch = watch
    _state.withheld = None
    return True


def _withhold(why: str) -> bool:
    _state.withheld = why
    return False


# -- the census: could anything alive now become garbage that matters? -------------------
def _census(watch: list[_Watched], registry: Any) -> str | None:
    try:
        return _why_not_clean(_state.shell, watch, registry)
    except Exception as exc:  # noqa: BLE001 - an odd object must not break a reset
        return f"the census of what is alive failed ({type(exc).__name__}: {exc})"


def _why_not_clean(shell: Any, watch: list[_Watched], registry: Any) -> str | None:
    """Why freezing now could keep garbage that matters alive, or None; fills ``watch``."""
    if registry is not None:
        why = _watch_replaceable_state(watch)
        if why:
            return why
        slots = {id(w.ref()) for w in watch}
        for kind in _TF_STATE:
            for obj in getattr(registry, kind, ()):
                if id(obj) not in slots:  # TF's own default graph is watched instead
                    return f"TF objects made before the freeze are alive ({kind})"
        for function in getattr(registry, "functions", ()):
            if not _library_code(getattr(function, "_python_function", None)):
                return f"a tf.function defined in the notebook is alive ({_name(function)})"
    for name in ("last_value", "last_traceback", "last_exc"):
        if getattr(sys, name, None) is not None:
            return f"the last error's traceback is kept (sys.{name}), with its frames"
    user_ns = shell.user_ns
    hidden = shell.user_ns_hidden
    notebook = _Namespace(lambda: user_ns, "the notebook")
    for name, value in list(user_ns.items()):
        if name in hidden and hidden[name] is value:
            continue  # IPython's own (In, Out, exit, ...); outputs are looked at below
        why = notebook.check(name, value, watch)
        if why:
            return why
    for n, value in list(user_ns.get("_oh", {}).items()):
        if _holds_garbage(value):
            return f"Out[{n}] holds a {type(value).__name__}"
    last = getattr(shell, "last_execution_result", None)
    if last is not None and _holds_garbage(getattr(last, "result", None)):
        return "the last cell's result is kept"
    for frame in _notebook_frames():
        if frame.f_locals is frame.f_globals:
            continue  # a module being imported: checked with the user modules below
        for name, value in list(frame.f_locals.items()):
            if _holds_garbage(value):
                return f"a running notebook function holds `{name}` ({type(value).__name__})"
    for module in _user_modules():
        namespace = _Namespace(_module_namespace(module), f"module {module.__name__}")
        for name, value in list(vars(module).items()):
            if not name.startswith("__"):
                why = namespace.check(name, value, watch)
                if why:
                    return why
    return None


def _watch_replaceable_state(watch: list[_Watched]) -> str | None:
    """TF's and Keras's global state (default graph, state trackers) dies when a reset or
    ``clear_session()`` replaces it: watch each, as a class in a module is watched."""
    from tfmagic import frameworks

    for namespace, name in frameworks.replaceable_state():
        value = namespace().get(name)
        if value is None or not gc.is_tracked(value):
            continue
        try:
            label = f"TF/Keras state: {name}"
            watch.append(_Watched(namespace, name, weakref.ref(value), label))
        except TypeError:
            return f"TF state that cannot be watched is alive ({name})"
    return None


@dataclass(frozen=True)
class _Namespace:
    get: Callable[[], dict[str, Any] | None]
    label: str

    def check(self, name: str, value: Any, watch: list[_Watched]) -> str | None:
        if not _holds_garbage(value) or _library_held(name, value):
            return None
        if isinstance(value, (type, types.FunctionType)) and not _library_code(value):
            # Defined here: cyclic (a class) or possibly so (a closure), but it only
            # dies when this name stops holding it; watch that.
            watch.append(_Watched(self.get, name, weakref.ref(value), f"{self.label}: {name}"))
            return None
        return f"{self.label} holds `{name}` ({type(value).__name__})"


def _holds_garbage(value: Any) -> bool:
    """Whether ``value`` could (as part of a cycle) become garbage, or hold some later."""
    if value is None or not gc.is_tracked(value) or isinstance(value, _ATOMS):
        return False
    if isinstance(value, (type, types.FunctionType)):
        return not _library_code(value) and not _plain_function(value)
    return True


def _library_held(name: str, value: Any) -> bool:
    """``from typing import Any``: the value is the library module's attribute of that
    name, which holds it for the life of the process."""
    for module_name in {getattr(value, "__module__", None), type(value).__module__}:
        module = sys.modules.get(module_name or "")
        if module is not None and _library_module(module) and getattr(module, name, None) is value:
            return True
    return False


def _plain_function(value: Any) -> bool:
    """A function no cycle can go through: its module's namespace holds it, it holds
    no closure, no attributes and no default the collector tracks."""
    if not isinstance(value, types.FunctionType) or value.__closure__ is not None:
        return False
    defaults = (*(value.__defaults__ or ()), *(value.__kwdefaults__ or {}).values())
    return not value.__dict__ and not any(gc.is_tracked(d) for d in defaults)


def _library_code(value: Any) -> bool:
    """Defined in the standard library or an installed package (or built in)."""
    code = getattr(value, "__code__", None)
    if code is not None:
        return _library_file(code.co_filename)
    module = sys.modules.get(getattr(value, "__module__", None) or "")
    return module is not None and _library_module(module)


def _library_module(module: types.ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    if path is None:  # built in, frozen; not the notebook's ``__main__``
        return getattr(getattr(module, "__spec__", None), "origin", None) in ("built-in", "frozen")
    return _library_file(path)


def _library_file(path: str) -> bool:
    return path.startswith(_PREFIXES) or path.startswith("<frozen")


def _notebook_frames() -> Iterator[types.FrameType]:
    """Frames of notebook code running now, from the innermost out to the shell's
    ``run_code`` (its callers are the host: a kernel, a test, a benchmark)."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "run_code" and "IPython" in code.co_filename:
            return
        ours = str(frame.f_globals.get("__name__", "")).startswith("tfmagic")
        if not ours and not _library_file(code.co_filename):
            yield frame
        frame = frame.f_back


def _user_modules() -> list[types.ModuleType]:
    modules = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and not _library_file(path) and not name.startswith("tfmagic"):
            modules.append(module)
    return modules


def _module_namespace(module: types.ModuleType) -> Callable[[], dict[str, Any] | None]:
    name, ref = module.__name__, weakref.ref(module)

    def namespace() -> dict[str, Any] | None:
        now = ref()
        return vars(now) if now is not None and sys.modules.get(name) is now else None

    return namespace


def _name(function: Any) -> str:
    return str(getattr(function, "__name__", None) or type(function).__name__)
