"""Extension lifecycle in fresh processes: lazy load, reload, unload, config loading."""

from __future__ import annotations

import os
import subprocess
import sys

from shellrunner import run_cells

HOOKS = """
from tfmagic.tracker import CellTracker
def ours(event):
    return sum(isinstance(getattr(cb, '__self__', None), CellTracker)
               for cb in get_ipython().events.callbacks[event])
"""


def test_load_does_not_import_tensorflow_and_tracks_from_first_import():
    out = run_cells(
        [
            "%load_ext tfmagic",
            "import sys\nRESULT = {'tf_after_load': 'tensorflow' in sys.modules}",
            "import tensorflow as tf\nv = tf.Variable(tf.zeros([10, 10]))",
            "w = tf.Variable(1.0)",
        ]
    )
    assert out["result"] == {"tf_after_load": False}
    history = out["history"]
    assert [h["after"]["tensorflow"] for h in history] == [False, True, True]
    # The import cell itself already counts the variable made next to the import.
    assert history[1]["delta"]["variables"] == 1
    assert history[1]["delta"]["variable_bytes"] == 400
    assert history[2]["delta"]["variables"] == 1


def test_reload_keeps_one_set_of_hooks_and_unload_removes_them():
    out = run_cells(
        [
            "%load_ext tfmagic",
            HOOKS,
            "%reload_ext tfmagic\n%reload_ext tfmagic\n%reload_ext tfmagic",
            "RESULT = [ours('pre_run_cell'), ours('post_run_cell')]",
            "import tfmagic\ntfmagic.load_ipython_extension(get_ipython())",
            "RESULT += [ours('pre_run_cell'), ours('post_run_cell')]",
            "%unload_ext tfmagic",
            "RESULT += [ours('pre_run_cell'), ours('post_run_cell'),"
            " 'tf_graph_stats' in get_ipython().magics_manager.magics['line']]",
            "%tf_graph_stats",
        ]
    )
    assert out["result"] == [1, 1, 1, 1, 0, 0, False]
    assert "UsageError" in out["cells"][-1]["error"]


def test_extension_loads_from_ipython_config(tmp_path):
    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text("c.InteractiveShellApp.extensions = ['tfmagic']\n")
    env = {**os.environ, "IPYTHONDIR": str(tmp_path)}
    code = (
        "import sys; magics = get_ipython().magics_manager.magics['line']; "
        "print('magic', 'tf_graph_stats' in magics, 'tensorflow' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "magic True False" in proc.stdout, proc.stdout + proc.stderr


def test_terminal_shows_text_table():
    out = run_cells(["%load_ext tfmagic", "import tensorflow as tf", "%tf_graph_stats"])
    bundle = out["cells"][-1]["displays"][0]
    assert "TF state now" in bundle["text/plain"]
    assert "<table" in bundle["text/html"]
