"""``%tf_reset`` against a kernel restart, with tfmagic's freeze off (the old way) and on.

Two sessions (``freeze_imports`` off, on) bind one trained MLP ``kept`` (~4.8 MB with Adam
state); each repetition pins ten more by ``Out[N]`` and times the cell ``%tf_reset -o``,
in turn with one fresh process and one Jupyter kernel restart (+ ``%load_ext``, imports)
per mode. Read: medians (ms) old | new | new/old; ``%tf_reset`` as a share of a restart
(target 1 %, must be under 3 %); state after the reset beside a fresh process that built
only ``kept`` (bytes and counts must match). ``walked`` is what one collection traverses.
``python benchmarks/reset.py [--quick] [--no-jupyter]``: about four minutes on two cores.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from _common import (
    MODES,
    Child,
    child_env,
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

STALE_MODELS = 10
TARGET, MUST = 0.01, 0.03  # %tf_reset / kernel restart
TARGET_BYTES = 0.01
READY = "TFMAGIC-BENCH-READY"
IMPORTS = "import tensorflow as tf\nimport keras"
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
STATE_FIELDS = ("variables", "variable_bytes", "memory_total", "models", "layers")
# Read outside tfmagic: objects one collection walks (gc.get_objects() leaves frozen ones
# out), frozen objects, and TF's CustomGradient-* entries (tensorflow/tensorflow#97697).
DIAGNOSTIC_FIELDS = ("walked", "frozen", "custom_gradients")
BYTE_FIELDS = ("variable_bytes", "memory_total")


# -- the child processes -------------------------------------------------------------------
def run(shell: Any, source: str) -> Any:
    """Run a cell as a user would (history stored); stop the benchmark if it fails."""
    from IPython.utils.capture import capture_output

    with capture_output():  # models' reprs; Out[N] still holds them
        result = shell.run_cell(source, store_history=True)
    result.raise_error()
    return result


def state(snapshot: Any) -> dict[str, int]:
    return {name: int(getattr(snapshot, name)) for name in STATE_FIELDS}


def diagnostics() -> dict[str, int]:
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
    return {
        "walked": len(gc.get_objects()),
        "frozen": gc.get_freeze_count(),
        "custom_gradients": sum(str(k).startswith("CustomGradient-") for k in registry),
    }


def child_session(mode: str) -> None:
    """One notebook session: ``rep`` pins ten stale models, then times ``%tf_reset``."""
    shell = make_shell()
    started = time.perf_counter()
    for cell in load_cells(mode, IMPORTS):
        run(shell, cell)
    import_seconds = time.perf_counter() - started
    import tensorflow as tf  # imported by the cell, after %load_ext

    tf.get_logger().setLevel("ERROR")  # "N out of the last N calls ... retracing"
    run(shell, DEFINE_CELL)
    run(shell, KEEP_CELL)

    def repetition() -> dict[str, Any]:
        started = time.perf_counter()
        for _ in range(STALE_MODELS):
            run(shell, STALE_CELL)
        build = time.perf_counter() - started
        before = diagnostics()
        with gc_time() as spent:
            started = time.perf_counter()
            run(shell, RESET_CELL)
            cell = time.perf_counter() - started
        report = shell.user_ns["_bench_report"]
        after = diagnostics()
        started = time.perf_counter()
        gc.collect()  # nothing left to free: what one pass over the unfrozen heap costs
        return {
            "build": build,
            "cell": cell,
            "inner": report.seconds,
            "full_gc": time.perf_counter() - started,
            "gc": spent["seconds"],
            "freed": spent["collected"],
            "collections": spent["full"],
            "before": state(report.before) | before,
            "after": state(report.after) | after,
            "collector": collector_status(),
        }

    ready = {"import_seconds": import_seconds, "collector": collector_status()}
    serve(lambda: ready, {"rep": repetition})


def child_restart(mode: str) -> None:
    """A restarted kernel, as far as "ready to work" goes."""
    shell = make_shell()
    for cell in load_cells(mode, IMPORTS):
        run(shell, cell)
    print(READY, flush=True)


def child_baseline() -> None:
    """A fresh start that re-ran only the cells whose results the reset sessions keep."""
    shell = make_shell()
    for cell in [*load_cells("on", IMPORTS), DEFINE_CELL, KEEP_CELL]:
        run(shell, cell)
    gc.collect()
    import tfmagic

    print(json.dumps(state(tfmagic.snapshot()) | diagnostics()), flush=True)


# -- restarts --------------------------------------------------------------------------------
def time_fresh_process(mode: str) -> float:
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, __file__, "--child", "restart", mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == READY:
                elapsed = time.perf_counter() - started
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
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"baseline process failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


class Kernel:
    """A real ipykernel through ``jupyter_client``; every start ends with TF imported."""

    def __init__(self, mode: str) -> None:
        from jupyter_client import KernelManager

        self.code = "\n".join(load_cells(mode, IMPORTS))
        self.manager = KernelManager(kernel_name="python3")
        self.client: Any = None

    def _import(self) -> None:
        reply = self.client.execute_interactive(
            self.code, timeout=300, output_hook=lambda message: None
        )
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel import failed: {reply['content']}")

    def cold_start(self) -> float:
        started = time.perf_counter()
        self.manager.start_kernel(env=child_env(), stderr=subprocess.DEVNULL)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self._import()
        return time.perf_counter() - started

    def restart(self) -> float:
        started = time.perf_counter()
        self.manager.restart_kernel()  # graceful, as the notebook's restart button
        self.client.wait_for_ready(timeout=120)
        self._import()
        return time.perf_counter() - started

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


# -- report ----------------------------------------------------------------------------------
def human_bytes(n: float) -> str:
    sign, n = ("-" if n < 0 else ""), abs(n)
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.2f} {unit}"
        n /= 1024
    return f"{sign}{n:.2f} GiB"


def show(name: str, value: int) -> str:
    return human_bytes(value) if name in BYTE_FIELDS else f"{value:,}"


def relative(after: int, baseline: int) -> str:
    if baseline == 0:
        return "equal" if after == 0 else "inf"
    return f"{(after - baseline) / baseline * 100:+.2f} %"


def report(
    reps: dict[str, list[dict]],
    restarts: dict[str, dict[str, list[float]]],
    baseline: dict[str, int],
    note: str,
) -> None:
    def samples(mode: str, key: str) -> list[float]:
        return [r[key] for r in reps[mode]]

    rows = []
    for label, key in (
        (f"%tf_reset cell ({STALE_MODELS} stale models)", "cell"),
        ("  of which reset() itself", "inner"),
        ("  of which in the garbage collector", "gc"),
        ("  one gc.collect() after it (nothing to free)", "full_gc"),
    ):
        old, new = median(samples("off", key)), median(samples("on", key))
        rows.append([label, ms(old), ms(new), ratio(new, old)])
    for label, key in (
        ("fresh process + %load_ext + import TF, Keras", "fresh"),
        ("Jupyter kernel restart + %load_ext + imports", "kernel"),
        ("Jupyter kernel cold start + imports (1 each)", "cold"),
    ):
        old, new = median(restarts["off"][key]), median(restarts["on"][key])
        if restarts["on"][key]:
            rows.append([label, ms(old), ms(new), ratio(new, old)])
    n = len(reps["on"])
    print(f"\nTimings: medians of {n} repetitions (ms); old = freeze_imports off, new = on.")
    print(table(rows, ["operation", "old", "new", "new/old"]))
    for mode in MODES:
        print(
            f"{'old' if mode == 'off' else 'new'}: a reset ran "
            f"{median(samples(mode, 'collections')):.0f} full collection(s) freeing "
            f"{median(samples(mode, 'freed')):,.0f} objects (medians)"
        )
    if note:
        print(note)

    print("\n%tf_reset as a share of a restart (same mode's restart):")
    share_rows = []
    for label, key in (("Jupyter kernel restart", "kernel"), ("fresh process", "fresh")):
        if not restarts["on"][key]:
            continue
        old = median(samples("off", "cell")) / median(restarts["off"][key])
        new = median(samples("on", "cell")) / median(restarts["on"][key])
        share_rows.append([label, f"{old * 100:.1f} %", f"{new * 100:.2f} %"])
    print(table(share_rows, ["%tf_reset / ...", "old", "new"]))

    print(
        "\nState: before/after the last %tf_reset, the largest after-reset value over all "
        "repetitions (new), and a fresh process that re-ran only the kept cells."
    )
    last_old, last_new = reps["off"][-1], reps["on"][-1]
    state_rows = []
    for name in STATE_FIELDS + DIAGNOSTIC_FIELDS:
        worst = max(r["after"][name] for r in reps["on"])
        state_rows.append(
            [
                name,
                show(name, last_new["before"][name]),
                show(name, last_old["after"][name]),
                show(name, last_new["after"][name]),
                show(name, worst),
                show(name, baseline[name]),
                relative(last_new["after"][name], baseline[name]),
            ]
        )
    headers = ["metric", "before (new)", "after old", "after new", "after new (max)"]
    print(table(state_rows, [*headers, "fresh", "new vs fresh"]))

    print()
    for label, key in (("kernel restart", "kernel"), ("fresh process", "fresh")):
        if restarts["on"][key]:
            share = median(samples("on", "cell")) / median(restarts["on"][key])
            verdict = "met" if share <= TARGET else "must met" if share < MUST else "NOT met"
            print(f"Target: %tf_reset <= 1 % (must < 3 %) of a {label}: {verdict}")
    for name in BYTE_FIELDS:
        for mode in MODES:
            worst = max(r["after"][name] for r in reps[mode])
            base = baseline[name]
            within = abs(worst - base) <= TARGET_BYTES * base
            print(
                f"Check: {name} after every reset ({'new' if mode == 'on' else 'old'}) within "
                f"1 % of a fresh start: {'yes' if within else 'NO'} "
                f"(largest {human_bytes(worst)} vs {human_bytes(base)})"
            )
    counts_equal = all(
        r["after"][name] == baseline[name]
        for mode in MODES
        for r in reps[mode]
        for name in ("variables", "models", "layers")
    )
    print(f"Check: variables/models/layers after every reset equal the fresh start: {counts_equal}")
    collector = last_new["collector"]
    print(
        f"Collector (new): frozen {collector['frozen']}, {collector['frozen_objects']:,} frozen "
        f"objects, deep collections {collector['deep_collections']}"
    )


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two repetitions (smoke test)")
    parser.add_argument("--no-jupyter", action="store_true", help="skip the Jupyter kernels")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        role, *rest = args.child
        {"session": child_session, "restart": child_restart, "baseline": child_baseline}[role](
            *rest
        )
        return 0
    repetitions = 2 if args.quick else 5

    started = time.perf_counter()
    sessions = {mode: Child(__file__, "session", mode) for mode in MODES}
    for mode, child in sessions.items():
        print(f"session {mode}: set up, import {child.ready['import_seconds']:.1f} s", flush=True)
    reps: dict[str, list[dict]] = {mode: [] for mode in MODES}
    restarts = {mode: {"fresh": [], "kernel": [], "cold": []} for mode in MODES}
    kernels: dict[str, Kernel] = {}
    note = ""
    if not args.no_jupyter:
        try:
            for mode in MODES:
                kernels[mode] = Kernel(mode)
                restarts[mode]["cold"].append(kernels[mode].cold_start())
        except Exception as exc:  # noqa: BLE001 - the rest of the benchmark still stands
            note = f"(Jupyter kernels not measured: {type(exc).__name__}: {exc})"
            for kernel in kernels.values():
                kernel.shutdown()
            kernels = {}
    try:
        for repetition in range(repetitions):
            line = [f"repetition {repetition + 1}/{repetitions}:"]
            for mode in MODES:
                reps[mode].append(sessions[mode].ask("rep"))
                restarts[mode]["fresh"].append(time_fresh_process(mode))
                if mode in kernels:
                    restarts[mode]["kernel"].append(kernels[mode].restart())
                rep = reps[mode][-1]
                line.append(
                    f"{mode}: %tf_reset {ms(rep['cell'])} ms "
                    f"(walked {rep['before']['walked']:,} objects), "
                    f"fresh {restarts[mode]['fresh'][-1]:.2f} s"
                    + (f", kernel {restarts[mode]['kernel'][-1]:.2f} s" if kernels else "")
                )
            print(" ".join(line), flush=True)
    finally:
        for kernel in kernels.values():
            kernel.shutdown()
        for child in sessions.values():
            child.close()
    baseline = measure_baseline()
    report(reps, restarts, baseline, note)
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
