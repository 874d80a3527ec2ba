"""``reset()`` (``%tf_reset``): TF/Keras state back to a fresh start, keeping user work.

In order: drop output-history pins of TF objects and the last error's traceback
(``last_error.drop``); with ``hard``, delete user names bound
to TF objects; close open sessions; reset the TF1 default graph (keeping its seed);
clear each Keras flavour's session state (keeping the dtype policy and random seed) and
re-seed its name counters past the names of layers still alive; clear the eager kernel
cache; collect garbage. Inside a nested graph it skips what would assert, and says so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tfmagic import collector, frameworks, last_error, naming, probe, render
from tfmagic.errors import ArgumentError
from tfmagic.frameworks import tf1, tf_core
from tfmagic.outputs import drop_output_pins, output_pins, user_items
from tfmagic.probe import Snapshot
from tfmagic.registry import REGISTRY, Registry


class UnknownNames(ArgumentError):
    """``keep`` named variables that are not in the user namespace."""


@dataclass(repr=False)  # IPython prefers a class's own __repr__ to an inherited _repr_pretty_
class ResetReport(render.LinesReport):
    """What a reset did (or, with ``dry_run``, would do), before → after."""

    css_class = "tfmagic-reset"

    before: Snapshot
    after: Snapshot
    dry_run: bool = False
    hard: bool = False
    dropped_outputs: list[str] = field(default_factory=list)
    dropped_traceback: str | None = None  # "the last error's traceback (In[7])"
    deleted_names: list[str] = field(default_factory=list)
    kept_names: list[str] = field(default_factory=list)
    closed_sessions: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        flags = " --hard" if self.hard else ""
        plan = " (dry run: nothing changed)" if self.dry_run else ""
        out = [f"tfmagic reset{flags}{plan}: {render.snapshot_change(self.before, self.after)}"]
        for items, done, planned in (
            (self.dropped_outputs, "dropped output pins", "would drop output pins"),
            (self.deleted_names, "deleted", "would delete"),
            (self.closed_sessions, "closed", "would close"),
            (self.actions, "done", "would do"),
        ):
            if items:
                out.append(f"{planned if self.dry_run else done}: {', '.join(items)}")
        if self.dropped_traceback:
            verb = "would drop" if self.dry_run else "dropped"
            out.append(f"{verb} {self.dropped_traceback}")
        if self.kept_names:
            out.append(f"kept (still bound): {', '.join(self.kept_names)}")
        out += [f"not done: {s}" for s in self.skipped]
        if not self.dry_run:
            out.append(f"took {self.seconds * 1000:.0f} ms")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "dry_run": self.dry_run,
            "hard": self.hard,
            "dropped_outputs": self.dropped_outputs,
            "dropped_traceback": self.dropped_traceback,
            "deleted_names": self.deleted_names,
            "kept_names": self.kept_names,
            "closed_sessions": self.closed_sessions,
            "actions": self.actions,
            "skipped": self.skipped,
            "seconds": self.seconds,
        }


def reset(
    shell: Any = None,
    hard: bool = False,
    dry_run: bool = False,
    keep: Iterable[str] = (),
    registry: Registry = REGISTRY,
) -> ResetReport:
    started = time.perf_counter()
    keep = list(keep)
    user_ns = shell.user_ns if shell is not None else {}
    missing = [name for name in keep if name not in user_ns]
    if missing:
        raise UnknownNames(
            f"keep names unknown variables: {', '.join(missing)}; check the spelling"
        )
    before = probe.snapshot(registry)
    report = ResetReport(before=before, after=before, dry_run=dry_run, hard=hard)
    if "tensorflow" not in sys.modules:
        report.skipped.append("TensorFlow is not imported: there is nothing to reset")
        return report

    types = frameworks.tf_types()
    spared = {id(user_ns[name]) for name in keep}

    def pinned(value: Any) -> bool:
        return id(value) not in spared and frameworks.holds_tf_object(value, types)

    if shell is not None:
        find = output_pins if dry_run else drop_output_pins
        report.dropped_outputs = find(shell, pinned)
        # Its failing frames' locals (a model built in a function that raised) stay alive
        # until another error replaces it.
        report.dropped_traceback = last_error.drop(shell, dry_run=dry_run)
        bound = _names_bound_to_tf(shell, types)
        if hard:
            report.deleted_names = [n for n in bound if n not in keep]
            report.kept_names = [n for n in bound if n in keep]
            if not dry_run:
                for name in report.deleted_names:
                    del user_ns[name]
        else:
            report.kept_names = bound

    for session in tf1.open_sessions(registry):
        report.closed_sessions.append(_describe_session(session))
        if not dry_run:
            session.close()

    nested = tf1.graph_is_nested()
    if nested:
        report.skipped.append(
            "the default graph and Keras session were not reset: this ran inside "
            "`with graph.as_default()`; run %tf_reset outside that block"
        )
    else:
        report.actions.append("TF1 default graph reset (seed kept)")
        for flavour in frameworks.keras_flavours():
            report.actions.append(f"{flavour.LABEL} session cleared (settings kept)")
        if not dry_run:
            _reset_graph_and_keras()
    report.actions.append("eager kernel cache cleared")
    if not dry_run:
        if nested or not frameworks.keras_flavours():
            tf_core.clear_kernel_cache()  # else each flavour's clear_session() just did
        pruned = collector.collect_and_prune()  # dropped models and what TF's entries held
        if pruned:
            report.actions.append(f"{pruned} leaked custom-gradient entries pruned")
        if not nested:
            naming.reserve_live_names(registry)  # after the collection: only names still alive
        report.after = probe.snapshot(registry)
    report.seconds = time.perf_counter() - started
    return report


def _names_bound_to_tf(shell: Any, types: tuple[type, ...]) -> list[str]:
    """User names whose value is TF state or holds some (``[model]``, a ``History``)."""
    return [
        name
        for name, value in user_items(shell.user_ns, shell.user_ns_hidden)
        if frameworks.holds_tf_object(value, types)
    ]


def _describe_session(session: Any) -> str:
    kind = type(session).__name__
    try:
        ops = session.graph.version
    except Exception:  # noqa: BLE001 - a half-built session still gets named
        ops = "?"
    return f"{kind} (graph of {ops} ops)"


def _reset_graph_and_keras() -> None:
    def clear_keras() -> None:
        for flavour in frameworks.keras_flavours():
            flavour.clear_keeping_settings()  # each also resets the default graph

    tf1.reset_default_graph_keeping_seed(before_reset=clear_keras)
