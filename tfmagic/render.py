"""Text and HTML for snapshots, cell records and reports. Every user string is escaped."""

from __future__ import annotations

import functools
import html
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfmagic.metrics import Metric, Table, by_key, declared, fmt_bytes, fmt_count
from tfmagic.records import cell_label

if TYPE_CHECKING:
    from tfmagic.probe import Snapshot
    from tfmagic.records import CellRecord

__all__ = [
    "STYLE",
    "LinesReport",
    "esc",
    "fmt_bytes",
    "fmt_count",
    "growth_parts",
    "growth_warning",
    "lines_html",
    "snapshot_change",
    "stats_html",
    "stats_text",
]


def esc(text: object) -> str:
    """The one HTML escape: text and attribute values (quotes too)."""
    return html.escape(str(text), quote=True)


# The one stylesheet, for %tf_graph_stats's HTML and the dashboard. Scoped by the
# tfmagic-stats / tfm- prefixes; the table's selectors outrank JupyterLab's own
# output-table rules (``:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td``). In the
# dashboard a ``cut`` cell ends in "…" (its title holds the whole text) and a wide
# table scrolls inside its box instead of being clipped by the widget.
STYLE = """<style>
table.tfmagic-stats{border-collapse:collapse}
table.tfmagic-stats td,table.tfmagic-stats th{padding:2px 6px;text-align:right;
font-family:monospace;white-space:nowrap;vertical-align:top;line-height:1.35}
table.tfmagic-stats td.l,table.tfmagic-stats th.l{text-align:left}
table.tfmagic-stats tr.grew td,table.tfmagic-stats tr.tfm-stale-row td{background:#fff3cd}
table.tfmagic-stats tr.raised td.status{color:#b00020}
.tfm-root{font-family:var(--jp-ui-font-family,sans-serif);font-size:12px;line-height:1.35;
min-width:0;max-width:100%}
.tfm-cause{color:#555;margin:2px 0 6px}
.tfm-cards{display:flex;flex-wrap:wrap;gap:6px}
.tfm-card{border:1px solid #ddd;border-radius:4px;padding:4px 8px;min-width:92px}
.tfm-k{color:#666;font-size:11px}
.tfm-v{font-size:16px;font-weight:600;font-family:monospace}
.tfm-d{font-family:monospace;min-height:1.2em;color:#888}
.tfm-d.tfm-up{color:#b45309}.tfm-d.tfm-down{color:#15803d}
.tfm-h{font-weight:600;margin:8px 0 2px}
.tfm-legend{color:#666;font-size:11px}
.tfm-chart{overflow-x:auto}
.tfm-table{max-height:320px;overflow:auto}
.tfm-table table.tfmagic-stats td.cut{max-width:14em;overflow:hidden;text-overflow:ellipsis}
.tfm-table table.tfmagic-stats td.cut.cell{max-width:22em}
.tfmagic-dashboard .widget-html-content,.tfmagic-dashboard .jupyter-widget-html-content{
min-width:0}
.tfm-stale li{font-family:monospace;white-space:pre-wrap}
.tfm-closed{color:#666;font-style:italic;padding:4px}
</style>"""


def run_mark(record: CellRecord) -> str:
    """``1``, or ``↻N`` for the Nth run of the same cell."""
    return f"↻{record.run_index}" if record.is_rerun else "1"


def status(record: CellRecord) -> str:
    """``isolated``, ``✗ KeyError``, both, or blank."""
    parts = ["isolated"] if record.isolated else []
    if record.raised:
        parts.append(f"✗ {record.error or 'error'}")
    return " ".join(parts)


def cell_title(record: CellRecord) -> str:
    """The hover text of a cell's label: its source when the key is the source (no
    frontend cell id), else the label itself."""
    key = record.cell_key
    return key[:500] if cell_label(key) == record.label else record.label


