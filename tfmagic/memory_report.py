"""``memory()`` (``%tf_memory``): TF memory per device, and who holds it, by cell run.

(Not named ``memory``: importing a submodule of that name would replace ``tfmagic.memory``.)

Per device: the allocator's bytes in use and its peak now, and the highest per-cell
peak recorded (``CellRecord.peak_memory``). Then the live variables grouped by the
cell run that made them — from the registry's live sets and the births recorded
after each cell, so grouping never walks the heap — biggest first. A group is
*stale* when its objects lost the name they were made for or their cell ran again
since (``pins.is_stale``; a variable of a Keras model is as stale as its model), or
when only the last error's traceback keeps them (``last_error.orphans``). For stale
groups, ``pinned_by`` says what keeps them alive (``pins.pin_paths``: a bounded walk
from the user's roots, on demand only, as ``stale()`` does). Variables made before
tracking began (or outside any recorded cell) are one row of their own.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tfmagic import births, collector, render
from tfmagic.records import CellRecord, cell_label
from tfmagic.registry import REGISTRY, Registry

RunsOf = Callable[[str], int]
MAX_PINS = 4
# Tensors smaller than this are not worth a line (a traceback's shape tensors, scalars).
TENSOR_WORTH_NAMING = 1 << 20


@dataclass(frozen=True)
class DeviceMemory:
    """One device's TF allocator now, and the highest per-cell peak recorded on it."""

    device: str
    current: int
    peak: int
    highest_cell_peak: int | None = None
    highest_cell: str | None = None  # "In[5]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "current": self.current,
            "peak": self.peak,
            "highest_cell_peak": self.highest_cell_peak,
            "highest_cell": self.highest_cell,
        }


@dataclass(frozen=True)
class MemoryRow:
    """The live variables one cell run made (its stale or its live part)."""

    execution_count: int | None
    run_index: int | None  # None: made before tracking began
    label: str
    variables: int
    variable_bytes: int
    stale: bool = False
    pinned_by: tuple[str, ...] = ()  # stale rows, when pins were looked for
    names: tuple[str, ...] = ()  # user names bound to its models or variables now
    cell_key: str | None = None

    @property
    def before_tracking(self) -> bool:
        return self.run_index is None

    @property
    def where(self) -> str:
        if self.before_tracking:
            return "objects made before tracking began"
        cell = "a cell" if self.execution_count is None else f"In[{self.execution_count}]"
        return f"{cell} run {self.run_index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_count": self.execution_count,
            "run_index": self.run_index,
            "label": self.label,
            "variables": self.variables,
            "variable_bytes": self.variable_bytes,
            "stale": self.stale,
            "pinned_by": list(self.pinned_by),
            "names": list(self.names),
            "before_tracking": self.before_tracking,
        }


@dataclass(frozen=True)
class ErrorHold:
    """What the last error's failing frames hold: TF objects, and eager tensor bytes."""

    label: str  # "the last error's traceback (In[7])"
    objects: tuple[str, ...]
    tensor_bytes: int

    def summary(self) -> str:
        held = list(self.objects)
        if self.tensor_bytes >= TENSOR_WORTH_NAMING:
            held.append(f"tensors of {render.fmt_bytes(self.tensor_bytes)}")
        return f"{self.label} holds {', '.join(held)}"

    def __str__(self) -> str:
        return f"{self.summary()}: %tf_reset drops it"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "objects": list(self.objects),
            "tensor_bytes": self.tensor_bytes,
        }


