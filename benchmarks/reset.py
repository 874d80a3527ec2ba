"""``%tf_reset`` against a kernel restart, with tfmagic's freeze off (the old way) and on.

Two sessions (freeze_imports off, on) bind one trained MLP ``kept`` (~4.8 MB with Adam);
each repetition pins ten more by ``Out[N]`` and times the cell ``%tf_reset -o``, in turn
with one fresh process and one Jupyter kernel restart (+ ``%load_ext``, imports) per mode.
Read: medians (ms) old | new | new/old; the floor (ten such models freed by a bare
``gc.collect()``, and only found); shares of a restart (reset: target 1 %, must < 3 %);
state after the reset beside a fresh process that built only ``kept`` (must match).
``python benchmarks/reset.py [--quick] [--no-jupyter]``: about five minutes on two cores.
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


def child_session(session: str) -> None:
    """One notebook session: ``rep`` pins ten stale models, then times ``%tf_reset``."""
    if session == "previous":
        from tfmagic.frameworks import tf_core

        def two_passes(collect: Any) -> tuple[int, int]:
            collect()  # then the entries are judged, and what they held needs a second pass
            return 0, tf_core.prune_dead_custom_gradients()

        tf_core.collect_with_custom_gradients = two_passes  # as the previous release did
    shell = make_shell()
    started = time.perf_counter()
    for cell in load_cells(SESSIONS[session], IMPORTS):
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

    def ten_dead_models() -> None:
        """Ten trained models that are cyclic garbage when this returns, TF's gradient
        entries for them dropped by hand and its kernel cache cleared, as a reset does
        before it collects (a function's removal scans that cache: left full, it would
        slow this collection and every later one in this session)."""
        from tensorflow.python.eager import context
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
        known = set(registry)
        models = [shell.user_ns["fit_once"](shell.user_ns["build"]()) for _ in range(10)]
        gc.collect()
        del models
        for name in set(registry) - known:
            del registry[name]
        context.context().clear_kernel_cache()

    def floor() -> dict[str, float]:
        """What freeing ten such models costs at least: a bare gc.collect(); and what only
        finding them costs: a collection under gc.DEBUG_SAVEALL finds the garbage and runs
        its finalizers and weakref callbacks (freeing the variables' memory), but keeps the
        objects in gc.garbage instead of freeing them."""
        ten_dead_models()
        started = time.perf_counter()
        gc.collect()
        freed = time.perf_counter() - started
        ten_dead_models()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            started = time.perf_counter()
            gc.collect()
            found = time.perf_counter() - started
        finally:
            gc.set_debug(0)
            del gc.garbage[:]
        gc.collect()
        return {"floor": freed, "find": found}

    ready = {"import_seconds": import_seconds, "collector": collector_status()}
    serve(lambda: ready, {"rep": repetition, "floor": floor})


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


# The sessions: the previous release (no freeze; collect, prune, collect again), this one
# with the freeze switched off, and this one as it ships.
SESSIONS = {"previous": "off", "off": "off", "on": "on"}  # session → freeze mode
LABELS = {"previous": "previous", "off": "freeze off", "on": "new"}


def report(
    reps: dict[str, list[dict]],
    restarts: dict[str, dict[str, list[float]]],
    baseline: dict[str, int],
    note: str,
) -> None:
    def at(session: str, key: str) -> float:
        return median([r[key] for r in reps[session]])

    def restart(session: str, key: str) -> float:
        return median(restarts[SESSIONS[session]][key])

    rows = []
    for label, key in (
        (f"%tf_reset cell ({STALE_MODELS} stale models)", "cell"),
        ("  of which reset() itself", "inner"),
        ("  of which in the garbage collector", "gc"),
        ("  one gc.collect() after it (nothing to free)", "full_gc"),
        ("ten such models freed by a bare gc.collect() (floor)", "floor"),
        ("  of which finding them (gc.DEBUG_SAVEALL)", "find"),
    ):
        cells = [ms(at(session, key)) for session in SESSIONS]
        rows.append([label, *cells, ratio(at("on", key), at("previous", key))])
    for label, key in (
        ("fresh process + %load_ext + import TF, Keras", "fresh"),
        ("Jupyter kernel restart + %load_ext + imports", "kernel"),
        ("Jupyter kernel cold start + imports (1 each)", "cold"),
    ):
        if restarts["on"][key]:
            cells = [ms(restart(session, key)) for session in SESSIONS]
            rows.append([label, *cells, ratio(restart("on", key), restart("previous", key))])
    for label, key in (
        ("full collections in a reset", "collections"),
        ("objects they freed", "freed"),
    ):
        rows.append([label, *(f"{at(session, key):,.0f}" for session in SESSIONS), ""])
    n = len(reps["on"])
    print(
        f"\nTimings: medians of {n} repetitions (ms). previous: no freeze, collect + prune + "
        "collect (emulated); freeze off: this release with c.TFMagics.freeze_imports = False."
    )
    print(table(rows, ["operation", *LABELS.values(), "new/previous"]))
    if note:
        print(note)

    print("\nAs a share of a restart (with the same freeze setting):")
    share_rows = []
    for label, key in (("Jupyter kernel restart", "kernel"), ("fresh process", "fresh")):
        if not restarts["on"][key]:
            continue
        for what, work in (("%tf_reset", "cell"), ("floor", "floor"), ("finding", "find")):
            shares = [at(session, work) / restart(session, key) for session in SESSIONS]
            share_rows.append([f"{what} / {label}", *(f"{x * 100:.2f} %" for x in shares)])
    print(table(share_rows, ["share", *LABELS.values()]))

    print(
        "\nState: before/after the last %tf_reset, the largest after-reset value over all "
        "repetitions (new), and a fresh process that re-ran only the kept cells."
    )
    last = {session: reps[session][-1] for session in SESSIONS}
    state_rows = []
    for name in STATE_FIELDS + DIAGNOSTIC_FIELDS:
        worst = max(r["after"][name] for r in reps["on"])
        state_rows.append(
            [
                name,
                show(name, last["on"]["before"][name]),
                *(show(name, last[session]["after"][name]) for session in SESSIONS),
                show(name, worst),
                show(name, baseline[name]),
                relative(last["on"]["after"][name], baseline[name]),
            ]
        )
    headers = ["metric", "before (new)", *(f"after {label}" for label in LABELS.values())]
    print(table(state_rows, [*headers, "after new (max)", "fresh", "new vs fresh"]))

    print()
    for label, key in (("kernel restart", "kernel"), ("fresh process", "fresh")):
        if restarts["on"][key]:
            share = at("on", "cell") / restart("on", key)
            verdict = "met" if share <= TARGET else "must met" if share < MUST else "NOT met"
            print(f"Target: %tf_reset <= 1 % (must < 3 %) of a {label}: {verdict}")
    for name in BYTE_FIELDS:
        for session, label in LABELS.items():
            worst = max(r["after"][name] for r in reps[session])
            base = baseline[name]
            within = abs(worst - base) <= TARGET_BYTES * base
            print(
                f"Check: {name} after every reset ({label}) within 1 % of a fresh start: "
                f"{'yes' if within else 'NO'} (largest {human_bytes(worst)} vs {human_bytes(base)})"
            )
    counts_equal = all(
        r["after"][name] == baseline[name]
        for session in SESSIONS
        for r in reps[session]
        for name in ("variables", "models", "layers")
    )
    print(f"Check: variables/models/layers after every reset equal the fresh start: {counts_equal}")
    collector = last["on"]["collector"]
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
    sessions = {session: Child(__file__, "session", session) for session in SESSIONS}
    for session, child in sessions.items():
        print(f"session {session}: import {child.ready['import_seconds']:.1f} s", flush=True)
    reps: dict[str, list[dict]] = {session: [] for session in SESSIONS}
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
            for session in SESSIONS:
                reps[session].append(sessions[session].ask("rep"))
                reps[session][-1].update(sessions[session].ask("floor"))
                line.append(f"{session} %tf_reset {ms(reps[session][-1]['cell'])} ms;")
            for mode in MODES:
                restarts[mode]["fresh"].append(time_fresh_process(mode))
                line.append(f"fresh {mode} {restarts[mode]['fresh'][-1]:.2f} s;")
                if mode in kernels:
                    restarts[mode]["kernel"].append(kernels[mode].restart())
                    line.append(f"kernel {mode} {restarts[mode]['kernel'][-1]:.2f} s;")
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
