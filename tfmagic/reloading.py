"""``reload(module)`` (``%tf_reload``): re-import a module that builds TF objects at import.

``importlib.reload`` alone leaves the notebook's ``from model import model`` bound to the
old object, and the new model gets drifted Keras names (``dense_7``). Here the module is
re-executed with the Keras name counters it saw the first time (so it builds the same
names), in a fresh graph in TF1 graph mode, and every notebook name that was bound to
one of the module's attributes is re-bound to the new value.
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tfmagic import collector, frameworks, probe, render
from tfmagic.errors import ArgumentError
from tfmagic.isolation import Isolation
from tfmagic.outputs import drop_output_pins, user_items
from tfmagic.probe import Snapshot


class NotImported(ArgumentError):
    """The module was never imported in this process."""


@dataclass(repr=False)  # keep LinesReport's text form in IPython
class ReloadReport(render.LinesReport):
    """What ``%tf_reload`` did: the names it re-bound and TF state before → after."""

    css_class = "tfmagic-reload"

    module: str
    before: Snapshot
    after: Snapshot
    rebound: dict[str, str] = field(default_factory=dict)  # notebook name → module attribute
    seconds: float = 0.0

    def lines(self) -> list[str]:
        names = ", ".join(
            name if name == attr else f"{name} (= {self.module}.{attr})"
            for name, attr in self.rebound.items()
        )
        return [
            f"tfmagic reloaded {self.module} in {self.seconds * 1000:.0f} ms; "
            f"rebound: {names or 'no notebook names'}",
            f"TF state before → after: {render.snapshot_change(self.before, self.after)}",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "rebound": dict(self.rebound),
            "seconds": self.seconds,
        }


def reload(name: str, shell: Any, isolation: Isolation) -> ReloadReport:
    module = sys.modules.get(name)
    if not isinstance(module, ModuleType):
        raise NotImported(
            f"module {name!r} is not imported here; import it first, e.g. `import {name}`"
        )
    started = time.perf_counter()
    user_ns = shell.user_ns if shell is not None else {}
    hidden = shell.user_ns_hidden if shell is not None else {}
    bindings = _bindings(module, user_items(user_ns, hidden))
    old_values = {id(getattr(module, attr, None)) for attr in bindings.values()}
    before = probe.snapshot()
    # Like an isolated cell: a fresh graph in TF1 graph mode, the previous reload's
    # sessions closed; and Keras names counted from zero, as on the first import.
    with isolation.run(f"module {name}", shell, clean_names=True, collect=False):
        module = importlib.reload(module)
    for user_name, attr in bindings.items():
        if hasattr(module, attr):
            user_ns[user_name] = getattr(module, attr)
    if shell is not None:
        drop_output_pins(shell, lambda value: id(value) in old_values)
    # On demand (%tf_reload), never per cell; one collection for the old objects (cycles)
    # and the previous reload's, which the isolated run left to this one.
    collector.collect_and_prune()
    return ReloadReport(
        module=name,
        before=before,
        after=probe.snapshot(),
        rebound=bindings,
        seconds=time.perf_counter() - started,
    )


def _bindings(module: ModuleType, user_names: list[tuple[str, Any]]) -> dict[str, str]:
    """Notebook names to re-bind: bound to one of the module's attributes
    (``from m import model as net``), or to an older version of one under the same name
    (after a plain ``importlib.reload`` the module's attribute is already new)."""
    attrs = {
        attr: value
        for attr, value in vars(module).items()
        if not attr.startswith("__") and not isinstance(value, (ModuleType, int, str, bool))
    }
    by_id = {id(value): attr for attr, value in attrs.items()}
    tf_types = frameworks.tf_types()
    bindings = {}
    for name, value in user_names:
        if id(value) in by_id:
            bindings[name] = by_id[id(value)]
        elif name in attrs and tf_types and isinstance(value, tf_types):
            if type(value) is type(attrs[name]):
                bindings[name] = name
    return bindings
