"""Rendering follows the one declaration of each metric; tables stay aligned. No TensorFlow."""

from __future__ import annotations

import dataclasses
import unicodedata
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from tfmagic import dashboard_model as dm
from tfmagic import render
from tfmagic.metrics import Metric, declared, metric
from tfmagic.probe import METRICS, Snapshot
from tfmagic.records import CellRecord
from tfmagic.reset_state import ResetReport
from tfmagic.stats import GraphStats

# -- helpers: read the tables back -------------------------------------------------------


def columns_of(line: str) -> list[str]:
    """``line`` as display columns: a wide (CJK) character takes two, the second ``WIDE``."""
    out = []
    for char in line:
        out.append(char)
        if unicodedata.east_asian_width(char) in ("W", "F"):
            out.append(WIDE)
    return out


WIDE = "\0"


def text_cells(table: str) -> list[list[str]]:
    """Split a text table by the spans of its dashed rule, checking that every line puts
    nothing outside them: each line has exactly one cell per column."""
    lines = table.splitlines()
    rule = lines[1]
    assert set(rule) <= {"-", " "}, rule
    spans, start = [], None
    for i, char in enumerate(rule + " "):
        if char == "-" and start is None:
            start = i
        elif char != "-" and start is not None:
            spans.append((start, i))
            start = None
    out = []
    for line in [lines[0], *lines[2:]]:
        cols = columns_of(line)
        inside = {i for a, b in spans for i in range(a, b)}
        stray = [i for i, c in enumerate(cols) if i not in inside and c != " "]
        assert not stray, f"text outside the columns at {stray}: {line!r}"
        out.append(["".join(cols[a:b]).replace(WIDE, "").strip() for a, b in spans])
    return out


