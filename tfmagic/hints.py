"""One or two lines after the classic TF state errors: what happened here, and the fix.

The exception itself is never changed; the hint is printed after IPython's traceback.
"""

from __future__ import annotations

import re

from tfmagic.frameworks import tf1
from tfmagic.records import CellRecord
from tfmagic.registry import REGISTRY, Registry

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
