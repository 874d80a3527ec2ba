"""``TFMagics``: parse the arguments, make one call into the session, render. Nothing else.

The rules (validation included) live in ``Session``, shared with the Python twins and
the dashboard's buttons; a rule's ``ArgumentError`` becomes a one-line ``UsageError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Int, TraitError, observe, validate

from tfmagic.errors import ArgumentError

# The modules behind the magics are imported when a magic first runs, which keeps
# %load_ext fast (see benchmarks/load_time.py).
if TYPE_CHECKING:
    from tfmagic.memory_report import MemoryReport
    from tfmagic.pins import StaleReport
    from tfmagic.reloading import ReloadReport
    from tfmagic.reset_state import ResetReport
    from tfmagic.session import Session
    from tfmagic.stats import GraphStats


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """A caller's mistake, reported by the session, as IPython's one-line UsageError."""
    try:
        yield
    except ArgumentError as e:
        raise UsageError(str(e)) from e


@magics_class
class TFMagics(Magics):
    """Magics that make TensorFlow/Keras process state visible and re-runnable.

    Configure with ``c.TFMagics.<option>`` in ``ipython_config.py`` or ``%config``.
    """

    warn_on_growth = Bool(
        True,
        help="Print one line after a re-run cell that left more variables, ops, "
        "traces or models alive than its previous run.",
    ).tag(config=True)
    track_peak_memory = Bool(
        True,
        help="Record each cell's peak TF allocator bytes per device (CellRecord.peak_memory, "
        "%tf_graph_stats, %tf_memory). To do so tfmagic resets every device's peak counter "
        "(tf.config.experimental.reset_memory_stats) before each cell, so "
        "get_memory_info(device)['peak'] read in your code means the peak since the current "
        "cell began. Set it to False to keep your own peak readings: tfmagic then never "
        "resets the counters and records no per-cell peak.",
    ).tag(config=True)
    history_limit = Int(1000, help="How many cell runs to keep in the history (1 or more).").tag(
        config=True
    )
    freeze_imports = Bool(
        True,
        help="Right after TensorFlow/Keras are imported, move the ~300,000 objects the "
        "import leaves alive into the garbage collector's permanent generation (gc.freeze), "
        "so that %tf_reset, %%tf_isolated re-runs, %tf_reload and stale() collect only what "
        "the notebook built (milliseconds, not a full pass over TF). Only done while nothing "
        "the notebook made could be frozen with it; False unfreezes what tfmagic froze.",
    ).tag(config=True)

    def __init__(self, shell: Any, session: Session, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.session = session
        session.freeze_imports = self.freeze_imports
        session.warn_on_growth = self.warn_on_growth
        session.track_peak_memory = self.track_peak_memory
        self._resize_history(self.history_limit)

    @observe("warn_on_growth")
    def _warn_changed(self, change: Any) -> None:
        self.session.warn_on_growth = change.new

    @observe("freeze_imports")
    def _freeze_changed(self, change: Any) -> None:
        self.session.freeze_imports = change.new

    @observe("track_peak_memory")
    def _peak_changed(self, change: Any) -> None:
        self.session.track_peak_memory = change.new

    @validate("history_limit")
    def _valid_limit(self, proposal: Any) -> int:
        # A rejected value leaves the trait (and the history) as they were.
        if proposal.value < 1:
            raise TraitError(f"TFMagics.history_limit must be at least 1, not {proposal.value}")
        return int(proposal.value)

    @observe("history_limit")
    def _limit_changed(self, change: Any) -> None:
        self._resize_history(change.new)

    def _resize_history(self, limit: int) -> None:
        if self.session.tracker is not None:
            self.session.tracker.resize_history(limit)

    def unregister_from(self, shell: Any) -> None:
        """Remove exactly the magics this instance registered."""
        for kind, names in self.magics.items():
            table = shell.magics_manager.magics[kind]
            for name in names:
                table.pop(name, None)

    # ------------------------------------------------------------------------
    @magic_arguments()
    @argument("-n", "--last", type=int, metavar="N", help="Show only the last N cell runs.")
    @argument(
        "--cell",
        type=int,
        metavar="IN",
        help="Show every run of the cell that ran as In[IN] (its re-run history).",
    )
    @argument(
        "--stale",
        action="store_true",
        help="List live TF objects that lost their name, and what pins each (walks the heap).",
    )
    @argument("-o", "--output", action="store_true", help="Return the result object.")
    @line_magic
    def tf_graph_stats(self, line: str = "") -> GraphStats | StaleReport | None:
        """Show what each cell run did to TF state: variables, ops, traces, names, models, memory.

        The first line is the state now; each row is one cell run with its changes
        (↻N marks the Nth run of the same cell). Examples::

            %tf_graph_stats            # all recorded cells
            %tf_graph_stats -n 5       # the last five
            %tf_graph_stats --cell 12  # every run of the cell that ran as In[12]
            stats = %tf_graph_stats -o # a GraphStats object (.to_dict(), .records)
        """
        args = parse_argstring(self.tf_graph_stats, line)
        if args.stale:
            from tfmagic.pins import StaleReport

            return self._show(StaleReport(tuple(self.session.stale())), args.output)
        with _usage_errors():
            stats = self.session.graph_stats(cell=args.cell, last=args.last)
        return self._show(stats, args.output)

    @staticmethod
    def _show(result: Any, output: bool) -> Any:
        """``-o`` returns the result object (like %timeit -o); otherwise display it."""
        if output:
            return result
        display(result)
        return None

    # ------------------------------------------------------------------------
    @magic_arguments()
    @argument(
        "--key",
        metavar="NAME",
        help="Identify the cell by NAME instead of its notebook cell id (or source).",
    )
    @cell_magic
    def tf_isolated(self, line: str, cell: str) -> Any:
        """Run the cell so that re-running it leaves TF state as if it had run once.

        In TF1 graph mode the body runs in a fresh tf.Graph (sessions made in it stay
        usable later; the previous run's sessions are closed). Keras layers get the same
        auto-generated names on every run. The previous run's results pinned by the
        output history (Out[N], _N, _, __, ___) are released. An error in the body
        fails the cell. Example::

            %%tf_isolated
            with tf.compat.v1.variable_scope("weight_def"):
                w = tf.compat.v1.get_variable("weights", shape=[3, 3])
        """
        __tracebackhide__ = True
        from tfmagic.cellrun import run_cell_body

        args = parse_argstring(self.tf_isolated, line)
        if not cell.strip():
            raise UsageError("%%tf_isolated needs a cell body: put your code below the magic line.")
        tracker = self.session.tracker
        key = args.key or (tracker and tracker.current_cell_key()) or f"%%tf_isolated\n{cell}"
        with self.session.isolated(key):
            return run_cell_body(self.shell, cell)

    @magic_arguments()
    @argument(
        "--hard",
        action="store_true",
        help="Also delete user names bound to TF objects, or to lists and callbacks holding some.",
    )
    @argument("--dry-run", action="store_true", help="Show what would happen; change nothing.")
    @argument("--keep", nargs="+", default=[], metavar="NAME", help="Names --hard must spare.")
    @argument("-o", "--output", action="store_true", help="Return the ResetReport object.")
    @argument("-q", "--quiet", action="store_true", help="Print nothing.")
    @line_magic
    def tf_reset(self, line: str = "") -> ResetReport | None:
        """Reset TF/Keras state as well as a kernel restart would, keeping your work.

        Drops output-history pins of TF objects and the last error's traceback (its
        failing frames keep their locals alive; %tb has nothing to show afterwards),
        closes open tf.compat.v1 sessions, resets the TF1 default graph, clears each
        Keras flavour's session (keeping the dtype policy, floatx and random seed; new
        layers never reuse a live layer's name) and collects garbage. Names you bound to
        models stay bound and alive.
        Examples::

            %tf_reset                   # keep every name you bound
            %tf_reset --dry-run --hard  # list what --hard would delete
            %tf_reset --hard --keep model
        """
        args = parse_argstring(self.tf_reset, line)
        with _usage_errors():
            report = self.session.reset(hard=args.hard, dry_run=args.dry_run, keep=args.keep)
        if args.quiet and not args.output:
            return None
        return self._show(report, args.output)

    @magic_arguments()
    @argument(
        "--no-pins",
        action="store_true",
        help="Do not look for what pins the stale rows (no garbage collection, no walk).",
    )
    @argument("-o", "--output", action="store_true", help="Return the MemoryReport object.")
    @line_magic
    def tf_memory(self, line: str = "") -> MemoryReport | None:
        """Show TF memory per device now, and which cell runs hold it.

        Per device: bytes in use and the peak (since the current cell began while
        c.TFMagics.track_peak_memory is on), and the highest per-cell peak recorded.
        Then the live variables grouped by the cell run that made them, biggest first;
        a stale row's objects lost their name or their cell ran again, and "held by"
        says what pins them (Out[N], a list, the last error's traceback): %tf_reset
        drops those pins. Examples::

            %tf_memory
            report = %tf_memory -o    # a MemoryReport (.devices, .rows, .to_dict())
        """
        args = parse_argstring(self.tf_memory, line)
        with _usage_errors():
            report = self.session.memory(pins=not args.no_pins)
        return self._show(report, args.output)

    @magic_arguments()
    @argument("module", help="The imported module to re-import, e.g. mymodel or pkg.model.")
    @argument("-o", "--output", action="store_true", help="Return the ReloadReport object.")
    @line_magic
    def tf_reload(self, line: str = "") -> ReloadReport | None:
        """Re-import a module that builds TF objects at import time; rebind your names.

        After editing model.py, `%tf_reload model` re-executes it with the Keras names
        it got the first time, and `from model import net` style names in the notebook
        now point to the new objects; the old ones are released. Example::

            from mymodel import model
            %tf_reload mymodel      # `model` is now the edited file's model
        """
        args = parse_argstring(self.tf_reload, line)
        with _usage_errors():
            report = self.session.reload(args.module)
        return self._show(report, args.output)

    @magic_arguments()
    @argument("--text", action="store_true", help="Print the text view, even in a notebook.")
    @line_magic
    def tf_dashboard(self, line: str = "") -> None:
        """Show a live dashboard of TF state that updates after every cell.

        Headline numbers (variables, models, ops, traces, TF memory per device, RSS)
        with their change in the last cell, a chart of the last 50 runs (re-runs
        marked), the per-cell table of %tf_graph_stats, stale objects on demand, and
        Refresh / Reset / Hard reset buttons (Hard reset shows its plan and asks
        first). A new %tf_dashboard replaces the previous one. Without a widget
        frontend (terminal IPython) it prints the text view. Examples::

            %tf_dashboard
            %tf_dashboard --text   # the text view, e.g. for a log
        """
        args = parse_argstring(self.tf_dashboard, line)
        self.session.show_dashboard(widgets=False if args.text else None)
