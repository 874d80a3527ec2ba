"""The dashboard's view model: state and its HTML, SVG and text. No IPython, no ipywidgets.

``DashboardModel`` is fed cell records (from the tracker's listener) and reset reports
(from the dashboard's buttons); the functions below turn it into strings. Everything
here is cheap (no heap walks, no TF calls) because it runs after every cell.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tfmagic import render
from tfmagic.metrics import Metric, by_key, declared
from tfmagic.probe import Snapshot
from tfmagic.render import STYLE, esc

if TYPE_CHECKING:
    from tfmagic.memory_report import MemoryReport
    from tfmagic.records import CellRecord
    from tfmagic.reset_state import ResetReport

CHART_POINTS = 50  # cell runs (and resets) the chart keeps
TABLE_ROWS = 15  # cell runs the per-cell table shows
TEXT_ROWS = 10  # cell runs the text view shows
MEMORY_TOP = 5  # cell runs the memory panel lists as holding the most TF memory

Kind = Literal["run", "rerun", "grew", "reset"]


def shown(snap: Snapshot) -> tuple[Metric, ...]:
    """The headline numbers and chart rows, in display order, as declared on the snapshot."""
    return tuple(m for m in declared(type(snap)) if m.dashboard)


# For ``Snapshot``.
METRICS: tuple[Metric, ...] = shown(Snapshot())


@dataclass(frozen=True)
class Point:
    """One x position of the chart: a cell run, or a reset done from the dashboard."""

    kind: Kind
    execution_count: int | None
    run_index: int
    label: str
    after: Snapshot

    @classmethod
    def of_record(cls, record: CellRecord) -> Point:
        kind: Kind = "run"
        if record.is_rerun:
            kind = "grew" if record.delta.grew() else "rerun"
        return cls(kind, record.execution_count, record.run_index, record.label, record.after)

    @property
    def tick(self) -> str:
        if self.kind == "reset":
            return "R"
        return "·" if self.execution_count is None else str(self.execution_count)

    @property
    def title(self) -> str:
        """Plain text for the tooltip (escaped by the caller)."""
        if self.kind == "reset":
            return self.label
        mark = f" ↻{self.run_index}" if self.run_index > 1 else ""
        grew = " (grew)" if self.kind == "grew" else ""
        return f"In[{self.tick}]{mark}{grew} {self.label}"


@dataclass(frozen=True)
class Headline:
    """One headline number: its value now and its change in the last cell (or reset)."""

    key: str
    title: str
    value: str
    change: str  # "" when unchanged
    direction: int  # -1, 0 or 1


def cause_of(record: CellRecord) -> str:
    """``In[7] ↻2 model = …`` (plain text)."""
    count = "?" if record.execution_count is None else record.execution_count
    mark = f" ↻{record.run_index}" if record.is_rerun else ""
    failed = f" (raised {record.error})" if record.raised else ""
    return f"In[{count}]{mark} {record.label}{failed}"


class DashboardModel:
    """What the dashboard shows: the state now, its last change and a short history."""

    def __init__(
        self, now: Snapshot, chart_points: int = CHART_POINTS, table_rows: int = TABLE_ROWS
    ) -> None:
        self.points: deque[Point] = deque(maxlen=chart_points)
        self.records: deque[CellRecord] = deque(maxlen=table_rows)
        self.now = now
        self.change = now - now  # all zero
        self.cause = "No cell has run since tracking started."
        # Who holds TF memory now (``Session.memory(pins=False)``: no walk), fed by the
        # widget after each update; None until then.
        self.memory: MemoryReport | None = None

    @classmethod
    def from_history(
        cls,
        history: Iterable[CellRecord],
        now: Snapshot,
        chart_points: int = CHART_POINTS,
        table_rows: int = TABLE_ROWS,
        resets: Iterable[tuple[CellRecord | None, ResetReport]] = (),
    ) -> DashboardModel:
        """Seeded with the recorded runs so far and the button ``resets`` among them, each
        after the run it followed (None: before any); ``now`` is used only if there are none."""
        model = cls(now, chart_points, table_rows)
        runs = list(history)
        shown = runs[-max(chart_points, table_rows) :]
        after: dict[int | None, list[ResetReport]] = {}
        for record, report in resets:
            after.setdefault(None if record is None else id(record), []).append(report)
        if len(shown) == len(runs):  # else the resets before the first run are out of view
            for report in after.get(None, ()):
                model.add_reset(report)
        for record in shown:
            model.add_record(record)
            for report in after.get(id(record), ()):
                model.add_reset(report)
        return model

    def add_record(self, record: CellRecord) -> None:
        self.points.append(Point.of_record(record))
        self.records.append(record)
        self.now, self.change = record.after, record.delta
        self.cause = "Change in the last cell: " + cause_of(record)

    def add_reset(self, report: ResetReport) -> None:
        """A reset from a button is not a cell run: a chart point of its own, no table row."""
        label = "hard reset" if report.hard else "reset"
        self.points.append(Point("reset", None, 0, f"{label} (dashboard button)", report.after))
        self.now, self.change = report.after, report.after - report.before
        self.cause = f"Change from the {label} button (not a cell run)"

    def refresh(self, now: Snapshot) -> None:
        self.now, self.change = now, now - self.now
        self.cause = "Change since the previous update (Refresh)"

    def headlines(self) -> list[Headline]:
        """One per dashboard metric; a per-device (``per``) metric has one per key, or
        one saying ``n/a`` while it is not measured (TF's runtime not initialised)."""
        out = []
        for metric in shown(self.now):
            if not metric.per:
                value, change = metric.value(self.now), metric.value(self.change)
                out.append(_headline(metric.key, metric.label, metric, value, change))
                continue
            now_parts, change_parts = metric.parts(self.now), metric.parts(self.change)
            keys = list(dict.fromkeys([*now_parts, *change_parts]))
            if not keys:
                out.append(Headline(metric.key, metric.label, "n/a", "", 0))
            for key in keys:
                out.append(
                    _headline(
                        f"{metric.key}:{key}",
                        f"{metric.label} {key}",
                        metric,
                        now_parts.get(key, 0),
                        change_parts.get(key, 0),
                    )
                )
        return out


def _headline(key: str, title: str, metric: Metric, value: int, change: int) -> Headline:
    direction = (change > 0) - (change < 0)
    text = metric.fmt(change, signed=True) if change else ""
    return Headline(key, title, metric.fmt(value), text, direction)


# -- HTML ------------------------------------------------------------------------------

# mathjax_ignore/tex2jax_ignore stop the HTML widget's typesetter from turning a "$" in
# a cell label into math. ``STYLE`` and ``esc`` are render's (one stylesheet, one escape).
_IGNORE_MATH = "tex2jax_ignore mathjax_ignore"


def wrap(body: str, css_class: str) -> str:
    return f'<div class="tfm-root {css_class} {_IGNORE_MATH}">{body}</div>'


def headline_html(model: DashboardModel) -> str:
    if not model.now.tensorflow:
        note = "<p>TensorFlow is not imported yet; tracking starts when it is.</p>"
    else:
        note = ""
    cards = []
    for h in model.headlines():
        css = {1: " tfm-up", -1: " tfm-down"}[h.direction] if h.direction else ""
        cards.append(
            f'<div class="tfm-card" data-key="{esc(h.key)}">'
            f'<div class="tfm-k">{esc(h.title)}</div>'
            f'<div class="tfm-v">{esc(h.value)}</div>'
            f'<div class="tfm-d{css}">{esc(h.change)}</div></div>'
        )
    cause = f'<div class="tfm-cause">{esc(model.cause)}</div>'
    return wrap(note + cause + '<div class="tfm-cards">' + "".join(cards) + "</div>", "tfm-head")


def table_html(model: DashboardModel) -> str:
    """The ``%tf_graph_stats`` table of the last runs, newest first (no scrolling to see it)."""
    heading = '<div class="tfm-h">Per cell, newest first (as <code>%tf_graph_stats</code>)</div>'
    return wrap(heading + render.stats_html(reversed(model.records), model.now), "tfm-table")


def memory_series(records: Iterable[CellRecord]) -> dict[str, list[tuple[int, int | None]]]:
    """Per device, over the given runs: (bytes in use after the run, its peak or None)."""
    series: dict[str, list[tuple[int, int | None]]] = {}
    records = list(records)
    devices = dict.fromkeys(d for r in records for d in (*r.after.memory, *r.peak_memory))
    for device in devices:
        series[device] = [
            (r.after.memory.get(device, 0), r.peak_memory.get(device)) for r in records
        ]
    return series


def _bars(values: Sequence[int | None], top: int) -> str:
    """A sparkline on a scale from 0 to ``top`` (shared by a device's two series)."""
    if top <= 0:
        return _BARS[0] * len(values)
    last = len(_BARS) - 1
    return "".join(" " if v is None else _BARS[round(v / top * last)] for v in values)


def memory_rows(model: DashboardModel) -> list[tuple[str, str, str, str, str]]:
    """Per device: name, in use now, last run's peak, highest peak shown (where), and the
    in-use / peak sparklines over the table's runs."""
    from tfmagic.metrics import fmt_bytes

    records = list(model.records)
    series = memory_series(records)
    rows = []
    for device in dict.fromkeys([*series, *model.now.memory]):
        values = series.get(device, [])
        peaks = [p for _, p in values if p is not None]
        top = max([*(c for c, _ in values), *peaks, 0])
        now = model.now.memory.get(device, values[-1][0] if values else 0)
        last_peak = values[-1][1] if values else None
        highest = ""
        if peaks:
            best = max(range(len(values)), key=lambda i: values[i][1] or -1)
            where = records[best].execution_count
            highest = f"{fmt_bytes(max(peaks))} (In[{'?' if where is None else where}])"
        in_use, peak = _bars([c for c, _ in values], top), _bars([p for _, p in values], top)
        spark = f"in use {in_use}  peak {peak}"
        rows.append(
            (
                device,
                fmt_bytes(now),
                "" if last_peak is None else fmt_bytes(last_peak),
                highest,
                spark,
            )
        )
    return rows


def memory_html(model: DashboardModel) -> str:
    """Per device in use and peak over the last runs, then the cell runs holding the most
    TF memory now (stale ones marked): what the Reset button next to it would free."""
    from tfmagic.metrics import fmt_bytes

    heading = '<div class="tfm-h">TF memory (as <code>%tf_memory</code>)</div>'
    devices = memory_rows(model)
    if not devices:
        body = "<p>No allocator stats yet (TensorFlow's runtime is not initialised).</p>"
    else:
        body = (
            '<table class="tfmagic-stats tfm-mem-devices"><thead><tr><th class="l">device</th>'
            "<th>in use</th><th>last run's peak</th><th>highest peak</th>"
            f'<th class="l">over the last {len(model.records)} runs</th></tr></thead><tbody>'
            + "".join(
                f'<tr data-device="{esc(d)}"><td class="l">{esc(d)}</td><td>{esc(now)}</td>'
                f'<td>{esc(peak)}</td><td>{esc(high)}</td><td class="l">{esc(spark)}</td></tr>'
                for d, now, peak, high, spark in devices
            )
            + "</tbody></table>"
        )
    report = model.memory
    if report is not None and report.rows:
        rows = report.rows[:MEMORY_TOP]
        body += (
            '<div class="tfm-k">Cell runs holding the most (live variables):</div>'
            '<table class="tfmagic-stats tfm-mem-cells"><thead><tr><th>In</th><th>run</th>'
            '<th class="l">cell</th><th>vars</th><th>bytes</th><th class="l"></th>'
            "</tr></thead><tbody>"
        )
        for row in rows:
            count = "" if row.execution_count is None else str(row.execution_count)
            run = (
                "" if row.run_index is None else (f"↻{row.run_index}" if row.run_index > 1 else "1")
            )
            mark = "stale" if row.stale else ", ".join(row.names)
            css = ' class="tfm-stale-row"' if row.stale else ""
            body += (
                f"<tr{css}><td>{esc(count)}</td><td>{esc(run)}</td>"
                f'<td class="l cut tfm-label" title="{esc(row.label)}">{esc(row.label)}</td>'
                f"<td>{row.variables}</td><td>{esc(fmt_bytes(row.variable_bytes))}</td>"
                f'<td class="l">{esc(mark)}</td></tr>'
            )
        body += "</tbody></table>"
        if report.stale_rows:
            body += (
                '<div class="tfm-legend">stale: no name of yours reaches them; Reset drops '
                "the output-history and traceback pins that keep them (tfmagic.memory() "
                "lists the pins).</div>"
            )
    if report is not None and report.last_error is not None:
        body += f'<div class="tfm-legend">{esc(str(report.last_error))}</div>'
    return wrap(heading + body, "tfm-memory")


def memory_text(model: DashboardModel) -> list[str]:
    """The memory panel as text lines."""
    from tfmagic.metrics import fmt_bytes

    lines = []
    for device, now, peak, high, spark in memory_rows(model):
        lines.append(
            f"  {device}: in use {now}, last run's peak {peak or 'n/a'}, highest {high or 'n/a'}"
            f"  {spark}"
        )
    report = model.memory
    if report is not None:
        for row in report.rows[:MEMORY_TOP]:
            mark = " (stale)" if row.stale else (f" ({', '.join(row.names)})" if row.names else "")
            lines.append(
                f"  {row.where} {row.label}: {row.variables} vars, "
                f"{fmt_bytes(row.variable_bytes)}{mark}"
            )
    return ["TF memory:", *lines] if lines else []


def stale_html(lines: Sequence[str] | None) -> str:
    if lines is None:
        body = "<p>stale-object report not available</p>"
    elif not lines:
        body = "<p>No stale TF objects: everything alive is reachable the way it was made.</p>"
    else:
        items = "".join(f"<li>{esc(line)}</li>" for line in lines)
        body = (
            f"<p>Stale TF objects and what pins them (click again to refresh):</p><ul>{items}</ul>"
        )
    return wrap(body, "tfm-stale")


def closed_html(reason: str) -> str:
    return STYLE + wrap(f'<div class="tfm-closed">{esc(reason)}</div>', "tfm-closed-box")


# -- SVG chart -------------------------------------------------------------------------

_W, _LEFT, _RIGHT, _ROW, _TOP, _BOTTOM = 680, 100, 86, 30, 14, 18
_COLOURS = {"run": "#6b7280", "rerun": "#f59e0b", "grew": "#dc2626"}
_RADIUS = {"run": 1.8, "rerun": 3.2, "grew": 3.8}


def _xs(n: int) -> list[float]:
    lo, hi = _LEFT + 8, _W - _RIGHT - 8
    if n == 1:
        return [(lo + hi) / 2]
    return [lo + i * (hi - lo) / (n - 1) for i in range(n)]


def _ys(values: Sequence[int], top: float) -> list[float]:
    """Values scaled into one row; a flat series sits in the middle."""
    lo, hi = min(values), max(values)
    low, high = top + _ROW - 7, top + 5
    if hi == lo:
        return [(low + high) / 2] * len(values)
    return [low - (v - lo) / (hi - lo) * (low - high) for v in values]


def chart_svg(points: Sequence[Point]) -> str:
    """Small multiples, one row per metric, over the last runs; inline SVG, no dependency."""
    if not points:
        return wrap("<p>The chart starts with the next cell run.</p>", "tfm-chart")
    n = len(points)
    xs = _xs(n)
    metrics = shown(points[-1].after)
    height = _TOP + _ROW * len(metrics) + _BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" role="img" aria-label="TF state over the last '
        f'{n} cell runs" class="tfm-svg" data-points="{n}" font-size="11" '
        'font-family="sans-serif">'
    ]
    for row, metric in enumerate(metrics):
        out += _metric_row(row, metric, points, xs)
    out += _reset_lines(points, xs, height)  # over the rows' backgrounds
    out += _ticks(points, xs, height)
    out += _hit_areas(points, xs, height, metrics)
    out.append("</svg>")
    legend = (
        '<div class="tfm-legend">'
        f'<span style="color:{_COLOURS["rerun"]}">●</span> re-run &nbsp; '
        f'<span style="color:{_COLOURS["grew"]}">●</span> re-run that grew &nbsp; '
        "┆ R reset from the dashboard &nbsp; (hover for a run's numbers)</div>"
    )
    heading = f'<div class="tfm-h">Over the last {n} runs</div>'
    return wrap(heading + "".join(out) + legend, "tfm-chart")


