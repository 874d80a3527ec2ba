"""Browser smoke test: tfmagic's stats table in a real JupyterLab, driven by chromium.

Run with ``pytest -m browser -s``; skipped when chromium or Playwright is missing
(a failure instead when ``CI=true``). The screenshot lands in ``test-output/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from jupyterlab_harness import chromium_browser, jupyterlab_server, open_notebook

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"

# tfmagic labels a cell by its first line, so the layer name shows up in the table.
MODEL_LABEL = "layer = keras.layers.Dense(2, name='<b>x')"
MODEL_CELL = MODEL_LABEL + "\nmodel = keras.Sequential([keras.Input((3,)), layer])"
CELLS = [
    "%load_ext tfmagic",
    "import sys\nimport tensorflow as tf\nimport keras\nprint(sys.executable)",
    MODEL_CELL,
    "%tf_graph_stats",
]


@pytest.mark.browser
def test_stats_table_in_jupyterlab() -> None:
    started = time.monotonic()
    with jupyterlab_server() as server, chromium_browser() as browser:
        server.write_notebook("smoke.ipynb", CELLS)
        nb = open_notebook(browser, server, "smoke.ipynb")
        for index in range(3):
            nb.run_cell(index)
        # The kernel is this venv's Python, not whatever "python3" is elsewhere.
        assert nb.output_text(1).strip().splitlines()[-1] == sys.executable

        nb.run_cell(2)  # re-run the model cell: its second run is marked ↻2
        stats = nb.run_cell(3)

        table = stats.locator("table.tfmagic-stats")
        assert table.count() == 1, nb.output_html(3)
        assert table.locator("th", has_text="vars").count() == 1
        assert "↻2" in table.inner_text()
        rerun_row = table.locator("tr", has_text="↻2")
        assert rerun_row.count() == 1
        # The label '<b>x' is user text: it must show literally and never become a <b>
        # element (the "TF state now" line above the table uses <b> on purpose).
        assert rerun_row.locator("td.cell").inner_text() == MODEL_LABEL
        assert table.locator("b").count() == 0
        assert all(b.inner_text() != "x" for b in nb.page.locator("b").all())
        assert "&lt;b&gt;x" in nb.output_html(3)

        shot = nb.screenshot(OUTPUT_DIR / "browser_smoke.png")
        print(f"\nscreenshot: {shot}  ({time.monotonic() - started:.1f} s)")
