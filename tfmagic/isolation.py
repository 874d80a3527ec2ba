"""``isolated(cell_key)``: run a cell so that running it again leaves TF state as if once.

Per cell key we remember what its last run left behind. A new run first releases
that (its output-history pins, its sessions, its graph), then runs the body
- in a fresh ``tf.Graph`` in TF1 graph mode,
- with the Keras name counters of the cell's first run, so it gets the same
  auto-generated names every time, never a name a live layer of another cell has
  (afterwards the counters keep the larger of the two, for the cells after it),
and finally collects the garbage the previous run became.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tfmagic import collector, naming
from tfmagic.frameworks import tf1
from tfmagic.outputs import drop_output_pins
from tfmagic.registry import REGISTRY, Registry


@dataclass
class CellState:
    """What an isolated cell's runs share and what its last run left behind."""

    first_names: naming.Counters = field(default_factory=dict)  # at first start
    own_layers: set[int] = field(default_factory=set)  # ids of the layers the last run made
    runs: int = 0
    graph: Any = None  # the last run's graph (TF1 graph mode)
    sessions: list[weakref.ref[Any]] = field(default_factory=list)
    outputs: list[weakref.ref[Any] | Any] = field(default_factory=list)

    def output_objects(self) -> list[Any]:
        objects = [r() if isinstance(r, weakref.ref) else r for r in self.outputs]
        return [o for o in objects if o is not None]


class Isolation:
    """Remembers isolated cells by key (one per session); ``run(key)`` is the context manager."""

    def __init__(self, registry: Registry = REGISTRY) -> None:
        self.registry = registry
        self.cells: dict[str, CellState] = {}

    @contextlib.contextmanager
    def run(
        self, cell_key: str, shell: Any = None, clean_names: bool = False, collect: bool = True
    ) -> Iterator[CellState]:
        """``clean_names``: start every run from empty Keras name counters (as a fresh
        import would see them) instead of the counters of the first run. ``collect=False``:
        the caller collects the previous run's garbage itself (once, with its own)."""
        state = self.cells.get(cell_key)
        rerun = state is not None
        if state is None:
            state = self.cells[cell_key] = CellState()
        else:
            self._release(state, shell)
        state.runs += 1
        sessions_before = set(map(id, self.registry.sessions))
        layers_before = naming.live_layer_ids(self.registry)
        # Read before a fresh graph is entered: tf_keras keeps counters per graph.
        outer_names = naming.counters()
        if clean_names:
            state.first_names = naming.empty()
        elif not rerun:
            state.first_names = outer_names
        with contextlib.ExitStack() as stack:
            graph = tf1.fresh_graph_if_graph_mode()
            if graph is not None:
                stack.enter_context(graph.as_default())
            state.graph = graph
            naming.set_counters(state.first_names)
            if not clean_names:  # a reload builds the names a fresh import gives
                naming.reserve_live_names(self.registry, exclude=state.own_layers)
            try:
                yield state
            finally:
                inner_names = naming.counters()
                state.sessions = [
                    weakref.ref(s) for s in self.registry.sessions if id(s) not in sessions_before
                ]
                state.own_layers = naming.live_layer_ids(self.registry) - layers_before
        # Later cells continue past every name either side used.
        naming.set_counters(naming.larger(outer_names, inner_names))
        if rerun and collect:
            # The previous run's objects are cyclic garbage now, and so are the traced
            # graphs TF's gradient registry held for them once its entries are pruned.
            collector.collect_and_prune()

    def _release(self, state: CellState, shell: Any) -> None:
        previous = state.output_objects()
        if shell is not None and previous:
            drop_output_pins(shell, lambda value: any(value is o for o in previous))
        state.outputs.clear()
        for ref in state.sessions:
            session = ref()
            if session is not None and not getattr(session, "_closed", True):
                session.close()
        state.sessions.clear()
        state.graph = None

    def remember_output(self, cell_key: str, value: Any) -> None:
        """The run's displayed result, to be released when the cell runs again."""
        state = self.cells.get(cell_key)
        if state is None or value is None:
            return
        try:
            state.outputs.append(weakref.ref(value))
        except TypeError:
            state.outputs.append(value)  # e.g. a tuple: cannot be weakly referenced

    def forget(self) -> None:
        self.cells.clear()
