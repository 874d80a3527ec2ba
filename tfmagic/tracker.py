"""``CellTracker``: a ``CellRecord`` of TF state before and after every cell run.

IPython glue: ``pre_run_cell`` / ``post_run_cell`` (not ``*_execute``, which widget
messages also fire). A cell magic that runs its body with ``run_cell`` fires the pair
again inside the outer one; only the outermost cell is recorded.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tfmagic import incidents
from tfmagic.probe import Snapshot, snapshot
from tfmagic.registry import REGISTRY, Registry

Listener = Callable[["CellRecord"], None]


@dataclass(frozen=True)
class CellRecord:
    """One run of one cell and what it did to TF state."""

    execution_count: int | None
    cell_key: str
    label: str
    run_index: int
    before: Snapshot
    after: Snapshot
    duration: float
    raised: bool
    error: str | None = None
    isolated: bool = False

    @cached_property
    def delta(self) -> Snapshot:
        return self.after - self.before

    @property
    def is_rerun(self) -> bool:
        return self.run_index > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_count": self.execution_count,
            "cell_key": self.cell_key,
            "label": self.label,
            "run_index": self.run_index,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "delta": self.delta.to_dict(),
            "duration": self.duration,
            "raised": self.raised,
            "error": self.error,
            "isolated": self.isolated,
        }


def cell_label(source: str, width: int = 60) -> str:
    """The first non-blank line of a cell, shortened to ``width`` characters."""
    for line in source.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[: width - 1] + "…"
    return "(empty)"


@dataclass
class _Running:
    info: Any
    before: Snapshot
    started: float


class CellTracker:
    """Records every top-level cell run; notifies listeners; warns on re-run growth."""

    def __init__(
        self,
        shell: Any,
        probe: Callable[[], Snapshot] = snapshot,
        history_limit: int = 1000,
        registry: Registry = REGISTRY,
    ) -> None:
        self.shell = shell
        self.registry = registry
        self.probe = probe
        self.history: deque[CellRecord] = deque(maxlen=history_limit)
        self.listeners: list[Listener] = []
        self.warn_on_growth = True
        self._runs: Counter[str] = Counter()
        self._stack: list[_Running] = []
        # Set by %%tf_isolated while its body runs, read when the outer cell ends.
        self.current_cell_isolated = False

    # -- hooks -----------------------------------------------------------------
    def register(self) -> None:
        self.registry.record_births(True)
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def unregister(self) -> None:
        self.registry.record_births(False)
        for event, callback in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            try:
                self.shell.events.unregister(event, callback)
            except ValueError:
                pass

    def pre_run_cell(self, info: Any) -> None:
        if self._stack:  # a nested run_cell: the outer cell is what the user ran
            self._stack.append(_Running(info, self._stack[-1].before, 0.0))
            return
        try:
            self._stack.append(_Running(info, self.probe(), time.perf_counter()))
            self.current_cell_isolated = False
        except Exception as exc:  # noqa: BLE001 - never break the user's cell
            incidents.record("pre_run_cell", exc)

    def post_run_cell(self, result: Any) -> None:
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

    def _finish(self, running: _Running, result: Any) -> None:
        try:
            record = self._record(running, result)
            self.history.append(record)
            self._warn_if_grew(record)
        except Exception as exc:  # noqa: BLE001 - never break the user's cell
            incidents.record("post_run_cell", exc)
            return
        try:
            self._notices(record, result)
        except Exception as exc:  # noqa: BLE001 - the record and listeners still count
            incidents.record("cell notices", exc)
        for listener in list(self.listeners):
            try:
                listener(record)
            except Exception as exc:  # noqa: BLE001
                incidents.record(f"listener {getattr(listener, '__name__', listener)}", exc)

    def _notices(self, record: CellRecord, result: Any) -> None:
        """Note where this cell's TF objects came from; print stale-capture and error hints."""
        if "tensorflow" not in self.registry.installed:
            return
        from tfmagic import births, hints, pins

        births.record_births(
            self.registry, self.shell, record.cell_key, record.run_index, record.execution_count
        )
        called = self.registry.take_called()
        lines = pins.capture_warnings(called, self.shell.user_ns, self.runs_of, self.registry)
        if result.error_in_exec is not None:
            lines += hints.hints_for(result.error_in_exec, self.registry)
        for line in lines:
            print(line, file=sys.stderr)

    # -- records ---------------------------------------------------------------
    def _record(self, running: _Running, result: Any) -> CellRecord:
        after = self.probe()
        info = running.info
        source = getattr(info, "raw_cell", "") or ""
        key = getattr(info, "cell_id", None) or source  # as current_cell_key()
        self._runs[key] += 1
        error = result.error_in_exec or result.error_before_exec
        return CellRecord(
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
        )

    def _warn_if_grew(self, record: CellRecord) -> None:
        if not (self.warn_on_growth and record.is_rerun):
            return
        from tfmagic.render import growth_warning

        grew = record.delta.grew()
        if record.isolated:
            # A new model traces new functions: expected, not something left behind.
            grew = [name for name in grew if name != "traces"]
        if grew:
            print(growth_warning(record, grew), file=sys.stderr)

    def current_cell_key(self) -> str | None:
        """The key of the top-level cell running now (None between cells)."""
        if not self._stack:
            return None
        info = self._stack[0].info
        return getattr(info, "cell_id", None) or getattr(info, "raw_cell", None)

    def runs_of(self, cell_key: str) -> int:
        return self._runs[cell_key]