def _metric_row(row: int, metric: Metric, points: Sequence[Point], xs: list[float]) -> list[str]:
    top = _TOP + row * _ROW
    values = [metric.value(p.after) for p in points]
    ys = _ys(values, top)
    fill = "#f7f7f7" if row % 2 == 0 else "#ffffff"
    out = [
        f'<g class="tfm-row" data-key="{metric.key}">',
        f'<rect x="0" y="{top}" width="{_W}" height="{_ROW}" fill="{fill}"/>',
        f'<text x="4" y="{top + _ROW / 2 + 4:.1f}" fill="#444">{esc(metric.label)}</text>',
        f'<text x="{_W - _RIGHT + 4}" y="{top + _ROW / 2 + 4:.1f}" fill="#111" '
        f'font-family="monospace">{esc(metric.fmt(values[-1]))}</text>',
    ]
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    out.append(f'<polyline points="{coords}" fill="none" stroke="#2563eb" stroke-width="1.4"/>')
    for point, x, y in zip(points, xs, ys, strict=True):
        if point.kind != "reset":
            colour, r = _COLOURS[point.kind], _RADIUS[point.kind]
            out.append(
                f'<circle class="tfm-{point.kind}" cx="{x:.1f}" cy="{y:.1f}" r="{r}" '
                f'fill="{colour}"/>'
            )
    out.append("</g>")
    return out


