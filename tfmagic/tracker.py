"""``CellTracker``: a ``CellRecord`` of TF state before and after every cell run.

It records and notifies; everything else (the growth note, births, capture warnings,
error hints, isolated cells' outputs, the dashboard) is a listener the session
registers, each isolated from the others' failures.

IPython glue: ``pre_run_cell`` / ``post_run_cell`` (not ``*_execute``, which widget
messages also fire). A cell magic that runs its body with ``run_cell`` fires the pair
again inside the outer one; only the outermost cell is recorded.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfmagic import incidents
from tfmagic.frameworks import tf_core
from tfmagic.probe import Snapshot, snapshot
from tfmagic.records import CellRecord, cell_label

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell

# Called after every recorded cell with its record and IPython's result of the cell.
Listener = Callable[[CellRecord, "ExecutionResult"], None]

__all__ = ["CellRecord", "CellTracker", "Listener", "cell_label"]


@dataclass
class _Running:
    info: ExecutionInfo
    before: Snapshot
    started: float


class CellTracker:
    """Records every top-level cell run and tells the listeners, in order."""

    def __init__(
        self,
        shell: InteractiveShell,
        probe: Callable[[], Snapshot] = snapshot,
        history_limit: int = 1000,
    ) -> None:
        self.shell = shell
        self.probe = probe
        self.history: deque[CellRecord] = deque(maxlen=history_limit)
        self.listeners: list[Listener] = []
        # Frees what is merely uncollected garbage (Keras models are reference cycles),
        # so that a re-run's growth is only what is really still reachable. Called only
        # when a re-run seems to have grown: the common path never collects.
        self.settle: Callable[[], None] | None = None
        # Reset each device's peak allocator counter before every cell and read it after
        # (c.TFMagics.track_peak_memory); off, the user's counters are never touched.
        self.track_peak_memory = True
        self.reset_peaks: Callable[[], None] = _reset_peaks
        self.read_peaks: Callable[[], dict[str, int]] = _read_peaks
        self._runs: Counter[str] = Counter()
        self._stack: list[_Running] = []
        # Set by an isolated block while it runs, read when the outer cell ends.
        self.current_cell_isolated = False

    # -- hooks -----------------------------------------------------------------
    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def unregister(self) -> None:
        for event, callback in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            try:
                self.shell.events.unregister(event, callback)
            except ValueError:
                pass

    def pre_run_cell(self, info: ExecutionInfo) -> None:
        if self._stack:  # a nested run_cell: the outer cell is what the user ran
            self._stack.append(_Running(info, self._stack[-1].before, 0.0))
            return
        try:
            self._stack.append(_Running(info, self.probe(), time.perf_counter()))
            self.current_cell_isolated = False
            if self.track_peak_memory:
                self.reset_peaks()
        except Exception as exc:  # noqa: BLE001 - never break the user's cell
            incidents.record("pre_run_cell", exc)

    def post_run_cell(self, result: ExecutionResult) -> None:
        info = getattr(result, "info", None)
        if self._stack and self._stack[-1].info is info:
            running = self._stack.pop()
            if self._stack:
                return  # the end of a nested run_cell
            self._finish(running, result)
        elif self._stack:
            return
        # Also reached for a blank cell (IPython fires no pre_run_cell for it) and
        # when pre_run_cell itself failed: that failure is shown here.
        for incident in incidents.unshown():
            print(incident, file=sys.stderr)

    def _finish(self, running: _Running, result: ExecutionResult) -> None:
        try:
            record = self._record(running, result)
            self.history.append(record)
        except Exception as exc:  # noqa: BLE001 - never break the user's cell
            incidents.record("post_run_cell", exc)
            return
        for listener in list(self.listeners):
            try:
                listener(record, result)
            except Exception as exc:  # noqa: BLE001 - one listener's failure is its own
                incidents.record(f"listener {getattr(listener, '__name__', listener)}", exc)

    # -- records ---------------------------------------------------------------
    def _record(self, running: _Running, result: ExecutionResult) -> CellRecord:
        # Read first: nothing tfmagic does after the cell belongs to the cell's peak.
        peaks = self.read_peaks() if self.track_peak_memory else {}
        after = self.probe()
        info = running.info
        source = getattr(info, "raw_cell", "") or ""
        key = getattr(info, "cell_id", None) or source  # as current_cell_key()
        self._runs[key] += 1
        error = result.error_in_exec or result.error_before_exec
        record = CellRecord(
            execution_count=result.execution_count,
            cell_key=key,
            label=cell_label(source),
            run_index=self._runs[key],
            before=running.before,
            after=after,
            duration=time.perf_counter() - running.started,
            raised=error is not None,
            error=type(error).__name__ if error is not None else None,
            isolated=self.current_cell_isolated,
            peak_memory=peaks,
        )
        if record.is_rerun and self.settle is not None and _collectable_growth(record.delta):
            self.settle()
            record = dataclasses.replace(
                record, after=self.probe(), duration=time.perf_counter() - running.started
            )
        return record

    def current_cell_key(self) -> str | None:
        """The key of the top-level cell running now (None between cells)."""
        if not self._stack:
            return None
        info = self._stack[0].info
        return getattr(info, "cell_id", None) or getattr(info, "raw_cell", None)

    def runs_of(self, cell_key: str) -> int:
        return self._runs[cell_key]

    def resize_history(self, limit: int) -> None:
        self.history = deque(self.history, maxlen=limit)


def _collectable_growth(delta: Snapshot) -> bool:
    """Growth a collection could undo (traces are counted "seen since load": never)."""
    return any(name != "traces" for name in delta.grew())


def _reset_peaks() -> None:
    if "tensorflow" in sys.modules:
        tf_core.reset_peak_memory()


def _read_peaks() -> dict[str, int]:
    """Peak bytes per device since the reset before the cell (or since the runtime started,
    if the cell started it); no entry for a device without allocator stats."""
    return tf_core.peak_memory_by_device() if "tensorflow" in sys.modules else {}
