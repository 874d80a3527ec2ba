"""The one error type for a caller's mistake; a magic turns it into a one-line UsageError."""

from __future__ import annotations


class ArgumentError(ValueError):
    """A bad argument to a tfmagic function (a negative count, an unknown name, …).

    The message is one line that says what to do; ``%tf_*`` magics show it as
    ``UsageError`` and the Python twins raise it as it is (a ``ValueError``).
    """
