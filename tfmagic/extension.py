"""Loading and unloading: one ``Session`` per shell, however often it is reloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfmagic.magics import TFMagics
from tfmagic.session import Session

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

_loaded: tuple[Session, TFMagics] | None = None
_detached: Session | None = None  # the twins' session in a plain script (no IPython)


def load(shell: InteractiveShell) -> None:
    global _loaded
    if _loaded is not None:
        unload(_loaded[0].shell)  # a second load without unload must not double the hooks
    session = Session(shell)
    magics = TFMagics(shell=shell, session=session)
    session.start()
    shell.register_magics(magics)
    shell.configurables.append(magics)  # type: ignore[arg-type]  # typed too narrowly
    _loaded = (session, magics)


def unload(shell: InteractiveShell | None) -> None:
    global _loaded
    if _loaded is None:
        return
    session, magics = _loaded
    session.stop()
    if shell is not None:
        if magics in shell.configurables:
            shell.configurables.remove(magics)  # type: ignore[arg-type]
        magics.unregister_from(shell)
    _loaded = None


def loaded() -> Session | None:
    """The session of ``%load_ext tfmagic``, if it is loaded."""
    return _loaded[0] if _loaded is not None else None


def session() -> Session:
    """The loaded session, or else one without a shell (``tfmagic.reset()`` in a script)."""
    global _detached
    if _loaded is not None:
        return _loaded[0]
    if _detached is None:
        _detached = Session(None)
        _detached.start()
    return _detached
