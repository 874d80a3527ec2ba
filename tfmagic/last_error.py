"""The last error's traceback: what its frames keep alive, and letting go of it.

Python keeps the last uncaught exception in ``sys.last_value``, ``sys.last_traceback``
and ``sys.last_type`` (and ``sys.last_exc`` on 3.12+); IPython sets them for every
traceback it shows, and keeps its own references too: ``shell.InteractiveTB.tb`` (set
by each formatted traceback, ``%tb`` and ``%debug`` read it), and until the next cell
ends ``shell.last_execution_result.error_in_exec``. The exception's traceback keeps
every failing frame alive with its locals: a model built inside the function that
raised stays alive — its variables, its allocator memory — until another error
replaces it. (ipykernel's ``shell._last_traceback`` and IPython's
``history_manager.exceptions`` hold formatted text only.)

``find`` reads those references without walking the heap; ``drop`` (``%tf_reset``)
releases them and clears the failing frames whose locals hold TF state.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfmagic import frameworks
from tfmagic.registry import REGISTRY, Registry

_SYS_NAMES = ("last_type", "last_value", "last_traceback", "last_exc")
_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


@dataclass(frozen=True)
class LastError:
    """The exception Python and IPython keep as "the last error", and its cell."""

    error: BaseException | None
    traceback: types.TracebackType | None
    execution_count: int | None

    @property
    def where(self) -> str:
        return "a cell" if self.execution_count is None else f"In[{self.execution_count}]"

    @property
    def label(self) -> str:
        """How reports name this pin: ``the last error's traceback (In[7])``."""
        return f"the last error's traceback ({self.where})"


def find(shell: Any) -> LastError | None:
    """The last error, or None when neither Python nor IPython keeps one."""
    error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    tb = getattr(sys, "last_traceback", None)
    if error is not None and error.__traceback__ is not None:
        tb = error.__traceback__
    if tb is None:
        tb = _ipython_traceback(shell)
    if error is None and tb is None:
        return None
    return LastError(error, tb, _execution_count(shell, tb))


def frames(last: LastError) -> list[types.FrameType]:
    """Every frame the last error keeps: its traceback's and its chained exceptions'."""
    found: list[types.FrameType] = []
    seen: set[int] = set()
    tracebacks = [last.traceback]
    error, errors_seen = last.error, set()
    while error is not None and id(error) not in errors_seen:  # __cause__ / __context__
        errors_seen.add(id(error))
        tracebacks.append(error.__traceback__)
        error = error.__cause__ or error.__context__
    for tb in tracebacks:
        while tb is not None:
            if id(tb.tb_frame) not in seen:
                seen.add(id(tb.tb_frame))
                found.append(tb.tb_frame)
            tb = tb.tb_next
    return found


def user_frames(last: LastError) -> list[types.FrameType]:
    """The failing function frames of user (and library) code: not module-level cell
    code, whose locals are the user's namespace, nor IPython's or tfmagic's own frames."""
    return [
        frame
        for frame in frames(last)
        if frame.f_code.co_flags & inspect.CO_OPTIMIZED
        and not frame.f_code.co_filename.startswith(_ipython_dirs())
    ]


def held(last: LastError) -> Iterator[tuple[str, Any]]:
    """(readable path, value) for each local of the failing user frames."""
    for frame in user_frames(last):
        for name, value in list(_locals(frame).items()):
            yield f"{last.label}: {frame.f_code.co_name}() local `{name}`", value