@dataclass(frozen=True, repr=False)  # keep LinesReport's text form in IPython
class MemoryReport(render.LinesReport):
    """What ``%tf_memory`` shows: devices now, then live variables by cell run."""

    css_class = "tfmagic-memory"

    devices: tuple[DeviceMemory, ...] = ()
    rows: tuple[MemoryRow, ...] = ()
    last_error: ErrorHold | None = None
    named_tensors: tuple[tuple[str, int], ...] = ()  # (user name, bytes) of big eager tensors
    tensorflow: bool = True
    peak_tracking: bool = True  # the peak counters are reset before each cell
    pins_looked_for: bool = True

    @property
    def stale_rows(self) -> tuple[MemoryRow, ...]:
        return tuple(r for r in self.rows if r.stale)

    def head(self) -> list[str]:
        if not self.tensorflow:
            return ["TF memory: TensorFlow is not imported yet (tracking starts when it is)."]
        if not self.devices:
            devices = "no allocator stats yet (TensorFlow's runtime is not initialised)"
        else:
            since = "since this cell began" if self.peak_tracking else "(the allocator's counter)"
            devices = "; ".join(
                f"{d.device} {render.fmt_bytes(d.current)} in use, peak "
                f"{render.fmt_bytes(d.peak)} {since}"
                + (
                    f", highest cell peak {render.fmt_bytes(d.highest_cell_peak)} "
                    f"({d.highest_cell})"
                    if d.highest_cell_peak is not None
                    else ""
                )
                for d in self.devices
            )
        count = sum(r.variables for r in self.rows)
        size = sum(r.variable_bytes for r in self.rows)
        head = [f"TF memory now: {devices}"]
        if self.rows:
            head.append(
                f"Live variables {count} ({render.fmt_bytes(size)}) by the cell run that "
                "made them, biggest first:"
            )
        else:
            head.append("No live variables.")
        return head

    def table(self) -> tuple[list[str], list[list[str]]]:
        headers = ["In", "run", "cell", "vars", "var bytes", "", "held by"]
        return headers, [_row_cells(r, self.pins_looked_for) for r in self.rows]

    def tail(self) -> list[str]:
        out = []
        if self.named_tensors:
            out.append(
                "tensors bound to your names: "
                + ", ".join(f"{n} {render.fmt_bytes(b)}" for n, b in self.named_tensors)
            )
        if self.stale_rows:
            out.append(
                "stale: no name of yours reaches them; %tf_reset drops the output-history "
                "and traceback pins listed (--hard also deletes names that hold them)."
            )
        if self.last_error is not None:
            out.append(str(self.last_error))
        return out

    def lines(self) -> list[str]:
        lines = self.head()
        if self.rows:
            headers, rows = self.table()
            lines += render.text_table(rows, headers).splitlines()
        return lines + self.tail()

    def _repr_html_(self) -> str:
        esc = html.escape
        out = [
            "<style>.tfmagic-memory td,.tfmagic-memory th{padding:2px 6px;text-align:right;"
            "font-family:monospace}.tfmagic-memory td.cell,.tfmagic-memory td.pins"
            "{text-align:left}.tfmagic-memory tr.stale td{background:#fff3cd}</style>",
            '<div class="tfmagic-memory">',
            *(f"<p>{esc(line)}</p>" for line in self.head()),
        ]
        if self.rows:
            headers, rows = self.table()
            out.append("<table><thead><tr>")
            out += [f"<th>{esc(h)}</th>" for h in headers]
            out.append("</tr></thead><tbody>")
            for row, cells in zip(self.rows, rows, strict=True):
                out.append(f'<tr class="{"stale" if row.stale else ""}">')
                for i, cell in enumerate(cells):
                    css = ' class="cell"' if i == 2 else ' class="pins"' if i == 6 else ""
                    title = f' title="{esc((row.cell_key or "")[:500])}"' if i == 2 else ""
                    out.append(f"<td{css}{title}>{esc(cell)}</td>")
                out.append("</tr>")
            out.append("</tbody></table>")
        out += [f"<p>{esc(line)}</p>" for line in self.tail()]
        out.append("</div>")
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensorflow": self.tensorflow,
            "peak_tracking": self.peak_tracking,
            "devices": {d.device: d.to_dict() for d in self.devices},
            "rows": [r.to_dict() for r in self.rows],
            "last_error": self.last_error.to_dict() if self.last_error else None,
            "named_tensors": dict(self.named_tensors),
        }


def _row_cells(row: MemoryRow, pins_looked_for: bool) -> list[str]:
    if row.before_tracking:
        count, run = "", ""
    else:
        count = "" if row.execution_count is None else str(row.execution_count)
        run = f"↻{row.run_index}" if row.run_index and row.run_index > 1 else "1"
    if row.stale:
        held = (
            ", ".join(row.pinned_by)
            if row.pinned_by
            else ("nothing user-visible" if pins_looked_for else "(tfmagic.memory() looks)")
        )
    else:
        held = ", ".join(row.names)
    return [
        count,
        run,
        row.label,
        str(row.variables),
        render.fmt_bytes(row.variable_bytes),
        "stale" if row.stale else "",
        held,
    ]


# -- measuring --------------------------------------------------------------------
@dataclass
class _Group:
    key: tuple[Any, ...]
    birth: Any
    stale: bool
    variables: int = 0
    variable_bytes: int = 0
    holders: dict[int, Any] = field(default_factory=dict)  # what pins would point at


