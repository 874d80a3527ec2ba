"""``%tf_dashboard``: a live ipywidgets view of TF state, updated after every cell.

Updates come from the tracker: ``Dashboard.on_cell`` is appended to
``tracker.listeners`` and runs after each top-level cell; nothing polls and no widget
message triggers an update (a button click is not a cell run, so the buttons refresh
the numbers themselves). The session keeps the one live dashboard: showing another
one, or unloading the extension, removes the old one's listener and marks its widget
closed. The buttons call the same session rules as ``%tf_reset`` and ``stale()``.

The module imports neither IPython's display machinery nor ipywidgets until a
dashboard is shown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tfmagic import dashboard_model as dm

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult
    from ipywidgets import Widget

    from tfmagic.memory_report import MemoryReport
    from tfmagic.records import CellRecord
    from tfmagic.reset_state import ResetReport
    from tfmagic.session import Session
    from tfmagic.tracker import CellTracker

STALE_PROMPT = dm.wrap(
    "<p>Stale objects are listed on demand (it walks the heap): Find stale objects.</p>",
    "tfm-stale",
)


def has_widget_frontend(shell: Any) -> bool:
    """True when widgets can reach a frontend: the shell runs inside ipykernel.

    ipykernel's ``ZMQInteractiveShell`` (JupyterLab, Notebook, VS Code, Colab) has a
    ``kernel`` whose comms carry widget state; terminal IPython and a plain
    ``InteractiveShell`` have none. This is tensorboard's ``has_trait("kernel")`` test;
    it also accepts subclasses, which a class-name check would not. A kernel whose
    client cannot render widgets (jupyter console, nbconvert) still gets the text
    view: it is the ``text/plain`` part of the dashboard's mime bundle.
    """
    return getattr(shell, "kernel", None) is not None


def show(session: Session, widgets: bool | None = None) -> Dashboard | None:
    """Display a live dashboard and return it; without a widget frontend print its text
    view and return None. ``widgets`` forces one or the other; by default
    ``has_widget_frontend`` decides."""
    tracker = _tracker_of(session)
    if widgets is None:
        widgets = has_widget_frontend(session.shell)
    if not widgets:
        model = dm.DashboardModel.from_history(
            tracker.history, tracker.probe(), resets=session.button_resets
        )
        model.memory = _memory_report(session)
        print(dm.text_view(model))
        return None
    from IPython.display import display

    dashboard = Dashboard(session)
    display(dashboard)
    return dashboard


def _memory_report(session: Session) -> MemoryReport | None:
    """Who holds TF memory now, without a walk or a collection; None if it fails (the
    dashboard still shows the rest)."""
    try:
        return session.memory(pins=False)
    except Exception as exc:  # noqa: BLE001 - the panel is optional, the dashboard is not
        from tfmagic import incidents

        incidents.record("dashboard memory panel", exc)
        return None


def _tracker_of(session: Session) -> CellTracker:
    if session.tracker is None:
        raise RuntimeError("the dashboard needs the extension: run %load_ext tfmagic first")
    return session.tracker


class Dashboard:
    """The widget tree and its behaviour; ``root`` is what is displayed."""

    def __init__(
        self,
        session: Session,
        chart_points: int = dm.CHART_POINTS,
        table_rows: int = dm.TABLE_ROWS,
    ) -> None:
        self.session = session
        self.shell = session.shell
        self.tracker = tracker = _tracker_of(session)
        self.model = dm.DashboardModel.from_history(
            tracker.history, tracker.probe(), chart_points, table_rows, session.button_resets
        )
        self.closed = False
        self.shown_at = getattr(self.shell, "execution_count", None)
        self._build()
        self.update()
        tracker.listeners.append(self.on_cell)

    # -- widgets -------------------------------------------------------------------
    def _build(self) -> None:
        import ipywidgets as w

        title = (
            f"{dm.STYLE}<b>tfmagic</b> · live TF state, updated after every cell "
            f"(shown at In[{dm.esc(self.shown_at)}])"
        )
        self.title = w.HTML(dm.wrap(title, "tfm-title"))
        self.headline = w.HTML()
        self.chart = w.HTML()
        self.table = w.HTML()
        self.memory = w.HTML()  # right above the Reset button: what it would free
        self.stale = w.HTML(STALE_PROMPT)
        self.output = w.Output(layout=w.Layout(max_height="260px", overflow="auto"))
        self.output.add_class("tfm-output")
        self.buttons = {
            "refresh": self._button("refresh", "Refresh", "Read TF state now", self.refresh),
            "reset": self._button(
                "reset",
                "Reset",
                "Like %tf_reset: reset TF/Keras state, keep your names",
                self.reset,
            ),
            "hard": self._button(
                "hard",
                "Hard reset…",
                "Like %tf_reset --hard: also delete names bound to TF objects (asks first)",
                self.ask_hard_reset,
                style="warning",
            ),
            "stale": self._button(
                "stale",
                "Find stale objects",
                "List dead TF objects still kept alive, and what pins each one",
                self.find_stale,
            ),
            "confirm": self._button(
                "confirm",
                "Confirm hard reset",
                "Delete the names listed above",
                self.confirm_hard_reset,
                style="danger",
            ),
            "cancel": self._button("cancel", "Cancel", "Change nothing", self.cancel_hard_reset),
        }
        self.confirm_box = w.HBox(
            [
                w.HTML("<b>Run the hard reset listed above?</b>"),
                self.buttons["confirm"],
                self.buttons["cancel"],
            ],
            layout=w.Layout(display="none"),
        )
        bar = w.HBox([self.buttons[k] for k in ("refresh", "reset", "hard", "stale")])
        self.root = w.VBox(
            [
                self.title,
                self.headline,
                self.chart,
                self.table,
                self.memory,
                bar,
                self.confirm_box,
                self.stale,
                self.output,
            ]
        )
        self.root.add_class("tfmagic-dashboard")

    def _button(
        self, key: str, label: str, tooltip: str, action: Callable[[], None], style: str = ""
    ) -> Widget:
        import ipywidgets as w

        button = w.Button(description=label, tooltip=tooltip, button_style=style)
        button.add_class(f"tfm-btn-{key}")  # a stable hook for tests and user CSS
        button.on_click(self._guarded(action))
        return button

    def _guarded(self, action: Callable[[], None]) -> Callable[[Any], None]:
        """A click handler that reports a failure in the dashboard instead of the log."""

        def on_click(_button: Any) -> None:
            if self.closed:
                return
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - shown to the user, not raised into a comm
                self.output.append_stderr(f"tfmagic dashboard: {type(exc).__name__}: {exc}\n")

        return on_click

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The widget view, with the text view (not "VBox(...)") for clients without widgets.
        bundle = dict(self.root._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text()
        return bundle

    # -- updates -------------------------------------------------------------------
    def on_cell(self, record: CellRecord, result: ExecutionResult | None = None) -> None:
        """The tracker's listener: runs after every top-level cell; cheap string work only."""
        if self.closed:
            return
        self.model.add_record(record)
        if self.confirm_box.layout.display != "none":
            # The plan shown may no longer be what a hard reset would delete now.
            self._hide_confirm()
            self._say("A cell ran: click Hard reset… again to see the current plan.")
        self.update()

    def update(self) -> None:
        self.headline.value = dm.headline_html(self.model)
        self.chart.value = dm.chart_svg(list(self.model.points))
        self.table.value = dm.table_html(self.model)
        self.model.memory = _memory_report(self.session)
        self.memory.value = dm.memory_html(self.model)

    def text(self) -> str:
        return dm.text_view(self.model)

    # -- buttons -------------------------------------------------------------------
    def refresh(self) -> None:
        self.model.refresh(self.tracker.probe())
        self.update()

    def reset(self) -> None:
        self._clear_output()
        self._show_report(self.session.reset(hard=False))

    def ask_hard_reset(self) -> None:
        """First click: show what a hard reset WILL do; only Confirm runs it."""
        plan = self.session.reset(hard=True, dry_run=True)
        self._clear_output()
        self._say("Hard reset plan (nothing changed yet):")
        self._append(plan)
        self.confirm_box.layout.display = "flex"
        self.buttons["hard"].disabled = True

    def confirm_hard_reset(self) -> None:
        self._hide_confirm()
        self._clear_output()
        self._show_report(self.session.reset(hard=True))

    def cancel_hard_reset(self) -> None:
        self._hide_confirm()
        self._clear_output()
        self._say("Hard reset cancelled; nothing changed.")

    def find_stale(self) -> None:
        # Objects become strings at once, so the dashboard never pins them.
        self.stale.value = dm.stale_html([str(found) for found in self.session.stale()])

    def _show_report(self, report: ResetReport) -> None:
        self._append(report)
        self.stale.value = STALE_PROMPT  # the list shown before the reset is out of date
        self.model.add_reset(report)
        history = self.tracker.history
        resets = self.session.button_resets
        resets.append((history[-1] if history else None, report))
        del resets[: -dm.CHART_POINTS]  # no chart shows more
        self.update()  # a button is not a cell run: no listener will do this for us

    def _hide_confirm(self) -> None:
        self.confirm_box.layout.display = "none"
        self.buttons["hard"].disabled = False

    # -- the output area: written directly, so it works outside any cell's context --
    def _clear_output(self) -> None:
        self.output.outputs = ()

    def _say(self, text: str) -> None:
        self.output.append_stdout(text + "\n")

    def _append(self, obj: Any) -> None:
        from IPython.core.formatters import format_display_data

        data, metadata = format_display_data(obj)
        output = {"output_type": "display_data", "data": data, "metadata": metadata}
        self.output.outputs = (*self.output.outputs, output)

    # -- end -----------------------------------------------------------------------
    def close(self, reason: str) -> None:
        """Stop updating: remove the listener, replace the view by a one-line notice."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError):
            self.tracker.listeners.remove(self.on_cell)
        import ipywidgets as w

        old = list(self.root.children)
        self.root.children = (w.HTML(dm.closed_html(reason)),)
        self.root.add_class("tfmagic-dashboard-closed")
        for child in old:
            _close_tree(child)


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    layout = getattr(widget, "layout", None)
    if layout is not None:
        layout.close()
    widget.close()
