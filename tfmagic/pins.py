"""``stale()``: live TF objects that lost the name they were made for, and who pins them.

An object is *stale* when the cell that made it bound it to names and none of those
names point to it any more (the cell was re-run, the name re-bound), or when it was
a cell's unnamed result and that cell has run again since. It is still alive only
because something else holds it: ``Out[12]``, ``_``, a closure, a list, a module
global. ``pinned_by`` names those holders, found by a bounded walk from every
user-visible root. A ``tf.function`` whose traces captured variables of a stale (or
dead) model is stale too: it trains a model nobody can see.

This walks the heap: it runs on demand (``tfmagic.stale()``, ``%tf_graph_stats
--stale``), never per cell. The per-cell warning about stale captures only looks at
the tf.functions that cell called.
"""

from __future__ import annotations

import sys
import types
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tfmagic import births, collector, last_error, render
from tfmagic.births import Birth
from tfmagic.frameworks import tf_core
from tfmagic.outputs import UNDERSCORES
from tfmagic.registry import REGISTRY, Registry

RunsOf = Callable[[str], int]
MAX_DEPTH = 5
MAX_NODES_PER_ROOT = 20_000
MAX_PATHS = 3


@dataclass(frozen=True)
class StaleObject:
    kind: str
    label: str
    pinned_by: tuple[str, ...]

    def __str__(self) -> str:
        pins = ", ".join(self.pinned_by) if self.pinned_by else "nothing user-visible"
        return f"stale {self.kind} {self.label}, pinned by {pins}"


def stale(shell: Any, runs_of: RunsOf, registry: Registry = REGISTRY) -> list[StaleObject]:
    if "tensorflow" not in sys.modules:
        return []
    collector.collect()  # what is merely unreachable is not stale, just not collected yet
    bound = births.user_names(shell)
    found: dict[int, tuple[str, Any, Birth]] = {}
    for live in registry.kinds:
        for obj in live:
            birth = live.birth_of(obj)
            if birth is None or id(obj) in bound:
                continue
            if live.kind not in ("model", "function") and not birth.names:
                continue  # parts of a model are reported through the model
            if is_stale(obj, birth, shell.user_ns, runs_of):
                found[id(obj)] = (live.kind, obj, birth)
    # Made by the cell run that failed, named by nothing: only its traceback keeps them.
    for kind, obj, birth in last_error.orphans(shell, bound, registry):
        found.setdefault(id(obj), (kind, obj, birth))
    _drop_parts_of_other_stale_models(found)
    captures = {id(f): f for f in registry.functions if id(f) not in found}
    stale_functions = {
        key: (f, why)
        for key, f in captures.items()
        if (why := stale_capture(f, shell.user_ns, runs_of, registry))
    }
    paths = pin_paths(shell, set(found) | set(stale_functions))
    result = [
        StaleObject(kind, describe(obj, kind, birth), tuple(paths.get(key, ())))
        for key, (kind, obj, birth) in found.items()
    ]
    result += [
        StaleObject("tf.function", f"{_function_name(f)}: {why}", tuple(paths.get(key, ())))
        for key, (f, why) in stale_functions.items()
    ]
    return result


def is_stale(obj: Any, birth: Birth, user_ns: dict[str, Any], runs_of: RunsOf) -> bool:
    if birth.names:
        return all(user_ns.get(name) is not obj for name in birth.names)
    return runs_of(birth.cell_key) > birth.run_index


def stale_capture(
    function: Any, user_ns: dict[str, Any], runs_of: RunsOf, registry: Registry = REGISTRY
) -> str | None:
    """Why ``function`` trains a model nobody can see, or None if it does not."""
    try:
        captured, dead = tf_core.captured_variables(function)
    except Exception:  # noqa: BLE001 - a function TF cannot list has nothing to say
        return None
    if dead:
        return f"captures {dead} variable(s) that no longer exist (a model re-built since)"
    for variable in captured:
        birth = registry.variables.birth_of(variable)
        if birth is None or birth.owner is None:
            continue
        model = birth.owner()
        if model is None:
            return f"captures variables of {birth.owner_label}, which no longer exists"
        model_birth = registry.models.birth_of(model)
        if model_birth is not None and is_stale(model, model_birth, user_ns, runs_of):
            now = ", ".join(f"`{n}`" for n in model_birth.names) or "its cell's result"
            return f"captures variables of {birth.owner_label}, but {now} is now another model"
    return None


def _drop_parts_of_other_stale_models(found: dict[int, tuple[str, Any, Birth]]) -> None:
    """Keras 3's Sequential keeps an inner functional model: report the outer one only."""
    parts: set[int] = set()
    for kind, obj, _ in found.values():
        if kind == "model":
            for value in vars(obj).values():
                parts.add(id(value))
                if isinstance(value, (list, tuple)):
                    parts.update(id(v) for v in value)
    for key in parts & set(found):
        del found[key]


def describe(obj: Any, kind: str, birth: Birth) -> str:
    name = getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__
    details = []
    if kind == "model":
        variables = births.model_variables(obj)
        size = sum(tf_core.variable_bytes(v) for v in variables)
        details.append(f"{len(variables)} variables, {render.fmt_bytes(size)}")
    elif kind == "variable":
        details.append(f"shape {list(obj.shape)}, {render.fmt_bytes(tf_core.variable_bytes(obj))}")
    was = f" (was `{'`, `'.join(birth.names)}`)" if birth.names else ""
    inside = f" [{'; '.join(details)}]" if details else ""
    return f"{name}{inside} from {birth.where}, run {birth.run_index}{was}"


