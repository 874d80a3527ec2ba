"""Re-running a model cell 20 times, plain and under ``%%tf_isolated``: what piles up.

What it measures
    For each mode, a fresh Python process (so the two cannot affect each other)
    starts a real ``InteractiveShell`` (``InteractiveShell.instance()``), runs
    ``%load_ext tfmagic``, imports TensorFlow and Keras, and then runs the same cell
    20 times, as a user re-running one notebook cell would::

        model = keras.Sequential([keras.Input((256,)), Dense(512, relu),
                                  Dense(512, relu), Dense(10)])
        model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(...))
        model.train_on_batch(x, y)
        model                       # the last expression: Out[N] pins it

    ``plain`` runs it as is; ``isolated`` puts ``%%tf_isolated`` on its first line.
    After each run it records ``tfmagic.snapshot()`` (live variables, their bytes,
    TF allocator bytes ``memory_total``, live models and layers) and the layer names
    of ``model``; the wall time of each cell; and, in the isolated process, the time
    of the ``gc.collect()`` that ``%%tf_isolated`` runs after every re-run (measured
    by wrapping that module's ``gc`` reference in the child process; tfmagic itself
    is not changed). Two diagnostics are read outside tfmagic: the number of
    ``CustomGradient-*`` entries in TensorFlow's process-global gradient registry
    (each traced Keras 3 train step adds one, which keeps that trace's graph, and the
    buffers of the variables it captured, alive) and the number of objects the
    garbage collector tracks.

How to read the output
    The first table has one row per selected run (1, 5, 10, 20) and a ``growth`` row
    (last run minus run 1), both modes side by side. In ``plain`` mode every run
    leaves its model alive (pinned by ``Out[N]``), so variables, bytes and models grow
    linearly and the Keras auto-names move on (``dense_57`` ...). Under
    ``%%tf_isolated`` the counts should stay exactly at their run-1 values and the
    layer names should be identical on every run: growth 0. ``TF mem`` is the one
    figure that tfmagic does not fully control; the diagnostics table shows whether
    the gradient registry is what holds it. The timing lines give the median wall
    time of a re-run (runs 2..20) in each mode and the median cost of the isolated
    re-run's ``gc.collect()``, also as a share of the isolated re-run. Timings on a
    shared machine are noisy; the exit status is 0 regardless.

Run ``python benchmarks/idempotence.py`` (under a minute on two cores) or ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # before anything can import TensorFlow

MODES = ("plain", "isolated")
SHOWN_RUNS = (1, 5, 10, 20)
RESULT = "TFMAGIC-BENCH-IDEMPOTENCE:"

SETUP_CELL = """\
%load_ext tfmagic
import numpy as np
import tensorflow as tf
import keras

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
    gc_objects: int
    seconds: float
    gc_seconds: float  # inside %%tf_isolated's re-run collection; 0 in plain mode
    warned: bool  # tfmagic printed its "re-run grew" note


@dataclass
class ModeResult:
    mode: str
    import_seconds: float
    runs: list[Run] = field(default_factory=list)

    def rerun_seconds(self) -> list[float]:
        return [r.seconds for r in self.runs[1:]]

    def rerun_gc_seconds(self) -> list[float]:
        return [r.gc_seconds for r in self.runs[1:]]


# -- the child process: one mode ---------------------------------------------------------------
class TimedGC:
    """Stands in for the ``gc`` module inside ``tfmagic.isolation`` only, timing collect()."""

    def __init__(self) -> None:
        import gc

        self._gc = gc
        self.seconds = 0.0

    def collect(self, *args: Any) -> int:
        start = time.perf_counter()
        try:
            return self._gc.collect(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gc, name)


def custom_gradient_entries() -> int:
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
    return sum(str(k).startswith("CustomGradient-") for k in registry)


