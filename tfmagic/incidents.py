"""tfmagic's own failures: recorded, never raised into a user's cell, shown once."""

from __future__ import annotations

import traceback
from dataclasses import dataclass


@dataclass(frozen=True)
class Incident:
    where: str
    error: str
    details: str

    def __str__(self) -> str:
        return (
            f"tfmagic: internal error in {self.where} ({self.error}); your cell is unaffected "
            "(traceback: tfmagic.incidents.all_incidents())."
        )


MAX_KEPT = 100  # distinct incidents kept; a failure repeating every cell must not pile up

_recorded: list[Incident] = []
_seen: set[tuple[str, str]] = set()
_unshown: list[Incident] = []


def record(where: str, exc: BaseException) -> Incident:
    incident = Incident(
        where=where,
        error=f"{type(exc).__name__}: {exc}",
        details="".join(traceback.format_exception(exc)),
    )
    key = (incident.where, incident.error)
    if key not in _seen and len(_recorded) < MAX_KEPT:
        _seen.add(key)
        _recorded.append(incident)
        _unshown.append(incident)
    return incident


def unshown() -> list[Incident]:
    """Incidents not yet shown; each distinct error is shown once per session."""
    fresh = list(_unshown)
    _unshown.clear()
    return fresh


def all_incidents() -> list[Incident]:
    return list(_recorded)
