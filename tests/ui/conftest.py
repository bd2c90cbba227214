"""Browser-test fixtures: Debian's headless Chromium driven by Playwright, servers on free ports.

Screenshots go to test-artifacts/ (gitignored) so a failing step can be looked at.
Every wait is a bound for a machine several times slower than usual (other work on
both cores, cold caches), never a timing check: a server that died fails at once.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

CHROMIUM = os.environ.get("PANELS_CHROMIUM", "/usr/bin/chromium")
#: How long a page step may take (Playwright actions and ``expect``), in ms: a page load and
#: its cards' first render on a busy machine.
UI_WAIT_MS = 300_000
#: How long a `panels serve` may take to listen, in seconds.
SERVER_START_SECONDS = 600
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int,
    process: subprocess.Popen | None = None,
    timeout: float = SERVER_START_SECONDS,
    log: Path | None = None,
) -> None:
    """Block until something accepts connections on ``port`` (or the process dies: its
    output, from the pipe or from ``log``, is in the error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            if log is not None:
                output += log.read_text(errors="replace")
            raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


def eventually(page, check: Callable[[], T], what: str) -> T:
    """Call ``check`` until it returns something true, and return that (within ``UI_WAIT_MS``:
    a bound for a busy machine, not a timing check); the failure says ``what`` was awaited."""
    deadline = time.monotonic() + UI_WAIT_MS / 1000
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: not within {UI_WAIT_MS // 1000} s"
        page.wait_for_timeout(200)
    return value


#: URL schemes a page opened from a file may load without the network.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def block_network(page) -> list[str]:
    """Cut the page's context off the network: every request but ``LOCAL_SCHEMES`` is
    aborted and the browser is offline. Returns the list of remote URLs the page tried
    (a failed request is also a console error of the page)."""
    asked: list[str] = []

    def handle(route) -> None:
        url = route.request.url
        if url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            asked.append(url)
            route.abort()

    page.context.route("**/*", handle)
    page.context.set_offline(True)
    page.on("requestfailed", lambda request: page.console_errors.append(f"failed: {request.url}"))
    return asked


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Debian's package, no browser download)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh page that records console errors; a screenshot is kept after each test.
    Its steps and ``expect`` wait up to ``UI_WAIT_MS``."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_WAIT_MS)
    expect.set_options(timeout=UI_WAIT_MS)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture
def run_cli(tmp_path, tmp_path_factory):
    """Start `panels ...` in a subprocess on a free port, in ``tmp_path``; stopped after the
    test. Its output goes to a file outside ``tmp_path`` (a pipe nobody reads would fill up
    and stall the server)."""
    processes: list[subprocess.Popen] = []
    logs = tmp_path_factory.mktemp("server-logs")

    def start(*args: str, timeout: float = SERVER_START_SECONDS) -> str:
        port = free_port()
        command = [sys.executable, "-m", "panels_core.cli", *args, "--port", str(port)]
        env = {  # the server itself allows 127.0.0.1:PORT and localhost:PORT only
            **os.environ,
            "PANELS_WARM_UP": os.environ.get("PANELS_WARM_UP", "0"),  # tests need no UMAP
        }
        log = logs / f"panels-{port}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        processes.append(process)
        wait_for_port(port, process, timeout, log)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