def child(mode: str, runs: int) -> None:
    import gc

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    start = time.perf_counter()
    shell.run_cell(SETUP_CELL, store_history=True).raise_error()
    result = ModeResult(mode, time.perf_counter() - start)

    import tensorflow as tf

    import tfmagic
    from tfmagic import isolation

    # "N out of the last N calls triggered tf.function retracing" (Python logging).
    tf.get_logger().setLevel("ERROR")
    timed_gc = TimedGC()
    isolation.gc = timed_gc  # type: ignore[assignment]

    cell = MODEL_CELL if mode == "plain" else "%%tf_isolated\n" + MODEL_CELL
    for _ in range(runs):
        timed_gc.seconds = 0.0
        with capture_output() as captured:  # the model's repr and tfmagic's notes
            start = time.perf_counter()
            outcome = shell.run_cell(cell, store_history=True)
            seconds = time.perf_counter() - start
        outcome.raise_error()
        snap = tfmagic.snapshot()
        result.runs.append(
            Run(
                variables=snap.variables,
                variable_bytes=snap.variable_bytes,
                memory_total=snap.memory_total,
                models=snap.models,
                layers=snap.layers,
                layer_names=[layer.name for layer in shell.user_ns["model"].layers],
                custom_gradients=custom_gradient_entries(),
                gc_objects=len(gc.get_objects()),
                seconds=seconds,
                gc_seconds=timed_gc.seconds,
                warned="tfmagic: run" in captured.stderr,
            )
        )
    print(RESULT + json.dumps(result, default=lambda o: o.__dict__), flush=True)