def measure(
    shell: Any,
    records: Iterable[CellRecord],
    runs_of: RunsOf,
    registry: Registry = REGISTRY,
    peak_tracking: bool = True,
    pins: bool = True,
) -> MemoryReport:
    """Measure now. ``pins`` also collects garbage and looks for what pins each stale
    group (a bounded walk, as ``stale()``); without it nothing is walked or collected."""
    records = list(records)
    if "tensorflow" not in registry.installed or "tensorflow" not in sys.modules:
        return MemoryReport(tensorflow=False, peak_tracking=peak_tracking, pins_looked_for=pins)
    from tfmagic import last_error
    from tfmagic import pins as pins_module
    from tfmagic.frameworks import tf_core

    if pins:
        collector.collect()  # what is merely unreachable holds nothing that matters
    user_ns = shell.user_ns if shell is not None else {}
    bound = births.user_names(shell) if shell is not None else {}
    orphan_ids = {id(obj) for _, obj, _ in last_error.orphans(shell, bound, registry)}

    model_stale: dict[int, bool] = {}

    def stale_model(model: Any) -> bool:
        key = id(model)
        if key not in model_stale:
            birth = registry.models.birth_of(model)
            model_stale[key] = key in orphan_ids or (
                key not in bound
                and birth is not None
                and pins_module.is_stale(model, birth, user_ns, runs_of)
            )
        return model_stale[key]

    groups: dict[tuple[Any, ...], _Group] = {}
    for variable in registry.variables:
        birth = registry.variables.birth_of(variable)
        holder: Any = variable
        if birth is None:
            stale = False
        elif birth.owner is not None:
            owner = birth.owner()
            if owner is None:
                stale = True  # its model is gone; an optimizer or a trace keeps it
            else:
                holder, stale = owner, stale_model(owner)
        else:
            stale = id(variable) in orphan_ids or (
                bool(birth.names)
                and id(variable) not in bound
                and pins_module.is_stale(variable, birth, user_ns, runs_of)
            )
        key = (None,) if birth is None else (birth.cell_key, birth.run_index, stale)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(key, birth, stale)
        group.variables += 1
        group.variable_bytes += tf_core.variable_bytes(variable)
        group.holders[id(holder)] = holder

    paths: dict[int, list[str]] = {}
    if pins:
        targets = {key for g in groups.values() if g.stale for key in g.holders}
        paths = pins_module.pin_paths(shell, targets) if shell is not None else {}
    labels = {(r.cell_key, r.run_index): r.label for r in records}
    rows = [_row(g, labels, bound, paths) for g in groups.values()]
    rows.sort(key=lambda r: (-r.variable_bytes, -r.variables))
    return MemoryReport(
        devices=_devices(records),
        rows=tuple(rows),
        last_error=_error_hold(shell, registry, bound),
        named_tensors=_named_tensors(shell),
        peak_tracking=peak_tracking,
        pins_looked_for=pins,
    )


def _row(
    group: _Group,
    labels: dict[tuple[str, int], str],
    bound: dict[int, list[str]],
    paths: dict[int, list[str]],
) -> MemoryRow:
    names: list[str] = []
    pinned: list[str] = []
    for key in group.holders:
        names += [n for n in bound.get(key, ()) if n not in names]
        pinned += [p for p in paths.get(key, ()) if p not in pinned]
    birth = group.birth
    if birth is None:
        return MemoryRow(
            None,
            None,
            "(made before tracking began, or outside any recorded cell)",
            group.variables,
            group.variable_bytes,
            names=tuple(names[:MAX_PINS]),
        )
    label = labels.get((birth.cell_key, birth.run_index)) or cell_label(birth.cell_key)
    return MemoryRow(
        birth.execution_count,
        birth.run_index,
        label,
        group.variables,
        group.variable_bytes,
        stale=group.stale,
        pinned_by=tuple(pinned[:MAX_PINS]),
        names=tuple(names[:MAX_PINS]),
        cell_key=birth.cell_key,
    )


def _devices(records: list[CellRecord]) -> tuple[DeviceMemory, ...]:
    from tfmagic.frameworks import tf_core

    highest: dict[str, tuple[int, str]] = {}
    for record in records:
        for device, peak in record.peak_memory.items():
            if device not in highest or peak > highest[device][0]:
                highest[device] = (peak, record.where)
    devices = []
    for device, info in tf_core.memory_info_by_device().items():
        top = highest.get(device)
        devices.append(
            DeviceMemory(
                device,
                info["current"],
                info["peak"],
                top[0] if top else None,
                top[1] if top else None,
            )
        )
    return tuple(devices)


def _error_hold(shell: Any, registry: Registry, bound: dict[int, list[str]]) -> ErrorHold | None:
    """What only the last error keeps: its frames' models and variables that no name of
    the user's is bound to, and their eager tensors."""
    from tfmagic import last_error
    from tfmagic.frameworks import tf_core

    last = last_error.find(shell) if shell is not None else None
    if last is None:
        return None
    objects: list[str] = []
    seen: set[int] = set()
    tensor_bytes = 0
    for _, value in last_error.held(last):
        if id(value) in seen or id(value) in bound:
            continue
        seen.add(id(value))
        size = tf_core.eager_tensor_bytes(value)
        if size is not None:
            tensor_bytes += size
        elif value in registry.models:
            objects.append(f"model {getattr(value, 'name', '?')}")
        elif value in registry.variables:
            birth = registry.variables.birth_of(value)
            if birth is None or birth.owner is None:  # a model's own are counted with it
                objects.append(f"variable {getattr(value, 'name', '?')}")
    if not objects and tensor_bytes < TENSOR_WORTH_NAMING:
        return None
    return ErrorHold(last.label, tuple(objects), tensor_bytes)


def _named_tensors(shell: Any, top: int = 5) -> tuple[tuple[str, int], ...]:
    """The biggest eager tensors bound to the user's own names (no walk: names only)."""
    from tfmagic.frameworks import tf_core
    from tfmagic.outputs import user_items

    if shell is None:
        return ()
    found = []
    for name, value in user_items(shell.user_ns, shell.user_ns_hidden):
        size = tf_core.eager_tensor_bytes(value)
        if size is not None and size >= TENSOR_WORTH_NAMING:
            found.append((name, size))
    found.sort(key=lambda item: -item[1])
    return tuple(found[:top])
