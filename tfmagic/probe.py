"""``Snapshot``: an exact, cheap reading of TF/Keras process state.

Every count comes from the registry (O(1)) or from one TF call; nothing here walks
the heap or imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tfmagic import frameworks
from tfmagic.frameworks import tf1, tf_core
from tfmagic.metrics import Metric, by_key, declared, metric
from tfmagic.registry import REGISTRY, Registry


@dataclass(frozen=True)
class Snapshot:
    """TF/Keras state at one moment; the difference of two is a ``Snapshot`` of deltas.

    Each field but ``tensorflow`` is a metric, declared here once: how it is labelled
    and where it is shown (``tfmagic.metrics.Metric``), in display order. A new metric
    is a field here plus the line in ``snapshot()`` that reads it.

    ``variables``: live variable storage (``tf.Variable``; a Keras 3 variable wraps one
    and is counted once); ``variable_bytes``: their value sizes; ``models`` /
    ``layers``: the live Keras models and other layers the user built (Keras 3 and
    tf_keras; not the parts Keras makes itself, such as a Sequential's inner model);
    ``ops``: operations in every live user graph (the default graph, isolated cells'
    graphs, ``tf.Graph()``s; not ``tf.function`` traces); ``graphs``: those graphs;
    ``traces``: ``tf.function`` traces since
    tracking began; ``sessions``: open ``tf.compat.v1`` sessions; ``memory``: TF
    allocator bytes in use per device; ``rss``: bytes; ``names``: Keras auto-name
    counters (``dense`` → 3).
    """

    variables: int = metric(
        "variables",
        short="vars",
        warns=True,
        table="always",
        summary=True,
        dashboard=True,
        detail="variable_bytes",
    )
    variable_bytes: int = metric(
        "variable bytes", short="var bytes", unit="bytes", summary=True, dashboard=True
    )
    models: int = metric("models", warns=True, table="always", summary=True, dashboard=True)
    layers: int = metric("layers", summary=True)
    ops: int = metric("ops", warns=True, table="always", summary=True, dashboard=True)
    graphs: int = metric("graphs", summary=True)
    traces: int = metric("traces", warns=True, table="always", dashboard=True)
    sessions: int = metric("sessions", summary=True)
    memory: Mapping[str, int] = metric(
        "TF mem", unit="bytes", per="device", summary=True, dashboard=True
    )
    rss: int = metric("RSS", short="rss", unit="bytes", dashboard=True)
    names: Mapping[str, int] = metric("names", per="name", breakdown=True)
    tensorflow: bool = False

    def __sub__(self, earlier: Snapshot) -> Snapshot:
        metrics = declared(type(self))
        return type(self)(
            **{m.key: m.difference(getattr(self, m.key), getattr(earlier, m.key)) for m in metrics},
            tensorflow=self.tensorflow,
        )

    def grew(self) -> list[str]:
        """For a delta: the keys of the metrics that warn on growth and increased."""
        return [m.key for m in declared(type(self)) if m.warns and m.value(self) > 0]

    @property
    def memory_total(self) -> int:
        return sum(self.memory.values())

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for m in declared(type(self)):
            if m.per:
                data[m.key] = dict(getattr(self, m.key))
        return data


# Every metric, in display order.
METRICS: tuple[Metric, ...] = declared(Snapshot)
BY_KEY: Mapping[str, Metric] = by_key(Snapshot)


_statm: tuple[int, int] | None = None  # (pid, fd) of /proc/self/statm, reopened after fork


def _rss() -> int:
    """Resident set size. On Linux a pread of a kept-open statm (2 µs, vs 15 µs for psutil)."""
    global _statm
    pid = os.getpid()
    if _statm is None or _statm[0] != pid:
        try:
            _statm = (pid, os.open("/proc/self/statm", os.O_RDONLY))
        except OSError:
            import psutil

            return int(psutil.Process().memory_info().rss)
    pages = int(os.pread(_statm[1], 128, 0).split()[1])
    return pages * _PAGE


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def snapshot(registry: Registry = REGISTRY) -> Snapshot:
    """Read TF/Keras state now. Before TensorFlow is imported only ``rss`` is set."""
    if "tensorflow" not in registry.installed:
        return Snapshot(rss=_rss())
    names: dict[str, int] = {}
    for flavour in frameworks.keras_flavours():
        for prefix, count in flavour.name_counters().items():
            names[prefix] = names.get(prefix, 0) + count
    return Snapshot(
        variables=len(registry.variables),
        variable_bytes=registry.variables.total_bytes,
        models=len(registry.models),
        layers=len(registry.layers),
        ops=tf1.graph_ops(registry),
        graphs=len(registry.graphs),
        traces=registry.traces,
        sessions=len(tf1.open_sessions(registry)),
        memory=tf_core.memory_by_device(),
        rss=_rss(),
        names=names,
        tensorflow=True,
    )
