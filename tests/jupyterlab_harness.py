"""End-to-end harness: a real JupyterLab server driven by Debian's chromium through Playwright.

Three pieces, each usable on its own::

    with jupyterlab_server() as server, chromium_browser() as browser:
        server.write_notebook("smoke.ipynb", ["%load_ext tfmagic", "%tf_graph_stats"])
        nb = open_notebook(browser, server, "smoke.ipynb")
        nb.run_cell(0)
        nb.run_cell(1)
        assert "TF state" in nb.output_text(1)
        nb.screenshot(tmp_path / "smoke.png")

* :func:`jupyterlab_server` starts ``python -m jupyterlab`` from *this* interpreter on
  127.0.0.1 (free port, random token, temporary root) with an isolated Jupyter/IPython
  configuration and a ``python3`` kernelspec that runs ``sys.executable``; it always
  stops the server and every kernel it started.
* :func:`chromium_browser` launches the system chromium (never Playwright's own
  download); a missing browser skips the test, or fails it when ``CI=true``.
* :class:`LabNotebook` opens a notebook in the page, waits for the kernel, runs cells one
  at a time (select the cell, press Ctrl+Enter = ``notebook:run-cell``) and reads outputs
  back from the DOM or, exactly, from the notebook model (``window.jupyterapp``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Page

#: Flags for a headless chromium in a container: no sandbox (root), no GPU, no
#: background traffic to Google (the machine may be offline).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

#: Kernel start plus ``import tensorflow`` takes 5-10 s on a small machine; be generous.
KERNEL_TIMEOUT = 120.0
CELL_TIMEOUT = 180.0
SERVER_TIMEOUT = 90.0

# JupyterLab settings for a quiet, deterministic UI: no news/update toasts, and every
# cell attached to the DOM (the default windowing skips off-screen cells).
_LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "enableKernelInitNotification": False,
    },
}


def in_ci() -> bool:
    """True when the ``CI`` environment variable says so (GitHub/GitLab set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def skip_or_fail(reason: str) -> None:
    """Skip the test locally; fail it in CI, where a missing prerequisite is a bug."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JupyterLabServer:
    """A running JupyterLab server; use :func:`jupyterlab_server` to get one."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/lab") -> str:
        """An absolute URL for ``path`` that logs the browser in with the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def notebook_url(self, name: str) -> str:
        return self.url(f"/lab/tree/{urllib.request.pathname2url(name)}")

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the REST API with the token; the decoded JSON (or None for no body)."""
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method != "GET" else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the server's (and its kernels') combined stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def write_notebook(self, name: str, cells: Sequence[str], kernel_name: str = "python3") -> Path:
        """Write a notebook of code cells (one source string each) into the server root."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nb.metadata["kernelspec"] = {
            "name": kernel_name,
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path

    def kernel_pids(self) -> list[int]:
        """Pids of every process the server started (kernels included)."""
        import psutil

        try:
            return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            return []


def _isolated_env(base: Path) -> dict[str, str]:
    """Environment for the server: its own Jupyter config/data/runtime, IPython profile,
    Lab settings and a ``python3`` kernelspec pinned to ``sys.executable``."""
    kernel_dir = base / "jupyter-path" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "metadata": {"debugger": True},
            }
        )
    )
    settings = base / "lab-settings"
    for rel, values in _LAB_SETTINGS.items():
        target = settings / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    for sub in ("jupyter-config", "jupyter-data", "jupyter-runtime", "ipython", "workspaces"):
        (base / sub).mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        # JUPYTER_PATH is searched first, so our kernelspec wins over any user one.
        JUPYTER_PATH=os.pathsep.join(
            [str(base / "jupyter-path"), *filter(None, [os.environ.get("JUPYTER_PATH")])]
        ),
        JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
        JUPYTER_DATA_DIR=str(base / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        IPYTHONDIR=str(base / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONUNBUFFERED="1",
    )
    # The venv's bin first, so anything the kernel shells out to is the same Python too.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _start(root: Path, base: Path, env: dict[str, str], log_path: Path) -> JupyterLabServer:
    port, token = free_port(), secrets.token_hex(24)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # a taken port must fail, not move silently
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={base / 'lab-settings'}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, for exact model reads
        "--ServerApp.terminals_enabled=False",
        "--LabApp.extension_manager=readonly",  # never query PyPI
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI images often run as root
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so we can signal all of it
        )
    return JupyterLabServer(root, port, token, process, log_path, env)


def _wait_ready(server: JupyterLabServer, timeout: float) -> bool:
    """Poll /api/status until it answers; False if the process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with contextlib.suppress(OSError, ValueError):
            status = server.api("/api/status", timeout=3)
            if isinstance(status, dict) and "started" in status:
                return True
        time.sleep(0.25)
    raise TimeoutError(
        f"JupyterLab did not answer on port {server.port} within {timeout:.0f} s.\n"
        f"--- server log ---\n{server.log_tail()}"
    )


