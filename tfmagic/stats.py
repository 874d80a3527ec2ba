"""``GraphStats``: the result of ``%tf_graph_stats`` (modelled on IPython's ``TimeitResult``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tfmagic import render
from tfmagic.probe import Snapshot
from tfmagic.records import CellRecord


@dataclass(frozen=True)
class GraphStats:
    """Per-cell TF state changes plus the totals now."""

    records: tuple[CellRecord, ...]
    now: Snapshot

    def __str__(self) -> str:
        return render.stats_text(self.records, self.now)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return render.stats_html(self.records, self.now)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.to_dict(), "cells": [r.to_dict() for r in self.records]}


class NoSuchCell(LookupError):
    """``--cell N`` named an execution count that is not in the history."""


def select(
    history: Iterable[CellRecord], cell: int | None = None, last: int | None = None
) -> tuple[CellRecord, ...]:
    """All records; or every run of the cell that ran as ``In[cell]``; then the last N."""
    records = list(history)
    if cell is not None:
        keys = {r.cell_key for r in records if r.execution_count == cell}
        if not keys:
            raise NoSuchCell(cell)
        records = [r for r in records if r.cell_key in keys]
    if last is not None:
        records = records[-last:] if last else []
    return tuple(records)
