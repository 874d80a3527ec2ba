"""How long ``%load_ext tfmagic`` takes in a fresh process, next to ``import tensorflow``.

Each sample is a new process: the shell is built untimed, then only
``run_line_magic("load_ext", "tfmagic")`` is timed, with bytecode cached (the headline)
and without (``PYTHONDONTWRITEBYTECODE``); ``import tensorflow`` is timed for scale.
Read: medians (min, max) in ms and the ratio to ``import tensorflow``. The line
``TensorFlow imported by %load_ext`` must say ``no`` (else exit status 1: a bug).
``python benchmarks/load_time.py`` (7 + 3 samples) or ``--quick`` (3 + 1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import table

MARKER = "TFMAGIC-LOAD-TIME:"
HEAVY = ("tensorflow", "keras", "tf_keras")  # modules loading must not import


@dataclass(frozen=True)
class Settings:
    load_samples: int
    import_samples: int


FULL = Settings(load_samples=7, import_samples=3)
QUICK = Settings(load_samples=3, import_samples=1)


# -- what runs in each fresh process ---------------------------------------------
def child_load() -> dict[str, Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # leave the user's history alone
    shell = InteractiveShell.instance(config=config)
    before = set(sys.modules)
    start = time.perf_counter()
    shell.run_line_magic("load_ext", "tfmagic")
    seconds = time.perf_counter() - start
    new = set(sys.modules) - before
    loaded = "tfmagic" in shell.extension_manager.loaded
    return {
        "seconds": seconds,
        "loaded": loaded,
        "heavy_imported": sorted(name for name in HEAVY if name in new),
        "new_modules": len(new),
    }


def child_import() -> dict[str, Any]:
    start = time.perf_counter()
    import tensorflow  # noqa: F401

    return {"seconds": time.perf_counter() - start}


CHILDREN = {"load": child_load, "import": child_import}


# -- the parent ------------------------------------------------------------------
def sample(kind: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind],
        capture_output=True,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise RuntimeError(
        f"{kind} sample failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
        f"{proc.stderr[-4000:]}"
    )


def samples(what: str, kind: str, env: dict[str, str], count: int) -> list[dict[str, Any]]:
    results = []
    for i in range(count):
        results.append(sample(kind, env))
        print(f"{what}: sample {i + 1}/{count}", flush=True)
    return results


def bytecode_env(prefix: str, write: bool) -> dict[str, str]:
    """The environment with bytecode read from (and, if ``write``, written to) ``prefix``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = prefix
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def row(name: str, seconds: list[float], reference: float) -> list[str]:
    ms = [s * 1e3 for s in seconds]
    median = statistics.median(seconds)
    return [
        name,
        str(len(ms)),
        f"{median * 1e3:.1f}",
        f"{min(ms):.1f}",
        f"{max(ms):.1f}",
        f"{median / reference:.4f} ({median / reference * 100:.2f}%)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke test)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(MARKER + json.dumps(CHILDREN[args.child]()))
        return 0
    settings = QUICK if args.quick else FULL

    scratch = tempfile.mkdtemp(prefix="tfmagic-load-time-")
    try:
        cached_env = bytecode_env(os.path.join(scratch, "cached"), write=True)
        source_env = bytecode_env(os.path.join(scratch, "empty"), write=False)
        sample("load", cached_env)  # warm-up: writes the bytecode, not timed
        cached = samples("%load_ext, .pyc cached", "load", cached_env, settings.load_samples)
        source = samples("%load_ext, no .pyc", "load", source_env, settings.load_samples)
        imports = samples("import tensorflow", "import", dict(os.environ), settings.import_samples)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    loads = cached + source
    cached_s = [s["seconds"] for s in cached]
    source_s = [s["seconds"] for s in source]
    import_s = [s["seconds"] for s in imports]
    import_median = statistics.median(import_s)
    print()
    print("Each sample in a fresh process; times in ms.")
    print(
        table(
            [
                row("%load_ext tfmagic (.pyc cached)", cached_s, import_median),
                row("%load_ext tfmagic (no .pyc)", source_s, import_median),
                row("import tensorflow", import_s, import_median),
            ],
            ["what", "samples", "median", "min", "max", "vs import tensorflow"],
        )
    )
    print()
    new_modules = statistics.median(s["new_modules"] for s in cached)
    print(f"modules newly imported by %load_ext (median): {new_modules:g}")

    not_loaded = sum(not s["loaded"] for s in loads)
    heavy = sorted({name for s in loads for name in s["heavy_imported"]})
    print(f"TensorFlow imported by %load_ext: {'YES: ' + ', '.join(heavy) if heavy else 'no'}")
    if not_loaded:
        print(f"FAIL: tfmagic was not in the loaded extensions in {not_loaded} sample(s)")
    if heavy:
        print("FAIL: loading tfmagic must not import TensorFlow or Keras")
    return 1 if heavy or not_loaded else 0


if __name__ == "__main__":
    sys.exit(main())
