"""Record what TF/Keras code can observe, with or without tfmagic's tracking (issue 9).

``python tests/equivalence_probe.py FLAVOUR on|off`` runs in a fresh process and prints
one line, ``MARKER`` followed by JSON: ``compared`` (everything TF/Keras code could see:
signatures, names, configs, outcomes, warnings, values) and ``meta`` (whether tracking
was installed, counts, timings; never compared). ``on`` starts tfmagic's tracking
before TensorFlow is imported; ``off`` never imports tfmagic until the very end, when
it only asks ``hooks.is_wrapper`` about the callables tfmagic would wrap.

Flavours:
- ``keras3``: the public classes of keras.layers/models/optimizers/callbacks/losses/
  metrics, plus Keras behaviours (super() chains, layers without ``__init__``, saving);
- ``tf_keras``: the same for tf_keras (``TF_USE_LEGACY_KERAS=1``);
- ``tf_core``: the public classes of tf, tf.train and tf.data in eager mode, plus
  variables, tf.function, SavedModel, checkpoints and a Session in a ``tf.Graph``;
- ``tf1``: ``tf.compat.v1.disable_v2_behavior()``: the public classes of tf.compat.v1,
  tf.compat.v1.train and tf_keras.layers (graph-mode ``base_layer_v1`` layers), plus
  sessions, ``RefVariable``s and a tf_keras model trained in graph mode.

Everything that differs between two plain processes (addresses, the temp dir, seeds) is
normalised or fixed here, so ``off`` twice gives the same JSON.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib
import inspect
import json
import logging
import math
import os
import pickle
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "TFMAGIC-EQUIVALENCE:"
REPO = Path(__file__).resolve().parents[1]
FLAVOURS = ("keras3", "tf_keras", "tf_core", "tf1")

# Every callable tfmagic wraps (tfmagic/hooks.py and frameworks/*.py): module, class, attr.
HOOKED = (
    ("tensorflow.python.ops.resource_variable_ops", "BaseResourceVariable", "__init__"),
    ("tensorflow.python.ops.ref_variable", "RefVariable", "__init__"),
    ("tensorflow.python.eager.polymorphic_function.polymorphic_function", "Function", "__init__"),
    ("tensorflow.core.function.polymorphism.function_cache", "FunctionCache", "add"),
    ("tensorflow.core.function.polymorphism.function_cache", "FunctionCache", "lookup"),
    ("tensorflow.python.client.session", "BaseSession", "__init__"),
    ("keras.src.layers.layer", "Layer", "__new__"),
    ("tf_keras.src.engine.base_layer", "Layer", "__init__"),
    ("tf_keras.src.engine.base_layer_v1", "Layer", "__init__"),
)
# The hooked callable whose wrapping proves that tracking is on, per flavour.
PROOF = {
    "keras3": "keras.src.layers.layer.Layer.__new__",
    "tf_keras": "tf_keras.src.engine.base_layer.Layer.__init__",
    "tf_core": "tensorflow.python.ops.resource_variable_ops.BaseResourceVariable.__init__",
    "tf1": "tensorflow.python.client.session.BaseSession.__init__",
}

WORKDIR = tempfile.mkdtemp(prefix="tfmagic-equiv-")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")
_SITE = re.compile(r"/[^\s'\"]*?/site-packages/")
_PROTO_DEBUG = re.compile(r"goo\.gle/debug\w+\s*")
_OBJECT_ID = re.compile(r"(shared_object_id['\"]?:\s*)\d+")
# Notes on the process (not compared): which exceptions passed through tfmagic frames.
NOTES: dict[str, Any] = {"tfmagic_frames_in_tracebacks": []}


# ---------------------------------------------------------------------------- recording


def norm(text: str) -> str:
    """Text with what differs between two identical processes replaced."""
    text = text.replace(os.path.realpath(WORKDIR), "<tmp>").replace(WORKDIR, "<tmp>")
    text = _SITE.sub("<site>/", text).replace(str(REPO), "<repo>")
    text = _OBJECT_ID.sub(r"\1<id>", text)  # Keras serialises id(obj) for shared objects
    text = _PROTO_DEBUG.sub("goo.gle/debug? ", text)  # protobuf randomises debug strings
    return _ADDRESS.sub("0x?", text)


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-able, normalised rendering of a config, output or other value."""
    if depth > 12:
        return "<deep>"
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return norm(value)
    if isinstance(value, bytes):
        return norm(repr(value))
    if isinstance(value, dict):
        return {str(key): jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item, depth + 1) for item in value]
    if type(value).__module__ == "numpy" or hasattr(value, "numpy"):
        with contextlib.suppress(Exception):
            import numpy as np

            array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
            if array.dtype.kind in "biuf":
                return {"array": jsonable(array.tolist(), depth + 1), "dtype": str(array.dtype)}
            return {"array": norm(repr(array.tolist()))[:500], "dtype": str(array.dtype)}
    return norm(repr(value))[:500]


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {norm(str(exc))[:2000]}"
    if exc.__cause__ is not None:
        text += f" (from {type(exc.__cause__).__qualname__})"
    frames = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
    if any(f"{os.sep}tfmagic{os.sep}" in name for name in frames):
        NOTES["tfmagic_frames_in_tracebacks"].append(text[:200])
    return text


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(f"{record.levelname}: {norm(record.getMessage())[:300]}")


