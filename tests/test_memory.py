"""Memory: per-cell peaks, %tf_memory by cell run, traceback pins, and the memory hints.

In-process tests share the Keras 3 shell of conftest.py and only look at what their own
cells did; tests that need exact baselines, a flavour or an untouched runtime run in
fresh processes (shellrunner).
"""

from __future__ import annotations

import gc
import glob
import json
import textwrap

import pytest
from IPython.core.error import UsageError
from shellrunner import run_cells

import tfmagic

MiB = 1 << 20
SETUP = ["%load_ext tfmagic", "import tensorflow as tf, keras, tfmagic"]


@pytest.fixture(autouse=True)
def _leave_no_garbage(request):
    """Tests on the shared shell leave no error traceback and no uncollected cycles behind
    (re-built models are reference cycles), so later tests' cells do not free them."""
    yield
    if "shell" in request.fixturenames:
        from tfmagic import last_error

        last_error.drop(request.getfixturevalue("shell"))
        gc.collect()


def last_record():
    return tfmagic.history()[-1]


# -- 1. per-cell peak ----------------------------------------------------------------
@pytest.mark.fast
def test_a_cell_that_allocates_and_frees_200_mib_peaks_at_200_mib(run):
    run("tf.zeros((1,));")  # the runtime is up: a device with allocator stats exists
    run("_t200 = tf.zeros((200 * 2**20 // 4,))\ndel _t200")
    record = last_record()
    assert record.peak_memory["CPU:0"] >= 200 * MiB
    assert abs(record.delta.memory.get("CPU:0", 0)) < MiB  # allocated and freed
    assert record.to_dict()["peak_memory"]["CPU:0"] == record.peak_memory["CPU:0"]
    run("_small = 1")
    assert last_record().peak_memory["CPU:0"] < 200 * MiB  # reset before each cell


@pytest.mark.fast
def test_peak_tracking_off_leaves_the_users_counter_alone(shell, run):
    run("tf.zeros((1,));")
    shell.run_line_magic("config", "TFMagics.track_peak_memory = False")
    try:
        run("tf.config.experimental.reset_memory_stats('CPU:0')")
        run("_t = tf.zeros((64 * 2**20 // 4,))\ndel _t")
        assert last_record().peak_memory == {}
        run("_peak_read = tf.config.experimental.get_memory_info('CPU:0')['peak']")
        assert shell.user_ns["_peak_read"] >= 64 * MiB  # no reset in between
        assert last_record().peak_memory == {}
    finally:
        shell.run_line_magic("config", "TFMagics.track_peak_memory = True")
    run("_t = tf.zeros((64 * 2**20 // 4,))\ndel _t")
    run("_peak_read = tf.config.experimental.get_memory_info('CPU:0')['peak']")
    assert shell.user_ns["_peak_read"] < 64 * MiB  # on: the counter starts at each cell
    assert last_record().peak_memory["CPU:0"] >= shell.user_ns["_peak_read"]


def test_reading_memory_and_peaks_never_initialises_the_runtime():
    cells = [
        *SETUP,
        "x = 1",
        "report = tfmagic.memory()\nstats = tfmagic.graph_stats()",
        # Possible only while TF's runtime is not initialised:
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, "
        "[tf.config.LogicalDeviceConfiguration()] * 2)",
        "RESULT = {'logical': len(tf.config.list_logical_devices('CPU')), "
        "'devices': report.to_dict()['devices'], "
        "'peaks': [r.peak_memory for r in tfmagic.history()[:-1]]}",
    ]
    out = run_cells(cells)
    assert [c["error"] for c in out["cells"]] == [None] * len(cells)
    assert out["result"]["logical"] == 2
    assert out["result"]["devices"] == {}  # no stats before the runtime starts
    assert all(p == {} for p in out["result"]["peaks"])