def _reset_lines(points: Sequence[Point], xs: list[float], height: int) -> list[str]:
    out = []
    for point, x in zip(points, xs, strict=True):
        if point.kind == "reset":
            out.append(
                f'<line class="tfm-reset" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP - 2}" '
                f'y2="{height - _BOTTOM}" stroke="#6b7280" stroke-dasharray="3,3"/>'
            )
    return out


def _ticks(points: Sequence[Point], xs: list[float], height: int) -> list[str]:
    step = max(1, math.ceil(len(points) / 14))
    out = []
    for i, (point, x) in enumerate(zip(points, xs, strict=True)):
        if point.kind == "reset":
            out.append(
                f'<text x="{x:.1f}" y="{_TOP - 3}" text-anchor="middle" fill="#666">R</text>'
            )
        elif i % step == 0 or i == len(points) - 1:
            out.append(
                f'<text x="{x:.1f}" y="{height - 5}" text-anchor="middle" fill="#666">'
                f"{esc(point.tick)}</text>"
            )
    return out


def _hit_areas(
    points: Sequence[Point], xs: list[float], height: int, metrics: Sequence[Metric]
) -> list[str]:
    """One transparent column per point whose tooltip lists that run's numbers."""
    width = (xs[1] - xs[0]) if len(xs) > 1 else 24.0
    out = []
    for point, x in zip(points, xs, strict=True):
        numbers = ", ".join(f"{m.label} {m.now_text(point.after)}" for m in metrics)
        out.append(
            f'<rect class="tfm-hit" data-kind="{point.kind}" data-in="{esc(point.tick)}" '
            f'x="{x - width / 2:.1f}" y="0" width="{width:.1f}" height="{height}" '
            f'fill="transparent"><title>{esc(point.title)}\n{esc(numbers)}</title></rect>'
        )
    return out


