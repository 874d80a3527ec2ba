"""``%tf_reset`` against a kernel restart: how long each takes, and what memory is left.

What it measures
    One real ``InteractiveShell`` (``InteractiveShell.instance()``) runs
    ``%load_ext tfmagic`` and imports TensorFlow and Keras, then binds one model,
    ``kept = fit_once(build())``: a functional MLP 256 → 512 → 512 → 10 compiled with
    Adam and trained on one batch (about 4.8 MB of variables with the optimizer state,
    plus a traced train function). Each repetition then

    1. runs ``fit_once(build())`` in ten cells, each as the cell's last expression, so
       ``Out[N]`` (and ``_``, ``__``, ``___``) pin ten stale models of the same kind;
    2. times the cell ``_bench_report = %tf_reset -o`` (wall time of the whole cell,
       tfmagic's own before/after probes included) and keeps the ``ResetReport``;
    3. takes one sample of each kind of restart, interleaved with the resets so that
       load on a shared machine hits both alike:

       * ``fresh process``: spawn a new Python that starts an ``InteractiveShell``,
         runs ``%load_ext tfmagic`` and imports TensorFlow and Keras; wall time from
         the spawn until the child says it is ready;
       * ``Jupyter kernel restart``: ``KernelManager.restart_kernel()`` on a running
         ipykernel that has TensorFlow loaded (what the notebook's restart button
         does: shut the old kernel down, start a new one), then execute
         ``%load_ext tfmagic`` + ``import tensorflow as tf`` + ``import keras`` and
         wait for the reply; wall time of all of that. The kernel's very first start
         is timed too (``Jupyter kernel cold start``, one sample).

    Finally, a fresh process runs exactly the cells that built what the reset
    session keeps bound (the set-up cells and ``kept = ...``, nothing stale), collects
    garbage, and reads ``tfmagic.snapshot()``: the memory a kernel restart followed by
    re-running those cells would leave. The reset session's state after each reset
    is compared with it.

How to read the output
    The first table is timings: median, min..max and sample count per operation, and
    ``%tf_reset`` as a percentage of each restart (the target is under 10 %, the aim
    5 %). ``%tf_reset cell`` is what the user waits for; ``reset() itself`` is the
    ``ResetReport.seconds`` part of it (the rest is IPython and tfmagic's per-cell
    probes); ``one full gc.collect()``, timed right after each reset when there is
    nothing left to free, is the price of one pass over the heap, for reference (the
    reset makes two). The progress lines give each reset with the heap size it met.
    A restart number is the *lower* bound of what a restart costs the user, who also
    has to re-run the cells that rebuild their state.

    The second table is state: before the reset (ten stale models alive), after it
    (the last repetition, and the largest value over all repetitions, which would
    show a leak that accumulates), and the fresh-process baseline, with the relative
    difference of after-reset to baseline (target: within 1 % for live variable
    bytes and for TF allocator bytes, ``snapshot().memory_total``). Counts of
    variables, models and layers should match exactly. Two diagnostic rows are read
    outside tfmagic: ``gc_objects`` (objects the garbage collector tracks; a full
    collection, which the reset runs twice, costs time in proportion to it) and
    ``custom_gradients`` (``CustomGradient-*`` entries in TensorFlow's process-global
    gradient registry; each one made while tracing a train step holds that trace's
    graph, and through its captures the model's variable buffers, after the model
    itself is gone). When the allocator bytes miss the target and that count is
    above the fresh start's, a ``Why:`` line says so. The exit status is 0 whether
    or not the targets are met: timings on a shared machine are noisy.

Run ``python benchmarks/reset.py`` (about two minutes on two cores) or ``--quick``.
``--no-jupyter`` skips the Jupyter kernel measurements.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from _common import make_shell, quiet_native_stderr, table

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # before anything can import TensorFlow

STALE_MODELS = 10
TARGET_RATIO = 0.10
AIM_RATIO = 0.05
TARGET_BYTES = 0.01
READY = "TFMAGIC-BENCH-READY"
BASELINE = "TFMAGIC-BENCH-BASELINE:"

IMPORT_CELL = "%load_ext tfmagic\nimport tensorflow as tf\nimport keras"
DEFINE_CELL = """\
import numpy as np

