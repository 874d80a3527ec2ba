"""``TFMagics``: parse the arguments, call the core, render. Nothing else lives here."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Int, observe

from tfmagic import probe
from tfmagic.stats import GraphStats, NoSuchCell, select
from tfmagic.tracker import CellTracker


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
    history_limit = Int(1000, help="How many cell runs to keep in the history.").tag(config=True)

    def __init__(self, shell: Any, tracker: CellTracker, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.tracker = tracker
        tracker.warn_on_growth = self.warn_on_growth
        self._resize_history(self.history_limit)

    @observe("warn_on_growth")
    def _warn_changed(self, change: Any) -> None:
        self.tracker.warn_on_growth = change.new

    @observe("history_limit")
    def _limit_changed(self, change: Any) -> None:
        self._resize_history(change.new)

    def _resize_history(self, limit: int) -> None:
        from collections import deque

        if limit < 1:
            raise UsageError("TFMagics.history_limit must be at least 1.")
        self.tracker.history = deque(self.tracker.history, maxlen=limit)

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
    @argument("-o", "--output", action="store_true", help="Return the GraphStats object.")
    @line_magic
    def tf_graph_stats(self, line: str = "") -> GraphStats | None:
        """Show what each cell run did to TF state: variables, ops, traces, names, models, memory.

        The first line is the state now; each row is one cell run with its changes
        (↻N marks the Nth run of the same cell). Examples::

            %tf_graph_stats            # all recorded cells
            %tf_graph_stats -n 5       # the last five
            %tf_graph_stats --cell 12  # every run of the cell that ran as In[12]
            stats = %tf_graph_stats -o # a GraphStats object (.to_dict(), .records)
        """
        args = parse_argstring(self.tf_graph_stats, line)
        if args.last is not None and args.last < 0:
            raise UsageError("-n/--last takes a count of 0 or more, e.g. %tf_graph_stats -n 5")
        try:
            records = select(self.tracker.history, cell=args.cell, last=args.last)
        except NoSuchCell as e:
            raise UsageError(
                f"No recorded cell ran as In[{args.cell}]; "
                "%tf_graph_stats lists the ones there are."
            ) from e
        stats = GraphStats(records, probe.snapshot())
        if args.output:
            return stats
        display(stats)
        return None
