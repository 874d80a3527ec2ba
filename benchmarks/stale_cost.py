"""What ``tfmagic.stale()`` costs with tfmagic's freeze off (the old way) and on.

Two sessions side by side (``freeze_imports`` off, on) build the same heap: a bound model,
two re-built by re-running their cell (``Out[N]`` pins one), a callbacks list holding
another, and a ``tf.function`` still training a model that was re-built. Each round
times, in each session in turn, ``stale()``, a bare ``gc.collect()`` and a
``gc.get_objects()`` scan. Read: medians (ms) old | new | new/old (target: ``stale()``
at most 50 ms); then the objects and pins each found, which must be the same.
``python benchmarks/stale_cost.py [--quick]``: about a minute on two cores.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import MODES, Child, load_cells, make_shell, median, ms, ratio, serve, table

TARGET = 0.050
MODEL = "keras.Sequential([keras.Input((64,)), keras.layers.Dense(128), keras.layers.Dense(1)])"
CELLS = [
    f"kept = {MODEL}",
    MODEL,
    MODEL,  # a re-run: Out[N] of the first run pins a stale model
    f"cbs = [keras.callbacks.History()]\ncbs[0].set_model({MODEL})",
    f"model = {MODEL}\nopt = keras.optimizers.SGD(0.1)",
    "@tf.function\ndef step(x):\n    with tf.GradientTape() as tape:\n"
    "        loss = tf.reduce_sum(model(x))\n"
    "    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),"
    " model.trainable_variables))\n    return loss",
    "step(tf.ones([2, 64]))",
    f"model = {MODEL}\nopt = keras.optimizers.SGD(0.1)",
]
OPERATIONS = ("stale()", "gc.collect()", "gc.get_objects() scan")


def child(mode: str) -> None:
    from IPython.utils.capture import capture_output

    shell = make_shell()
    with capture_output():
        for cell in [*load_cells(mode, "import tensorflow as tf, keras"), *CELLS]:
            shell.run_cell(cell, store_history=True).raise_error()
    import tfmagic

    operations: dict[str, Callable[[], object]] = {
        "stale()": tfmagic.stale,
        "gc.collect()": gc.collect,
        "gc.get_objects() scan": lambda: len(gc.get_objects()),
    }

    def timed() -> dict[str, float]:
        times = {}
        for name, operation in operations.items():
            started = time.perf_counter()
            operation()
            times[name] = time.perf_counter() - started
        return times

    def found() -> dict[str, object]:
        return {
            "stale": [str(s) for s in tfmagic.stale()],
            "walked": len(gc.get_objects()),
            "frozen": gc.get_freeze_count(),
        }

    serve(lambda: None, {"time": timed, "found": found})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    rounds = 3 if args.quick else 9

    children = {mode: Child(__file__, mode) for mode in MODES}
    samples: dict[str, dict[str, list[float]]] = {m: {o: [] for o in OPERATIONS} for m in MODES}
    try:
        for _ in range(rounds):
            for mode, process in children.items():
                for name, seconds in process.ask("time").items():
                    samples[mode][name].append(seconds)
        found = {mode: process.ask("found") for mode, process in children.items()}
    finally:
        for process in children.values():
            process.close()

    heap = found["off"]["walked"] + found["off"]["frozen"]
    print(f"Heap: {heap:,} objects; new: {found['on']['frozen']:,} of them frozen.")
    rows = []
    for name in OPERATIONS:
        old, new = median(samples["off"][name]), median(samples["on"][name])
        rows.append([name, ms(old), ms(new), ratio(new, old)])
    print(f"Medians of {rounds} calls per session (ms); old = freeze_imports off, new = on.")
    print(table(rows, ["operation", "old", "new", "new/old"]))
    same = found["off"]["stale"] == found["on"]["stale"]
    print(f"\nstale() found {len(found['on']['stale'])}, old and new alike: {same}")
    for mode in MODES if not same else ("on",):
        for line in found[mode]["stale"]:
            print(f"  {'' if same else mode + ': '}{line}")
    new = median(samples["on"]["stale()"])
    print(f"\nTarget: stale() <= 50 ms: {'met' if new <= TARGET else 'NOT met'} ({ms(new)} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
