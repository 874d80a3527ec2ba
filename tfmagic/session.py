"""``Session``: what one ``%load_ext tfmagic`` creates and ``%unload_ext`` drops.

It owns the cell tracker, the isolated cells' state, the magics' settings and the
live dashboard, wires the listeners that run after each cell (in order: growth note,
births, stale-capture warnings, error hints, isolated cells' outputs, the dashboard),
and holds the rules the magics, the Python twins and the dashboard buttons share:
each of those is parse → one call here → render.

The weak live-object registry and the import watch are process-wide instead (see
``registry`` and ``importwatch``): the constructor hooks that fill them outlive a
``%reload_ext``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tfmagic import collector, frameworks, probe
from tfmagic.errors import ArgumentError
from tfmagic.isolation import CellState, Isolation
from tfmagic.records import CellRecord
from tfmagic.registry import REGISTRY, Registry
from tfmagic.tracker import CellTracker

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult, InteractiveShell

    from tfmagic.dashboard_widget import Dashboard
    from tfmagic.memory_report import MemoryReport
    from tfmagic.pins import StaleObject
    from tfmagic.reloading import ReloadReport
    from tfmagic.reset_state import ResetReport
    from tfmagic.stats import GraphStats


class Session:
    """One loaded extension in one shell (or, with ``shell=None``, a plain script)."""

    def __init__(self, shell: InteractiveShell | None, registry: Registry = REGISTRY) -> None:
        self.shell = shell
        self.registry = registry
        self.isolation = Isolation(registry)
        self.tracker = CellTracker(shell) if shell is not None else None
        self.dashboard: Dashboard | None = None
        # Resets made with a dashboard button (no cell run records them), each with the run
        # recorded before it: a dashboard shown later charts them too.
        self.button_resets: list[tuple[CellRecord | None, ResetReport]] = []
        self.warn_on_growth = True
        self._freeze_imports = True
        self._started = False
        self._isolated_this_cell: list[str] = []

    # -- lifetime ------------------------------------------------------------------
    def start(self) -> None:
        collector.start(self.shell, self.registry, self._freeze_imports)
        self._started = True
        frameworks.start_tracking(self.registry)
        if self.tracker is None:
            return
        self.registry.record_births(True)
        self.tracker.settle = _collect_garbage
        self.tracker.listeners += [
            self._note_growth,
            self._note_births,
            self._warn_stale_captures,
            self._hint_errors,
            self._remember_isolated_outputs,
        ]
        self.tracker.register()

    def stop(self) -> None:
        self.close_dashboard("tfmagic was unloaded; this dashboard no longer updates.")
        if self.tracker is not None:
            self.tracker.unregister()
            self.tracker.listeners.clear()
            self.registry.record_births(False)
        frameworks.stop_tracking()
        if self._started:
            collector.stop()  # unfreeze what tfmagic froze
            self._started = False

    # -- the rules behind the magics, the twins and the buttons --------------------
    def history(self) -> list[CellRecord]:
        return list(self.tracker.history) if self.tracker is not None else []

    def graph_stats(self, cell: int | None = None, last: int | None = None) -> GraphStats:
        from tfmagic.stats import GraphStats, NoSuchCell, select

        if last is not None and last < 0:
            raise ArgumentError(f"last takes a count of 0 or more, not {last}")
        try:
            records = select(self.history(), cell=cell, last=last)
        except NoSuchCell as e:
            raise ArgumentError(
                f"no recorded cell ran as In[{cell}]; graph_stats() without a cell lists them"
            ) from e
        return GraphStats(records, probe.snapshot(self.registry))

    @contextlib.contextmanager
    def isolated(self, key: str) -> Iterator[CellState]:
        """Run a block so that running it again leaves TF state as if once.

        Inside a recorded cell the record is marked isolated and the cell's result is
        released from the output history when the block runs again.
        """
        if not key:
            raise ArgumentError("an isolated block needs a non-empty key")
        if self.tracker is not None:
            self.tracker.current_cell_isolated = True
        with self.isolation.run(key, self.shell) as state:
            yield state
        if self.tracker is not None and self.tracker.current_cell_key() is not None:
            self._isolated_this_cell.append(key)

    def default_isolation_key(self, depth: int = 2) -> str:
        """The running cell, or outside a notebook cell the caller's file and line."""
        key = self.tracker.current_cell_key() if self.tracker is not None else None
        if key is None:
            caller = sys._getframe(depth)
            key = f"{caller.f_code.co_filename}:{caller.f_lineno}"
        return key

    def reset(
        self, hard: bool = False, dry_run: bool = False, keep: tuple[str, ...] | list[str] = ()
    ) -> ResetReport:
        from tfmagic import reset_state

        report = reset_state.reset(
            self.shell, hard=hard, dry_run=dry_run, keep=tuple(keep), registry=self.registry
        )
        if not dry_run:
            self.isolation.forget()  # their previous runs are gone: the next run is a first
        return report

    def stale(self) -> list[StaleObject]:
        if self.tracker is None:
            return []  # objects are known by the cell that made them
        from tfmagic import pins

        return pins.stale(self.tracker.shell, self.tracker.runs_of, self.registry)

    def memory(self, pins: bool = True) -> MemoryReport:
        """TF memory per device now and live variables by the cell run that made them;
        ``pins`` also says what keeps each stale group alive (walks, as ``stale()``)."""
        from tfmagic import memory_report

        runs_of = self.tracker.runs_of if self.tracker is not None else _never_ran
        return memory_report.measure(
            self.shell,
            self.history(),
            runs_of,
            self.registry,
            peak_tracking=self.track_peak_memory,
            pins=pins,
        )

    @property
    def freeze_imports(self) -> bool:
        """Keep TF's import out of the collections tfmagic runs (``collector``)."""
        return self._freeze_imports

    @freeze_imports.setter
    def freeze_imports(self, on: bool) -> None:
        self._freeze_imports = bool(on)
        if self._started:
            collector.set_enabled(self._freeze_imports)

    @property
    def track_peak_memory(self) -> bool:
        """Reset the devices' peak counters before each cell (``CellRecord.peak_memory``)."""
        return self.tracker is not None and self.tracker.track_peak_memory

    @track_peak_memory.setter
    def track_peak_memory(self, on: bool) -> None:
        if self.tracker is not None:
            self.tracker.track_peak_memory = bool(on)

    def reload(self, module: str) -> ReloadReport:
        from tfmagic import reloading

        return reloading.reload(module, self.shell, self.isolation)

    # -- the dashboard -------------------------------------------------------------
    def show_dashboard(self, widgets: bool | None = None) -> None:
        """Show the live dashboard (replacing a previous one), or print its text view."""
        from tfmagic import dashboard_widget

        if self.tracker is None:
            raise RuntimeError("the dashboard needs the extension: run %load_ext tfmagic first")
        self.close_dashboard("This dashboard was replaced by a newer one; only the newest updates.")
        self.dashboard = dashboard_widget.show(self, widgets)

    def close_dashboard(self, reason: str) -> None:
        if self.dashboard is not None:
            self.dashboard.close(reason)
            self.dashboard = None

    # -- listeners, in the order they run after a cell ------------------------------
    def _note_growth(self, record: CellRecord, result: ExecutionResult) -> None:
        if self.warn_on_growth:
            from tfmagic import notices

            earlier = self.tracker.history if self.tracker is not None else ()
            notices.growth_note(record, earlier, self.shell)

    def _note_births(self, record: CellRecord, result: ExecutionResult) -> None:
        if "tensorflow" in self.registry.installed and self.shell is not None:
            from tfmagic import births

            births.record_births(self.registry, self.shell, record)

    def _warn_stale_captures(self, record: CellRecord, result: ExecutionResult) -> None:
        called = self.registry.take_called()
        if called and self.tracker is not None and self.shell is not None:
            from tfmagic import notices

            notices.stale_captures(called, self.shell.user_ns, self.tracker.runs_of, self.registry)

    def _hint_errors(self, record: CellRecord, result: ExecutionResult) -> None:
        error = result.error_in_exec
        if error is not None and "tensorflow" in self.registry.installed:
            from tfmagic import notices

            notices.error_hint(error, self.registry, record)
            from tfmagic import hints

            if hints.is_out_of_memory(error):
                for line in hints.out_of_memory(self.memory(pins=False), error):
                    print(line, file=sys.stderr)

    def _remember_isolated_outputs(self, record: CellRecord, result: ExecutionResult) -> None:
        """An isolated cell's result goes to ``Out[N]``: release it when the cell re-runs."""
        keys, self._isolated_this_cell = self._isolated_this_cell, []
        for key in keys:
            self.isolation.remember_output(key, result.result)


def _collect_garbage() -> None:
    collector.collect()


def _never_ran(cell_key: str) -> int:
    return 0