class TableParser(HTMLParser):
    """Rows of a HTML table: each a list of (tag, attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, dict[str, str | None], str]]] = []
        self._cell: list | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = [tag, dict(attrs), ""]

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(tuple(self._cell))
            self._cell = None


def html_rows(page: str) -> list[list[tuple[str, dict[str, str | None], str]]]:
    parser = TableParser()
    parser.feed(page)
    return parser.rows


def record(
    n: int | None,
    before: Snapshot,
    after: Snapshot,
    run: int = 1,
    label: str = "x = 1",
    key: str | None = None,
    raised: bool = False,
    error: str | None = None,
    isolated: bool = False,
) -> CellRecord:
    return CellRecord(
        n, key or label, label, run, before, after, 0.012, raised, error, isolated=isolated
    )


# -- A: every metric is declared once and shown everywhere from that declaration ---------


def changed_by_three(cls: type[Snapshot] = Snapshot) -> Snapshot:
    """A snapshot in which every declared metric is 3 (3 KiB for bytes, in one key)."""
    values = {}
    for m in declared(cls):
        amount = 3 * 1024 if m.unit == "bytes" else 3
        values[m.key] = {"k": amount} if m.per else amount
    return cls(tensorflow=True, **values)


def expected_cell(m: Metric) -> str:
    """What a +3 change looks like, written out independently of the formatter."""
    number = "+3.0 KiB" if m.unit == "bytes" else "+3"
    if m.breakdown:
        return f"k {number}" if m.unit == "bytes" else f"k{number}"
    return number


def test_every_snapshot_field_but_tensorflow_is_a_declared_metric() -> None:
    fields = [f.name for f in dataclasses.fields(Snapshot) if f.name != "tensorflow"]
    assert [m.key for m in METRICS] == fields
    for m in METRICS:
        assert (
            m.label and m.unit in ("count", "bytes") and m.table in ("always", "changed", "never")
        )
    labels = [m.label for m in METRICS]
    assert len(set(labels)) == len(labels)


def test_every_declared_metric_is_in_the_text_and_html_tables_formatted() -> None:
    delta_rec = record(4, Snapshot(tensorflow=True), changed_by_three())
    stats = GraphStats((delta_rec,), changed_by_three())
    in_table = [m for m in METRICS if m.table != "never"]

    text = str(stats)
    now_line, table = text.split("\n", 1)
    for m in METRICS:
        now = "3.0 KiB" if m.unit == "bytes" else "3"
        assert f"{m.header} {now}" in now_line
    header, row = text_cells(table)
    cells = dict(zip(header, row, strict=True))
    for m in in_table:
        assert cells[m.header] == expected_cell(m), m.key

    rows = html_rows(stats._repr_html_())
    head = [text for _, _, text in rows[0]]
    body = [text for _, _, text in rows[1]]
    assert head == header  # the same columns, in the same order, as the text table
    html_cells = dict(zip(head, body, strict=True))
    for m in in_table:
        assert html_cells[m.header] == expected_cell(m), m.key


def test_unchanged_metrics_leave_blank_cells_and_only_always_columns() -> None:
    rec = record(1, Snapshot(tensorflow=True), Snapshot(tensorflow=True))
    header, row = text_cells(render.stats_text([rec], Snapshot(tensorflow=True)).split("\n", 1)[1])
    always = [m.header for m in METRICS if m.table == "always"]
    assert [h for h in header if h in {m.header for m in METRICS}] == always
    assert all(cell == "" for h, cell in zip(header, row, strict=True) if h in always)


def test_growth_note_summary_and_dashboard_follow_the_declaration() -> None:
    before, after = Snapshot(tensorflow=True), changed_by_three()
    rec = record(5, before, after, run=2)
    grew = rec.delta.grew()
    assert grew == [m.key for m in METRICS if m.warns]
    note = render.growth_warning(rec, grew)
    for m in METRICS:
        if m.warns:
            assert f"{m.label} {m.fmt(3 * 1024 if m.unit == 'bytes' else 3, signed=True)}" in note
    assert "variables +3 (+3.0 KiB)" in note  # the declared detail

    three = {"count": "3", "bytes": "3.0 KiB"}
    zero = {"count": "0", "bytes": "0 B"}
    assert render.snapshot_change(before, after) == ", ".join(
        f"{m.label} {zero[m.unit]} → {three[m.unit]}" for m in METRICS if m.summary
    )

    model = dm.DashboardModel.from_history([rec], before)
    keys = [h.key for h in model.headlines()]
    expected = []
    for m in METRICS:
        if m.dashboard:
            expected.append(f"{m.key}:k" if m.per else m.key)
    assert keys == expected
    assert [m.key for m in dm.METRICS] == [m.key for m in METRICS if m.dashboard]


def test_a_mapping_metric_not_measured_is_left_out_of_the_summary() -> None:
    summary = render.snapshot_change(Snapshot(variables=3), Snapshot(variables=1))
    assert summary.startswith("variables 3 → 1") and "TF mem" not in summary
    measured = render.snapshot_change(Snapshot(memory={"CPU:0": 5}), Snapshot())
    assert measured.endswith("TF mem 5 B → 0 B")


@dataclasses.dataclass(frozen=True)
class WithWidgets(Snapshot):
    """A snapshot with one more metric: its declaration is all that is added."""

    widgets: int = metric(
        "widgets", short="wdg", warns=True, table="always", summary=True, dashboard=True
    )
    widget_bytes: int = metric("widget bytes", unit="bytes")


def test_a_new_metric_needs_only_its_declaration() -> None:
    before = WithWidgets(tensorflow=True)
    after = WithWidgets(tensorflow=True, widgets=2, widget_bytes=2048)
    rec = record(9, before, after, run=2, label="w = make_widgets()")
    assert isinstance(rec.delta, WithWidgets) and rec.delta.grew() == ["widgets"]

    header, row = text_cells(render.stats_text([rec], after).split("\n", 1)[1])
    cells = dict(zip(header, row, strict=True))
    assert cells["wdg"] == "+2" and cells["widget bytes"] == "+2.0 KiB"
    assert "wdg 2, widget bytes 2.0 KiB" in render.stats_text([rec], after)
    head = [text for _, _, text in html_rows(render.stats_html([rec], after))[0]]
    assert head == header

    assert "grew widgets +2;" in render.growth_warning(rec, rec.delta.grew())
    assert render.snapshot_change(before, after).endswith("widgets 0 → 2")

    model = dm.DashboardModel.from_history([rec], before)
    assert {h.key: h.change for h in model.headlines()}["widgets"] == "+2"
    page = dm.chart_svg(list(model.points))
    svg = ET.fromstring(page[page.index("<svg") : page.index("</svg>") + 6])
    rows = [g.get("data-key") for g in svg.iter("{http://www.w3.org/2000/svg}g")]
    assert rows[-1] == "widgets"
    assert "widgets" in dm.text_view(model)


# -- B: headers and rows always have the same columns -------------------------------------


def mixed_records() -> list[CellRecord]:
    empty = Snapshot(tensorflow=True)
    built = Snapshot(
        tensorflow=True,
        variables=4,
        variable_bytes=644,
        models=2,
        layers=3,
        names={"dense": 2, "keras_tensor": 3, "input_layer": 1, "sequential": 1},
    )
    twice = dataclasses.replace(built, variables=8, variable_bytes=1288, models=4, layers=6)
    return [
        record(3, empty, built, label="model = build()"),  # plain, with names
        record(4, built, twice, run=2, label="model = build()"),  # a re-run that grew
        record(5, twice, twice, run=2, label="%%tf_isolated", isolated=True),  # isolated
        record(6, twice, twice, label="1/0", raised=True, error="ZeroDivisionError"),
        record(7, twice, twice, run=3, label="%%tf_isolated", isolated=True, raised=True),
        record(None, twice, twice, label="a\tb  c = '名前'", key="cell-id-1"),  # tab, wide
        record(8, twice, dataclasses.replace(twice, memory={"CPU:0": 4096}), label="y"),
    ]


def test_text_table_header_and_every_row_have_the_same_columns() -> None:
    records = mixed_records()
    text = render.stats_text(records, records[-1].after)
    table = text.split("\n", 1)[1]
    rows = text_cells(table)  # asserts nothing sits outside a column
    header = rows[0]
    assert all(header), f"a column without a header: {header}"
    assert header[:3] == ["In", "run", "cell"] and header[-2:] == ["time", "status"]
    by_run = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert [r["run"] for r in by_run] == ["1", "↻2", "↻2", "1", "↻3", "1", "1"]
    assert [r["status"] for r in by_run] == [
        "",
        "",
        "isolated",
        "✗ ZeroDivisionError",
        "isolated ✗ error",
        "",
        "",
    ]
    assert by_run[0]["names"] == "keras_tensor+3 dense+2 …"
    assert by_run[5]["cell"] == "a b  c = '名前'" and by_run[5]["In"] == ""
    assert by_run[6]["TF mem"] == "+4.0 KiB"


def test_html_table_has_one_td_per_th_in_every_row_with_matching_alignment() -> None:
    records = mixed_records()
    for page in (
        render.stats_html(records, records[-1].after),
        dm.table_html(dm.DashboardModel.from_history(records, records[-1].after)),
    ):
        head, *body = html_rows(page)
        assert all(tag == "th" for tag, _, _ in head) and all(text for _, _, text in head)
        for row in body:
            assert [tag for tag, _, _ in row] == ["td"] * len(head)
            # A header lines up with its cells: the same classes (alignment, cut).
            assert [a.get("class") for _, a, _ in row] == [a.get("class") for _, a, _ in head]


def test_long_cells_say_their_whole_text_on_hover() -> None:
    records = mixed_records()
    page = dm.table_html(dm.DashboardModel.from_history(records, records[-1].after))
    head, *body = html_rows(page)
    names = [t for _, _, t in head].index("names")
    cell = [t for _, _, t in head].index("cell")
    status = [t for _, _, t in head].index("status")
    oldest_first = body[::-1]  # the dashboard shows the newest first
    _, attrs, text = oldest_first[0][names]
    assert text.endswith("…") and "cut" in (attrs["class"] or "")
    assert attrs["title"] == "keras_tensor+3 dense+2 input_layer+1 sequential+1"
    # The key is the source when the frontend sent no cell id; else the label is all we have.
    assert oldest_first[0][cell][1]["title"] == "model = build()"
    assert oldest_first[5][cell][1]["title"] == "a\tb  c = '名前'"
    assert oldest_first[3][status][1]["title"] == "✗ ZeroDivisionError"
    assert ".tfm-table table.tfmagic-stats td.cut{max-width" in render.STYLE


def test_text_table_refuses_a_row_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="2 cells under 3 headers"):
        render.text_table([["a", "b"]], ["x", "y", "z"])


def test_text_table_alignment_by_default_and_when_given() -> None:
    rows = [["1", "2", "ab", "3", "x"]]
    # By default a label (third) and the last column read left to right.
    assert render.text_table(rows, ["in", "run", "cell", "n", "note"]).splitlines()[2] == (
        " 1    2  ab    3  x"
    )
    left = [True, False, False, False, False]
    assert render.text_table(rows, ["in", "run", "cell", "n", "note"], left).splitlines()[2] == (
        "1     2    ab  3     x"
    )


# -- one stylesheet, one escape ----------------------------------------------------------


def test_one_stylesheet_and_one_escape_for_stats_and_dashboard() -> None:
    assert dm.STYLE is render.STYLE and dm.esc is render.esc
    rec = record(1, Snapshot(tensorflow=True), Snapshot(tensorflow=True, variables=1))
    assert render.stats_html([rec], rec.after).startswith(render.STYLE)
    assert dm.closed_html("gone").startswith(render.STYLE)
    assert render.STYLE.count("<style>") == 1
    for selector in ("table.tfmagic-stats", ".tfm-card", ".tfm-table", ".tfm-closed"):
        assert selector in render.STYLE
    assert render.esc("<a href='x'>&") == "&lt;a href=&#x27;x&#x27;&gt;&amp;"


def test_reset_report_summary_uses_the_declared_labels() -> None:
    report = ResetReport(Snapshot(variables=6, models=6), Snapshot(variables=2, models=2))
    assert str(report).startswith(
        "tfmagic reset: variables 6 → 2, variable bytes 0 B, models 6 → 2, layers 0, ops 0,"
        " graphs 0, sessions 0"
    )