def run(fn: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Call ``fn``; return its value and what a user would see: outcome, warnings, logs."""
    capture = _Capture()
    loggers = [logging.getLogger(), logging.getLogger("tensorflow")]
    for logger in loggers:
        logger.addHandler(capture)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, outcome = fn(), "ok"
        except Exception as exc:  # noqa: BLE001 - every outcome is data here
            value, outcome = None, error_text(exc)
        finally:
            for logger in loggers:
                logger.removeHandler(capture)
    record: dict[str, Any] = {"outcome": outcome}
    if caught:
        # Where a warning points (stacklevel) is part of what the user sees.
        record["warnings"] = [
            f"{w.category.__name__}: {norm(str(w.message))[:300]} @ {norm(w.filename)}:{w.lineno}"
            for w in caught
        ]
    if capture.messages:
        record["logs"] = capture.messages
    return value, record


def check(fn: Callable[[], Any]) -> dict[str, Any]:
    """``run`` for a check whose (JSON-able) value is part of the record."""
    value, record = run(fn)
    if record["outcome"] == "ok":
        record["value"] = jsonable(value)
    return record


def describe_callable(function: Any) -> dict[str, Any]:
    """What ``inspect`` (and TF's own tf_inspect) and attribute readers see of a callable."""
    from tensorflow.python.util import tf_inspect

    def unwrapped() -> dict[str, str]:
        inner = inspect.unwrap(function)
        return {"qualname": inner.__qualname__, "signature": str(inspect.signature(inner))}

    record = {
        "signature": check(lambda: str(inspect.signature(function))),
        "signature_unfollowed": check(
            lambda: str(inspect.signature(function, follow_wrapped=False))
        ),
        "getfullargspec": check(lambda: str(inspect.getfullargspec(function))),
        "tf_inspect.getfullargspec": check(lambda: str(tf_inspect.getfullargspec(function))),
        "unwrap": check(unwrapped),
        "repr": check(lambda: repr(function)),
        "type": check(lambda: type(function).__qualname__),
    }
    for attr in ("__name__", "__qualname__", "__doc__", "__module__", "__annotations__"):
        record[attr] = check(lambda attr=attr: getattr(function, attr))
    record["__dict__ keys"] = check(
        lambda: sorted(set(vars(function)) - {"__wrapped__", "__signature__"})
    )
    return record


def describe(obj: Any) -> dict[str, Any]:
    """An object as a user sees it: type, repr, name, config."""
    record: dict[str, Any] = {
        "type": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "repr": check(lambda: norm(repr(obj))[:300]),
    }
    if isinstance(getattr(type(obj), "name", None), property) or hasattr(obj, "name"):
        record["name"] = check(lambda: getattr(obj, "name", None))
    if callable(getattr(obj, "get_config", None)):
        record["config"] = check(obj.get_config)
    return record


_COUNTER = re.compile(r"_\d+$")


def _without_counters(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _COUNTER.sub("", v) if k == "name" and isinstance(v, str) else _without_counters(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_counters(v) for v in value]
    return value


def config_roundtrip(obj: Any) -> dict[str, Any]:
    """get_config → from_config → get_config; are the two configs the same?"""

    def roundtrip() -> str:
        config = obj.get_config()
        again = type(obj).from_config(config).get_config()
        first, second = jsonable(config), jsonable(again)
        if first == second:
            return "same"
        if _without_counters(first) == _without_counters(second):
            return "same but for name counters"
        keys = sorted(k for k in set(first) | set(second) if first.get(k) != second.get(k))
        return f"differs in {keys}"

    return check(roundtrip)


# ---------------------------------------------------------------------- class probes


def _double(x: Any) -> Any:
    return x * 2


def _mean_error(y_true: Any, y_pred: Any) -> Any:
    return y_pred - y_true


def _schedule(epoch: int, lr: float) -> float:
    return lr


def _tmp(name: str) -> str:
    return os.path.join(WORKDIR, name)


# Values for required constructor parameters, by parameter name (factories of the Keras
# module K). A class with a required parameter not named here is only tried with defaults.
FILL: dict[str, Callable[[Any], Any]] = {
    "units": lambda K: 2,
    "filters": lambda K: 2,
    "kernel_size": lambda K: 2,
    "rate": lambda K: 0.5,
    "target_shape": lambda K: (2,),
    "dims": lambda K: (1,),
    "pool_size": lambda K: 2,
    "output_size": lambda K: 2,
    "activation": lambda K: "relu",
    "axes": lambda K: 1,
    "stddev": lambda K: 0.1,
    "max_number": lambda K: 2,
    "n": lambda K: 2,
    "num_heads": lambda K: 2,
    "key_dim": lambda K: 2,
    "input_dim": lambda K: 3,
    "output_dim": lambda K: 2,
    "height": lambda K: 2,
    "width": lambda K: 2,
    "num_bins": lambda K: 3,
    "num_classes": lambda K: 2,
    "target_class_ids": lambda K: [0],
    "specificity": lambda K: 0.5,
    "sensitivity": lambda K: 0.5,
    "precision": lambda K: 0.5,
    "recall": lambda K: 0.5,
    "equation": lambda K: "ab,bc->ac",
    "output_shape": lambda K: 2,
    "scale": lambda K: 2.0,
    "factor": lambda K: 0.1,
    "height_factor": lambda K: 0.1,
    "width_factor": lambda K: 0.1,
    "learning_rate": lambda K: 0.01,
    "decay": lambda K: 0.9,
    "filepath": lambda K: _tmp("checkpoint.keras"),
    "filename": lambda K: _tmp("log.csv"),
    "backup_dir": lambda K: _tmp("backup"),
    "function": lambda K: _double,
    "fn": lambda K: _mean_error,
    "schedule": lambda K: _schedule,
    "layer": lambda K: K.layers.Dense(2),
    "cell": lambda K: K.layers.SimpleRNNCell(2),
    "cells": lambda K: [K.layers.SimpleRNNCell(2)],
    "layers": lambda K: [K.layers.Dense(2)],
    "inner_optimizer": lambda K: K.optimizers.SGD(),
    "initial_value": lambda K: 1.0,
    "dtype": lambda K: "float32",
    "shape": lambda K: (2,),
}


def public_classes(modules: dict[str, Any]) -> list[tuple[str, type, list[str]]]:
    """(name, class, aliases) for every public class of ``modules``, aliases deduplicated."""
    seen: dict[int, tuple[str, type, list[str]]] = {}
    for module_name, module in modules.items():
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            with contextlib.suppress(Exception):
                value = getattr(module, attr)
                if inspect.isclass(value):
                    name = f"{module_name}.{attr}"
                    if id(value) in seen:
                        seen[id(value)][2].append(name)
                    else:
                        seen[id(value)] = (name, value, [])
    return list(seen.values())


def probe_class(cls: type, K: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "class_signature": check(lambda: str(inspect.signature(cls))),
        "__init__": describe_callable(cls.__init__),
    }
    obj, record["construct"] = run(cls)
    kwargs: dict[str, Any] = {}
    if obj is None and record["construct"]["outcome"].startswith("builtins.TypeError"):
        required = _required(cls)
        missing = [name for name in required if name not in FILL]
        if required and not missing:
            kwargs = {name: FILL[name](K) for name in required}
            obj, record["construct_filled"] = run(lambda: cls(**kwargs))
            record["construct_filled"]["with"] = sorted(kwargs)
        else:
            record["construct_filled"] = {"outcome": f"not tried, unknown {missing}"}
    if obj is not None:
        record["object"] = describe(obj)
        if callable(getattr(obj, "get_config", None)):
            record["config_roundtrip"] = config_roundtrip(obj)
        copied, record["deepcopy"] = run(lambda: copy.deepcopy(obj))
        if copied is not None:
            record["deepcopy"]["object"] = describe(copied)
        _, record["pickle"] = run(lambda: pickle.loads(pickle.dumps(obj)))
        _close(obj)
    # A subclass that defines no __init__, constructed like the class itself.
    sub, record["subclass"] = run(lambda: type("Sub", (cls,), {})(**kwargs))
    if sub is not None:
        record["subclass"]["object"] = describe(sub)
        if callable(getattr(sub, "get_config", None)):
            record["subclass"]["config_roundtrip"] = config_roundtrip(sub)
        _close(sub)
    return record


def _required(cls: type) -> list[str]:
    try:
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _close(obj: Any) -> None:
    """Close sessions made by a probe so that they don't become later probes' defaults."""
    from tensorflow.python.client.session import BaseSession

    if isinstance(obj, BaseSession):
        with contextlib.suppress(Exception):
            obj.close()


def probe_classes(
    modules: dict[str, Any], K: Any, graph_per_class: bool
) -> tuple[dict[str, Any], dict[str, float]]:
    import tensorflow as tf

    records: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name, cls, aliases in public_classes(modules):
        start = time.perf_counter()
        try:
            # In graph mode a class may finalize or fill the default graph: give each its own.
            with tf.Graph().as_default() if graph_per_class else contextlib.nullcontext():
                records[name] = probe_class(cls, K)
        except Exception as exc:  # noqa: BLE001 - the probe itself must finish
            records[name] = {"probe failed": error_text(exc)}
        records[name]["aliases"] = aliases
        seconds[name] = time.perf_counter() - start
    return records, seconds


def plain(cls: type, attr: str) -> Any:
    """The function behind ``cls.attr`` as the class stores it (``__new__`` is a staticmethod)."""
    value = cls.__dict__[attr]
    return getattr(value, "__func__", value)


def probe_hooked() -> dict[str, Any]:
    """The callables tfmagic wraps, and every class whose attribute resolves to one."""
    records: dict[str, Any] = {}
    for module_name, class_name, attr in HOOKED:
        if module_name.split(".")[0] not in sys.modules:
            continue  # a flavour this process does not use
        cls = getattr(importlib.import_module(module_name), class_name)
        key = f"{module_name}.{class_name}.{attr}"
        records[key] = describe_callable(plain(cls, attr))
        inheritors = {}
        for sub in _subclasses(cls):
            if attr not in sub.__dict__ and getattr(sub, attr, None) is cls.__dict__[attr]:
                inheritors[f"{sub.__module__}.{sub.__qualname__}"] = {
                    "signature": check(
                        lambda sub=sub, attr=attr: str(inspect.signature(getattr(sub, attr)))
                    ),
                    "getfullargspec": check(
                        lambda sub=sub, attr=attr: str(inspect.getfullargspec(getattr(sub, attr)))
                    ),
                    "class_signature": check(lambda sub=sub: str(inspect.signature(sub))),
                }
        records[key + " inherited by"] = dict(sorted(inheritors.items()))
    return records


def _subclasses(cls: type) -> list[type]:
    seen, todo = {cls}, [cls]
    while todo:
        for sub in type.__subclasses__(todo.pop()):
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return sorted(seen - {cls}, key=lambda c: (c.__module__, c.__qualname__))


# ------------------------------------------------------------------ Keras behaviours


def keras_layers(K: Any, tf: Any) -> dict[str, type]:
    """The custom layers of the behaviours, defined for Keras module ``K``."""

    class Custom(K.layers.Layer):
        """A layer with its own __init__ that passes kwargs up the super() chain."""

        def __init__(self, units: int = 3, *, scale: float = 1.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units, self.scale = units, scale

        def build(self, input_shape: Any) -> None:
            self.w = self.add_weight(
                name="w", shape=(input_shape[-1], self.units), initializer="ones"
            )

        def call(self, x: Any) -> Any:
            return tf.matmul(x, self.w) * self.scale

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "units": self.units, "scale": self.scale}

    class AutoConfig(K.layers.Layer):
        """A layer with its own __init__ and no get_config (Keras 3 auto-configs it)."""

        def __init__(self, units: int = 3, *, scale: float = 1.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units, self.scale = units, scale

        def call(self, x: Any) -> Any:
            return x * self.scale

    class Scale(K.layers.Layer):
        def call(self, x: Any) -> Any:
            return 2 * x

    class Scale2(Scale):
        pass

    class Twice(K.Model):
        def call(self, x: Any) -> Any:
            return 2 * x

    return {
        "Custom": Custom,
        "AutoConfig": AutoConfig,
        "Scale": Scale,
        "Scale2": Scale2,
        "Twice": Twice,
    }


def keras_behaviours(K: Any, tf: Any, flavour: str) -> dict[str, Any]:
    import numpy as np
    from tensorflow.python.util import tf_inspect

    layers = keras_layers(K, tf)
    Custom, AutoConfig, Scale = layers["Custom"], layers["AutoConfig"], layers["Scale"]
    out: dict[str, Any] = {}
    ones = np.ones((2, 3), dtype="float32")

    # super().__init__ chain with kwargs.
    custom, out["custom construct"] = run(
        lambda: Custom(4, scale=0.5, name="custom", trainable=False, dtype="float64")
    )
    if custom is not None:
        out["custom"] = describe(custom)
        out["custom call"] = check(lambda: custom(ones.astype("float64")))
        out["custom weights"] = check(lambda: [w.name for w in custom.weights])
        out["custom trainable"] = check(lambda: custom.trainable)
        out["custom roundtrip"] = config_roundtrip(custom)
        out["custom deepcopy"] = check(lambda: copy.deepcopy(custom).get_config())
    out["custom bad kwarg"] = check(lambda: Custom(bogus=1))
    out["custom extra positional"] = check(lambda: Custom(1, 2))
    out["custom __init__"] = describe_callable(Custom.__init__)
    auto, out["autoconfig construct"] = run(lambda: AutoConfig(5, scale=2.0, name="auto"))
    if auto is not None:
        out["autoconfig"] = describe(auto)
        out["autoconfig roundtrip"] = config_roundtrip(auto)

    # Layers and a model without __init__: cls.__init__ is the base class's (the wrapper).
    for name in ("Scale", "Scale2", "Twice"):
        cls = layers[name]
        out[f"{name} __init__"] = describe_callable(cls.__init__)
        out[f"{name} signature"] = check(lambda cls=cls: str(inspect.signature(cls)))
        out[f"{name} tf_inspect"] = check(
            lambda cls=cls: str(tf_inspect.getfullargspec(cls.__init__))
        )
        obj, out[f"{name} construct"] = run(cls)
        if obj is not None:
            out[f"{name}"] = describe(obj)
            out[f"{name} bound __init__"] = check(
                lambda obj=obj: str(inspect.signature(obj.__init__))
            )
            out[f"{name} call"] = check(lambda obj=obj: obj(ones))
            if name != "Twice":
                out[f"{name} roundtrip"] = config_roundtrip(obj)
            out[f"{name} deepcopy"] = check(lambda obj=obj: describe(copy.deepcopy(obj)))
    scale_kw, out["Scale kwargs construct"] = run(
        lambda: Scale(name="s", trainable=False, dtype="float64")
    )
    if scale_kw is not None:
        out["Scale kwargs"] = describe(scale_kw)
        out["Scale kwargs roundtrip"] = config_roundtrip(scale_kw)
    out["Scale positional"] = check(lambda: Scale(True))
    out["Scale bad kwarg"] = check(lambda: Scale(bogus=1))
    out["Layer bad kwarg"] = check(lambda: K.layers.Layer(bogus=True))

    # Constructors that raise, and constructor warnings (where they point).
    out["Dense(units=-1)"] = check(lambda: K.layers.Dense(units=-1))
    out["Dense()"] = check(lambda: K.layers.Dense())
    out["Dense(2, bogus=1)"] = check(lambda: K.layers.Dense(2, bogus=1))
    out["Dense(2, input_shape=(3,))"] = check(lambda: describe(K.layers.Dense(2, input_shape=(3,))))
    out["Dense(2, input_dim=3)"] = check(lambda: describe(K.layers.Dense(2, input_dim=3)))
    out["Dropout(rate=2)"] = check(lambda: describe(K.layers.Dropout(rate=2)))
    out["Conv2D(0, 2)"] = check(lambda: K.layers.Conv2D(0, 2))
    out["Sequential([1])"] = check(lambda: K.Sequential([1]))
    out["Sequential(bogus=1)"] = check(lambda: K.Sequential(bogus=1))
    out["Model(bogus=1)"] = check(lambda: K.Model(bogus=1))
    out["Adam(bogus=1)"] = check(lambda: K.optimizers.Adam(bogus=1))
    out["Mean(bogus=1)"] = check(lambda: K.metrics.Mean(bogus=1))
    out.update(variable_errors(tf))

    # A tiny model: train, predict, save as .keras, load with custom_objects.
    x = np.linspace(-1, 1, 24, dtype="float32").reshape(8, 3)
    y = x.sum(axis=1, keepdims=True)
    model, out["model build"] = run(
        lambda: K.Sequential(
            [K.Input((3,)), K.layers.Dense(4, activation="relu"), Scale(), Custom(1)],
            name="tiny",
        )
    )
    if model is not None:
        out["model"] = describe(model)
        out["model compile"] = check(lambda: model.compile(optimizer="adam", loss="mse"))
        out["model fit"] = check(
            lambda: model.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False).history
        )
        out["model predict"] = check(lambda: model.predict(x, verbose=0))
        out["model weights"] = check(lambda: [(w.name, w.numpy()) for w in model.weights])
        summary: list[str] = []
        out["model summary"] = check(
            lambda: model.summary(print_fn=lambda *a, **k: summary.append(str(a[0])))
        )
        out["model summary text"] = jsonable(summary)
        path = _tmp("tiny.keras")
        out["model save"] = check(lambda: model.save(path))
        custom_objects = {"Scale": Scale, "Custom": Custom}
        loaded, out["model load"] = run(
            lambda: K.models.load_model(path, custom_objects=custom_objects)
        )
        if loaded is not None:
            out["loaded"] = describe(loaded)
            out["loaded predict"] = check(lambda: loaded.predict(x, verbose=0))
            out["loaded same predictions"] = check(
                lambda: bool(
                    np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
                )
            )
            out["loaded same weights"] = check(
                lambda: all(
                    np.array_equal(a, b)
                    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True)
                )
            )
            out["loaded evaluate"] = check(lambda: loaded.evaluate(x, y, verbose=0))
        out["model to_json"] = check(lambda: json.loads(model.to_json()))
        out["model from_json"] = check(
            lambda: describe(
                K.models.model_from_json(model.to_json(), custom_objects=custom_objects)
            )
        )
        out["model pickle"] = check(lambda: type(pickle.loads(pickle.dumps(model))).__name__)

    # A functional model's config round trip.
    def functional() -> Any:
        inputs = K.Input((3,), name="inputs")
        outputs = K.layers.Dense(2, name="head")(Scale(name="scale")(inputs))
        return K.Model(inputs, outputs, name="functional")

    fmodel, out["functional build"] = run(functional)
    if fmodel is not None:
        out["functional"] = describe(fmodel)
        out["functional from_config"] = check(
            lambda: describe(
                K.Model.from_config(fmodel.get_config(), custom_objects={"Scale": Scale})
            )
        )
        out["functional clone"] = check(lambda: describe(K.models.clone_model(fmodel)))
    out.update(lifetimes(K, tf))
    return out


def variable_errors(tf: Any) -> dict[str, Any]:
    return {
        "tf.Variable()": check(lambda: tf.Variable()),
        "tf.Variable(shape mismatch)": check(lambda: tf.Variable([1.0, 2.0], shape=(3,))),
        "tf.Variable(bad dtype)": check(lambda: tf.Variable(1.0, dtype="nonsense")),
        "tf.Variable(bad aggregation)": check(lambda: tf.Variable(1.0, aggregation="bogus")),
        "tf.Variable(on_read trainable)": check(
            lambda: tf.Variable(
                1.0, synchronization=tf.VariableSynchronization.ON_READ, trainable=True
            )
        ),
        "tf.Variable(bogus kwarg)": check(lambda: tf.Variable(1.0, bogus=1)),
        "tf.Variable(string)": check(lambda: describe(tf.Variable("text"))),
    }


def lifetimes(K: Any, tf: Any) -> dict[str, Any]:
    """Objects die as they would without tracking (weak references only)."""
    makers: dict[str, Callable[[], Any]] = {
        "variable": lambda: tf.Variable([1.0, 2.0]),
        "function": lambda: tf.function(lambda v: v + 1),
    }
    if K is not None:
        makers["layer"] = lambda: K.layers.Dense(2)
        makers["model"] = lambda: K.Sequential([K.Input((2,)), K.layers.Dense(1)])

    def freed(make: Callable[[], Any]) -> dict[str, bool]:
        obj = make()
        if isinstance(obj, tf.types.experimental.PolymorphicFunction):
            obj(tf.constant(1.0))
        ref = weakref.ref(obj)
        del obj
        without_gc = ref() is None
        gc.collect()
        return {"without gc": without_gc, "after gc": ref() is None}

    return {
        f"lifetime {name}": check(lambda make=make: freed(make)) for name, make in makers.items()
    }


# ----------------------------------------------------------------- TF core behaviours


def tf_core_behaviours(tf: Any) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}

    # Variables.
    variables = {
        "tf.Variable(1.0)": lambda: tf.Variable(1.0),
        "tf.Variable(list, name, trainable)": lambda: tf.Variable(
            [1, 2], name="v", trainable=False
        ),
        "tf.Variable(callable)": lambda: tf.Variable(lambda: tf.ones((2, 2))),
        "tf.Variable(float64)": lambda: tf.Variable(tf.zeros((2,)), dtype=tf.float64),
        "tf.Variable(shape None)": lambda: tf.Variable([1.0], shape=tf.TensorShape(None)),
        "tf.Variable(on_read)": lambda: tf.Variable(
            0.0,
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM,
        ),
    }
    for name, make in variables.items():
        variable, out[name] = run(make)
        if variable is not None:
            out[name]["object"] = describe(variable)
            out[name]["attrs"] = check(
                lambda v=variable: {
                    "value": v.numpy(),
                    "dtype": v.dtype.name,
                    "shape": str(v.shape),
                    "trainable": v.trainable,
                    "sync": str(v.synchronization),
                    "aggregation": str(v.aggregation),
                    "type": type(v).__qualname__,
                }
            )
            out[name]["deepcopy"] = check(lambda v=variable: copy.deepcopy(v).numpy())
    v = tf.Variable([1.0, 2.0], name="w")
    out["assign"] = check(lambda: v.assign_add([1.0, 1.0]).numpy())
    out["variable subclass"] = check(lambda: describe(type("Sub", (tf.Variable,), {})(3.0)))
    from tensorflow.python.ops import resource_variable_ops

    out["ResourceVariable subclass"] = check(
        lambda: describe(type("Sub", (resource_variable_ops.ResourceVariable,), {})(3.0))
    )
    out["UninitializedVariable"] = check(
        lambda: describe(
            resource_variable_ops.UninitializedVariable(shape=(2,), dtype=tf.float32, name="u")
        )
    )
    out.update(variable_errors(tf))

    # tf.function: tracing, retracing, signatures, errors, variables made in a trace.
    def add(x: Any, y: Any = 1) -> Any:
        """Adds."""
        return x + y

    fn = tf.function(add)
    out["function attrs"] = check(
        lambda: {
            "signature": str(inspect.signature(fn)),
            "name": fn.__name__,
            "doc": fn.__doc__,
            "type": type(fn).__qualname__,
            "python_function": fn.python_function.__qualname__,
        }
    )
    out["function calls"] = check(
        lambda: [
            fn(tf.constant(1.0)),
            fn(tf.constant(2.0)),
            fn(tf.constant([1, 2])),
            fn(3),
            fn(3),
            fn(tf.constant(1.0), y=tf.constant(5.0)),
        ]
    )
    out["function tracing count"] = check(fn.experimental_get_tracing_count)
    out["function concrete signatures"] = check(fn.pretty_printed_concrete_signatures)
    out["function concrete"] = check(
        lambda: str(
            fn.get_concrete_function(tf.TensorSpec([None], tf.float32)).structured_input_signature
        )
    )
    out["function bad call"] = check(lambda: fn())
    out["function bad kwarg"] = check(lambda: fn(1, z=2))

    sig = tf.function(lambda x: x * 2, input_signature=[tf.TensorSpec([2], tf.float32)])
    out["input_signature ok"] = check(lambda: sig(tf.constant([1.0, 2.0])))
    out["input_signature mismatch"] = check(lambda: sig(tf.constant([1.0, 2.0, 3.0])))

    @tf.function
    def raises(x: Any) -> Any:
        if x.shape[0] == 2:
            raise ValueError("two is not allowed")
        return x

    out["function raising"] = check(lambda: raises(tf.constant([1.0, 2.0])))

    state: dict[str, Any] = {}

    @tf.function
    def makes_variable(x: Any) -> Any:
        state.setdefault("v", tf.Variable(1.0))
        return state["v"] + x

    out["variable in trace"] = check(lambda: [makes_variable(1.0), makes_variable(2.0)])

    @tf.function
    def makes_variable_every_trace(x: Any) -> Any:
        return tf.Variable(1.0) + x

    out["variable every trace"] = check(lambda: makes_variable_every_trace(1.0))

    @tf.function(reduce_retracing=True)
    def shapes(x: Any) -> Any:
        return tf.reduce_sum(x)

    out["reduce_retracing"] = check(
        lambda: (
            [shapes(tf.ones((n,))) for n in (1, 2, 3, 4)]
            + [shapes.experimental_get_tracing_count()]
        )
    )
    out["function deepcopy"] = check(lambda: copy.deepcopy(fn)(tf.constant(1.0)))
    out["function pickle"] = check(lambda: type(pickle.loads(pickle.dumps(fn))).__qualname__)
    out["function subclass"] = check(
        lambda: type(type("Sub", (type(fn),), {})(add, "add")).__qualname__
    )

    class Counter(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="counter")
            self.count = tf.Variable(0, dtype=tf.int64, name="count")
            self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0]], name="w")

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def __call__(self, x: Any) -> Any:
            self.count.assign_add(1)
            return tf.matmul(x, self.w)

    counter, out["module construct"] = run(Counter)
    x = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    if counter is not None:
        out["module"] = check(
            lambda: {
                "name": counter.name,
                "variables": [(v.name, v.numpy()) for v in counter.variables],
                "trainable": [v.name for v in counter.trainable_variables],
                "submodules": len(counter.submodules),
                "call": counter(x),
            }
        )
        path = _tmp("saved_module")
        out["saved_model save"] = check(
            lambda: tf.saved_model.save(counter, path, signatures=counter.__call__)
        )
        loaded, out["saved_model load"] = run(lambda: tf.saved_model.load(path))
        if loaded is not None:
            out["saved_model loaded"] = check(
                lambda: {
                    "call": loaded(x),
                    "same": bool(np.array_equal(loaded(x).numpy(), counter(x).numpy())),
                    "variables": sorted((v.name, v.numpy().tolist()) for v in loaded.variables),
                    "signatures": sorted(loaded.signatures),
                    "serving": loaded.signatures["serving_default"](x=x),
                    "count": loaded.count.numpy(),
                }
            )
        ckpt_path = _tmp("ckpt/c")
        checkpoint = tf.train.Checkpoint(module=counter)
        out["checkpoint save"] = check(lambda: norm(checkpoint.write(ckpt_path)))
        out["checkpoint restore"] = check(
            lambda: (
                counter.w.assign(tf.zeros((2, 2))),
                checkpoint.read(ckpt_path).assert_consumed(),
                counter.w.numpy(),
            )[2]
        )

    # Gradients.
    def gradient() -> Any:
        w = tf.Variable([1.0, 2.0])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(w * w)
        return tape.gradient(loss, w)

    out["gradient"] = check(gradient)

    # A TF1 Session in a graph, in an eager process.
    def session_in_graph() -> Any:
        graph = tf.Graph()
        with graph.as_default():
            a = tf.compat.v1.placeholder(tf.float32, shape=(2,), name="a")
            v = tf.compat.v1.Variable([1.0, 2.0], name="v")
            out_ = a * v
            init = tf.compat.v1.global_variables_initializer()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(init)
            result = sess.run(out_, feed_dict={a: [3.0, 4.0]})
            default = tf.compat.v1.get_default_session() is sess
        return {
            "result": result,
            "default": default,
            "ops": [op.name for op in graph.get_operations()],
            "version": graph.version,
            "variable type": type(v).__qualname__,
            "closed": sess._closed,
        }

    out["session in graph"] = check(session_in_graph)
    out["session bad target"] = check(lambda: tf.compat.v1.Session("bogus://target"))
    out.update(lifetimes(None, tf))
    return out