# -- text view (terminal IPython, logs) ------------------------------------------------

_BARS = "▁▂▃▄▅▆▇█"


def series_of(points: Sequence[Point], key: str) -> list[int]:
    """A headline's values over the chart's points (``memory:CPU:0`` is one device)."""
    if not points:
        return []
    name, _, part = key.partition(":")
    metric = by_key(type(points[-1].after))[name]
    if part:
        return [metric.parts(p.after).get(part, 0) for p in points]
    return [metric.value(p.after) for p in points]


def sparkline(values: Sequence[int]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return _BARS[0] * len(values)
    top = len(_BARS) - 1
    return "".join(_BARS[round((v - lo) / (hi - lo) * top)] for v in values)


def text_view(model: DashboardModel, rows: int = TEXT_ROWS) -> str:
    """The dashboard as text: headline numbers with sparklines, then the last runs."""
    lines = [f"tfmagic dashboard. {model.cause}"]
    if not model.now.tensorflow:
        lines.append("TensorFlow is not imported yet; tracking starts when it is.")
    heads = model.headlines()
    width = max(len(h.title) for h in heads)
    value_width = max(len(h.value) for h in heads)
    for h in heads:
        spark = sparkline(series_of(model.points, h.key))
        lines.append(
            f"  {h.title.ljust(width)}  {h.value.rjust(value_width)}  {h.change:>11}  {spark}"
        )
    lines += memory_text(model)
    lines.append(render.stats_text(list(model.records)[-rows:], model.now))
    return "\n".join(line.rstrip() for line in lines)