def orphans(
    shell: Any, bound: dict[int, list[str]], registry: Registry = REGISTRY
) -> list[tuple[str, Any, Any]]:
    """(kind, object, birth) for TF objects that only the last error keeps: made by the
    cell run that failed, bound to no name when it ended, held by a failing frame.

    Only models, tf.functions and variables of no model (a model's parts are reported
    through the model), as ``stale()`` reports them.
    """
    last = find(shell) if shell is not None else None
    if last is None or last.execution_count is None:
        return []
    found: dict[int, tuple[str, Any, Any]] = {}
    kinds = (registry.models, registry.functions, registry.variables)
    for _, value in held(last):
        if id(value) in found or id(value) in bound:
            continue
        for live in kinds:
            birth = live.birth_of(value)
            if birth is None or birth.names or birth.execution_count != last.execution_count:
                continue
            if live.kind == "variable" and birth.owner is not None:
                continue
            found[id(value)] = (live.kind, value, birth)
    return list(found.values())


def held_tensor_bytes(last: LastError) -> int:
    """Bytes of the eager tensors the failing user frames hold directly."""
    from tfmagic.frameworks import tf_core

    total, seen = 0, set()
    for _, value in held(last):
        if id(value) not in seen:
            seen.add(id(value))
            total += tf_core.eager_tensor_bytes(value) or 0
    return total


def drop(shell: Any, dry_run: bool = False) -> str | None:
    """Release every reference Python and IPython keep to the last error, and clear
    the failing frames whose locals hold TF state. Returns its label, or None.

    The user's own names are never touched; ``%tb`` afterwards may say there is no
    traceback. The frames are cleared too because whoever else still holds the
    exception (a chained exception, a debugger) would otherwise keep their locals.
    """
    last = find(shell)
    if last is None:
        return None
    if dry_run:
        return last.label
    types_ = frameworks.tf_types()
    for frame in frames(last):
        if frame.f_code.co_flags & inspect.CO_OPTIMIZED and not (
            frame.f_code.co_flags & _GENERATOR_FLAGS  # clearing would close a generator
        ):
            if any(frameworks.holds_tf_object(v, types_) for v in _locals(frame).values()):
                _clear(frame)
    for name in _SYS_NAMES:
        if hasattr(sys, name):
            delattr(sys, name)
    if shell is not None:
        for handler in (getattr(shell, "InteractiveTB", None), getattr(shell, "SyntaxTB", None)):
            if handler is not None and isinstance(
                getattr(handler, "tb", None), types.TracebackType
            ):
                handler.tb = None
        result = getattr(shell, "last_execution_result", None)
        if result is not None and last.error is not None:
            if getattr(result, "error_in_exec", None) is last.error:
                result.error_in_exec = None
            if getattr(result, "error_before_exec", None) is last.error:
                result.error_before_exec = None
    return last.label


def _clear(frame: types.FrameType) -> None:
    try:
        frame.clear()
    except RuntimeError:
        return  # still executing
    # Up to 3.12 reading f_locals caches a dict snapshot on the frame that clear() leaves
    # alone; reading it again after clear() empties it.
    _locals(frame)


def _locals(frame: types.FrameType) -> dict[str, Any]:
    try:
        return dict(frame.f_locals)
    except Exception:  # noqa: BLE001 - a frame that cannot show its locals holds none we see
        return {}


def _ipython_traceback(shell: Any) -> types.TracebackType | None:
    tb = getattr(getattr(shell, "InteractiveTB", None), "tb", None)
    return tb if isinstance(tb, types.TracebackType) else None


def _execution_count(shell: Any, tb: types.TracebackType | None) -> int | None:
    """The In[N] of the outermost cell frame: IPython maps each cell's code name to it."""
    names = getattr(getattr(shell, "compile", None), "_filename_map", None) or {}
    while tb is not None:
        number = names.get(tb.tb_frame.f_code.co_filename)
        if isinstance(number, int):
            return number
        tb = tb.tb_next
    return None


# Frames of IPython's and tfmagic's own code: their locals are the shell, not user state.
_IPYTHON_DIRS: tuple[str, ...] | None = None


def _ipython_dirs() -> tuple[str, ...]:
    global _IPYTHON_DIRS
    if _IPYTHON_DIRS is None:
        import IPython

        _IPYTHON_DIRS = (str(Path(IPython.__file__).parent), str(Path(__file__).parent))
    return _IPYTHON_DIRS