# ------------------------------------------------------------------- TF1 behaviours


def tf1_behaviours(tf: Any, K: Any) -> dict[str, Any]:
    import numpy as np

    v1 = tf.compat.v1
    v1.reset_default_graph()
    v1.set_random_seed(0)  # a graph's seed goes with the graph
    out: dict[str, Any] = {}

    def graph_and_session() -> Any:
        graph = tf.Graph()
        with graph.as_default():
            x = v1.placeholder(tf.float32, shape=(None, 2), name="x")
            with v1.variable_scope("weight_def"):
                w = v1.get_variable("weights", shape=(2, 1), initializer=v1.ones_initializer())
            ref = v1.Variable([[0.5]], name="ref", use_resource=False)
            res = v1.Variable([[0.25]], name="res", use_resource=True)
            y = tf.matmul(x, w) * ref + res
            init = v1.global_variables_initializer()
        result: dict[str, Any] = {
            "types": [type(v).__qualname__ for v in (w, ref, res)],
            "names": [v.name for v in (w, ref, res)],
            "ops": [op.name for op in graph.get_operations()],
            "version": graph.version,
            "collections": sorted(graph.get_all_collection_keys()),
            "global variables": [v.name for v in graph.get_collection("variables")],
        }
        with v1.Session(graph=graph) as sess:
            result["uninitialized"] = check(lambda: sess.run(y, feed_dict={x: [[1.0, 2.0]]}))
            sess.run(init)
            result["run"] = sess.run(y, feed_dict={x: [[1.0, 2.0]]})
            result["default session"] = v1.get_default_session() is sess
            result["sess.graph"] = sess.graph is graph
            result["sess_str"] = sess.sess_str
            result["list_devices"] = [d.name for d in sess.list_devices()]
        result["closed run"] = check(lambda: sess.run(y, feed_dict={x: [[1.0, 2.0]]}))
        with graph.as_default(), v1.variable_scope("weight_def"):
            result["reuse error"] = check(lambda: v1.get_variable("weights", shape=(2, 1)))
        return result

    out["graph and session"] = check(graph_and_session)

    def default_graph() -> Any:
        x = v1.placeholder(tf.float32, shape=(2,), name="dx")
        v = v1.Variable([2.0, 3.0], name="dv")
        sess = v1.Session()
        sess.run(v.initializer)
        value = sess.run(x * v, feed_dict={x: [1.0, 1.0]})
        sess.close()
        return {
            "value": value,
            "type": type(v).__qualname__,
            "version": v1.get_default_graph().version,
        }

    out["default graph"] = check(default_graph)

    def interactive() -> Any:
        sess = v1.InteractiveSession()
        value = tf.constant(3.0) * 2
        result = {"eval": value.eval(), "default": v1.get_default_session() is sess}
        sess.close()
        return result

    out["interactive session"] = check(interactive)
    out["session config"] = check(
        lambda: describe(
            v1.Session(
                config=v1.ConfigProto(intra_op_parallelism_threads=1, allow_soft_placement=True)
            )
        )
    )
    out["session bad target"] = check(lambda: v1.Session("bogus://target"))
    out["session bad graph"] = check(lambda: v1.Session(graph=1))
    out["session bad config"] = check(lambda: v1.Session(config=1))

    class MySession(v1.Session):
        def __init__(self, *args: Any, tag: str = "t", **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tag = tag

    out["session subclass super chain"] = check(
        lambda: {"tag": MySession(tag="x").tag, "signature": str(inspect.signature(MySession))}
    )
    out["session subclass no init"] = check(
        lambda: {
            "signature": str(inspect.signature(type("Sub", (v1.Session,), {}))),
            "object": describe(type("Sub", (v1.Session,), {})()),
        }
    )
    from tensorflow.python.client import session as session_lib

    out["BaseSession subclass no init"] = check(
        lambda: {
            "signature": str(inspect.signature(type("Sub", (session_lib.BaseSession,), {}))),
            "object": describe(type("Sub", (session_lib.BaseSession,), {})()),
        }
    )
    from tensorflow.python.ops import ref_variable

    out["RefVariable direct"] = check(
        lambda: describe(ref_variable.RefVariable([1.0], name="direct"))
    )
    out["RefVariable bad"] = check(lambda: ref_variable.RefVariable())
    out["RefVariable subclass no init"] = check(
        lambda: describe(type("Sub", (ref_variable.RefVariable,), {})([1.0]))
    )
    out.update(variable_errors(tf))

    # tf_keras in graph mode: layers are base_layer_v1 layers, training runs in sessions.
    if K is not None:
        from tf_keras.src import backend as keras_backend
        from tf_keras.src.engine import base_layer_v1

        layers = keras_layers(K, tf)
        Scale, Custom = layers["Scale"], layers["Custom"]
        out["keras v1 layer"] = check(
            lambda: {
                "v1": isinstance(K.layers.Dense(2), base_layer_v1.Layer),
                "describe": describe(K.layers.Dense(2, name="v1dense")),
                "Scale": describe(Scale()),
                "Scale __init__": describe_callable(Scale.__init__),
                "Scale roundtrip": config_roundtrip(Scale(name="s1")),
                "Custom": describe(Custom(2, name="c1")),
                "input_shape": describe(K.layers.Dense(2, input_shape=(3,))),
                "bad": check(lambda: K.layers.Dense(units=-1)),
            }
        )

        def train() -> Any:
            x = np.linspace(-1, 1, 24, dtype="float32").reshape(8, 3)
            y = x.sum(axis=1, keepdims=True)
            model = K.Sequential(
                [K.layers.Dense(4, activation="relu", input_shape=(3,)), Scale(), Custom(1)]
            )
            model.compile(optimizer="sgd", loss="mse")
            history = model.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False).history
            return {
                "history": history,
                "predict": model.predict(x, verbose=0),
                "weights": model.get_weights(),
                "config": model.get_config(),
                "session type": type(keras_backend.get_session()).__qualname__,
            }

        out["keras v1 train"] = check(train)
    return out


