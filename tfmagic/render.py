"""Text and HTML for snapshots, cell records and reports. Every user string is escaped."""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfmagic.probe import Snapshot
    from tfmagic.tracker import CellRecord

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


def fmt_names(names: Mapping[str, int], limit: int = 2) -> str:
    """``dense+2 conv2d+1 …`` for a delta, largest first."""
    items = sorted(names.items(), key=lambda kv: -abs(kv[1]))
    text = " ".join(f"{k}{v:+d}" for k, v in items[:limit])
    return text + (" …" if len(items) > limit else "")


# (header, how to show a delta of that field) for the per-cell table.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("vars", "variables"),
    ("var bytes", "variable_bytes"),
    ("ops", "ops"),
    ("traces", "traces"),
    ("models", "models"),
    ("layers", "layers"),
    ("sessions", "sessions"),
    ("TF mem", "memory"),
    ("rss", "rss"),
    ("names", "names"),
)
_BYTE_FIELDS = {"variable_bytes", "memory", "rss"}


def snapshot_cells(snap: Snapshot, signed: bool) -> list[str]:
    """One string per ``COLUMNS`` entry; blank for an unchanged field of a delta."""
    cells = []
    for _, name in COLUMNS:
        if name == "names":
            cells.append(fmt_names(snap.names) if signed else str(sum(snap.names.values())))
            continue
        value = snap.memory_total if name == "memory" else getattr(snap, name)
        if signed and not value:
            cells.append("")
        elif name in _BYTE_FIELDS:
            cells.append(fmt_bytes(value, signed))
        else:
            cells.append(fmt_count(value, signed))
    return cells


def run_mark(record: CellRecord) -> str:
    mark = f"↻{record.run_index}" if record.is_rerun else "1"
    return mark + (" iso" if record.isolated else "")


# Delta columns shown even when no row changes them; the rest appear only when used.
ALWAYS_SHOWN = {"vars", "ops", "traces", "models"}


def visible_columns(rows: Sequence[Sequence[str]]) -> list[int]:
    """Indexes into ``HEADERS`` worth showing: fixed ones plus deltas some row has."""
    keep = []
    for i, header in enumerate(HEADERS):
        is_delta = 3 <= i < 3 + len(COLUMNS)
        if not is_delta or header in ALWAYS_SHOWN or any(row[i] for row in rows):
            keep.append(i)
    return keep


def record_row(record: CellRecord) -> list[str]:
    status = f"✗ {record.error}" if record.raised else ""
    return [
        "" if record.execution_count is None else str(record.execution_count),
        run_mark(record),
        record.label,
        *snapshot_cells(record.delta, signed=True),
        f"{record.duration * 1000:.0f} ms",
        status,
    ]


HEADERS = ["In", "run", "cell", *(h for h, _ in COLUMNS), "time", ""]


def text_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    # Labels (column 2) and the status column read left to right; numbers line up right.
    left = {2, len(headers) - 1}

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def stats_text(records: Iterable[CellRecord], now: Snapshot) -> str:
    rows = [record_row(r) for r in records]
    keep = visible_columns(rows)
    if not now.tensorflow:
        head = "TF state: TensorFlow is not imported yet (tracking starts when it is)."
    else:
        head = "TF state now: " + ", ".join(
            f"{h} {c}" for (h, _), c in zip(COLUMNS, snapshot_cells(now, signed=False), strict=True)
        )
    if not rows:
        return head + "\nNo cells recorded yet."
    return (
        head
        + "\n"
        + text_table([[row[i] for i in keep] for row in rows], [HEADERS[i] for i in keep])
    )


_STYLE = (
    "<style>.tfmagic-stats td,.tfmagic-stats th{padding:2px 6px;text-align:right;"
    "font-family:monospace}.tfmagic-stats td.cell{text-align:left}"
    ".tfmagic-stats tr.grew td{background:#fff3cd}.tfmagic-stats tr.raised td.status"
    "{color:#b00020}</style>"
)


