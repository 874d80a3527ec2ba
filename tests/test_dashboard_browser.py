"""End to end: the live dashboard in a real JupyterLab, driven by headless chromium.

The kernel runs cells; the dashboard's widget in the page must follow on its own
(tracker listener → widget state → comm → page), and its Reset button must work
from the page. Skipped without chromium/Playwright (a failure when ``CI=true``).
Screenshots land in ``test-output/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from jupyterlab_harness import LabNotebook, chromium_browser, jupyterlab_server, open_notebook

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"
UPDATE_TIMEOUT = 30_000  # ms for a widget update to reach the page

# tfmagic labels a cell by its first line, so the layer name is in the dashboard's table.
MODEL_LABEL = "layer = keras.layers.Dense(2, name='<b>x')"
SHOW = "%tf_dashboard"
# "$...$" in a label must stay text. JupyterLab 4.6 does not typeset widget HTML; frontends
# with a global MathJax do, which the dashboard's mathjax_ignore class guards against.
DOLLARS = "price = 'costs $1 or $2'"
CELLS = [
    "%load_ext tfmagic",
    "import tensorflow as tf\nimport keras\nimport tfmagic",
    SHOW,  # becomes %tf_dashboard once the magic is registered
    # The trailing `model` puts each run's model in Out[N]: a re-run grows.
    MODEL_LABEL + "\nmodel = keras.Sequential([keras.Input((3,)), layer])\nmodel",
    "s = tfmagic.snapshot()\nprint('COUNTS', s.variables, s.models)",
    SHOW,
    DOLLARS,
]
DASH_CELL, MODEL_CELL, TRUTH_CELL, SECOND_CELL, DOLLAR_CELL = 2, 3, 4, 5, 6


def dashboard(nb: LabNotebook, cell: int = DASH_CELL):
    return nb.cell(cell).locator(".tfmagic-dashboard")


def card(nb: LabNotebook, key: str):
    return dashboard(nb).locator(f'.tfm-card[data-key="{key}"]')


def wait_for_text(locator, pattern: str) -> None:
    """Wait until the locator's text matches; the widget updates asynchronously."""
    from playwright.sync_api import expect

    expect(locator).to_contain_text(re.compile(pattern), timeout=UPDATE_TIMEOUT)


def truth(nb: LabNotebook) -> tuple[int, int]:
    """Variables and models as the kernel counts them now (the dashboard must agree)."""
    nb.run_cell(TRUTH_CELL)
    match = re.search(r"COUNTS (\d+) (\d+)", nb.output_text(TRUTH_CELL))
    assert match, nb.output_text(TRUTH_CELL)
    wait_for_text(dashboard(nb).locator(".tfm-cause"), rf"In\[{nb.execution_count(TRUTH_CELL)}\]")
    return int(match[1]), int(match[2])


def shown(nb: LabNotebook, key: str) -> int:
    return int(card(nb, key).locator(".tfm-v").inner_text())


