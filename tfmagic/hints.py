"""One or two lines after the classic TF state errors: what happened here, and the fix.

The exception itself is never changed; the hint is printed after IPython's traceback.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tfmagic.frameworks import tf1
from tfmagic.records import CellRecord
from tfmagic.registry import REGISTRY, Registry

if TYPE_CHECKING:
    from tfmagic.memory_report import MemoryReport, MemoryRow

_ALREADY_EXISTS = re.compile(r"Variable (\S+) already exists, disallowed")

# (substrings of the error message, hint). Checked in order; the first match wins.
HINTS: tuple[tuple[str | tuple[str, ...], str], ...] = (
    (
        "must be from the same graph",
        "the tensors come from two graphs: one cell built ops in the default graph, another "
        "in its own (%%tf_isolated, `with graph.as_default()`). Build them in one graph, e.g. "
        "`with sess.graph.as_default():`, or re-run the cells that build them.",
    ),
    (
        (
            "graph is different from the session's graph",
            "is not an element of this graph",
            "The Session graph is empty",
        ),
        "the session was made for another graph (a re-run cell or %tf_reset made a new default "
        "graph). Make the session after the graph, e.g. `tf.compat.v1.Session(graph=...)`.",
    ),
    (
        "Graph is finalized",
        "the graph was finalized (graph.finalize() or a MonitoredSession); new ops need a new "
        "graph: run the cell under %%tf_isolated, or %tf_reset first.",
    ),
    (
        "Do not use tf.reset_default_graph() to clear nested graphs",
        "a graph is still entered (a `with graph.as_default()` block or an InteractiveSession). "
        "%tf_reset closes sessions and resets what it safely can instead.",
    ),
    (
        ("should be unique", "should have unique names", "is used 2 times in the model"),
        "Keras names were reused: clear_session() restarted the name counters while old layers "
        "were still alive. Use %tf_reset (it keeps live layers' names unique) or name the layers.",
    ),
    (
        "singleton tf.Variables created on the first call",
        "this tf.function made new variables on a later trace, usually because the model it "
        "uses was re-built by re-running its cell. Re-run the cell that defines the function too.",
    ),
    (
        (
            "Physical devices cannot be modified after being initialized",
            "Visible devices cannot be modified after being initialized",
            "Virtual devices cannot be modified after being initialized",
        ),
        "TensorFlow's runtime has already started (a cell ran a TF op before this one, or this "
        "configuration cell ran again after it did); device settings (visible devices, memory "
        "growth, virtual devices) only change before that, and nothing short of a restart undoes "
        "it. Restart the kernel and run this configuration in the first cell, before any TF op.",
    ),
    (
        (
            "This optimizer can only be called for the variables it was originally built with",
            "The optimizer cannot recognize variable",
        ),
        "the optimizer was built for an earlier model's variables: the model's cell was re-run "
        "(new variables) but the optimizer was not re-created. Re-run the cell that makes the "
        "optimizer (or calls compile()) after rebuilding the model, or make both in one cell.",
    ),
)


def hints_for(
    error: BaseException, registry: Registry = REGISTRY, record: CellRecord | None = None
) -> list[str]:
    """The hint for ``error`` raised by the cell run ``record`` (if one fits)."""
    message = str(error)
    match = _ALREADY_EXISTS.search(message)
    if match:
        return [_already_exists(error, match.group(1), registry, record)]
    for needles, hint in HINTS:
        if any(n in message for n in ((needles,) if isinstance(needles, str) else needles)):
            return [f"tfmagic: {hint}"]
    return []


def _already_exists(
    error: BaseException, name: str, registry: Registry, record: CellRecord | None
) -> str:
    """Who made the variable in the graph where the collision happened, and the fix for
    that case: code that builds its variables on every call fails within one cell run,
    where neither %%tf_isolated nor %tf_reset would help."""
    variable = tf1.colliding_variable(error, name)
    birth = registry.variables.birth_of(variable) if variable is not None else None
    if birth is None:
        return (
            f"tfmagic: `{name}` is already in this graph. Code that calls get_variable again "
            "adds to the same graph: build the variables once and reuse them, or run the cell "
            "under %%tf_isolated (or %tf_reset first)."
        )
    if record is not None and (birth.cell_key, birth.run_index) == (
        record.cell_key,
        record.run_index,
    ):
        return (
            f"tfmagic: `{name}` is already in this graph: this same run of {birth.where} "
            "created it, so the code makes its variables on every call. Build them once "
            "(e.g. in __init__) and only run them afterwards, or give each call a graph of "
            "its own (`with tf.Graph().as_default():`)."
        )
    return (
        f"tfmagic: `{name}` is already in this graph. It was created by {birth.where} "
        f"(run {birth.run_index} of that cell). Calling get_variable again adds to the same "
        "graph: run the failing cell under %%tf_isolated (or %tf_reset first)."
    )


# -- out of memory: who holds TF memory now --------------------------------------
def is_out_of_memory(error: BaseException) -> bool:
    """TF's ``ResourceExhaustedError`` (an allocator OOM), however Keras wrapped it."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return "ResourceExhaustedError" in names or "OOM when allocating" in str(error)