_rng = np.random.default_rng(0)
_x = _rng.random((32, 256), dtype=np.float32)
_y = _rng.integers(0, 10, 32)


def build():
    inputs = keras.Input((256,))
    h = keras.layers.Dense(512, activation="relu")(inputs)
    h = keras.layers.Dense(512, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def fit_once(model):
    model.train_on_batch(_x, _y)
    return model
"""
KEEP_CELL = "kept = fit_once(build())"
STALE_CELL = "fit_once(build())"  # the last expression: Out[N] pins the model
RESET_CELL = "_bench_report = %tf_reset -o"
KERNEL_CODE = IMPORT_CELL

STATE_FIELDS = ("variables", "variable_bytes", "memory_total", "models", "layers")
# Read outside tfmagic, for explaining a difference: objects the garbage collector
# tracks, and entries that tf.custom_gradient (used in graph mode by the Keras 3
# optimizer's all-reduce) added to TensorFlow's process-global gradient registry.
DIAGNOSTIC_FIELDS = ("gc_objects", "custom_gradients")
BYTE_FIELDS = ("variable_bytes", "memory_total")


@dataclass(frozen=True)
class Settings:
    repetitions: int


FULL = Settings(repetitions=5)
QUICK = Settings(repetitions=2)


@dataclass
class Results:
    reset_cell: list[float] = field(default_factory=list)  # seconds
    reset_inner: list[float] = field(default_factory=list)  # ResetReport.seconds
    full_gc: list[float] = field(default_factory=list)  # one gc.collect() right after a reset
    stale_build: list[float] = field(default_factory=list)  # seconds for ten stale models
    fresh_process: list[float] = field(default_factory=list)
    kernel_restart: list[float] = field(default_factory=list)
    kernel_cold_start: list[float] = field(default_factory=list)
    before: list[dict[str, int]] = field(default_factory=list)  # per repetition
    after: list[dict[str, int]] = field(default_factory=list)
    baseline: dict[str, int] = field(default_factory=dict)
    kernel_note: str = ""


# -- helpers -------------------------------------------------------------------------------


def quiet_tf_logger() -> None:
    """Silence the Python-side "N out of the last N calls ... triggered tf.function
    retracing" warnings that ten identical models provoke (not the C++ log level)."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def run(shell: Any, source: str) -> Any:
    """Run a cell as a user would (history stored); stop the benchmark if it fails."""
    result = shell.run_cell(source, store_history=True)
    result.raise_error()
    return result


def state(snapshot: Any) -> dict[str, int]:
    return {name: int(getattr(snapshot, name)) for name in STATE_FIELDS}


def diagnostics() -> dict[str, int]:
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
    return {
        "gc_objects": len(gc.get_objects()),
        "custom_gradients": sum(str(k).startswith("CustomGradient-") for k in registry),
    }


def child_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


# -- the child processes -------------------------------------------------------------------
def child_restart() -> None:
    """A restarted kernel, as far as "ready to work" goes."""
    shell = make_shell()
    run(shell, IMPORT_CELL)
    print(READY, flush=True)


def child_baseline() -> None:
    """A fresh start that re-ran only the cells whose results the reset session keeps."""
    from IPython.utils.capture import capture_output

    shell = make_shell()
    with capture_output():
        for cell in (IMPORT_CELL, DEFINE_CELL, KEEP_CELL):
            run(shell, cell)
    gc.collect()
    import tfmagic

    print(BASELINE + json.dumps(state(tfmagic.snapshot()) | diagnostics()), flush=True)


# -- measurements ---------------------------------------------------------------------------
def time_fresh_process() -> float:
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, __file__, "--child", "restart"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == READY:
                elapsed = time.perf_counter() - start
                break
        else:
            raise RuntimeError(f"fresh process exited ({proc.wait()}) without getting ready")
        proc.wait()
    return elapsed


def measure_baseline() -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "baseline"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(BASELINE):
            return json.loads(line[len(BASELINE) :])
    raise RuntimeError(f"baseline process failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


class Kernel:
    """A real ipykernel through ``jupyter_client``; every start ends with TF imported."""

    def __init__(self) -> None:
        from jupyter_client import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.client: Any = None

    def _import(self) -> None:
        reply = self.client.execute_interactive(
            KERNEL_CODE, timeout=300, output_hook=lambda message: None
        )
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel import failed: {reply['content']}")

    def cold_start(self) -> float:
        start = time.perf_counter()
        self.manager.start_kernel(env=child_env(), stderr=subprocess.DEVNULL)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self._import()
        return time.perf_counter() - start

    def restart(self) -> float:
        start = time.perf_counter()
        self.manager.restart_kernel()  # graceful, as the notebook's restart button
        self.client.wait_for_ready(timeout=120)
        self._import()
        return time.perf_counter() - start

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def build_stale(shell: Any) -> float:
    from IPython.utils.capture import capture_output

    start = time.perf_counter()
    with capture_output():  # the models' reprs; Out[N] still holds the models
        for _ in range(STALE_MODELS):
            run(shell, STALE_CELL)
    return time.perf_counter() - start


def time_reset(shell: Any, results: Results) -> None:
    before = diagnostics()
    start = time.perf_counter()
    run(shell, RESET_CELL)
    results.reset_cell.append(time.perf_counter() - start)
    report = shell.user_ns["_bench_report"]
    results.reset_inner.append(report.seconds)
    results.before.append(state(report.before) | before)
    results.after.append(state(report.after) | diagnostics())
    start = time.perf_counter()
    gc.collect()  # nothing left to free: the cost of one pass over the heap
    results.full_gc.append(time.perf_counter() - start)


# -- report -----------------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.2f} {unit}"
        n /= 1024
    return f"{sign}{n:.2f} GiB"


def show(name: str, value: int) -> str:
    return f"{human_bytes(value)} ({value:,})" if name in BYTE_FIELDS else f"{value:,}"


def relative(after: int, baseline: int) -> str:
    if baseline == 0:
        return "n/a" if after == 0 else "inf"
    return f"{(after - baseline) / baseline * 100:+.2f} %"


def report(results: Results, settings: Settings) -> None:
    reset = statistics.median(results.reset_cell)
    restarts = [
        ("fresh process: IPython + import TF, Keras", results.fresh_process),
        ("Jupyter kernel restart + import TF, Keras", results.kernel_restart),
        ("Jupyter kernel cold start + import", results.kernel_cold_start),
    ]
    timing_rows: list[list[str]] = []
    for label, samples, is_restart in [
        (f"%tf_reset cell ({STALE_MODELS} stale models)", results.reset_cell, False),
        ("  of which reset() itself", results.reset_inner, False),
        ("  (one full gc.collect() after it)", results.full_gc, False),
        *((label, samples, True) for label, samples in restarts),
    ]:
        if not samples:
            continue
        median = statistics.median(samples)
        timing_rows.append(
            [
                label,
                f"{median * 1e3:,.0f}",
                f"{min(samples) * 1e3:,.0f}..{max(samples) * 1e3:,.0f}",
                str(len(samples)),
                f"{reset / median * 100:.1f} %" if is_restart else "",
            ]
        )
    print()
    print(
        f"Timings: {settings.repetitions} repetitions, each {STALE_MODELS} stale models "
        f"(built in {statistics.median(results.stale_build):.1f} s median) then one %tf_reset, "
        "interleaved with one sample of each restart."
    )
    print(
        table(
            timing_rows,
            ["operation", "median (ms)", "min..max (ms)", "n", "%tf_reset / this"],
        )
    )
    if results.kernel_note:
        print(results.kernel_note)

    print()
    last_before, last_after = results.before[-1], results.after[-1]
    state_rows = []
    for name in STATE_FIELDS + DIAGNOSTIC_FIELDS:
        worst = max(a[name] for a in results.after)
        state_rows.append(
            [
                name,
                show(name, last_before[name]),
                show(name, last_after[name]),
                show(name, worst),
                show(name, results.baseline[name]),
                relative(last_after[name], results.baseline[name]),
            ]
        )
    print(
        "State: before/after the last %tf_reset, the largest after-reset value over all "
        "repetitions, and a fresh process that re-ran only the kept cells."
    )
    print(
        table(
            state_rows,
            [
                "metric",
                "before reset",
                "after reset",
                "after (max)",
                "fresh baseline",
                "after vs fresh",
            ],
        )
    )

    print()
    for label, samples in restarts[:2]:
        if not samples:
            continue
        ratio = reset / statistics.median(samples)
        verdict = (
            "met, and within the 5 % aim"
            if ratio < AIM_RATIO
            else "met"
            if ratio < TARGET_RATIO
            else "NOT met"
        )
        print(f"Target: %tf_reset < 10 % of {label.split(':')[0].split(' +')[0]}: {verdict}")
    for name in BYTE_FIELDS:
        worst = max(a[name] for a in results.after)
        base = results.baseline[name]
        within = base > 0 and abs(worst - base) <= TARGET_BYTES * base
        print(
            f"Target: {name} after reset within 1 % of a fresh start (every repetition): "
            f"{'met' if within else 'NOT met'} "
            f"(largest {human_bytes(worst)} vs {human_bytes(base)})"
        )
    extra = results.after[-1]["custom_gradients"] - results.baseline["custom_gradients"]
    if results.after[-1]["memory_total"] > results.baseline["memory_total"] and extra > 0:
        print(
            f"Why: {extra} more CustomGradient-* entries in TensorFlow's global gradient "
            "registry (tensorflow.python.framework.ops._gradient_registry) than in the fresh "
            "start; each holds a dead model's traced train step (FuncGraph), whose captures "
            "hold its variables' buffers (tensorflow/tensorflow#97697)."
        )
    counts_equal = all(
        a[name] == results.baseline[name]
        for a in results.after
        for name in ("variables", "models", "layers")
    )
    print(
        "Check: variables/models/layers after every reset equal the fresh start: "
        f"{'yes' if counts_equal else 'NO'}"
    )


# -- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument("--no-jupyter", action="store_true", help="skip the Jupyter kernel")
    parser.add_argument("--child", choices=("restart", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "restart":
        child_restart()
        return 0
    if args.child == "baseline":
        child_baseline()
        return 0
    settings = QUICK if args.quick else FULL

    started = time.perf_counter()
    results = Results()
    shell = make_shell()
    with quiet_native_stderr():
        t0 = time.perf_counter()
        run(shell, IMPORT_CELL)
        print(f"in-process %load_ext tfmagic + import TF, Keras: {time.perf_counter() - t0:.2f} s")
        quiet_tf_logger()
        run(shell, DEFINE_CELL)
        run(shell, KEEP_CELL)

    kernel: Kernel | None = None
    if not args.no_jupyter:
        try:
            kernel = Kernel()
            results.kernel_cold_start.append(kernel.cold_start())
        except Exception as exc:  # noqa: BLE001 - the rest of the benchmark still stands
            results.kernel_note = f"(Jupyter kernel not measured: {type(exc).__name__}: {exc})"
            kernel = None
    try:
        for repetition in range(settings.repetitions):
            results.stale_build.append(build_stale(shell))
            time_reset(shell, results)
            results.fresh_process.append(time_fresh_process())
            if kernel is not None:
                results.kernel_restart.append(kernel.restart())
            print(
                f"repetition {repetition + 1}/{settings.repetitions}: "
                f"%tf_reset {results.reset_cell[-1] * 1e3:.0f} ms "
                f"(heap {results.before[-1]['gc_objects']:,} objects), "
                f"fresh process {results.fresh_process[-1]:.2f} s"
                + (f", kernel restart {results.kernel_restart[-1]:.2f} s" if kernel else ""),
                flush=True,
            )
    finally:
        if kernel is not None:
            kernel.shutdown()
    results.baseline = measure_baseline()

    report(results, settings)
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