@pytest.mark.fast
def test_peak_is_a_graph_stats_column_in_text_and_html(shell, run):
    run("tf.zeros((1,));")
    first, _ = run("_t = tf.zeros((200 * 2**20 // 4,))\ndel _t  # peak column")
    stats = shell.run_line_magic("tf_graph_stats", "-n 1 -o")
    text = str(stats)
    header, _, row = text.splitlines()[1:4]
    assert "TF peak" in header
    peak = last_record().peak_memory["CPU:0"]
    from tfmagic.render import fmt_bytes

    assert fmt_bytes(peak) in row and row.startswith(f"{first.execution_count} ")
    html_text = stats._repr_html_()
    assert f'<td class="m-peak_memory" title="CPU:0 {fmt_bytes(peak)}">' in html_text
    assert stats.to_dict()["cells"][0]["peak_memory"] == {"CPU:0": peak}


# -- 2. %tf_memory ---------------------------------------------------------------------
@pytest.mark.fast
def test_rerun_model_cell_first_run_is_stale_with_its_bytes_and_out_pin(shell, run):
    cell = "keras.Sequential([keras.Input((64,)), keras.layers.Dense(1024)])  # tf_memory test"
    first, _ = run(cell)
    run(cell)
    report = shell.run_line_magic("tf_memory", "-o")
    rows = [r for r in report.rows if r.cell_key == cell]
    by_run = {r.run_index: r for r in rows}
    one, two = by_run[1], by_run[2]
    expected_bytes = (64 * 1024 + 1024) * 4
    assert (one.stale, one.variables, one.variable_bytes) == (True, 2, expected_bytes)
    assert one.execution_count == first.execution_count
    assert f"Out[{first.execution_count}]" in one.pinned_by
    assert (two.stale, two.variable_bytes) == (False, expected_bytes)
    assert report.rows == tuple(sorted(report.rows, key=lambda r: -r.variable_bytes))
    device = {d.device: d for d in report.devices}["CPU:0"]
    assert device.current > 0 and device.peak >= device.current
    # Text, HTML and dict forms say the same.
    text = str(report)
    assert "TF memory now: CPU:0" in text and "stale" in text
    assert f"Out[{first.execution_count}]" in text
    assert "<table>" in report._repr_html_() and 'class="stale"' in report._repr_html_()
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert {"devices", "rows", "last_error"} <= set(as_dict)
    assert any(r["stale"] and r["run_index"] == 1 for r in as_dict["rows"])
    # The twin returns the same kind of report; without pins nothing is walked.
    quick = tfmagic.memory(pins=False)
    assert next(r for r in quick.rows if r.cell_key == cell and r.stale).pinned_by == ()


@pytest.mark.fast
def test_attribution_by_cell_never_walks_the_heap(run, monkeypatch):
    run("walk_check = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8)])")

    def forbidden(*args: object) -> None:
        raise AssertionError("memory(pins=False) walked or collected the heap")

    for name in ("get_objects", "get_referrers", "get_referents", "collect"):
        monkeypatch.setattr(gc, name, forbidden)
    report = tfmagic.memory(pins=False)
    assert "walk_check" in {n for r in report.rows for n in r.names}


@pytest.mark.fast
def test_tf_memory_displays_and_refuses_unknown_options(shell, run):
    _, captured = run("%tf_memory")
    assert "TF memory now" in captured.outputs[0].data["text/plain"]
    for bad in ("--nope", "extra", "-n 3"):
        with pytest.raises(UsageError):
            shell.run_line_magic("tf_memory", bad)


def test_objects_made_before_tracking_began_are_one_row():
    out = run_cells(
        [
            "import tensorflow as tf",
            "early = [tf.Variable(tf.zeros((1024,))) for _ in range(3)]",
            "%load_ext tfmagic",
            "import tfmagic\nlate = tf.Variable(tf.zeros((10,)))",
            "RESULT = tfmagic.memory().to_dict()['rows']",
        ]
    )
    rows = out["result"]
    before = [r for r in rows if r["before_tracking"]]
    assert len(before) == 1
    assert (before[0]["variables"], before[0]["variable_bytes"]) == (3, 3 * 4096)
    assert before[0]["names"] == []  # a list holds them, not a name of their own
    assert [r["variables"] for r in rows if r["execution_count"] == 4] == [1]