def _function_name(function: Any) -> str:
    return str(getattr(function, "__name__", None) or getattr(function, "_name", "tf.function"))


@dataclass(frozen=True, repr=False)  # keep LinesReport's text form in IPython
class StaleReport(render.LinesReport):
    """What ``%tf_graph_stats --stale`` displays: the stale objects, one per line."""

    css_class = "tfmagic-stale"

    objects: tuple[StaleObject, ...]

    def lines(self) -> list[str]:
        if not self.objects:
            return ["No stale TF objects: everything alive is reachable the way it was made."]
        head = f"{len(self.objects)} stale TF object(s); %tf_reset drops output pins:"
        return [head, *(f"  {o}" for o in self.objects)]


# -- who pins what -------------------------------------------------------------
def pin_paths(shell: Any, targets: set[int]) -> dict[int, list[str]]:
    """For each target id, up to ``MAX_PATHS`` readable paths from user-visible roots."""
    paths: dict[int, list[str]] = {}
    if not targets:
        return paths
    opaque = tf_core.state_types()  # walked into only through a tf.function
    for label, root in _roots(shell):
        for key, path in _walk(label, root, targets, opaque):
            found = paths.setdefault(key, [])
            if len(found) < MAX_PATHS and path not in found:
                found.append(path)
    return paths


def _roots(shell: Any) -> Iterator[tuple[str, Any]]:
    user_ns, hidden = shell.user_ns, shell.user_ns_hidden
    for n, value in list(user_ns.get("_oh", {}).items()):
        yield f"Out[{n}]", value
    for name, value in list(user_ns.items()):
        if name in hidden and hidden[name] is value and name not in UNDERSCORES:
            continue  # IPython's own names (In, Out, exit, …)
        if isinstance(value, types.ModuleType):
            continue  # modules are walked below, once each
        if name.startswith("_") and not (name in UNDERSCORES or name[1:].isdigit()):
            continue
        yield name, value
    for name in UNDERSCORES:
        if name in hidden:
            yield f"user_ns_hidden['{name}']", hidden[name]
    for module in _user_modules():
        for attr, value in list(vars(module).items()):
            if not attr.startswith("__") and not isinstance(value, types.ModuleType):
                yield f"{module.__name__}.{attr}", value
    last = last_error.find(shell)
    if last is not None:
        yield from last_error.held(last)  # "the last error's traceback (In[7]): f() local `m`"


def _user_modules() -> list[types.ModuleType]:
    """Modules from the user's own files (not the standard library or site-packages)."""
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    modules = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and not path.startswith(prefixes) and not name.startswith("tfmagic"):
            modules.append(module)
    return modules


def _walk(
    label: str, root: Any, targets: set[int], opaque: tuple[type, ...]
) -> Iterator[tuple[int, str]]:
    seen = {id(root)}
    queue: deque[tuple[Any, str, int]] = deque([(root, label, 0)])
    budget = MAX_NODES_PER_ROOT
    while queue and budget > 0:
        obj, path, depth = queue.popleft()
        budget -= 1
        if id(obj) in targets:
            yield id(obj), path
        if depth >= MAX_DEPTH:
            continue
        for step, child in _children(obj, opaque):
            if id(child) not in seen:
                seen.add(id(child))
                queue.append((child, path + step, depth + 1))


_LEAVES = (str, bytes, int, float, complex, bool, type(None), type, types.ModuleType)


def _children(obj: Any, opaque: tuple[type, ...]) -> Iterator[tuple[str, Any]]:
    """Named references out of ``obj``; TF objects themselves are not looked into."""
    if isinstance(obj, _LEAVES):
        return
    function = getattr(obj, "_python_function", None)
    if function is not None and isinstance(obj, opaque):
        yield "", function  # a tf.function: what its Python function holds, it holds
        return
    if isinstance(obj, opaque):
        return
    if isinstance(obj, dict):
        for key, value in list(obj.items())[:1000]:
            yield f"[{key!r}]", value
    elif isinstance(obj, (list, tuple, deque)):
        for i, value in enumerate(list(obj)[:1000]):
            yield f"[{i}]", value
    elif isinstance(obj, (set, frozenset)):
        for value in list(obj)[:1000]:
            yield " (a set member)", value
    elif isinstance(obj, types.FunctionType):
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=False):
            try:
                yield f" closure ({name})", cell.cell_contents
            except ValueError:
                continue  # an empty cell
        for i, value in enumerate(obj.__defaults__ or ()):
            yield f" default [{i}]", value
    elif isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
    else:
        for attr, value in list(getattr(obj, "__dict__", {}).items())[:1000]:
            yield f".{attr}", value


def capture_warnings(
    functions: list[Any], user_ns: dict[str, Any], runs_of: RunsOf, registry: Registry = REGISTRY
) -> list[str]:
    """One line per tf.function called in this cell that trains a model nobody can see."""
    lines = []
    for function in functions:
        why = stale_capture(function, user_ns, runs_of, registry)
        if why:
            lines.append(
                f"tfmagic: {_function_name(function)} {why}: it is still training the old "
                "weights. Re-run the cell that defines it (or pass the model in as an argument)."
            )
    return lines
