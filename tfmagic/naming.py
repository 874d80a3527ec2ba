"""Keras auto-name counters (``dense`` → ``dense_3``): read, replay, keep clear of live names.

Keras 3 keeps one process-wide counter per prefix; tf_keras keeps them per graph. An
isolated cell replays its first run's counters so it gets the same names every time,
a reset restarts them, and either way a new layer must never get the name of a layer
that is still alive (``Sequential(old.layers[:-1] + [...])`` fails on duplicates).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from tfmagic import frameworks
from tfmagic.registry import Registry

Counters = dict[str, dict[str, int]]  # flavour label → prefix → count

_SUFFIX = re.compile(r"^(?P<base>.+?)(?:_(?P<n>\d+))?$")


def counters() -> Counters:
    """Every imported flavour's counters in the current default graph."""
    return {f.LABEL: f.name_counters() for f in frameworks.keras_flavours()}


def empty() -> Counters:
    return {f.LABEL: {} for f in frameworks.keras_flavours()}


def set_counters(values: Counters) -> None:
    for flavour in frameworks.keras_flavours():
        flavour.set_name_counters(dict(values.get(flavour.LABEL, {})))


def larger(a: Counters, b: Counters) -> Counters:
    """Per flavour and prefix, the larger count: names neither side has used yet."""
    merged: Counters = {}
    for label in {*a, *b}:
        x, y = a.get(label, {}), b.get(label, {})
        merged[label] = {k: max(x.get(k, 0), y.get(k, 0)) for k in {*x, *y}}
    return merged


def reserve_live_names(registry: Registry, exclude: Collection[int] = ()) -> None:
    """Make new auto-names skip the names of live layers (ids in ``exclude`` aside).

    O(live layers): runs in resets and isolated runs, never per cell.
    """
    reserved: dict[str, int] = {}
    for live in (registry.layers, registry.models, registry.internal):
        for layer in live:
            if id(layer) in exclude:
                continue
            match = _SUFFIX.match(str(getattr(layer, "name", "")))
            if match:
                base, n = match["base"], int(match["n"] or 0)
                reserved[base] = max(reserved.get(base, 0), n + 1)
    for flavour in frameworks.keras_flavours():
        now = flavour.name_counters()
        for base, n in reserved.items():
            now[base] = max(now.get(base, 0), n)
        flavour.set_name_counters(now)


def live_layer_ids(registry: Registry) -> set[int]:
    return {
        id(obj) for live in (registry.layers, registry.models, registry.internal) for obj in live
    }