# -- 3. traceback pins ---------------------------------------------------------------
FAILING = textwrap.dedent(
    """\
    def train():
        model = keras.Sequential([keras.Input((512,)), keras.layers.Dense(4096)])
        scratch = tf.ones((32 * 2**20 // 4,))
        model(tf.zeros((3, 7)))  # wrong input width: raises with model alive in this frame
    train()"""
)
STATE = (
    "m = tfmagic.memory().to_dict()\n"
    "STATE = {'vars': tfmagic.snapshot().variables, "
    "'mem': tf.config.experimental.get_memory_info('CPU:0')['current'], "
    "'stale': [(s.kind, s.label, list(s.pinned_by)) for s in tfmagic.stale()], "
    "'rows': m['rows'], 'last_error': m['last_error']}"
)


def test_reset_frees_a_model_only_a_failed_cells_traceback_keeps():
    out = run_cells(
        [
            *SETUP,  # In[1], In[2]
            "kept = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
            "tf.zeros((1,));",  # In[3]: the runtime is up; a model the user keeps
            STATE + "\nBASE = STATE",  # In[4]
            FAILING,  # In[5]
            STATE + "\nFAILED = STATE",  # In[6]
            "report = %tf_reset -o",  # In[7]
            STATE + "\nAFTER = STATE",  # In[8]
            "%tb",  # In[9]
            "RESULT = {'base': BASE, 'failed': FAILED, 'after': AFTER, 'report': "
            "report.to_dict(), 'text': str(report), 'kept': kept.name}",
        ]
    )
    assert out["cells"][4]["error"].startswith("ValueError")
    base, failed, after = (out["result"][k] for k in ("base", "failed", "after"))
    pin = "the last error's traceback (In[5])"
    # Before the reset: stale() names the traceback, and so does %tf_memory.
    assert failed["vars"] == base["vars"] + 2
    assert failed["mem"] >= base["mem"] + 8 * MiB + 32 * MiB
    [stale] = [s for s in failed["stale"] if s[0] == "model"]
    assert "from In[5], run 1" in stale[1]
    assert any(p.startswith(pin) and "train() local `model`" in p for p in stale[2])
    [row] = [r for r in failed["rows"] if r["execution_count"] == 5]
    assert row["stale"] and row["variable_bytes"] == (512 * 4096 + 4096) * 4
    assert any(p.startswith(pin) for p in row["pinned_by"])
    assert failed["last_error"]["label"] == pin
    assert failed["last_error"]["tensor_bytes"] >= 32 * MiB
    # The reset drops it and says so; variables and allocator bytes are back to the baseline.
    assert out["result"]["report"]["dropped_traceback"] == pin
    assert f"dropped {pin}" in out["result"]["text"]
    assert (after["vars"], after["mem"]) == (base["vars"], base["mem"])
    assert after["stale"] == [] and after["last_error"] is None
    # The user's own names are untouched; %tb has nothing left to show.
    assert out["result"]["kept"] == "sequential"
    assert "No traceback available" in out["cells"][8]["stderr"]


def test_reset_dry_run_only_names_the_traceback():
    out = run_cells(
        [
            *SETUP,
            "tf.zeros((1,));",
            FAILING,
            "r = %tf_reset --dry-run -o\nRESULT = {'dropped': r.dropped_traceback, "
            "'still': [s.label for s in tfmagic.stale()], 'text': str(r)}",
        ]
    )
    assert out["result"]["dropped"] == "the last error's traceback (In[4])"
    assert "would drop the last error's traceback (In[4])" in out["result"]["text"]
    assert len(out["result"]["still"]) == 1


# -- 4. hints --------------------------------------------------------------------------
@pytest.mark.fast
def test_oom_hint_on_tfs_real_resource_exhausted_error(run):
    result, captured = run("tf.zeros((2**40,))", expect_error=True)
    assert type(result.error_in_exec).__name__ == "ResourceExhaustedError"  # real, not built
    assert "tfmagic: TensorFlow ran out of memory" in captured.stderr
    # What it asked for (shape [2**40] of float) is beyond anything a reset could free.
    assert "the failed allocation alone asks for 4.0 TiB" in captured.stderr
    assert "make that tensor smaller" in captured.stderr


