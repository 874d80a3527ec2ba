"""What a metric is: its label, unit and where it is shown. The metrics themselves are
the ``Snapshot`` fields declared with ``metric(...)`` in ``tfmagic.probe``.

A field declared there (plus the probe code that reads it) is all a new metric
needs: the per-cell table (text and HTML), the ``TF state now`` line, the one-line
growth note, the before → after summary of ``%tf_reset`` / ``%tf_reload`` and the
dashboard's headline numbers and chart all loop over ``declared(type(snapshot))``
(``probe.METRICS`` for ``Snapshot``).

Two kinds of value: an ``int``, or a mapping of ints (``per`` names what its keys
are: ``memory`` per device, ``names`` per Keras name prefix). A mapping is shown as
its total; a mapping with no keys was not measured (TF's allocator is only read once
its runtime is initialised), and a summary leaves it out.

No imports from tfmagic: everything else imports this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

Unit = Literal["count", "bytes"]
# In the per-cell table: a column always, only when some row changed it, or never.
Table = Literal["always", "changed", "never"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def fmt_bytes(n: int, signed: bool = False) -> str:
    sign = ("+" if n > 0 else "-" if n < 0 else "") if signed else ("-" if n < 0 else "")
    size = float(abs(n))
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            break
        size /= 1024
    number = f"{int(size)}" if unit == "B" else f"{size:.1f}"
    return f"{sign}{number} {unit}"


def fmt_count(n: int, signed: bool = False) -> str:
    return f"{n:+d}" if signed else f"{n:d}"


@dataclass(frozen=True)
class Metric:
    """How one ``Snapshot`` field is labelled, formatted and where it appears.

    ``key``: the field's name (filled in from the field). ``label``: its name in
    sentences, the summary, the growth note and the dashboard; ``short``: the
    per-cell table's header and the ``TF state now`` line (defaults to ``label``).
    ``unit``: ``count`` or ``bytes``. ``per``: for a mapping field, what its keys are
    (a dashboard headline shows one number per key). ``warns``: growth on a re-run
    means the earlier run's state is still alive (``Snapshot.grew``, the growth note).
    ``table``: see ``Table``. ``breakdown``: a delta's table cell lists the keys that
    changed (``dense+2 conv2d+1 …``) instead of the total. ``summary``: in the
    before → after summary. ``dashboard``: a headline number and a chart row.
    ``detail``: the key of a metric the growth note adds in parentheses
    (``variables +4 (+644 B)``).
    """

    key: str = ""
    label: str = ""
    short: str = ""
    unit: Unit = "count"
    per: str = ""
    warns: bool = False
    table: Table = "changed"
    breakdown: bool = False
    summary: bool = False
    dashboard: bool = False
    detail: str = ""

    @property
    def header(self) -> str:
        return self.short or self.label

    # -- values ----------------------------------------------------------------
    def value(self, snap: Any) -> int:
        """The number shown: the field, or a mapping's total."""
        raw = getattr(snap, self.key)
        return sum(raw.values()) if self.per else int(raw)

    def parts(self, snap: Any) -> Mapping[str, int]:
        """A mapping field's entries; ``{}`` for an int field."""
        return getattr(snap, self.key) if self.per else {}

    def measured(self, snap: Any) -> bool:
        return bool(self.parts(snap)) if self.per else True

    def difference(self, now: Any, before: Any) -> Any:
        """The field's value in ``now - before``: an int, or the keys that changed."""
        if not self.per:
            return now - before
        keys = dict.fromkeys([*before, *now])
        changes = {k: now.get(k, 0) - before.get(k, 0) for k in keys}
        return {k: v for k, v in changes.items() if v}

    # -- text ------------------------------------------------------------------
    def fmt(self, value: int, signed: bool = False) -> str:
        return fmt_bytes(value, signed) if self.unit == "bytes" else fmt_count(value, signed)

    def now_text(self, snap: Any) -> str:
        return self.fmt(self.value(snap))

    def delta_text(self, delta: Any, limit: int = 2) -> str:
        """A delta's table cell: blank when unchanged."""
        if self.breakdown:
            return self.parts_text(delta, limit)
        value = self.value(delta)
        return self.fmt(value, signed=True) if value else ""

    def parts_text(self, delta: Any, limit: int | None = None) -> str:
        """``dense+2 conv2d+1 …``: the largest changes first, ``…`` after ``limit``."""
        items = sorted(self.parts(delta).items(), key=lambda kv: -abs(kv[1]))
        shown = items if limit is None else items[:limit]
        sep = " " if self.unit == "bytes" else ""  # CPU:0 +2.0 MiB, dense+2
        text = " ".join(f"{k}{sep}{self.fmt(v, signed=True)}" for k, v in shown)
        return text + (" …" if len(items) > len(shown) else "")


def metric(label: str, **options: Any) -> Any:
    """A ``Snapshot`` field that is a metric: ``variables: int = metric("variables", ...)``.

    Takes ``Metric``'s fields (``key`` comes from the field's name); a ``per`` field
    defaults to an empty mapping, the others to 0.
    """
    decl = Metric(label=label, **options)
    if decl.per:
        return dataclasses.field(default_factory=dict, metadata={"metric": decl})
    return dataclasses.field(default=0, metadata={"metric": decl})


_declared: dict[type, tuple[Metric, ...]] = {}  # per class: fields never change


def declared(cls: type) -> tuple[Metric, ...]:
    """The metrics declared on a dataclass (``Snapshot``), in field order."""
    found = _declared.get(cls)
    if found is None:
        found = _declared[cls] = tuple(
            dataclasses.replace(f.metadata["metric"], key=f.name)
            for f in dataclasses.fields(cls)
            if "metric" in f.metadata
        )
    return found


def by_key(cls: type) -> Mapping[str, Metric]:
    return MappingProxyType({m.key: m for m in declared(cls)})