def stop_server(server: JupyterLabServer, timeout: float = 20.0) -> None:
    """Stop the server and every process it started, politely first, then by force.

    SIGTERM to the server's process group makes jupyter_server shut its kernels down;
    kernels run in their own sessions, so any that survive are killed by pid.
    """
    import psutil

    descendants: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        descendants = psutil.Process(server.process.pid).children(recursive=True)
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
    alive = [p for p in descendants if p.is_running()]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


@contextlib.contextmanager
def jupyterlab_server(
    root: Path | None = None, *, timeout: float = SERVER_TIMEOUT, attempts: int = 3
) -> Iterator[JupyterLabServer]:
    """Run a JupyterLab server for the ``with`` block and stop it (and its kernels) after.

    ``root`` is the directory the server serves (a fresh temporary one by default).
    The server, its kernels and the kernelspec all use ``sys.executable``. On a port
    clash (the free port was taken before the server bound it) it retries on a new one.
    """
    with tempfile.TemporaryDirectory(prefix="tfmagic-lab-") as tmp:
        base = Path(tmp)
        root = Path(root) if root is not None else base / "root"
        root.mkdir(parents=True, exist_ok=True)
        env = _isolated_env(base)
        log_path = base / "server.log"
        server: JupyterLabServer | None = None
        try:
            for _ in range(attempts):
                server = _start(root, base, env, log_path)
                if _wait_ready(server, timeout):
                    break
                stop_server(server)
            else:
                assert server is not None
                raise RuntimeError(
                    f"JupyterLab exited during startup ({attempts} attempts).\n"
                    f"--- server log ---\n{server.log_tail()}"
                )
            yield server
        finally:
            if server is not None:
                stop_server(server)


# ---------------------------------------------------------------------------- browser


