"""IPython's output history pins results: ``Out[N]``, ``_N``, ``_``, ``__``, ``___``
(in ``user_ns`` and ``user_ns_hidden``), the display hook's own copies and the last
``ExecutionResult``. Finding and dropping those pins is what lets a re-built model die."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Predicate = Callable[[Any], bool]
UNDERSCORES = ("_", "__", "___")


def output_pins(shell: Any, pinned: Predicate) -> list[str]:
    """Where the output history holds a value for which ``pinned(value)`` is true."""
    return _walk(shell, pinned, drop=False)


def drop_output_pins(shell: Any, pinned: Predicate) -> list[str]:
    """Drop those pins (``Out[N]``/``_N`` deleted, ``_``-style names set to ``''``)."""
    return _walk(shell, pinned, drop=True)


def _walk(shell: Any, pinned: Predicate, drop: bool) -> list[str]:
    found: list[str] = []
    user_ns, hidden = shell.user_ns, shell.user_ns_hidden
    out = user_ns.get("_oh", {})
    for n, value in list(out.items()):
        if not pinned(value):
            continue
        found.append(f"Out[{n}]")
        if drop:
            del out[n]
            for ns in (user_ns, hidden):
                if ns.get(f"_{n}") is value:
                    del ns[f"_{n}"]
    hook = shell.displayhook
    for name in UNDERSCORES:
        for label, ns in ((name, user_ns), (f"user_ns_hidden['{name}']", hidden)):
            if name in ns and _is_output(ns[name]) and pinned(ns[name]):
                # Only IPython's own binding: a user's `_ = model` is theirs to keep.
                if ns is user_ns and name in hidden and hidden[name] is not ns[name]:
                    continue
                found.append(label)
                if drop:
                    ns[name] = ""
        if pinned(getattr(hook, name, None)):
            if drop:
                setattr(hook, name, "")
    last = getattr(shell, "last_execution_result", None)
    if last is not None and getattr(last, "result", None) is not None and pinned(last.result):
        if drop:
            last.result = None
    return found


def user_items(user_ns: dict[str, Any], hidden: dict[str, Any]) -> list[tuple[str, Any]]:
    """The user's own names: not ``_``-prefixed, not IPython's (``In``, ``Out``, ``exit``)."""
    return [
        (name, value)
        for name, value in list(user_ns.items())
        if not name.startswith("_") and not (name in hidden and hidden[name] is value)
    ]


def _is_output(value: Any) -> bool:
    return not (isinstance(value, str) and value == "")
