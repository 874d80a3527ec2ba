"""Loading and unloading: one tracker, one set of hooks, however often it is reloaded."""

from __future__ import annotations

import sys
from typing import Any

from tfmagic import frameworks
from tfmagic.isolation import ISOLATION
from tfmagic.magics import TFMagics
from tfmagic.registry import REGISTRY
from tfmagic.tracker import CellTracker

_tracker: CellTracker | None = None
_magics: TFMagics | None = None


def load(shell: Any) -> None:
    global _tracker, _magics
    if _tracker is not None:
        unload(_tracker.shell)  # a second load without unload must not double the hooks
    frameworks.start_tracking(REGISTRY)
    tracker = CellTracker(shell)
    magics = TFMagics(shell=shell, tracker=tracker, isolation=ISOLATION)
    tracker.register()
    shell.register_magics(magics)
    shell.configurables.append(magics)
    _tracker, _magics = tracker, magics


def unload(shell: Any) -> None:
    global _tracker, _magics
    dashboard = sys.modules.get("tfmagic.dashboard_widget")  # imported once one was shown
    if dashboard is not None:
        dashboard.close_active()  # its listener is on the tracker that goes away
    if _tracker is not None:
        _tracker.unregister()
    if _magics is not None:
        if _magics in shell.configurables:
            shell.configurables.remove(_magics)
        _magics.unregister_from(shell)
    frameworks.stop_tracking()
    _tracker = _magics = None


def active_tracker() -> CellTracker | None:
    return _tracker
