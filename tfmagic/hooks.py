"""Every callable tfmagic wraps on a TF/Keras class, made invisible to the code that uses it.

Counting objects without walking the heap needs to see each one as it is made, and
neither TensorFlow nor Keras offers a construction hook that replaces nothing:
``tf.variable_creator_scope`` is per graph and per thread (it misses variables made in
a ``tf.function`` trace or another thread) and Keras has no hook at all. So the
constructors of a few base classes (and two methods) are wrapped, once, right after
TensorFlow or Keras is imported. Process-wide on purpose: a wrapper outlives
``%reload_ext``; wrapping again is a no-op.

A wrapper must be indistinguishable from the original to the code that inspects it:
Keras 3 builds a layer's default config from ``inspect.getfullargspec(cls.__init__)``,
which does not follow ``__wrapped__``. Each wrapper therefore carries the original's
``__name__``, ``__qualname__``, ``__doc__``, ``__module__``, ``__dict__``,
``__wrapped__`` and, as ``__signature__``, exactly the signature ``getfullargspec`` and
``inspect.signature`` report for the original. Exceptions pass through unchanged; a
failure of tfmagic's own callback is recorded as an incident, never raised.

TensorFlow records the Python stack of every graph op it makes and prints it in errors
("Detected at node ... defined at"). A wrapper that is on the stack while the original
makes ops (a RefVariable, or a tf_keras layer that adds weights in ``__init__``, in graph
mode) takes ``hide_frames``: a context the installer supplies that keeps this module's
frames out of what TF records. Other wrappers run while no op is made.

What is wrapped, and why (see the installers in ``frameworks/``):
- ``BaseResourceVariable.__init__``, ``RefVariable.__init__``: count variables and bytes;
- ``Function.__init__``: count ``tf.function``s and watch their trace caches;
- ``FunctionCache.add``: count traces as they are added;
- ``FunctionCache.lookup``: note which functions a cell called (stale-capture warnings;
  every call of a ``tf.function`` looks its trace up, and no op is made meanwhile);
- ``BaseSession.__init__``: count TF1 sessions;
- ``Graph.__init__``: count user graphs and the ops in all of them (not FuncGraphs);
- Keras 3 ``Layer.__new__`` (not ``__init__``: no frame of ours while it runs, so its
  warnings keep their ``stacklevel``), tf_keras ``Layer.__init__`` (both base classes):
  count layers and models.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from tfmagic import incidents

_wrappers: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()

# Returns a context to run the original in while TF records op stacks, or None.
FrameHider = Callable[[], AbstractContextManager[Any] | None]


def after_init(
    cls: type, on_new: Callable[[Any], None], hide_frames: FrameHider | None = None
) -> None:
    """Call ``on_new(instance)`` after every ``cls.__init__`` (subclasses included).

    Subclasses that define their own ``__init__`` reach this one through ``super()``;
    ``on_new`` may therefore see an instance twice, which ``LiveSet.add`` ignores.
    """
    after_call(cls, "__init__", on_new, hide_frames)


def after_call(
    cls: type, method: str, after: Callable[[Any], None], hide_frames: FrameHider | None = None
) -> None:
    """Call ``after(instance)`` after each call of ``cls.method`` that returns normally."""
    original = cls.__dict__[method]
    if original in _wrappers:
        return

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # keep tfmagic out of the user's tracebacks
        hider = hide_frames() if hide_frames is not None else None
        if hider is None:
            result = original(self, *args, **kwargs)
        else:
            with hider:
                result = original(self, *args, **kwargs)
        try:
            after(self)
        except Exception as exc:  # noqa: BLE001 - counting must never break the call
            incidents.record(f"tracking {cls.__name__}.{method}", exc)
        return result

    setattr(cls, method, disguise(wrapper, original))


def after_new(cls: type, on_new: Callable[[Any], None]) -> None:
    """Call ``on_new(instance)`` right after ``cls.__new__`` made it (before ``__init__``).

    Unlike ``after_init`` this adds no frame while ``__init__`` runs, so a warning
    raised there with ``stacklevel`` still points at the code that called it.
    """
    original = cls.__dict__["__new__"]
    function = original.__func__ if isinstance(original, staticmethod) else original
    if function in _wrappers:
        return

    def __new__(klass: type, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        instance = function(klass, *args, **kwargs)
        try:
            on_new(instance)
        except Exception as exc:  # noqa: BLE001 - counting must never break construction
            incidents.record(f"tracking {cls.__name__}.__new__", exc)
        return instance

    cls.__new__ = staticmethod(disguise(__new__, function))  # type: ignore[assignment]


def disguise(wrapper: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``wrapper`` look like ``original`` to ``inspect`` and to attribute readers."""
    functools.update_wrapper(wrapper, original)
    # getfullargspec() reads __signature__ but never follows __wrapped__; inspect.signature()
    # stops at the first __signature__. The original's unfollowed signature satisfies both.
    wrapper.__signature__ = inspect.signature(original, follow_wrapped=False)  # type: ignore[attr-defined]
    _wrappers.add(wrapper)
    return wrapper


def is_wrapper(function: object) -> bool:
    """True for a callable that tfmagic put on a TF/Keras class."""
    try:
        return function in _wrappers
    except TypeError:
        return False
