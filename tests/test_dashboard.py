"""The dashboard: its view model in a plain process, its widget tree with real ipywidgets
in a real InteractiveShell (the buttons clicked through ipywidgets' own ``click()``)."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import types
import xml.etree.ElementTree as ET

import pytest
from shellrunner import run_cells

import tfmagic
from tfmagic import dashboard_model as dm
from tfmagic import dashboard_widget as dw
from tfmagic import extension
from tfmagic.probe import Snapshot
from tfmagic.reset_state import ResetReport
from tfmagic.tracker import CellRecord

# -- the view model: plain objects, no IPython ------------------------------------------


def snap(variables: int = 0, models: int = 0, memory: dict[str, int] | None = None) -> Snapshot:
    return Snapshot(
        variables=variables,
        variable_bytes=variables * 16,
        models=models,
        rss=100 << 20,
        memory=memory or {},
        tensorflow=True,
    )


def record(n: int, before: Snapshot, after: Snapshot, run_index: int = 1, label: str = "cell"):
    return CellRecord(n, f"key{n}", label, run_index, before, after, 0.01, False)


def test_model_follows_records_with_values_and_changes() -> None:
    model = dm.DashboardModel(snap())
    model.add_record(record(1, snap(), snap(4, 2)))
    model.add_record(record(2, snap(4, 2), snap(6, 2, memory={"CPU:0": 2048})))
    heads = {h.key: h for h in model.headlines()}
    assert (heads["variables"].value, heads["variables"].change) == ("6", "+2")
    assert (heads["variable_bytes"].value, heads["variable_bytes"].change) == ("96 B", "+32 B")
    assert (heads["models"].value, heads["models"].change, heads["models"].direction) == (
        "2",
        "",
        0,
    )
    assert heads["memory:CPU:0"].value == "2.0 KiB" and heads["memory:CPU:0"].change == "+2.0 KiB"
    assert heads["rss"].title == "RSS"
    assert model.cause.startswith("Change in the last cell: In[2]")


def test_memory_headline_without_allocator_stats_says_so() -> None:
    heads = dm.DashboardModel(snap()).headlines()
    assert [h.value for h in heads if h.key == "memory"] == ["n/a"]


def test_points_and_rows_are_capped_and_reruns_marked() -> None:
    model = dm.DashboardModel(snap(), chart_points=50, table_rows=15)
    before = snap()
    for n in range(1, 121):
        after = snap(n)
        model.add_record(record(n, before, after, run_index=1 + n % 3))
        before = after
    assert len(model.points) == 50 and len(model.records) == 15
    assert model.points[-1].execution_count == 120
    kinds = {p.kind for p in model.points}
    assert kinds == {"run", "grew"}  # every re-run here grew variables
    model.add_record(record(121, before, before, run_index=2))
    assert model.points[-1].kind == "rerun"


def test_reset_is_a_chart_point_not_a_table_row() -> None:
    model = dm.DashboardModel.from_history([record(1, snap(), snap(8, 4))], snap())
    model.add_reset(ResetReport(before=snap(8, 4), after=snap(2, 1), hard=True))
    assert [p.kind for p in model.points] == ["run", "reset"]
    assert len(model.records) == 1
    heads = {h.key: h for h in model.headlines()}
    assert (heads["models"].value, heads["models"].change, heads["models"].direction) == (
        "1",
        "-3",
        -1,
    )
    assert "hard reset button" in model.cause
    model.refresh(snap(3, 1))
    assert {h.key: h.change for h in model.headlines()}["variables"] == "+1"


def test_user_text_is_escaped_everywhere() -> None:
    label = "layer = Dense(2, name='<b>x') & \"$a$\""
    model = dm.DashboardModel.from_history([record(1, snap(), snap(2, 1), label=label)], snap())
    pages = [
        dm.headline_html(model),
        dm.chart_svg(list(model.points)),
        dm.table_html(model),
        dm.stale_html(["<b>x pinned by Out[3]"]),
    ]
    for page in pages:
        assert "<b>x" not in page
    assert "&lt;b&gt;x" in pages[0] and "&lt;b&gt;x" in pages[1] and "&lt;b&gt;x" in pages[2]
    assert all("mathjax_ignore" in page for page in pages)


def test_chart_is_wellformed_svg_with_marks() -> None:
    model = dm.DashboardModel(snap())
    model.add_record(record(1, snap(), snap(2, 1), label="<b>x"))
    model.add_record(record(2, snap(2, 1), snap(4, 2), run_index=2))
    model.add_reset(ResetReport(before=snap(4, 2), after=snap(2, 1)))
    page = dm.chart_svg(list(model.points))
    svg = ET.fromstring(page[page.index("<svg") : page.index("</svg>") + 6])
    ns = "{http://www.w3.org/2000/svg}"
    hits = [r for r in svg.iter(f"{ns}rect") if r.get("class") == "tfm-hit"]
    assert [r.get("data-kind") for r in hits] == ["run", "grew", "reset"]
    assert len([ln for ln in svg.iter(f"{ns}line") if ln.get("class") == "tfm-reset"]) == 1
    rows = [g.get("data-key") for g in svg.iter(f"{ns}g")]
    assert rows == [m.key for m in dm.METRICS]
    assert "In[1] <b>x" in "".join(svg.itertext())  # the parsed text is the literal label
    assert "starts with the next cell" in dm.chart_svg([])


def test_text_view_and_sparkline() -> None:
    model = dm.DashboardModel(snap())
    before = snap()
    for n, v in enumerate([0, 4, 8], start=1):
        model.add_record(record(n, before, snap(v, v // 2)))
        before = snap(v, v // 2)
    text = dm.text_view(model)
    assert "variables" in text and "+4" in text and "▁▅█" in text
    assert "In  run  cell" in text  # the %tf_graph_stats table follows
    assert dm.sparkline([]) == "" and dm.sparkline([3, 3]) == "▁▁"
    assert "stale-object report not available" in dm.stale_html(None)


def test_model_modules_import_no_ipython_or_widgets() -> None:
    code = (
        "import sys, tfmagic.dashboard_model, tfmagic.dashboard_widget\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the widget tree in a real InteractiveShell -----------------------------------------


@pytest.fixture
def session(shell):
    yield extension.loaded()
    extension.loaded().close_dashboard("test over")


@pytest.fixture
def tracker(session):
    return session.tracker


def show_widgets(shell, tracker) -> tuple[dw.Dashboard, list]:
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        extension.loaded().show_dashboard(widgets=True)
    dashboard = extension.loaded().dashboard
    assert dashboard is not None
    return dashboard, captured.outputs


@pytest.fixture
def board(shell, tracker):
    return show_widgets(shell, tracker)[0]


def ours(tracker) -> list[object]:
    return [f for f in tracker.listeners if isinstance(getattr(f, "__self__", None), dw.Dashboard)]


def head_value(board: dw.Dashboard, key: str) -> str:
    return {h.key: h.value for h in board.model.headlines()}[key]


def test_show_displays_a_widget_with_a_text_fallback(shell, tracker) -> None:
    import ipywidgets

    board, (output,) = show_widgets(shell, tracker)
    assert "application/vnd.jupyter.widget-view+json" in output.data
    assert output.data["application/vnd.jupyter.widget-view+json"]["model_id"] == (
        board.root.model_id
    )
    assert output.data["text/plain"].startswith("tfmagic dashboard.")
    assert isinstance(board.root, ipywidgets.VBox)
    assert "tfmagic-dashboard" in board.root._dom_classes
    assert ours(tracker) == [board.on_cell]


def test_updates_after_each_cell_from_the_listener(board, run) -> None:
    run("dash_models = [keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])]")
    models = tfmagic.snapshot().models
    assert head_value(board, "models") == str(models)
    assert f'data-key="models"><div class="tfm-k">models</div><div class="tfm-v">{models}<' in (
        board.headline.value
    )
    run("dash_models.append(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))")
    assert head_value(board, "models") == str(tfmagic.snapshot().models)
    assert {h.key: h.change for h in board.model.headlines()}["models"].startswith("+")
    assert "dash_models.append" in board.table.value
    assert board.chart.value.count('class="tfm-hit"') == len(board.model.points)


def test_listener_is_cheap_and_never_walks_the_heap(board, run, monkeypatch) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError("the dashboard walked the heap after a cell")

    monkeypatch.setattr(gc, "get_objects", forbidden)
    monkeypatch.setattr(gc, "get_referrers", forbidden)
    last = extension.loaded().tracker.history[-1]
    started = time.perf_counter()
    for _ in range(20):
        board.on_cell(last)
    per_cell = (time.perf_counter() - started) / 20
    assert per_cell < 0.05, f"{per_cell * 1000:.1f} ms per cell"
    run("x_cheap = 1")
    assert "x_cheap = 1" in board.model.cause


def test_second_dashboard_replaces_the_first(board, tracker, shell, run) -> None:
    second, _ = show_widgets(shell, tracker)
    assert board.closed and not second.closed
    assert ours(tracker) == [second.on_cell]
    (notice,) = board.root.children
    assert "replaced by a newer one" in notice.value
    assert board.headline.comm is None  # the old tree's widgets are closed
    points = len(board.model.points)
    run("x_after_second = 2")
    assert len(board.model.points) == points
    assert "x_after_second" in second.model.cause
    extension.loaded().close_dashboard("closed by the test")
    assert ours(tracker) == [] and extension.loaded().dashboard is None


def test_reset_button_refreshes_numbers_without_a_cell_run(board, tracker, run) -> None:
    cell = "keras.Sequential([keras.Input((3,)), keras.layers.Dense(8)])"
    run(cell)
    run(cell)  # both results pinned by Out[N]
    models_before = int(head_value(board, "models"))
    runs = len(tracker.history)
    board.buttons["reset"].click()
    assert len(tracker.history) == runs  # a button is not a cell
    assert int(head_value(board, "models")) < models_before
    assert head_value(board, "models") == str(tfmagic.snapshot().models)
    assert board.model.points[-1].kind == "reset"
    assert board.stale.value == dw.STALE_PROMPT  # a stale list from before would mislead
    (report,) = board.output.outputs
    assert report["data"]["text/plain"].startswith("tfmagic reset:")
    assert "tfmagic-reset" in report["data"]["text/html"]


def test_a_new_dashboard_charts_earlier_button_resets_in_place(board, tracker, shell, run):
    run("keras.Sequential([keras.Input((3,)), keras.layers.Dense(8)])")
    board.buttons["reset"].click()
    run("x_after_reset = 1")
    kinds = [p.kind for p in board.model.points]
    second, _ = show_widgets(shell, tracker)
    assert [p.kind for p in second.model.points] == kinds  # the reset, before the last run
    assert kinds[-2:] == ["reset", "run"]
    drawn = board.chart.value.count('class="tfm-reset"')  # earlier tests' resets too
    assert drawn >= 1 and second.chart.value.count('class="tfm-reset"') == drawn


def test_hard_reset_asks_first_and_only_confirm_deletes(board, shell, run) -> None:
    run("dash_layer = keras.layers.Dense(2)\ndash_plain = [1, 2]")
    board.buttons["hard"].click()
    assert board.confirm_box.layout.display != "none" and board.buttons["hard"].disabled
    plan = "".join(o.get("text", "") + str(o.get("data", "")) for o in board.output.outputs)
    assert "would delete" in plan and "dash_layer" in plan
    assert "dash_layer" in shell.user_ns

    board.buttons["cancel"].click()
    assert board.confirm_box.layout.display == "none" and not board.buttons["hard"].disabled
    assert "dash_layer" in shell.user_ns
    assert "cancelled" in board.output.outputs[-1]["text"]

    board.buttons["hard"].click()
    run("dash_other = 3")  # a cell in between: the plan shown may be out of date
    assert board.confirm_box.layout.display == "none"
    board.buttons["hard"].click()
    board.buttons["confirm"].click()
    assert "dash_layer" not in shell.user_ns and shell.user_ns["dash_plain"] == [1, 2]
    assert board.model.points[-1].kind == "reset" and "hard reset" in board.model.cause


def test_button_failure_is_shown_in_the_dashboard(board, monkeypatch) -> None:
    def broken(hard: bool) -> None:
        raise RuntimeError("boom <b>")

    monkeypatch.setattr(board.session, "reset", broken)
    board.buttons["reset"].click()  # must not raise into the comm handler
    (error,) = board.output.outputs
    assert error["name"] == "stderr" and "RuntimeError: boom <b>" in error["text"]


def test_stale_list_on_demand(board, monkeypatch) -> None:
    calls = []

    def stale() -> list[str]:
        calls.append("stale")
        return ["stale model '<b>x', pinned by Out[3]"]

    monkeypatch.setattr(board.session, "stale", stale)
    assert calls == []  # never per cell: only the button walks the heap
    board.buttons["stale"].click()
    assert calls == ["stale"]
    assert "stale model &#x27;&lt;b&gt;x&#x27;, pinned by Out[3]" in board.stale.value


def test_stale_list_with_the_real_pins(board, run) -> None:
    cell = "keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])"
    run(cell)
    run(cell)  # the first run's model is now stale, pinned by its Out[N]
    board.buttons["stale"].click()
    assert "pinned by" in board.stale.value and "Out[" in board.stale.value, board.stale.value
    assert board.output.outputs == ()  # no error reported


def test_refresh_button_reads_state_now(board, shell) -> None:
    import tensorflow as tf

    variables = int(head_value(board, "variables"))
    keep = tf.Variable([1.0, 2.0])  # made outside any cell: only Refresh sees it
    board.buttons["refresh"].click()
    assert int(head_value(board, "variables")) == variables + 1
    assert "Refresh" in board.model.cause
    del keep


def test_without_a_widget_frontend_prints_the_text_view(shell, tracker, run) -> None:
    from IPython.utils.capture import capture_output

    assert not dw.has_widget_frontend(shell)  # a plain InteractiveShell has no kernel
    assert dw.has_widget_frontend(types.SimpleNamespace(kernel=object()))
    with capture_output() as captured:
        extension.loaded().show_dashboard()
    assert extension.loaded().dashboard is None
    assert captured.stdout.startswith("tfmagic dashboard.") and "variables" in captured.stdout
    assert captured.outputs == [] and ours(tracker) == []


# -- integration: the magic, the Python twin, unload ------------------------------------


def test_magic_and_python_twin_when_integrated(shell, tracker) -> None:
    from IPython.utils.capture import capture_output

    assert "tf_dashboard" in shell.magics_manager.magics["line"]
    with capture_output() as captured:
        shell.run_line_magic("tf_dashboard", "")
    assert captured.stdout.startswith("tfmagic dashboard.")  # no kernel: the text view
    # Importing the module must not shadow the twin (a module named like it would).
    import tfmagic.dashboard_widget

    assert callable(tfmagic.dashboard)


def test_unload_closes_the_live_dashboard_when_integrated() -> None:
    out = run_cells(  # a fresh process: unloading must not disturb the shared shell
        [
            "%load_ext tfmagic",
            "from tfmagic import extension\n"
            "s = extension.loaded()\nt = s.tracker\n"
            "s.show_dashboard(widgets=True)\nd = s.dashboard",
            "%unload_ext tfmagic",
            "RESULT = [d.closed, d.on_cell in t.listeners, extension.loaded() is None]",
        ]
    )
    assert out["result"] == [True, False, True]