def stats_html(records: Iterable[CellRecord], now: Snapshot) -> str:
    records = list(records)
    esc = html.escape
    if not now.tensorflow:
        head = "<p>TensorFlow is not imported yet; tracking starts when it is.</p>"
    else:
        head = (
            "<p><b>TF state now:</b> "
            + ", ".join(
                f"{esc(h)} <b>{esc(c)}</b>"
                for (h, _), c in zip(COLUMNS, snapshot_cells(now, signed=False), strict=True)
            )
            + "</p>"
        )
    if not records:
        return head + "<p>No cells recorded yet.</p>"
    keep = visible_columns([record_row(r) for r in records])
    out = [_STYLE, head, '<table class="tfmagic-stats"><thead><tr>']
    out += [f"<th>{esc(HEADERS[i])}</th>" for i in keep]
    out.append("</tr></thead><tbody>")
    for record in records:
        classes = []
        if record.is_rerun and record.delta.grew():
            classes.append("grew")
        if record.raised:
            classes.append("raised")
        out.append(f'<tr class="{" ".join(classes)}">')
        cells = record_row(record)
        for i in keep:
            css = ' class="cell"' if i == 2 else ' class="status"' if i == len(cells) - 1 else ""
            title = f' title="{esc(record.cell_key[:500])}"' if i == 2 else ""
            out.append(f"<td{css}{title}>{esc(cells[i])}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def growth_parts(delta: Snapshot, fields: Iterable[str]) -> str:
    parts = []
    for name in fields:
        value = getattr(delta, name)
        if name == "variables" and delta.variable_bytes:
            parts.append(f"variables {value:+d} ({fmt_bytes(delta.variable_bytes, signed=True)})")
        else:
            parts.append(f"{name} {value:+d}")
    return ", ".join(parts)


def growth_warning(record: CellRecord, grew: Sequence[str]) -> str:
    head = f"tfmagic: run {record.run_index} of this cell grew {growth_parts(record.delta, grew)}"
    if record.isolated:
        return (
            f"{head} although it is isolated: something outside the cell holds the previous "
            "run's objects; tfmagic.stale() says what."
        )
    return (
        f"{head}; the earlier runs' state is still alive. Make the cell re-runnable with "
        "%%tf_isolated, or clear it with %tf_reset."
    )


# Fields a before → after summary names, with how to format them.
SUMMARY_FIELDS = (
    ("variables", "variables", False),
    ("variable_bytes", "variable bytes", True),
    ("models", "models", False),
    ("layers", "layers", False),
    ("ops", "ops", False),
    ("sessions", "sessions", False),
)


def snapshot_change(before: Snapshot, after: Snapshot) -> str:
    """``variables 12 → 4, variable bytes 1.2 MiB → 300 B, …, TF mem …``."""
    parts = []
    for name, label, is_bytes in SUMMARY_FIELDS:
        a, b = getattr(before, name), getattr(after, name)
        fmt = fmt_bytes if is_bytes else str
        parts.append(f"{label} {fmt(a)} → {fmt(b)}" if a != b else f"{label} {fmt(a)}")
    a, b = before.memory_total, after.memory_total
    if a != b:
        parts.append(f"TF mem {fmt_bytes(a)} → {fmt_bytes(b)}")
    elif before.memory:
        parts.append(f"TF mem {fmt_bytes(a)}")
    return ", ".join(parts)


def lines_html(lines: Sequence[str], css_class: str) -> str:
    body = "<br>".join(html.escape(line) for line in lines)
    return f'<div class="{css_class}" style="font-family:monospace">{body}</div>'


class LinesReport(ABC):
    """A result shown as a few lines: text in a terminal, HTML in a notebook."""

    css_class = "tfmagic-report"

    @abstractmethod
    def lines(self) -> list[str]: ...

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return lines_html(self.lines(), css_class=self.css_class)