# ---------------------------------------------------------------------------- flavours


def setup(flavour: str, tracking: bool) -> dict[str, Any]:
    """Import the flavour (tracking first, if on) and say what to probe."""
    if flavour == "tf_keras":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    else:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    if tracking:
        sys.path.insert(0, str(REPO))
        from tfmagic import frameworks
        from tfmagic.registry import REGISTRY

        frameworks.start_tracking(REGISTRY)

    import numpy as np
    import tensorflow as tf

    random.seed(0)
    np.random.seed(0)
    tf.random.set_seed(0)
    K: Any = None
    if flavour == "keras3":
        import keras as K

        K.utils.set_random_seed(0)
    elif flavour in ("tf_keras", "tf1"):
        if flavour == "tf1":
            tf.compat.v1.disable_v2_behavior()
        import tf_keras as K

        K.utils.set_random_seed(0)

    if K is not None and flavour != "tf1":
        modules = {
            f"{K.__name__}.{name}": getattr(K, name)
            for name in ("layers", "models", "optimizers", "callbacks", "losses", "metrics")
        }
    elif flavour == "tf_core":
        modules = {"tf": tf, "tf.train": tf.train, "tf.data": tf.data}
    else:
        modules = {
            "tf.compat.v1": tf.compat.v1,
            "tf.compat.v1.train": tf.compat.v1.train,
            "tf_keras.layers": K.layers,
        }
    return {"tf": tf, "K": K, "modules": modules}


