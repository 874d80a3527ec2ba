"""tfmagic: make TensorFlow/Keras notebook state visible and re-runnable.

``%load_ext tfmagic`` registers the magics; this module imports nothing heavy
(no TensorFlow, no IPython display machinery) until a function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from tfmagic.isolation import CellState
    from tfmagic.pins import StaleObject
    from tfmagic.probe import Snapshot
    from tfmagic.reloading import ReloadReport
    from tfmagic.reset_state import ResetReport
    from tfmagic.stats import GraphStats
    from tfmagic.tracker import CellRecord

__version__ = "0.1.0"
__all__ = [
    "dashboard",
    "graph_stats",
    "history",
    "isolated",
    "load_ipython_extension",
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
    from tfmagic import frameworks, probe
    from tfmagic.registry import REGISTRY

    frameworks.start_tracking(REGISTRY)
    return probe.snapshot()


def history() -> list[CellRecord]:
    """The recorded cell runs, oldest first (empty unless ``%load_ext tfmagic``)."""
    from tfmagic import extension

    tracker = extension.active_tracker()
    return list(tracker.history) if tracker else []


def graph_stats(cell: int | None = None, last: int | None = None) -> GraphStats:
    """The Python twin of ``%tf_graph_stats``: every run of ``In[cell]``, and/or the last N."""
    from tfmagic import probe
    from tfmagic.stats import GraphStats, select

    return GraphStats(select(history(), cell=cell, last=last), probe.snapshot())


def isolated(key: str | None = None) -> AbstractContextManager[CellState]:
    """``with tfmagic.isolated():`` — the Python twin of ``%%tf_isolated``.

    ``key`` identifies the block across re-runs; by default the running notebook cell,
    or else the caller's file and line.
    """
    import sys

    from tfmagic import extension
    from tfmagic.isolation import ISOLATION

    tracker = extension.active_tracker()
    if key is None and tracker is not None:
        key = tracker.current_cell_key()
    if key is None:
        caller = sys._getframe(1)
        key = f"{caller.f_code.co_filename}:{caller.f_lineno}"
    return ISOLATION.run(key, tracker.shell if tracker else None)


def reset(hard: bool = False, dry_run: bool = False, keep: tuple[str, ...] = ()) -> ResetReport:
    """The Python twin of ``%tf_reset``; see its help for what it does."""
    from tfmagic import extension, reset_state
    from tfmagic.isolation import ISOLATION

    tracker = extension.active_tracker()
    report = reset_state.reset(
        tracker.shell if tracker else None, hard=hard, dry_run=dry_run, keep=keep
    )
    if not dry_run:
        ISOLATION.forget()
    return report


def stale() -> list[StaleObject]:
    """Live TF objects that lost the name they were made for, with what pins each.

    Walks the heap (about a second): call it when you want to know, not in a loop.
    Needs ``%load_ext tfmagic`` (it knows objects by the cell that made them).
    """
    from tfmagic import extension, pins

    tracker = extension.active_tracker()
    if tracker is None:
        return []
    return pins.stale(tracker.shell, tracker.runs_of)


def reload(module: str) -> ReloadReport:
    """The Python twin of ``%tf_reload``: re-import ``module`` and rebind notebook names."""
    from tfmagic import extension, reloading

    tracker = extension.active_tracker()
    return reloading.reload(module, tracker.shell if tracker else None)


def dashboard() -> None:
    """The Python twin of ``%tf_dashboard``: a live view of TF state, updated after every cell."""
    from tfmagic import dashboard_widget, extension

    tracker = extension.active_tracker()
    if tracker is None:
        raise RuntimeError("tfmagic.dashboard() needs the extension: run %load_ext tfmagic first.")
    dashboard_widget.show(tracker.shell, tracker)
