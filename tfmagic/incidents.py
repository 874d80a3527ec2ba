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
        return f"tfmagic: internal error in {self.where} ({self.error}); your cell is unaffected."


_recorded: list[Incident] = []
_shown = 0


def record(where: str, exc: BaseException) -> Incident:
    incident = Incident(
        where=where,
        error=f"{type(exc).__name__}: {exc}",
        details="".join(traceback.format_exception(exc)),
    )
    _recorded.append(incident)
    return incident


def unshown() -> list[Incident]:
    """Incidents not yet shown; each distinct error is shown only once per session."""
    global _shown
    new = _recorded[_shown:]
    _shown = len(_recorded)
    seen = {(i.where, i.error) for i in _recorded[: len(_recorded) - len(new)]}
    fresh = []
    for incident in new:
        if (incident.where, incident.error) not in seen:
            seen.add((incident.where, incident.error))
            fresh.append(incident)
    return fresh


def all_incidents() -> list[Incident]:
    return list(_recorded)