@dataclass(frozen=True)
class Column:
    """One column of the per-cell table, in text and HTML.

    ``shown``: ``always``, or ``changed`` (only when some row has text in it).
    ``cut``: long text, cut in the dashboard with the whole of ``title`` on hover.
    """

    header: str
    cell: Callable[[CellRecord], str]
    left: bool = False  # text reads left to right; numbers line up right
    shown: Table = "always"
    css: str = ""
    title: Callable[[CellRecord], str] | None = None
    cut: bool = False

    def classes(self) -> str:
        return " ".join(
            c for c in (self.css, "l" if self.left else "", "cut" if self.cut else "") if c
        )


def _metric_column(m: Metric) -> Column:
    return Column(
        header=m.header,
        cell=lambda r: m.delta_text(r.delta),
        left=m.breakdown,
        shown=m.table,
        css=f"m-{m.key}",
        title=(lambda r: m.parts_text(r.delta)) if m.per else None,
        cut=m.breakdown,
    )


def _record_metric_column(m: Metric) -> Column:
    """A metric of the run itself (``CellRecord.peak_memory``): its value, not a change."""
    return Column(
        header=m.header,
        cell=lambda r: m.now_text(r) if m.measured(r) else "",
        shown=m.table,
        css=f"m-{m.key}",
        title=(lambda r: parts_text(m, r)) if m.per else None,
    )


def parts_text(m: Metric, obj: Any) -> str:
    """``CPU:0 256.0 MiB GPU:0 1.2 GiB``: a mapping metric's entries, unsigned."""
    return " ".join(f"{k} {m.fmt(v)}" for k, v in m.parts(obj).items())


@functools.cache
def columns(
    metrics: tuple[Metric, ...], record_metrics: tuple[Metric, ...] = ()
) -> tuple[Column, ...]:
    """Every column of the per-cell table: the record's, one per snapshot metric (its
    change), then one per metric of the run itself (its value)."""
    return (
        Column("In", lambda r: "" if r.execution_count is None else str(r.execution_count)),
        Column("run", run_mark),
        Column("cell", lambda r: r.label, left=True, css="cell", title=cell_title, cut=True),
        *(_metric_column(m) for m in metrics if m.table != "never"),
        *(_record_metric_column(m) for m in record_metrics if m.table != "never"),
        Column("time", lambda r: f"{r.duration * 1000:.0f} ms"),
        Column("status", status, left=True, shown="changed", css="status", cut=True),
    )


