"""The one-line notices printed under a cell: re-run growth, stale captures, error hints.

Each is a tracker listener's body (wired by the session); each prints to stderr and
never touches the cell's own result or exception.
"""

from __future__ import annotations

import sys
from typing import Any

from tfmagic.records import CellRecord
from tfmagic.registry import Registry


def growth_note(record: CellRecord) -> None:
    """After a re-run that left more state alive than its previous run: say so."""
    if not record.is_rerun or record.raised:
        return  # a failed cell's error (and its hint) is the message
    from tfmagic.render import growth_warning

    grew = record.delta.grew()
    if record.isolated:
        # A new model traces new functions: expected, not something left behind.
        grew = [name for name in grew if name != "traces"]
    if grew:
        print(growth_warning(record, grew), file=sys.stderr)


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