_OOM_REQUEST = re.compile(r"OOM when allocating tensor with shape\[([\d, ]*)\] and type (\w+)")
_DTYPE_BYTES = {
    "float": 4, "double": 8, "half": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int16": 2,
    "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1,
    "complex64": 8, "complex128": 16,
}  # fmt: skip


def requested_bytes(error: BaseException) -> int | None:
    """What the failed allocation asked for, from TF's ``OOM when allocating tensor with
    shape[...] and type ...`` message; None when the message does not say."""
    match = _OOM_REQUEST.search(str(error))
    if match is None or match.group(2) not in _DTYPE_BYTES:
        return None
    elements = 1
    for dim in filter(None, (d.strip() for d in match.group(1).split(","))):
        elements *= int(dim)
    return elements * _DTYPE_BYTES[match.group(2)]


def out_of_memory(
    report: MemoryReport, error: BaseException | None = None, top: int = 3
) -> list[str]:
    """The cell runs holding the most TF memory now, whether each is stale, and the fix."""
    from tfmagic.render import fmt_bytes

    in_use = ", ".join(f"{d.device} {fmt_bytes(d.current)}" for d in report.devices)
    head = "tfmagic: TensorFlow ran out of memory" + (f" ({in_use} in use)" if in_use else "")
    wanted = requested_bytes(error) if error is not None else None
    total = sum(d.current for d in report.devices)
    rows = [r for r in report.rows if r.variable_bytes][:top]
    holders = [_holder(r) for r in rows]
    holders += [f"`{n}` (a tensor, {fmt_bytes(b)})" for n, b in report.named_tensors[:top]]
    if report.last_error is not None:
        holders.append(report.last_error.summary())
    if holders:
        lines = [f"{head}. Most of it is held by {'; '.join(holders)}."]
    else:
        lines = [f"{head}; no live variables or named tensors hold much of it."]
    fixes = []
    if wanted is not None and wanted > total:
        fixes.append(
            f"the failed allocation alone asks for {fmt_bytes(wanted)}, more than all TF memory "
            "in use now: unless the device has that much room, make that tensor smaller (a "
            "smaller batch, shape or dtype) or check the shape it was given"
        )
    if any(r.stale or not r.names for r in rows) or report.last_error is not None:
        fixes.append(
            "%tf_reset frees what only the output history (Out[N], _) or an error's traceback "
            "keeps" + (", the stale runs among them" if report.stale_rows else "")
        )
    named = [n for r in rows if not r.stale for n in r.names]
    named += [n for n, _ in report.named_tensors[:top]]
    if named:
        shown = ", ".join(dict.fromkeys(named))
        fixes.append(
            f"your names {shown} hold the rest: `del` the ones you no longer need first "
            "(or %tf_reset --hard --keep NAME)"
        )
    if holders:
        fixes.append("tfmagic.memory() shows what pins each")
    return [*lines, "tfmagic: " + "; ".join(fixes) + "."] if fixes else lines


def _holder(row: MemoryRow) -> str:
    from tfmagic.render import fmt_bytes

    label = row.label if len(row.label) <= 40 else row.label[:39] + "…"
    what = f"{row.where} `{label}` ({fmt_bytes(row.variable_bytes)}"
    if row.stale:
        return what + ", stale)"
    if row.names:
        return what + f", bound to {', '.join(f'`{n}`' for n in row.names)})"
    return what + ")"
