"""Call a function right after a module is imported, without importing it ourselves.

tfmagic must not import TensorFlow, yet it has to see every variable, layer and
session from the first one on. A meta-path finder notices the import of a watched
top-level module and runs the callbacks as soon as that module has executed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

Callback = Callable[[ModuleType], None]

_pending: dict[str, list[Callback]] = {}
_resolving: set[str] = set()


def when_imported(name: str, callback: Callback) -> None:
    """Run ``callback(module)`` now if ``name`` is imported, else right after its import."""
    module = sys.modules.get(name)
    if module is not None and not _initializing(module):
        callback(module)
        return
    _pending.setdefault(name, []).append(callback)
    if not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PostImportFinder())


def forget(callback: Callback) -> None:
    """Drop a callback that has not run yet (used by ``unload_ipython_extension``)."""
    for name in list(_pending):
        _pending[name] = [c for c in _pending[name] if c is not callback]
        if not _pending[name]:
            del _pending[name]
    if not _pending:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PostImportFinder)]


def _initializing(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _notify(name: str, module: ModuleType) -> None:
    for callback in _pending.pop(name, []):
        callback(module)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader's ``exec_module`` of a watched module."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending or fullname in _resolving:
            return None
        _resolving.add(fullname)
        try:
            spec = _find_with_other_finders(fullname, path, target)
        finally:
            _resolving.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        # An instance attribute shadows the class method for this one module only;
        # the loader keeps its type, so importlib.resources and friends still work.
        def exec_then_notify(module: ModuleType) -> None:
            try:
                real_exec(module)
            finally:
                del loader.exec_module
            _notify(fullname, module)

        loader.exec_module = exec_then_notify  # type: ignore[method-assign]
        return spec


def _find_with_other_finders(
    fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> importlib.machinery.ModuleSpec | None:
    for finder in sys.meta_path:
        if isinstance(finder, _PostImportFinder):
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None
