"""tfmagic: make TensorFlow/Keras notebook state visible and re-runnable.

``%load_ext tfmagic`` registers the magics; this module imports nothing heavy
(no TensorFlow, no IPython display machinery) until a function is called. Each
function here is the Python twin of a magic: both are one call into the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from tfmagic.isolation import CellState
    from tfmagic.memory_report import MemoryReport
    from tfmagic.pins import StaleObject
    from tfmagic.probe import Snapshot
    from tfmagic.records import CellRecord
    from tfmagic.reloading import ReloadReport
    from tfmagic.reset_state import ResetReport
    from tfmagic.stats import GraphStats

__version__ = "0.1.0"
__all__ = [
    "dashboard",
    "graph_stats",
    "history",
    "isolated",
    "load_ipython_extension",
    "memory",
    "reload",
    "reset",
    "snapshot",
    "stale",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    from tfmagic import extension

    extension.load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from tfmagic import extension

    extension.unload(ipython)


def snapshot() -> Snapshot:
    """TF/Keras state now (``Snapshot``); starts tracking if the extension is not loaded."""
    from tfmagic import extension, probe

    return probe.snapshot(extension.session().registry)


def history() -> list[CellRecord]:
    """The recorded cell runs, oldest first (empty unless ``%load_ext tfmagic``)."""
    from tfmagic import extension

    session = extension.loaded()
    return session.history() if session is not None else []


def graph_stats(cell: int | None = None, last: int | None = None) -> GraphStats:
    """The twin of ``%tf_graph_stats``: every run of ``In[cell]``, and/or the last N.

    Raises ``ValueError`` for a negative ``last`` or a ``cell`` that never ran.
    """
    from tfmagic import extension

    return extension.session().graph_stats(cell=cell, last=last)


def isolated(key: str | None = None) -> AbstractContextManager[CellState]:
    """``with tfmagic.isolated():`` — the twin of ``%%tf_isolated``.

    ``key`` identifies the block across re-runs; by default the running notebook cell,
    or else the caller's file and line.
    """
    from tfmagic import extension

    session = extension.session()
    return session.isolated(key if key is not None else session.default_isolation_key())


def reset(hard: bool = False, dry_run: bool = False, keep: tuple[str, ...] = ()) -> ResetReport:
    """The twin of ``%tf_reset``; see its help for what it does.

    Raises ``ValueError`` when ``keep`` names a variable that does not exist.
    """
    from tfmagic import extension

    return extension.session().reset(hard=hard, dry_run=dry_run, keep=keep)


def stale() -> list[StaleObject]:
    """Live TF objects that lost the name they were made for, with what pins each.

    Walks the heap: call it when you want to know, not in a loop. Needs
    ``%load_ext tfmagic`` (it knows objects by the cell that made them).
    """
    from tfmagic import extension

    return extension.session().stale()


def memory(pins: bool = True) -> MemoryReport:
    """The twin of ``%tf_memory``: TF memory per device now, and live variables by the
    cell run that made them, biggest first, stale ones with what pins them.

    ``pins=False`` neither collects garbage nor walks from your names to find the pins.
    """
    from tfmagic import extension

    return extension.session().memory(pins=pins)


def reload(module: str) -> ReloadReport:
    """The twin of ``%tf_reload``: re-import ``module`` and rebind notebook names.

    Raises ``ValueError`` when ``module`` was never imported.
    """
    from tfmagic import extension

    return extension.session().reload(module)


def dashboard() -> None:
    """The twin of ``%tf_dashboard``: a live view of TF state, updated after every cell."""
    from tfmagic import extension

    extension.session().show_dashboard()
