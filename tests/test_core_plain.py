"""Pure core, no TensorFlow: snapshots, the weak registry, import watching, rendering."""

from __future__ import annotations

import gc
import sys
import textwrap

import pytest

from tfmagic import importwatch, render
from tfmagic.hooks import after_init as track_instances
from tfmagic.probe import Snapshot
from tfmagic.registry import LiveSet
from tfmagic.stats import GraphStats, NoSuchCell, select
from tfmagic.tracker import CellRecord, cell_label


def record(n: int, key: str, run: int, label: str = "x = 1", **after: int) -> CellRecord:
    return CellRecord(
        execution_count=n,
        cell_key=key,
        label=label,
        run_index=run,
        before=Snapshot(tensorflow=True),
        after=Snapshot(tensorflow=True, **after),
        duration=0.01,
        raised=False,
    )


def test_snapshot_difference_covers_counts_names_and_memory():
    before = Snapshot(variables=2, names={"dense": 1}, memory={"CPU:0": 100}, tensorflow=True)
    after = Snapshot(
        variables=5, ops=3, names={"dense": 3, "conv2d": 1}, memory={"CPU:0": 40}, tensorflow=True
    )
    delta = after - before
    assert (delta.variables, delta.ops) == (3, 3)
    assert delta.names == {"dense": 2, "conv2d": 1}
    assert delta.memory == {"CPU:0": -60}
    assert delta.grew() == ["variables", "ops"]
    assert delta.to_dict()["names"] == {"dense": 2, "conv2d": 1}


class Thing:
    def __init__(self, size: int = 0) -> None:
        self.size = size


def test_live_set_counts_and_forgets_dead_objects():
    live = LiveSet("thing")
    a, b = Thing(), Thing()
    live.add(a, 10)
    live.add(b, 5)
    live.add(a, 10)  # a second registration of the same object counts once
    assert (len(live), live.total_bytes) == (2, 15)
    del a
    gc.collect()
    assert (len(live), live.total_bytes) == (1, 5)
    assert list(live) == [b]


def test_track_instances_sees_subclasses_and_is_idempotent():
    class Base:
        def __init__(self) -> None:
            self.ready = True

    class Child(Base):
        def __init__(self) -> None:
            super().__init__()

    seen: list[object] = []
    track_instances(Base, seen.append)
    track_instances(Base, seen.append)  # %reload_ext must not wrap twice
    child = Child()
    assert seen == [child]
    assert child.ready


def test_importwatch_runs_callback_after_the_module_executes(tmp_path, monkeypatch):
    (tmp_path / "late_module.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []
    importwatch.when_imported("late_module", lambda m: seen.append(m.VALUE))
    assert seen == []
    import late_module  # noqa: F401

    assert seen == [42]
    assert importwatch._pending.get("late_module") is None
    importwatch.when_imported("late_module", lambda m: seen.append(m.VALUE + 1))
    assert seen == [42, 43]  # already imported: called at once
    del sys.modules["late_module"]


def test_importwatch_forget_removes_pending_callback_and_finder():
    def callback(module: object) -> None:
        raise AssertionError("must not run")

    importwatch.when_imported("never_imported_module_xyz", callback)
    importwatch.forget(callback)
    assert "never_imported_module_xyz" not in importwatch._pending


def test_select_by_cell_and_last():
    history = [record(1, "a", 1), record(2, "b", 1), record(3, "a", 2), record(4, "c", 1)]
    assert [r.execution_count for r in select(history, cell=3)] == [1, 3]
    assert [r.execution_count for r in select(history, last=2)] == [3, 4]
    assert select(history, last=0) == ()
    with pytest.raises(NoSuchCell):
        select(history, cell=99)


def test_html_escapes_labels_names_and_keys():
    evil = "<script>alert(1)</script>"
    rec = record(1, evil, 2, label=evil, variables=1, names={"<b>x": 1})
    stats = GraphStats((rec,), Snapshot(tensorflow=True, names={"<b>x": 1}))
    page = stats._repr_html_()
    assert "<script>" not in page and "<b>x" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;x+1" in page


def test_text_table_marks_reruns_and_errors():
    rec = record(7, "k", 3, variables=2, variable_bytes=2048)
    failed = CellRecord(8, "f", "1/0", 1, Snapshot(), Snapshot(), 0.0, True, "ZeroDivisionError")
    text = str(GraphStats((rec, failed), Snapshot(tensorflow=True)))
    assert "↻3" in text and "+2.0 KiB" in text and "✗ ZeroDivisionError" in text
    assert GraphStats((rec,), Snapshot()).to_dict()["cells"][0]["run_index"] == 3


def test_growth_warning_is_one_line_naming_what_grew():
    rec = record(5, "k", 2, variables=4, variable_bytes=4096, models=1)
    line = render.growth_warning(rec, rec.delta.grew())
    assert "\n" not in line
    assert "variables +4 (+4.0 KiB)" in line and "models +1" in line
    assert "%%tf_isolated" in line and "%tf_reset" in line


def test_cell_label_is_first_nonblank_line():
    assert cell_label("\n\n  model = build()\nfit()") == "model = build()"
    assert cell_label(textwrap.dedent("   \n")) == "(empty)"
    assert len(cell_label("x" * 500)) == 60


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (-3 * 2**20, "-3.0 MiB")]
)
def test_fmt_bytes(n, text):
    assert render.fmt_bytes(n) == text


def test_reports_show_their_text_form_in_ipython():
    from IPython.lib.pretty import pretty

    from tfmagic.pins import StaleReport
    from tfmagic.reloading import ReloadReport
    from tfmagic.reset_state import ResetReport

    assert pretty(ResetReport(Snapshot(), Snapshot())).startswith("tfmagic reset:")
    assert pretty(ReloadReport("m", Snapshot(), Snapshot())).startswith("tfmagic reloaded m")
    assert pretty(StaleReport(())).startswith("No stale TF objects")
    assert "&lt;b&gt;" in StaleReport(()).__class__((_stale("<b>"),))._repr_html_()


def _stale(label: str):
    from tfmagic.pins import StaleObject

    return StaleObject("model", label, ("Out[1]",))