def test_oom_hint_names_the_stale_runs_and_tf_reset_then_lets_the_allocation_succeed():
    # A real CPU out-of-memory: the address space is capped just above what the
    # process uses, so a 500 MiB tensor fits only once the stale models are freed.
    model = (
        "keras.Sequential([keras.Input((4096,)), "
        "keras.layers.Dense(16384, kernel_initializer='zeros')])"
    )
    allocate = "x = tf.ones((500 * 2**20 // 4,))\nRESULT = x.shape[0]"
    out = run_cells(
        [
            *SETUP,  # In[1], In[2]
            "import resource",  # In[3]
            model,  # In[4]: 256 MiB, stale after the re-runs, pinned by Out[4]
            model,  # In[5]
            model,  # In[6]
            "vm = int(open('/proc/self/statm').read().split()[0]) * 4096\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vm + 16 * 2**20, resource.RLIM_INFINITY))",
            allocate,  # In[8]: OOM
            "%tf_reset",
            allocate,  # In[10]: fits
        ]
    )
    oom = out["cells"][7]
    assert oom["error"].startswith("ResourceExhaustedError")
    hint = [line for line in oom["stderr"].splitlines() if line.startswith("tfmagic:")]
    assert "TensorFlow ran out of memory (CPU:0 768.0 MiB in use)" in hint[0]
    assert "In[4] run 1" in hint[0] and "256.1 MiB, stale" in hint[0]
    assert "In[5] run 2" in hint[0]
    assert "%tf_reset frees" in hint[1]
    assert out["cells"][9]["error"] is None
    assert out["result"] == 500 * MiB // 4


@pytest.mark.fast
@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            "tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')"
            "[0], [tf.config.LogicalDeviceConfiguration()] * 2)",
            "Virtual devices cannot be modified after being initialized",
        ),
        (
            "tf.config.set_visible_devices([], 'CPU')",
            "Visible devices cannot be modified after being initialized",
        ),
    ],
)
def test_device_config_after_tf_started_hint_on_the_real_error(run, cell, message):
    run("tf.zeros((1,));")  # the runtime has started
    result, captured = run(cell, expect_error=True)
    assert isinstance(result.error_in_exec, RuntimeError)
    assert message in str(result.error_in_exec)
    assert "tfmagic: TensorFlow's runtime has already started" in captured.stderr
    assert "Restart the kernel and run this configuration in the first cell" in captured.stderr


def test_device_config_advice_applied_a_first_cell_configuration_works():
    config = (
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, "
        "[tf.config.LogicalDeviceConfiguration()] * 2)"
    )
    # As it fails: a TF op ran first.
    failed = run_cells([*SETUP, "tf.zeros((1,));", config])
    assert failed["cells"][-1]["error"].startswith("RuntimeError: Virtual devices")
    assert "tfmagic: TensorFlow's runtime" in failed["cells"][-1]["stderr"]
    # The advice: a fresh kernel with the configuration first, before any TF op.
    fixed = run_cells(
        [*SETUP, config, "RESULT = len(tf.config.list_logical_devices('CPU'))", "tf.zeros(1);"]
    )
    assert [c["error"] for c in fixed["cells"]] == [None] * 5
    assert fixed["result"] == 2


OPT_MODEL = "opt_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])"
OPT = "opt = keras.optimizers.Adam(0.01)"
OPT_STEP = textwrap.dedent(
    """\
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((opt_model(tf.ones((4, 3))) - 1.0) ** 2)
    grads = tape.gradient(loss, opt_model.trainable_variables)
    opt.apply_gradients(zip(grads, opt_model.trainable_variables))"""
)


@pytest.mark.fast
def test_optimizer_rerun_hint_on_keras3s_real_error_and_its_advice_works(run):
    run(OPT_MODEL)
    run(OPT)
    run(OPT_STEP)
    run(OPT_MODEL)  # the model cell re-run: new variables, the same optimizer
    result, captured = run(OPT_STEP, expect_error=True)
    assert "This optimizer can only be called for the variables it was originally built with" in (
        str(result.error_in_exec)
    )
    assert "tfmagic: the optimizer was built for an earlier model's variables" in captured.stderr
    run(OPT)  # the advice: re-create the optimizer after rebuilding the model
    run(OPT_STEP)