def table(records: Sequence[CellRecord]) -> tuple[list[Column], list[list[str]]]:
    """The columns worth showing and one row of cells per record, as long as the columns."""
    if records:
        every = columns(declared(type(records[0].delta)), declared(type(records[0])))
    else:
        every = columns(())
    cells = [[col.cell(r) for col in every] for r in records]
    keep = [
        i
        for i, col in enumerate(every)
        if col.shown == "always" or (col.shown == "changed" and any(row[i] for row in cells))
    ]
    return [every[i] for i in keep], [[row[i] for i in keep] for row in cells]


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (CJK) characters take two, marks none."""
    total = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _one_line(text: str) -> str:
    """Tabs, newlines and other control characters would break the columns."""
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)


def text_table(
    rows: Sequence[Sequence[str]], headers: Sequence[str], left: Sequence[bool] | None = None
) -> str:
    """Columns two spaces apart, under a dashed rule as wide as each column; every line
    has one cell per header. ``left``: which columns are left-aligned (by default the
    third, a cell's label, and the last)."""
    rows = [[_one_line(c) for c in row] for row in rows]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row of {len(row)} cells under {len(headers)} headers")
    widths = [max([width(h), *(width(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    if left is None:
        left = [i in (2, len(headers) - 1) for i in range(len(headers))]
    lefts = list(left)

    def line(cells: Sequence[str]) -> str:
        parts = []
        for c, w, is_left in zip(cells, widths, lefts, strict=True):
            pad = " " * (w - width(c))
            parts.append(c + pad if is_left else pad + c)
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def now_text(now: Snapshot) -> str:
    """``vars 8, var bytes 1.3 KiB, …``: every metric's value."""
    return ", ".join(f"{m.header} {m.now_text(now)}" for m in declared(type(now)))


def stats_text(records: Iterable[CellRecord], now: Snapshot) -> str:
    records = list(records)
    if not now.tensorflow:
        head = "TF state: TensorFlow is not imported yet (tracking starts when it is)."
    else:
        head = "TF state now: " + now_text(now)
    if not records:
        return head + "\nNo cells recorded yet."
    columns, rows = table(records)
    return head + "\n" + text_table(rows, [c.header for c in columns], [c.left for c in columns])


def _attr(name: str, value: str) -> str:
    return f' {name}="{esc(value)}"' if value else ""


def stats_html(records: Iterable[CellRecord], now: Snapshot) -> str:
    records = list(records)
    if not now.tensorflow:
        head = "<p>TensorFlow is not imported yet; tracking starts when it is.</p>"
    else:
        head = (
            "<p><b>TF state now:</b> "
            + ", ".join(
                f"{esc(m.header)} <b>{esc(m.now_text(now))}</b>" for m in declared(type(now))
            )
            + "</p>"
        )
    if not records:
        return head + "<p>No cells recorded yet.</p>"
    columns, rows = table(records)
    out = [STYLE, head, '<table class="tfmagic-stats"><thead><tr>']
    out += [f"<th{_attr('class', c.classes())}>{esc(c.header)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for record, row in zip(records, rows, strict=True):
        classes = []
        if record.is_rerun and record.delta.grew():
            classes.append("grew")
        if record.raised:
            classes.append("raised")
        out.append(f"<tr{_attr('class', ' '.join(classes))}>")
        for col, text in zip(columns, row, strict=True):
            # A cut cell always says on hover what it holds.
            title = (col.title(record) if col.title else "") or (text if col.cut else "")
            out.append(
                f"<td{_attr('class', col.classes())}{_attr('title', title)}>{esc(text)}</td>"
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def growth_parts(delta: Snapshot, fields: Iterable[str]) -> str:
    """``variables +4 (+644 B), models +2``: each metric key in ``fields``."""
    metrics = by_key(type(delta))
    parts = []
    for key in fields:
        m = metrics[key]
        text = f"{m.label} {m.fmt(m.value(delta), signed=True)}"
        detail = metrics.get(m.detail)
        if detail is not None and detail.value(delta):
            text += f" ({detail.fmt(detail.value(delta), signed=True)})"
        parts.append(text)
    return ", ".join(parts)


def growth_warning(record: CellRecord, grew: Sequence[str], pinned_by: Sequence[str] = ()) -> str:
    """The note after a re-run that left more alive; ``pinned_by``: the output-history
    pins of the earlier runs' results, when known."""
    head = f"tfmagic: run {record.run_index} of this cell grew {growth_parts(record.delta, grew)}"
    if record.isolated:
        return (
            f"{head} although it is isolated: something outside the cell holds the previous "
            "run's objects; tfmagic.stale() says what."
        )
    if pinned_by:
        alive = f"the earlier runs' state is still alive, pinned by {', '.join(pinned_by)}"
    else:
        alive = "the earlier runs' state is still alive (tfmagic.stale() says what holds it)"
    return (
        f"{head}; {alive}. Make the cell re-runnable with %%tf_isolated, or clear it with "
        "%tf_reset."
    )


def snapshot_change(before: Snapshot, after: Snapshot) -> str:
    """``variables 12 → 4, variable bytes 1.2 MiB → 300 B, …, TF mem …``: the summary
    metrics; a mapping measured in neither snapshot is left out."""
    parts = []
    for m in declared(type(after)):
        if not m.summary or not (m.measured(before) or m.measured(after)):
            continue
        a, b = m.value(before), m.value(after)
        parts.append(f"{m.label} {m.fmt(a)} → {m.fmt(b)}" if a != b else f"{m.label} {m.fmt(a)}")
    return ", ".join(parts)


def lines_html(lines: Sequence[str], css_class: str) -> str:
    body = "<br>".join(esc(line) for line in lines)
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