def probe(flavour: str, tracking: bool) -> dict[str, Any]:
    start = time.perf_counter()
    env = setup(flavour, tracking)
    tf, K = env["tf"], env["K"]
    imported = time.perf_counter()
    # Which modules the imports loaded (tfmagic's own aside; it is not imported when off).
    modules = {name: True for name in sys.modules if name.split(".")[0] != "tfmagic"}
    compared: dict[str, Any] = {"modules": dict(sorted(modules.items()))}
    compared["hooked"] = probe_hooked()
    compared["classes"], class_seconds = probe_classes(env["modules"], K, flavour == "tf1")
    classes_done = time.perf_counter()
    if flavour in ("keras3", "tf_keras"):
        compared["behaviours"] = keras_behaviours(K, tf, flavour)
    elif flavour == "tf_core":
        compared["behaviours"] = tf_core_behaviours(tf)
    else:
        compared["behaviours"] = tf1_behaviours(tf, K)
    done = time.perf_counter()

    # Only now, and in both modes, look at tfmagic: is each hooked callable a wrapper?
    sys.path.insert(0, str(REPO))
    from tfmagic import hooks, incidents

    wrapped = {}
    for module_name, class_name, attr in HOOKED:
        if module_name in sys.modules:
            cls = getattr(sys.modules[module_name], class_name)
            wrapped[f"{module_name}.{class_name}.{attr}"] = hooks.is_wrapper(plain(cls, attr))
    # Attributes a wrapper cannot share with the original (not compared; for the record).
    raw = {}
    for module_name, class_name, attr in HOOKED:
        if module_name in sys.modules:
            function = plain(getattr(sys.modules[module_name], class_name), attr)
            raw[f"{class_name}.{attr}"] = {
                "co_varnames": function.__code__.co_varnames[: function.__code__.co_argcount],
                "__defaults__": jsonable(function.__defaults__),
                "__kwdefaults__": jsonable(function.__kwdefaults__),
            }
    meta: dict[str, Any] = {
        "hooked_raw": raw,
        "flavour": flavour,
        "mode": "on" if tracking else "off",
        "tracking_installed": wrapped.get(PROOF[flavour], False),
        "wrapped": wrapped,
        "class_count": len(compared["classes"]),
        "seconds": {
            "import": round(imported - start, 2),
            "classes": round(classes_done - imported, 2),
            "behaviours": round(done - classes_done, 2),
            "total": round(done - start, 2),
        },
        "slowest_classes": sorted(class_seconds.items(), key=lambda kv: -kv[1])[:5],
        "incidents": [str(i.error) for i in incidents.all_incidents()],
        "tfmagic_frames_in_tracebacks": NOTES["tfmagic_frames_in_tracebacks"],
    }
    if tracking:
        from tfmagic.registry import REGISTRY

        meta["registry"] = {
            "installed": sorted(REGISTRY.installed),
            "traces": REGISTRY.traces,
            **{live.kind: len(live) for live in REGISTRY.kinds},
        }
    return {"meta": meta, "compared": compared}


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in FLAVOURS or sys.argv[2] not in ("on", "off"):
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(FLAVOURS)}}} on|off")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.chdir(WORKDIR)  # stray files (logs, checkpoints) land in the temp dir
    real_stdout = sys.stdout
    # Whatever TF/Keras prints goes to stderr; stdout carries only the result line.
    with contextlib.redirect_stdout(sys.stderr):
        result = probe(sys.argv[1], sys.argv[2] == "on")
    real_stdout.write(MARKER + json.dumps(result, sort_keys=True) + "\n")
    real_stdout.flush()
    os.chdir(tempfile.gettempdir())
    shutil.rmtree(WORKDIR, ignore_errors=True)


if __name__ == "__main__":
    main()