def test_optimizer_rerun_hint_on_tf_keras_real_error_and_its_advice_works():
    setup = ["%load_ext tfmagic", "import tensorflow as tf\nimport tf_keras as keras"]
    fit = (
        "opt_model.compile(opt, 'mse')\nopt_model.fit(tf.ones((4, 3)), tf.ones((4, 1)), verbose=0)"
    )
    out = run_cells(
        [*setup, OPT_MODEL, OPT, OPT_STEP, OPT_MODEL, OPT_STEP, fit, OPT, OPT_STEP, fit],
        env={"TF_USE_LEGACY_KERAS": "1"},
    )
    cells = out["cells"]
    assert cells[4]["error"] is None
    for failed in (cells[6], cells[7]):  # a custom loop, and compile() + fit()
        assert "The optimizer cannot recognize variable" in failed["error"]
        assert (
            "tfmagic: the optimizer was built for an earlier model's variables"
            in (failed["stderr"])
        )
    assert [c["error"] for c in cells[8:]] == [None, None, None]


# -- GPU --------------------------------------------------------------------------------
NO_GPU = "no GPU here (no /dev/nvidia* device): the GPU path of the device code is not run"


@pytest.mark.skipif(not glob.glob("/dev/nvidia[0-9]*"), reason=NO_GPU)
def test_gpu_peak_memory_and_the_physical_devices_hint():
    out = run_cells(
        [
            *SETUP,
            "RESULT = len(tf.config.list_physical_devices('GPU'))",
            "with tf.device('/GPU:0'):\n    g = tf.zeros((64 * 2**20 // 4,))\ndel g",
            "gpu = tf.config.list_physical_devices('GPU')[0]\n"
            "tf.config.experimental.set_memory_growth(gpu, True)",
            "RESULT = {'peaks': [r.peak_memory for r in tfmagic.history()], "
            "'devices': tfmagic.memory().to_dict()['devices']}",
        ]
    )
    if out["cells"][2]["error"] is None and not out["result"]:
        pytest.skip("a GPU device node exists but TensorFlow (this build) sees no GPU")
    peak = out["result"]["peaks"][3]
    assert peak["GPU:0"] >= 64 * MiB and "CPU:0" in peak
    assert "GPU:0" in out["result"]["devices"]
    config = out["cells"][4]
    if config["error"] is not None:  # already on (e.g. TF_FORCE_GPU_ALLOW_GROWTH) is no error
        assert "Physical devices cannot be modified after being initialized" in config["error"]
        assert "tfmagic: TensorFlow's runtime has already started" in config["stderr"]


# -- 5. the dashboard's memory panel ------------------------------------------------------
@pytest.mark.fast
def test_dashboard_memory_panel_next_to_reset_marks_stale_runs(shell, run):
    from IPython.utils.capture import capture_output

    from tfmagic import dashboard_widget, extension
    from tfmagic.render import fmt_bytes

    session = extension.loaded()
    cell = "keras.Sequential([keras.Input((32,)), keras.layers.Dense(4096)])  # dashboard panel"
    try:
        with capture_output():
            session.show_dashboard(widgets=True)
        board = session.dashboard
        assert isinstance(board, dashboard_widget.Dashboard)
        run("tf.zeros((1,));")
        first = run(cell)[0].execution_count  # not the result: it holds the model
        run(cell)
        run("_t = tf.zeros((100 * 2**20 // 4,))\ndel _t")
        panel = board.memory.value
        # Next to the Reset button: the panel is the widget right before the button bar.
        children = list(board.root.children)
        bar = children[children.index(board.memory) + 1]
        assert board.buttons["reset"] in bar.children
        assert '<tr data-device="CPU:0">' in panel
        peak = last_record().peak_memory["CPU:0"]
        assert peak >= 100 * MiB and "highest peak" in panel
        assert f"<td>{fmt_bytes(peak)}</td>" in panel  # the last run's peak
        first_run = f"<td>{first}</td><td>1</td>"
        assert first_run in panel
        assert "tfm-stale-row" in panel.split(first_run)[0].rsplit("<tr", 1)[1]
        assert "Reset drops the output-history and traceback pins" in panel
        text = board.text()
        assert "TF memory:" in text and "(stale)" in text
        # Reset frees the stale run: the panel no longer lists it.
        board.reset()
        assert first_run not in board.memory.value
    finally:
        session.close_dashboard("test over")
