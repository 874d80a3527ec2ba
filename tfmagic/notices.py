"""The one-line notices printed under a cell: re-run growth, stale captures, error hints.

Each is a tracker listener's body (wired by the session); each prints to stderr and
never touches the cell's own result or exception.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tfmagic.records import CellRecord
from tfmagic.registry import Registry


def growth_note(record: CellRecord, earlier: Iterable[CellRecord], shell: Any) -> None:
    """After a re-run that left more state alive than its previous run: say so, and name
    the ``Out[N]`` pins of the ``earlier`` runs' results (the cheap pins to know)."""
    if not record.is_rerun or record.raised:
        return  # a failed cell's error (and its hint) is the message
    from tfmagic.render import growth_warning

    grew = record.delta.grew()
    if record.isolated:
        # A new model traces new functions: expected, not something left behind.
        grew = [name for name in grew if name != "traces"]
    if grew:
        pins = _output_pins_of(record, earlier, shell) if shell is not None else []
        print(growth_warning(record, grew, pins), file=sys.stderr)


def _output_pins_of(record: CellRecord, earlier: Iterable[CellRecord], shell: Any) -> list[str]:
    from tfmagic import frameworks

    out = shell.user_ns.get("Out", {})
    counts = [
        r.execution_count
        for r in earlier
        if r.cell_key == record.cell_key and r is not record and r.execution_count in out
    ]
    types = frameworks.tf_types()
    return [f"Out[{n}]" for n in counts if frameworks.holds_tf_object(out[n], types)]


def stale_captures(
    called: list[Any], user_ns: dict[str, Any], runs_of: Any, registry: Registry
) -> None:
    """For each tf.function the cell called that trains a model nobody can see."""
    from tfmagic import pins

    for line in pins.capture_warnings(called, user_ns, runs_of, registry):
        print(line, file=sys.stderr)


def error_hint(error: BaseException, registry: Registry, record: CellRecord) -> None:
    """Under the traceback of a classic TF state error: what happened here, and the fix."""
    from tfmagic import hints

    for line in hints.hints_for(error, registry, record):
        print(line, file=sys.stderr)
