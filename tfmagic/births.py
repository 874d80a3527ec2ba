"""Where each TF object came from: the cell run that made it and the names it got.

Recorded after every cell for the objects that cell created (nothing else is looked
at), so that ``stale()`` can later tell which objects lost the name they were made for,
and which ``tf.function`` still captures the variables of a model that was re-built.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Any

from tfmagic.outputs import user_items
from tfmagic.records import CellRecord
from tfmagic.registry import Registry


@dataclass(frozen=True)
class Birth:
    cell_key: str
    run_index: int
    execution_count: int | None
    names: tuple[str, ...]  # user names bound to the object when its cell ended
    owner: weakref.ref[Any] | None = None  # for a variable: the Keras model it belongs to
    owner_label: str = ""

    @property
    def where(self) -> str:
        return f"In[{self.execution_count}]" if self.execution_count is not None else "a cell"


def user_names(shell: Any) -> dict[int, list[str]]:
    """id(value) → the user-visible names bound to it (IPython's own names left out)."""
    names: dict[int, list[str]] = {}
    for name, value in user_items(shell.user_ns, shell.user_ns_hidden):
        names.setdefault(id(value), []).append(name)
    return names


def record_births(registry: Registry, shell: Any, record: CellRecord) -> None:
    """Note the cell run and the user names of every TF object ``record``'s cell made."""
    newborn = {live.kind: live.take_newborn() for live in registry.kinds}
    if not any(newborn.values()):
        return
    names = user_names(shell)
    owners = variable_owners(registry) if newborn["variable"] else {}
    for live in registry.kinds:
        for obj in newborn[live.kind]:
            birth = Birth(
                record.cell_key,
                record.run_index,
                record.execution_count,
                tuple(names.get(id(obj), ())),
            )
            model = owners.get(id(obj))
            if model is not None:
                label = f"{getattr(model, 'name', 'model')} from {birth.where}"
                birth = replace(birth, owner=weakref.ref(model), owner_label=label)
            live.set_birth(obj, birth)


def variable_owners(registry: Registry) -> dict[int, Any]:
    """id(tf.Variable) → the live Keras model whose weights include it (outermost wins)."""
    owners: dict[int, Any] = {}
    for model in registry.models:
        for variable in model_variables(model):
            owners.setdefault(id(variable), model)
    return owners


def model_variables(model: Any) -> list[Any]:
    """The tf.Variables behind a Keras model's weights (Keras 3 wraps each in ``_value``)."""
    try:
        weights = list(model.weights)
    except Exception:  # noqa: BLE001 - an unbuilt or broken model has none to give
        return []
    return [getattr(w, "_value", w) for w in weights]
