"""A model cell re-run 20 times, plain and under ``%%tf_isolated``, freeze off (old) and on.

Four processes side by side (plain/isolated x freeze_imports off/on), asked in turn for
one run of the same cell each: build a 256-512-512-10 MLP, compile with Adam, train one
batch, ``model`` last (``Out[N]`` pins it). Read: the state table (new) should show plain
growing and isolated flat (same names, counts, bytes as run 1); the timing table gives
median re-run wall time and time in the garbage collector per re-run, old | new | new/old,
and the isolated/plain ratio (target 1.1x, must be under 1.3x).
``python benchmarks/idempotence.py [--quick]``: about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from _common import (
    MODES,
    Child,
    collector_status,
    gc_time,
    load_cells,
    make_shell,
    median,
    ms,
    ratio,
    serve,
    table,
)

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # before anything can import TensorFlow

KINDS = ("plain", "isolated")
SHOWN_RUNS = (1, 5, 10, 20)
TARGET, MUST = 1.1, 1.3  # isolated re-run / plain re-run
IMPORTS = "import numpy as np\nimport tensorflow as tf\nimport keras"
DATA_CELL = """\
_rng = np.random.default_rng(0)
x = _rng.random((32, 256), dtype=np.float32)
y = _rng.integers(0, 10, 32)
"""
MODEL_CELL = """\
model = keras.Sequential([
    keras.Input((256,)),
    keras.layers.Dense(512, activation="relu"),
    keras.layers.Dense(512, activation="relu"),
    keras.layers.Dense(10),
])
model.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
model.train_on_batch(x, y)
model
"""


@dataclass
class Run:
    """The state after one run of the cell, and what the run cost."""

    variables: int
    variable_bytes: int
    memory_total: int
    models: int
    layers: int
    layer_names: list[str]
    custom_gradients: int
    walked: int  # objects a collection traverses (frozen ones left out)
    seconds: float
    gc_seconds: float  # in the garbage collector during the cell (gc.callbacks)
    warned: bool  # tfmagic printed its "re-run grew" note


def custom_gradient_entries() -> int:
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
    return sum(str(k).startswith("CustomGradient-") for k in registry)


def child(kind: str, mode: str) -> None:
    from IPython.utils.capture import capture_output

    shell = make_shell()
    with capture_output():
        for cell in [*load_cells(mode, IMPORTS), DATA_CELL]:
            shell.run_cell(cell, store_history=True).raise_error()
    import tensorflow as tf  # imported by the cell, after %load_ext

    import tfmagic

    tf.get_logger().setLevel("ERROR")  # "N out of the last N calls ... retracing"
    cell = MODEL_CELL if kind == "plain" else "%%tf_isolated\n" + MODEL_CELL

    def one_run() -> Run:
        with capture_output() as captured, gc_time() as spent:  # the repr, tfmagic's notes
            started = time.perf_counter()
            outcome = shell.run_cell(cell, store_history=True)
            seconds = time.perf_counter() - started
        outcome.raise_error()
        snap = tfmagic.snapshot()
        return Run(
            variables=snap.variables,
            variable_bytes=snap.variable_bytes,
            memory_total=snap.memory_total,
            models=snap.models,
            layers=snap.layers,
            layer_names=[layer.name for layer in shell.user_ns["model"].layers],
            custom_gradients=custom_gradient_entries(),
            walked=len(gc.get_objects()),
            seconds=seconds,
            gc_seconds=spent["seconds"],
            warned="tfmagic: run" in captured.stderr,
        )

    serve(collector_status, {"run": one_run, "status": collector_status})


# -- report -------------------------------------------------------------------------------------
def mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def state_cells(run: Run) -> list[str]:
    names = " ".join(run.layer_names)
    return [
        str(run.variables),
        mib(run.variable_bytes),
        mib(run.memory_total),
        str(run.models),
        str(run.layers),
        names,
    ]


def growth_cells(first: Run, last: Run) -> list[str]:
    return [
        f"{last.variables - first.variables:+d}",
        f"{(last.variable_bytes - first.variable_bytes) / 2**20:+.2f}",
        f"{(last.memory_total - first.memory_total) / 2**20:+.2f}",
        f"{last.models - first.models:+d}",
        f"{last.layers - first.layers:+d}",
        "same" if first.layer_names == last.layer_names else "changed",
    ]


def report(runs: dict[tuple[str, str], list[Run]], status: dict[str, Any]) -> None:
    n = len(runs["plain", "on"])
    shown = [r for r in SHOWN_RUNS if r <= n] + ([n] if n not in SHOWN_RUNS else [])
    headers = ["vars", "var MiB", "TF mem MiB", "models", "layers", "layer names"]
    rows = [
        [
            str(r),
            *state_cells(runs["plain", "on"][r - 1]),
            *state_cells(runs["isolated", "on"][r - 1]),
        ]
        for r in shown
    ]
    rows.append(
        [
            f"growth 1→{n}",
            *growth_cells(runs["plain", "on"][0], runs["plain", "on"][-1]),
            *growth_cells(runs["isolated", "on"][0], runs["isolated", "on"][-1]),
        ]
    )
    print(f"\nState after each run (new: freeze on), {n} runs per process; plain | isolated.")
    print(table(rows, ["run", *headers, *headers]))
    same_old = all(
        (a.variables, a.variable_bytes, a.models, a.layers, a.layer_names)
        == (b.variables, b.variable_bytes, b.models, b.layers, b.layer_names)
        for kind in KINDS
        for a, b in zip(runs[kind, "off"], runs[kind, "on"], strict=True)
    )
    print(f"Old (freeze off) runs end in the same state, run by run: {'yes' if same_old else 'NO'}")

    def rerun(kind: str, mode: str, key: str = "seconds") -> float:
        return median([getattr(r, key) for r in runs[kind, mode][1:]])

    rows = []
    for label, kind, key in (
        ("plain re-run", "plain", "seconds"),
        ("%%tf_isolated re-run", "isolated", "seconds"),
        ("  GC time in a plain re-run", "plain", "gc_seconds"),
        ("  GC time in an isolated re-run", "isolated", "gc_seconds"),
    ):
        old, new = rerun(kind, "off", key), rerun(kind, "on", key)
        rows.append([label, ms(old), ms(new), ratio(new, old)])
    share = {mode: rerun("isolated", mode) / rerun("plain", mode) for mode in MODES}
    rows.append(["isolated / plain re-run", f"{share['off']:.2f}x", f"{share['on']:.2f}x", ""])
    # tfmagic collects after a plain re-run that seems to grow, too: against one that
    # does not, the isolated re-run pays its whole collection.
    bare = {
        mode: rerun("isolated", mode) / (rerun("plain", mode) - rerun("plain", mode, "gc_seconds"))
        for mode in MODES
    }
    rows.append(["isolated / plain minus its GC", f"{bare['off']:.2f}x", f"{bare['on']:.2f}x", ""])
    print(f"\nTimings: medians of runs 2..{n} (ms); old = freeze_imports off, new = on.")
    print(table(rows, ["", "old", "new", "new/old"]))

    rows = []
    for kind in KINDS:
        for mode in MODES:
            last_run = runs[kind, mode][-1]
            warned = sum(r.warned for r in runs[kind, mode])
            rows.append(
                [
                    f"{kind} {mode}",
                    str(last_run.custom_gradients),
                    f"{last_run.walked:,}",
                    str(warned),
                ]
            )
    print(f"\nAfter run {n}: diagnostics read outside tfmagic.")
    print(table(rows, ["process", "CustomGradient entries", "walked by a gc", "growth notes"]))

    first, last = runs["isolated", "on"][0], runs["isolated", "on"][-1]
    checks = {
        "variables": last.variables == first.variables,
        "variable bytes": last.variable_bytes == first.variable_bytes,
        "TF allocator bytes": last.memory_total <= first.memory_total,
        "models": last.models == first.models,
        "layers": last.layers == first.layers,
        "layer names": all(r.layer_names == first.layer_names for r in runs["isolated", "on"]),
    }
    print()
    for what, ok in checks.items():
        print(f"Check: %%tf_isolated run {n} has the {what} of run 1: {'yes' if ok else 'NO'}")
    # The allocator's reading moves by 0.5-1.5 MiB from one identical run to the next (in the
    # previous release too; neither gc.collect() nor waiting changes it): show its range.
    memory = [r.memory_total for r in runs["isolated", "on"]]
    print(
        f"TF allocator bytes over the isolated runs: {mib(min(memory))}..{mib(max(memory))} MiB "
        f"(run 1: {mib(first.memory_total)}, runs {n // 2 + 1}-{n} at most "
        f"{mib(max(memory[n // 2 :]))})"
    )
    for label, ratios in (("a plain re-run", share), ("a plain re-run minus its GC", bare)):
        new = ratios["on"]
        verdict = "met" if new <= TARGET else "must met" if new < MUST else "NOT met"
        print(f"Target: isolated re-run <= 1.1x (must < 1.3x) {label}: {verdict}")
    print(
        f"Collector (new, isolated): frozen {status['frozen']}, "
        f"{status['frozen_objects']:,} frozen objects, deep collections "
        f"{status['deep_collections']}"
    )


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs per process, not 20")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    n = 5 if args.quick else 20

    started = time.perf_counter()
    children = {(kind, mode): Child(__file__, kind, mode) for kind in KINDS for mode in MODES}
    runs: dict[tuple[str, str], list[Run]] = {key: [] for key in children}
    try:
        for i in range(n):
            for key, process in children.items():
                runs[key].append(Run(**process.ask("run")))
            print(
                f"run {i + 1}/{n}: "
                + ", ".join(f"{k} {m} {ms(runs[k, m][-1].seconds)} ms" for k, m in children),
                flush=True,
            )
        status = children["isolated", "on"].ask("status")
    finally:
        for process in children.values():
            process.close()
    report(runs, status)
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
