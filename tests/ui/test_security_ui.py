"""A served workspace answers only its own names and saves only in its folder.

Real `panels serve` processes (run_cli, cwd = the test's tmp_path): forged Host and
Origin headers over plain HTTP and a websocket upgrade get 403, the loopback names
get the page and the websocket; in Chromium, "Save to" refuses `..`, absolute
paths outside, non-JSON names and symlinks that lead out, writing nothing, and
saves `my.json` in the folder; `--read-only` shows no Save controls.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

pytestmark = pytest.mark.ui

WAIT = 90_000  # ms; the CI machine may be busy


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """runs.parquet (50 rows) in the folder the server is started in."""
    path = tmp_path / "runs.parquet"
    pd.DataFrame({"id": np.arange(50), "score": np.linspace(0, 1, 50)}).to_parquet(path)
    return path


def request(url: str, host: str, origin: str | None = None, websocket: bool = False):
    """GET / (or the websocket upgrade of /ws) with the given Host and Origin: (status, body)."""
    port = urlsplit(url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Host": host}
    if origin is not None:
        headers["Origin"] = origin
    if websocket:
        headers |= {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Protocol": "bokeh",
        }
    try:
        connection.request("GET", "/ws" if websocket else "/", headers=headers)
        response = connection.getresponse()
        body = b"" if response.status == 101 else response.read()
        return response.status, body.decode()
    finally:
        connection.close()


def test_forged_host_and_origin_get_neither_page_nor_websocket(run_cli, data, monkeypatch):
    monkeypatch.setenv("BOKEH_ALLOW_WS_ORIGIN", "*")  # Bokeh's own override cannot widen it
    url = run_cli("serve", str(data))
    port = urlsplit(url).port
    evil = f"evil.example:{port}"

    status, body = request(url, evil, f"http://{evil}")
    assert status == 403
    assert f"Host `{evil}` is not allowed" in body and "bokeh" not in body.lower()
    assert request(url, evil, f"http://{evil}", websocket=True)[0] == 403
    status, body = request(url, f"localhost:{port}", f"http://{evil}", websocket=True)
    assert (status, body) == (
        403,
        f"typed-panels: Origin `http://{evil}` is not allowed to use this workspace\n",
    )

    for name in ("localhost", "127.0.0.1"):
        status, body = request(url, f"{name}:{port}")
        assert status == 200 and "bokeh" in body.lower()
        assert request(url, f"{name}:{port}", f"http://{name}:{port}", websocket=True)[0] == 101


def test_allow_origin_adds_a_name(run_cli, data):
    url = run_cli("serve", str(data), "--allow-origin", "box.test")
    port = urlsplit(url).port
    assert request(url, f"box.test:{port}")[0] == 200
    assert request(url, f"box.test:{port}", f"http://box.test:{port}", websocket=True)[0] == 101
    assert request(url, f"evil.example:{port}")[0] == 403


def test_basic_auth_asks_for_a_login_and_host_checking_still_holds(run_cli, data):
    url = run_cli("serve", str(data), "--basic-auth", "a-long-test-password")
    port = urlsplit(url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("GET", "/", headers={"Host": f"localhost:{port}"})
        response = connection.getresponse()
        response.read()
        assert (response.status, response.getheader("Location")) == (302, "./login?next=%2F")
    finally:
        connection.close()
    assert request(url, f"evil.example:{port}")[0] == 403


def save_as(page, text: str) -> None:
    page.locator(".save-path input").fill(text)
    page.locator(".save-workspace button").click()


def test_save_to_writes_only_a_json_file_inside_the_folder(
    page, run_cli, data, tmp_path, tmp_path_factory
):
    outside = tmp_path_factory.mktemp("outside")
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    page.goto(run_cli("serve", str(data)))
    status = page.locator(".save-status")
    expect(page.locator(".save-path input")).to_have_value("workspace.json", timeout=WAIT)
    expect(page.locator(".workspace-card .row-count").first).to_have_text(
        "50 of 50 rows", timeout=WAIT
    )
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    refused = {
        "../outside.json": "`../outside.json` contains `..`",
        str(outside / "abs.json"): f"`{outside / 'abs.json'}` is outside the workspace folder",
        "x.txt": "`x.txt` is not a .json file",
        "link/through.json": "`link/through.json` leads out of the workspace folder through a "
        "symlink",
    }
    for text, why in refused.items():
        save_as(page, text)
        expect(status).to_contain_text(f"Not saved: {why}", timeout=WAIT)
        expect(status).to_contain_text(f"inside the workspace folder {tmp_path}")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "runs.parquet"]

    save_as(page, "my.json")
    expect(status).to_contain_text(f"Saved 1 cards to {tmp_path / 'my.json'}", timeout=WAIT)
    saved = json.loads((tmp_path / "my.json").read_text())
    assert saved["tables"] == {"runs": "runs.parquet"}
    assert page.console_errors == []


def test_read_only_shows_no_save_controls(page, run_cli, data, tmp_path):
    page.goto(run_cli("serve", str(data), "--read-only"))
    expect(page.locator(".workspace-card .row-count").first).to_have_text(
        "50 of 50 rows", timeout=WAIT
    )
    expect(page.locator(".workspace-sidebar")).to_contain_text("runs · 50 rows")
    assert page.locator(".save-path").count() == 0
    assert page.locator(".save-workspace").count() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.parquet"]
