"""With tfmagic's tracking installed, TF and Keras behave exactly as without it (issue 9).

For each flavour, ``equivalence_probe.py`` runs twice in fresh processes, tracking ``off``
and ``on``, and records what TF/Keras code can observe over the public surface: every
public class's ``__init__`` as ``inspect`` sees it, construction, subclassing, config
round trips, deepcopy, pickle, the wrapped callables themselves, and behaviours (custom
layers, saving, tf.function, sessions). The two records must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROBE = Path(__file__).with_name("equivalence_probe.py")
MARKER = "TFMAGIC-EQUIVALENCE:"
# Fewer classes than this means the probe lost its modules and would prove nothing.
MIN_CLASSES = {"keras3": 200, "tf_keras": 180, "tf_core": 60, "tf1": 250}
MAX_SHOWN = 40


def run_probes(flavour: str, modes: tuple[str, ...] = ("off", "on")) -> dict[str, dict]:
    """Run the probe once per mode, concurrently, each in a fresh process."""
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONHASHSEED": "0",
        # Lean on a shared machine, and no thread-count-dependent float reductions.
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
    }
    env.pop("TF_USE_LEGACY_KERAS", None)  # the probe sets it for the tf_keras flavour
    procs = {
        mode: subprocess.Popen(
            [sys.executable, str(PROBE), flavour, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for mode in modes
    }
    results = {}
    for mode, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
        assert proc.returncode == 0 and lines, (
            f"probe {flavour} {mode} failed (exit {proc.returncode}):\n{stderr[-5000:]}"
        )
        results[mode] = json.loads(lines[-1][len(MARKER) :])
    return results


def flatten(value: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaves of a JSON value by path; a list is a leaf (its order matters)."""
    if isinstance(value, dict) and value:
        leaves: dict[tuple[str, ...], Any] = {}
        for key, item in value.items():
            leaves.update(flatten(item, (*path, key)))
        return leaves
    return {path: value}


def differences(off: dict, on: dict) -> list[tuple[tuple[str, ...], str, str]]:
    """Each differing leaf: its path, and what the ``off`` and ``on`` runs saw."""
    flat_off, flat_on = flatten(off), flatten(on)
    missing = object()
    found = []
    for path in sorted(set(flat_off) | set(flat_on)):
        a, b = flat_off.get(path, missing), flat_on.get(path, missing)
        if a != b:
            shown = [
                "<absent>" if v is missing else json.dumps(v, sort_keys=True)[:600] for v in (a, b)
            ]
            found.append((path, shown[0], shown[1]))
    return found


def report(
    flavour: str, diffs: list[tuple[tuple[str, ...], str, str]], a: str = "off", b: str = "on"
) -> str:
    """Which classes/checks differ (section / name), then each differing leaf."""
    groups = sorted({" / ".join(path[:2]) for path, _, _ in diffs})
    lines = [
        f"{flavour}: {len(diffs)} observable difference(s) between {a} and {b} "
        f"in {len(groups)} class(es)/check(s):",
        *(f"  - {group}" for group in groups),
        "details:",
    ]
    for path, seen_a, seen_b in diffs[:MAX_SHOWN]:
        lines += [f"  {' / '.join(path)}", f"    {a}: {seen_a}", f"    {b}: {seen_b}"]
    if len(diffs) > MAX_SHOWN:
        lines.append(f"  ... and {len(diffs) - MAX_SHOWN} more")
    return "\n".join(lines)


@pytest.mark.parametrize("flavour", sorted(MIN_CLASSES))
def test_tracking_changes_nothing_observable(flavour: str) -> None:
    results = run_probes(flavour)
    off, on = results["off"], results["on"]

    # The runs really differ in tracking, and the probe really covered the flavour.
    assert off["meta"]["tracking_installed"] is False, off["meta"]["wrapped"]
    assert on["meta"]["tracking_installed"] is True, on["meta"]["wrapped"]
    assert all(on["meta"]["wrapped"].values()), on["meta"]["wrapped"]
    assert not any(off["meta"]["wrapped"].values()), off["meta"]["wrapped"]
    assert off["meta"]["class_count"] >= MIN_CLASSES[flavour], off["meta"]["class_count"]
    constructed = sum("object" in r for r in off["compared"]["classes"].values())
    assert constructed >= MIN_CLASSES[flavour] // 2, f"only {constructed} classes constructed"

    diffs = differences(off["compared"], on["compared"])
    if diffs:
        pytest.fail(report(flavour, diffs), pytrace=False)
    # tfmagic's own callbacks never failed along the way (they would show a notice).
    assert on["meta"]["incidents"] == [], on["meta"]["incidents"]


if __name__ == "__main__":
    # python tests/test_equivalence.py FLAVOUR [MODE_A MODE_B]: compare two runs by hand,
    # e.g. "off off" to check that the probe is deterministic.
    name, *pair = sys.argv[1:] or ["keras3"]
    a, b = pair or ("off", "on")
    if a == b:
        first, second = run_probes(name, (a,))[a], run_probes(name, (b,))[b]
    else:
        both = run_probes(name, (a, b))
        first, second = both[a], both[b]
    print(json.dumps({a: first["meta"], b: second["meta"]}, indent=1))
    found = differences(first["compared"], second["compared"])
    print(report(name, found, a, b) if found else f"{name}: {a} and {b} are identical")