def find_chromium() -> str | None:
    """The system chromium: ``$TFMAGIC_CHROMIUM``, ``chromium`` on PATH, /usr/bin/chromium."""
    candidates = [
        os.environ.get("TFMAGIC_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


@contextlib.contextmanager
def chromium_browser(headless: bool = True) -> Iterator[Browser]:
    """Launch the system chromium through Playwright's sync API; close it afterwards.

    Never uses (or downloads) Playwright's bundled browsers. Skips the test when
    Playwright or chromium is missing, or fails it when ``CI=true``.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright (python) is not installed")
    executable = find_chromium()
    if executable is None:
        skip_or_fail("no chromium found (apt-get install chromium, or set TFMAGIC_CHROMIUM)")
    assert executable is not None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, headless=headless, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


# ---------------------------------------------------------------------------- notebook

_COUNT = re.compile(r"\[(\d+)\]")


class LabNotebook:
    """One notebook open in a JupyterLab page. Create it with :func:`open_notebook`.

    Cells are addressed by 0-based index. Each ``run_cell`` runs exactly one cell and
    returns when its execution count is shown and the kernel is idle again.
    """

    def __init__(self, page: Page, server: JupyterLabServer, name: str) -> None:
        self.page = page
        self.server = server
        self.name = name
        #: Browser console errors and uncaught page exceptions, for debugging failures.
        self.console_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"pageerror: {exc}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    # -- locators
    @property
    def panel(self) -> Locator:
        """The notebook's panel (the one whose document is ``self.name``)."""
        return self.page.locator(
            f".jp-NotebookPanel[data-tfmagic-path={json.dumps(self.name, ensure_ascii=False)}]"
        )

    @property
    def cells(self) -> Locator:
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def outputs(self, index: int) -> Locator:
        """The rendered output items of a cell (one per output)."""
        return self.cell(index).locator(".jp-OutputArea-output")

    # -- lifecycle
    def open(self, timeout: float = KERNEL_TIMEOUT) -> LabNotebook:
        """Load the notebook URL, wait for its cells and an idle kernel."""
        self.page.goto(self.server.notebook_url(self.name), wait_until="domcontentloaded")
        self.page.wait_for_function(
            "() => window.jupyterapp !== undefined && window.jupyterapp.started !== undefined",
            timeout=timeout * 1000,
        )
        self.page.evaluate(
            "() => Promise.all([window.jupyterapp.started, window.jupyterapp.restored])"
        )
        # Tag our panel by document path so locators stay unambiguous when more open.
        self.page.wait_for_function(
            """(path) => {
                for (const w of window.jupyterapp.shell.widgets('main')) {
                    if (w.context && w.context.path === path && w.content) {
                        w.node.dataset.tfmagicPath = path;
                        return true;
                    }
                }
                return false;
            }""",
            arg=self.name,
            timeout=timeout * 1000,
        )
        self.cell(0).wait_for(state="visible", timeout=timeout * 1000)
        self.wait_for_kernel_idle(timeout)
        return self

    def kernel_status(self) -> str:
        """The kernel status the notebook's session reports (idle, busy, starting, ...)."""
        return str(
            self.page.evaluate(
                """(path) => {
                    for (const w of window.jupyterapp.shell.widgets('main')) {
                        if (w.context && w.context.path === path) {
                            const k = w.sessionContext.session?.kernel;
                            return k ? k.status : 'no-kernel';
                        }
                    }
                    return 'no-panel';
                }""",
                self.name,
            )
        )

    def wait_for_kernel_idle(self, timeout: float = KERNEL_TIMEOUT) -> None:
        """Wait until the kernel is started, connected and idle."""
        try:
            self.page.wait_for_function(
                """(path) => {
                    for (const w of window.jupyterapp.shell.widgets('main')) {
                        if (w.context && w.context.path === path) {
                            const s = w.sessionContext;
                            const k = s.session?.kernel;
                            return !!k && s.isReady && k.connectionStatus === 'connected'
                                && k.status === 'idle';
                        }
                    }
                    return false;
                }""",
                arg=self.name,
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as e:
            raise AssertionError(
                f"kernel not idle after {timeout:.0f} s (status {self.kernel_status()!r})"
                + self._debug_info()
            ) from e

    # -- running
    def execution_count(self, index: int) -> int | None:
        """The number in the cell's ``[n]:`` prompt (None for ``[ ]`` or ``[*]``)."""
        text = self.cell(index).locator(".jp-InputPrompt").inner_text()
        match = _COUNT.search(text)
        return int(match.group(1)) if match else None

    def select_cell(self, index: int) -> None:
        """Make cell ``index`` the active cell, in command mode, with the notebook focused."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        self.page.wait_for_function(
            "(el) => el.classList.contains('jp-mod-active')"
            " && el.closest('.jp-Notebook').classList.contains('jp-mod-commandMode')",
            arg=cell.element_handle(),
            timeout=10_000,
        )

    def run_cell(self, index: int, timeout: float = CELL_TIMEOUT, check: bool = True) -> Locator:
        """Run cell ``index`` (select it, press Ctrl+Enter) and wait until it finished.

        Finished means the prompt shows a new execution count (JupyterLab sets it only
        after the reply *and* all outputs arrived) and the kernel is idle again. With
        ``check``, an error output fails with the traceback. Returns the cell locator.
        """
        before = self.execution_count(index)
        self.select_cell(index)
        self.page.keyboard.press("Control+Enter")  # notebook:run-cell; stays on the cell
        prompt = self.cell(index).locator(".jp-InputPrompt")
        try:
            self.page.wait_for_function(
                """([el, before]) => {
                    const m = el.textContent.match(/\\[(\\d+)\\]/);
                    return m !== null && Number(m[1]) !== before;
                }""",
                arg=[prompt.element_handle(), before if before is not None else -1],
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as e:
            raise AssertionError(
                f"cell {index} did not finish within {timeout:.0f} s" + self._debug_info()
            ) from e
        self.wait_for_kernel_idle(timeout)
        if check:
            errors = [o for o in self.cell_outputs(index) if o.get("output_type") == "error"]
            if errors:
                tb = "\n".join(errors[0].get("traceback", []))
                tb = re.sub(r"\x1b\[[0-9;]*m", "", tb)
                raise AssertionError(f"cell {index} raised:\n{tb}")
        return self.cell(index)

    def run_all(self, timeout: float = CELL_TIMEOUT, check: bool = True) -> None:
        """Run every cell in order, one at a time (each waited for, as in ``run_cell``)."""
        for index in range(self.cells.count()):
            self.run_cell(index, timeout=timeout, check=check)

    # -- reading
    def cell_outputs(self, index: int) -> list[dict[str, Any]]:
        """The cell's outputs exactly as the notebook model holds them (nbformat dicts)."""
        return list(
            self.page.evaluate(
                """([path, index]) => {
                    for (const w of window.jupyterapp.shell.widgets('main')) {
                        if (w.context && w.context.path === path) {
                            return w.content.widgets[index].model.outputs.toJSON();
                        }
                    }
                    return [];
                }""",
                [self.name, index],
            )
        )

    def output_text(self, index: int) -> str:
        """The visible text of a cell's rendered outputs, one output per line."""
        return "\n".join(o.inner_text().rstrip("\n") for o in self.outputs(index).all())

    def output_html(self, index: int) -> str:
        """The rendered HTML (after JupyterLab's sanitizer) of a cell's outputs."""
        return "\n".join(o.inner_html() for o in self.outputs(index).all())

    def screenshot(self, path: str | os.PathLike[str], cell: int | None = None) -> Path:
        """Save a PNG of the page (or of one cell with ``cell=``); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if cell is None:
            self.page.screenshot(path=str(target))
        else:
            self.cell(cell).scroll_into_view_if_needed()
            self.cell(cell).screenshot(path=str(target))
        return target

    def _debug_info(self) -> str:
        errors = "\n".join(self.console_errors[-20:]) or "(none)"
        return (
            f"\n--- browser console errors ---\n{errors}"
            f"\n--- server log ---\n{self.server.log_tail()}"
        )


def open_notebook(
    browser: Browser,
    server: JupyterLabServer,
    name: str,
    *,
    viewport: tuple[int, int] = (1400, 1000),
    timeout: float = KERNEL_TIMEOUT,
) -> LabNotebook:
    """Open ``name`` (relative to the server root) in a new page; wait for an idle kernel."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(30_000)
    return LabNotebook(page, server, name).open(timeout)
