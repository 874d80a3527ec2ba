"""Helpers the benchmark scripts share (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file (TensorFlow's C++ start-up lines
    ignore TF_CPP_MIN_LOG_LEVEL); echo what was caught if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def make_shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # leave the user's history alone
    return InteractiveShell.instance(config=config)


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return " | ".join(parts)

    return "\n".join([line(headers), "-+-".join("-" * w for w in widths), *map(line, rows)])


# -- old vs new: the same work with tfmagic's freeze off and on, side by side --------------
MODES = ("off", "on")  # c.TFMagics.freeze_imports: the old mechanism, then the new one
FREEZE = {mode: f"%config TFMagics.freeze_imports = {mode == 'on'}" for mode in ("off", "on")}
_MARK = "TFMAGIC-BENCH-REPLY:"


def load_cells(mode: str, imports: str = "import tensorflow as tf\nimport keras") -> list[str]:
    """``%load_ext tfmagic``, the freeze switched off or (as by default) on, the imports:
    the same cells in both modes, so that ``In[N]`` numbers match."""
    return ["%load_ext tfmagic", FREEZE[mode], imports]


def child_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


class Child:
    """A worker process (``python SCRIPT --child ARGS...``) that answers one JSON reply per
    command line (see ``serve``); several run side by side, asked in turn, so that the
    load of a shared machine hits every mode alike."""

    def __init__(self, script: str, *args: str) -> None:
        self.name = " ".join(args)
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        self._proc = subprocess.Popen(
            [sys.executable, script, "--child", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=child_env(),
        )
        self.ready = self._reply()

    def ask(self, command: str) -> Any:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._reply()

    def _reply(self) -> Any:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(_MARK):
                reply = json.loads(line[len(_MARK) :])
                if isinstance(reply, dict) and "error" in reply:
                    raise RuntimeError(f"child {self.name} failed:\n{reply['error']}")
                return reply
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-4000:]
        raise RuntimeError(f"child {self.name} exited ({self._proc.wait()}):\n{tail}")

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.ask("quit")
            except RuntimeError:
                pass
            self._proc.wait(timeout=60)
        self._stderr.close()


def serve(ready: Callable[[], Any], commands: dict[str, Callable[[], Any]]) -> None:
    """The child's side: reply ``ready()``, then one reply per command until ``quit``."""

    def reply(function: Callable[[], Any]) -> None:
        try:
            value = function()
        except BaseException:  # noqa: BLE001 - the parent shows it
            value = {"error": traceback.format_exc()}
        print(_MARK + json.dumps(value, default=lambda o: o.__dict__), flush=True)

    reply(ready)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            print(_MARK + "null", flush=True)
            return
        reply(commands[command])


@contextlib.contextmanager
def gc_time() -> Iterator[dict[str, float]]:
    """Time in the garbage collector inside the block (every collection, automatic ones
    too), objects it freed and full collections, through ``gc.callbacks``."""
    spent = {"seconds": 0.0, "collected": 0, "full": 0}
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
            spent["full"] += info["generation"] == 2
        elif started:
            spent["seconds"] += time.perf_counter() - started.pop()
            spent["collected"] += info["collected"]

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}" if seconds < 0.1 else f"{seconds * 1e3:,.0f}"


def ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}x" if old else "n/a"


def collector_status() -> dict[str, Any]:
    from tfmagic import collector

    return dict(collector.status().__dict__)
