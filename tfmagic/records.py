"""``CellRecord``: one run of one cell and what it did to TF state. Data only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tfmagic.metrics import metric
from tfmagic.probe import Snapshot


@dataclass(frozen=True)
class CellRecord:
    """One run of one cell and what it did to TF state.

    Its own metrics (declared like ``Snapshot``'s, shown as their value, not a change):
    ``peak_memory``, the peak TF allocator bytes per device during the run (devices with
    allocator stats only; empty when c.TFMagics.track_peak_memory is off or TF's
    runtime was not initialised).
    """

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
    peak_memory: Mapping[str, int] = metric("TF peak", unit="bytes", per="device")

    @cached_property
    def delta(self) -> Snapshot:
        return self.after - self.before

    @property
    def is_rerun(self) -> bool:
        return self.run_index > 1

    @property
    def where(self) -> str:
        """``In[7]``, or ``a cell`` when it had no execution count."""
        return "a cell" if self.execution_count is None else f"In[{self.execution_count}]"

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
            "peak_memory": dict(self.peak_memory),
        }


def cell_label(source: str, width: int = 60) -> str:
    """The first non-blank line of a cell, shortened to ``width`` characters."""
    for line in source.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[: width - 1] + "…"
    return "(empty)"