@pytest.mark.browser
def test_dashboard_follows_cells_and_resets_in_jupyterlab() -> None:
    started = time.monotonic()
    with jupyterlab_server() as server, chromium_browser() as browser:
        server.write_notebook("dashboard.ipynb", CELLS)
        nb = open_notebook(browser, server, "dashboard.ipynb", viewport=(1300, 1400))
        for index in range(DASH_CELL + 1):
            nb.run_cell(index)
        dashboard(nb).wait_for(state="visible", timeout=UPDATE_TIMEOUT)
        wait_for_text(card(nb, "models"), r"models\s*0")

        # First build: the dashboard shows the new counts without being asked.
        nb.run_cell(MODEL_CELL)
        first_run = nb.execution_count(MODEL_CELL)
        wait_for_text(dashboard(nb).locator(".tfm-cause"), rf"In\[{first_run}\] layer")
        variables, models = truth(nb)
        assert models > 0 and variables > 0
        assert (shown(nb, "models"), shown(nb, "variables")) == (models, variables)

        # Re-build: Out[N] keeps the first model alive, so the counts grow; ↻2 marked.
        nb.run_cell(MODEL_CELL)
        wait_for_text(dashboard(nb).locator(".tfm-cause"), r"↻2")
        wait_for_text(card(nb, "models").locator(".tfm-d"), rf"\+{models}")
        grown_vars, grown_models = truth(nb)
        assert grown_models == 2 * models and grown_vars == 2 * variables
        assert (shown(nb, "models"), shown(nb, "variables")) == (grown_models, grown_vars)
        chart = dashboard(nb).locator("svg.tfm-svg")
        assert chart.locator('rect.tfm-hit[data-kind="grew"]').count() == 1
        assert dashboard(nb).locator("table.tfmagic-stats tr.grew").count() == 1

        # On demand only: the stale list names the first run's model and its Out[N] pin.
        dashboard(nb).locator(".tfm-btn-stale").click()
        wait_for_text(dashboard(nb).locator(".tfm-stale"), r"pinned by .*Out\[")

        # The layer name is user text: shown literally, never turned into a <b> element.
        label_cells = dashboard(nb).locator("td.cell", has_text=MODEL_LABEL)
        assert label_cells.count() == 2, dashboard(nb).inner_html()
        assert all(b.inner_text() != "x" for b in nb.page.locator("b").all())
        assert "&lt;b&gt;x" in dashboard(nb).inner_html()
        nb.run_cell(DOLLAR_CELL)
        wait_for_text(dashboard(nb).locator("td.cell").first, re.escape(DOLLARS))
        nb.screenshot(OUTPUT_DIR / "dashboard_grown.png", cell=DASH_CELL)

        # Reset from the page: the numbers drop at once (no cell runs).
        dashboard(nb).locator(".tfm-btn-reset").click()
        wait_for_text(dashboard(nb).locator(".tfm-cause"), "reset button")
        wait_for_text(dashboard(nb).locator(".tfm-output"), "tfmagic reset:")
        assert shown(nb, "models") == models  # the earlier run's model was freed
        wait_for_text(dashboard(nb).locator(".tfm-stale"), "on demand")  # old list dropped
        assert chart.locator('rect.tfm-hit[data-kind="reset"]').count() == 1
        after_vars, after_models = truth(nb)
        assert (shown(nb, "models"), shown(nb, "variables")) == (after_models, after_vars)
        assert after_models == models

        # Hard reset asks first: a plan and Confirm/Cancel; Cancel changes nothing.
        dashboard(nb).locator(".tfm-btn-hard").click()
        wait_for_text(dashboard(nb).locator(".tfm-output"), "would delete: .*model")
        confirm = dashboard(nb).locator(".tfm-btn-confirm")
        confirm.wait_for(state="visible", timeout=UPDATE_TIMEOUT)
        dashboard(nb).locator(".tfm-btn-cancel").click()
        confirm.wait_for(state="hidden", timeout=UPDATE_TIMEOUT)
        assert truth(nb) == (after_vars, after_models)
        nb.screenshot(OUTPUT_DIR / "dashboard.png", cell=DASH_CELL)
        assert dashboard(nb).locator("mjx-container, .MathJax").count() == 0  # typeset by now

        # A second dashboard: the first one says it was replaced and stops updating.
        nb.run_cell(SECOND_CELL)
        wait_for_text(nb.cell(DASH_CELL), "replaced by a newer one")
        dashboard(nb, SECOND_CELL).wait_for(state="visible", timeout=UPDATE_TIMEOUT)
        assert dashboard(nb).locator(".tfm-card").count() == 0
        nb.screenshot(OUTPUT_DIR / "dashboard_page.png")
        assert not [e for e in nb.console_errors if "widget" in e.lower()], nb.console_errors
    print(f"\nscreenshots in {OUTPUT_DIR} ({time.monotonic() - started:.1f} s)")