def measure(mode: str, runs: int) -> ModeResult:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--runs", str(runs)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            data = json.loads(line[len(RESULT) :])
            return ModeResult(
                data["mode"], data["import_seconds"], [Run(**r) for r in data["runs"]]
            )
    raise RuntimeError(f"{mode} process failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


# -- report -------------------------------------------------------------------------------------
def table(
    rows: list[list[str]], headers: list[str], groups: list[tuple[str, int]] | None = None
) -> str:
    """Aligned columns; ``groups`` (label, column count) labels runs of columns above."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 or "name" in headers[i] else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return " | ".join(parts)

    head = []
    if groups:
        spans, column = [], 0
        for label, count in groups:
            span = sum(widths[column : column + count]) + 3 * (count - 1)
            spans.append(label.center(span))
            column += count
        head = [" | ".join(spans)]
    return "\n".join([*head, line(headers), "-+-".join("-" * w for w in widths), *map(line, rows)])


def mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def signed_mib(n: int) -> str:
    return f"{n / 2**20:+.2f}"


def names(run: Run) -> str:
    return " ".join(run.layer_names)


def shown(runs: int) -> list[int]:
    picked = [n for n in SHOWN_RUNS if n <= runs]
    return picked if runs in picked else [*picked, runs]


def state_cells(run: Run) -> list[str]:
    return [
        str(run.variables),
        mib(run.variable_bytes),
        mib(run.memory_total),
        str(run.models),
        str(run.layers),
        names(run),
    ]


def growth_cells(first: Run, last: Run) -> list[str]:
    return [
        f"{last.variables - first.variables:+d}",
        signed_mib(last.variable_bytes - first.variable_bytes),
        signed_mib(last.memory_total - first.memory_total),
        f"{last.models - first.models:+d}",
        f"{last.layers - first.layers:+d}",
        "same" if first.layer_names == last.layer_names else "changed",
    ]


def report(plain: ModeResult, isolated: ModeResult) -> None:
    runs = len(plain.runs)
    state_headers = ["vars", "var MiB", "TF mem MiB", "models", "layers", "layer names"]
    rows = []
    for n in shown(runs):
        rows.append([str(n), *state_cells(plain.runs[n - 1]), *state_cells(isolated.runs[n - 1])])
    rows.append(
        [
            f"growth 1→{runs}",
            *growth_cells(plain.runs[0], plain.runs[-1]),
            *growth_cells(isolated.runs[0], isolated.runs[-1]),
        ]
    )
    headers = ["run", *state_headers, *state_headers]
    groups = [("", 1), ("plain", len(state_headers)), ("%%tf_isolated", len(state_headers))]
    print()
    print(f"State after each run of the model cell ({runs} runs per mode, a fresh process each).")
    print(table(rows, headers, groups))

    print()
    diag_rows = []
    for n in shown(runs):
        p, i = plain.runs[n - 1], isolated.runs[n - 1]
        diag_rows.append(
            [
                str(n),
                str(p.custom_gradients),
                f"{p.gc_objects:,}",
                str(i.custom_gradients),
                f"{i.gc_objects:,}",
            ]
        )
    first_p, last_p, first_i, last_i = (
        plain.runs[0],
        plain.runs[-1],
        isolated.runs[0],
        isolated.runs[-1],
    )
    diag_rows.append(
        [
            f"growth 1→{runs}",
            f"{last_p.custom_gradients - first_p.custom_gradients:+d}",
            f"{last_p.gc_objects - first_p.gc_objects:+,}",
            f"{last_i.custom_gradients - first_i.custom_gradients:+d}",
            f"{last_i.gc_objects - first_i.gc_objects:+,}",
        ]
    )
    print("Diagnostics read outside tfmagic.")
    diag_headers = ["run", *(["CustomGradient entries", "GC objects"] * 2)]
    print(table(diag_rows, diag_headers, [("", 1), ("plain", 2), ("%%tf_isolated", 2)]))

    print()
    plain_ms = statistics.median(plain.rerun_seconds()) * 1e3
    isolated_ms = statistics.median(isolated.rerun_seconds()) * 1e3
    gc_ms = statistics.median(isolated.rerun_gc_seconds()) * 1e3
    gc_range = isolated.rerun_gc_seconds()
    print(
        f"Re-run wall time (median of runs 2..{runs}): plain {plain_ms:.0f} ms, "
        f"%%tf_isolated {isolated_ms:.0f} ms ({isolated_ms / plain_ms:.2f}x); "
        f"first run: plain {plain.runs[0].seconds * 1e3:.0f} ms, "
        f"%%tf_isolated {isolated.runs[0].seconds * 1e3:.0f} ms"
    )
    print(
        f"%%tf_isolated re-run gc.collect(): median {gc_ms:.0f} ms "
        f"(min..max {min(gc_range) * 1e3:.0f}..{max(gc_range) * 1e3:.0f} ms), "
        f"{gc_ms / isolated_ms * 100:.0f} % of the isolated re-run"
    )
    warned = sum(r.warned for r in plain.runs), sum(r.warned for r in isolated.runs)
    print(
        f"tfmagic's re-run growth note printed: plain {warned[0]} of {runs - 1} re-runs, "
        f"%%tf_isolated {warned[1]} of {runs - 1}"
    )
    print(
        f"Set-up cell (%load_ext tfmagic, import TF, Keras): plain {plain.import_seconds:.1f} s, "
        f"isolated {isolated.import_seconds:.1f} s"
    )

    checks = {
        "variables": last_i.variables == first_i.variables,
        "variable bytes": last_i.variable_bytes == first_i.variable_bytes,
        "models": last_i.models == first_i.models,
        "layers": last_i.layers == first_i.layers,
        "layer names": all(r.layer_names == first_i.layer_names for r in isolated.runs),
        "TF allocator bytes": last_i.memory_total <= first_i.memory_total,
    }
    print()
    for what, ok in checks.items():
        print(f"Check: %%tf_isolated run {runs} has the {what} of run 1: {'yes' if ok else 'NO'}")
    grown = last_i.memory_total - first_i.memory_total
    extra = last_i.custom_gradients - first_i.custom_gradients
    if grown > 0 and extra > 0:
        print(
            f"Why TF mem grew by {grown / 2**20:.2f} MiB under %%tf_isolated: {extra} more "
            "CustomGradient-* entries in TensorFlow's global gradient registry; each keeps a "
            "previous run's traced train step, and the variable buffers it captured, alive "
            "(tensorflow/tensorflow#97697)."
        )


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs per mode instead of 20")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.runs)
        return 0
    runs = 5 if args.quick else args.runs

    started = time.perf_counter()
    results = {}
    for mode in MODES:
        t0 = time.perf_counter()
        results[mode] = measure(mode, runs)
        print(f"measured {mode}: {runs} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    report(results["plain"], results["isolated"])
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
