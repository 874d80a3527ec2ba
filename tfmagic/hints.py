"""One or two lines after the classic TF state errors: what happened here, and the fix.

The exception itself is never changed; the hint is printed after IPython's traceback.
"""

from __future__ import annotations

import re

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


def hints_for(error: BaseException, registry: Registry = REGISTRY) -> list[str]:
    message = str(error)
    match = _ALREADY_EXISTS.search(message)
    if match:
        return [_already_exists(match.group(1), registry)]
    for needles, hint in HINTS:
        if any(n in message for n in ((needles,) if isinstance(needles, str) else needles)):
            return [f"tfmagic: {hint}"]
    return []


def _already_exists(name: str, registry: Registry) -> str:
    made_by = ""
    for variable in registry.variables:
        if getattr(variable, "name", "").split(":")[0] == name:
            birth = registry.variables.birth_of(variable)
            if birth is not None:
                made_by = f" It was created by {birth.where} (run {birth.run_index} of that cell)."
                break
    return (
        f"tfmagic: `{name}` is already in this graph.{made_by} Re-running a get_variable cell "
        "adds to the same default graph: run it under %%tf_isolated (or %tf_reset first)."
    )
