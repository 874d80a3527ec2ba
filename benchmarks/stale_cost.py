"""What ``tfmagic.stale()`` costs, next to the heap walks it is made of.

A real InteractiveShell with tfmagic loaded, TF and Keras imported and a few models
alive: one bound to a name, three re-built by re-running their cell (so Out[N] pins the
stale ones), a callbacks list holding another, and a tf.function that still trains a
model that was re-built. ``stale()`` does one ``gc.collect()`` and a bounded walk from
every user-visible name; the table shows its median next to a bare ``gc.collect()`` and a
``gc.get_objects()`` scan on the same heap. The issue's target: about a second.

    python benchmarks/stale_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import make_shell, quiet_native_stderr, table

MODEL = "keras.Sequential([keras.Input((64,)), keras.layers.Dense(128), keras.layers.Dense(1)])"
CELLS = [
    "%load_ext tfmagic",
    "import tensorflow as tf, keras, tfmagic",
    f"kept = {MODEL}",
    MODEL,
    MODEL,
    MODEL,
    f"cbs = [keras.callbacks.History()]\ncbs[0].set_model({MODEL})",
    f"model = {MODEL}\nopt = keras.optimizers.SGD(0.1)",
    "@tf.function\ndef step(x):\n    with tf.GradientTape() as tape:\n"
    "        loss = tf.reduce_sum(model(x))\n"
    "    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),"
    " model.trainable_variables))\n    return loss",
    "step(tf.ones([2, 64]))",
    f"model = {MODEL}\nopt = keras.optimizers.SGD(0.1)",
]


def median_ms(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    shell = make_shell()
    with quiet_native_stderr():
        for cell in CELLS:
            shell.run_cell(cell, store_history=True).raise_error()
    import tfmagic

    found = tfmagic.stale()
    rows = [
        ["tfmagic.stale()", f"{median_ms(tfmagic.stale, repeats):.0f}"],
        ["gc.collect()", f"{median_ms(gc.collect, repeats):.0f}"],
        ["gc.get_objects() scan", f"{median_ms(lambda: len(gc.get_objects()), repeats):.0f}"],
    ]
    print(f"Heap: {len(gc.get_objects()):,} objects; medians of {repeats} calls.")
    print(table(rows, ["what", "median ms"]))
    print(f"\nstale() found {len(found)}:")
    for item in found:
        print(f"  {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
