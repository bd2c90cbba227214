"""Benchmark: seconds from `panels serve` to a UMAP of 100k x 384 drawn in Chromium.

A workspace with one UMAP card over a generated table (``emb.parquet``: 100,000 rows
of a 384-dim clustered embedding, as in ``bench_knn.py``) is served twice:

1. first run: an empty numba cache folder (a fresh ``NUMBA_CACHE_DIR``), as on a
   machine that never ran typed-panels;
2. second run: a new server over the same, now filled, cache folder, as every later
   start on that machine.

Each run starts the server, opens the page in Debian's headless Chromium at once,
and waits for the card's caption "UMAP of `embedding`: 100,000 points" (written
when the points are drawn). Printed: seconds from server start to points drawn,
and from page open. Beside them, the baseline: ``project(...)`` of the same
matrix in this process after a warm-up (nothing left to compile or load).

The code measured is whatever ``panels_core`` the ``PYTHONPATH`` names, so the same
script measures another checkout (``PYTHONPATH=/other/checkout``).

Run: ``.venv/bin/python benchmarks/bench_first_screen.py`` (``--rows 20000`` for a
quick run; ``--timeout`` seconds per run, default 600).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # after PYTHONPATH, so PYTHONPATH picks the code measured

from bench_knn import make_clustered  # noqa: E402

CHROMIUM = os.environ.get("PANELS_CHROMIUM", "/usr/bin/chromium")


def write_workspace(folder: Path, data: np.ndarray) -> Path:
    """emb.parquet (id, embedding) and ws.json: one UMAP card over it."""
    table = pa.table(
        {
            "id": np.arange(len(data)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), data.shape[1]),
        }
    )
    pq.write_table(table, folder / "emb.parquet")
    card = {
        "kind": "projection",
        "input": {"table": "emb"},
        "config": {"columns": ["embedding"], "method": "umap"},
        "title": "map",
    }
    spec = {"tables": {"emb": "emb.parquet"}, "cards": [card]}
    path = folder / "ws.json"
    path.write_text(json.dumps(spec), "utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(process: subprocess.Popen, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError("the server did not start")


def serve_and_draw(
    workspace: Path, rows: int, numba_dir: Path, timeout: float, code: Path
) -> tuple[float, float]:
    """(seconds from server start, seconds from page open) to the UMAP caption shown."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "PYTHONPATH": str(code)}
    command = [sys.executable, "-m", "panels_core.cli", "serve", "--workspace", str(workspace)]
    started = time.monotonic()
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=workspace.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(server, port, started + timeout)
        caption = re.compile(rf"UMAP of .*: {rows:,} points")
        with sync_playwright() as play:
            browser = play.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page()
            opened = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/", timeout=timeout * 1000)
            card = page.locator(".workspace-card.card-kind-projection")
            remaining = timeout - (time.monotonic() - started)
            card.get_by_text(caption).first.wait_for(timeout=max(remaining, 1) * 1000)
            drawn = time.monotonic()
            browser.close()
        return drawn - started, drawn - opened
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def warm_in_process(data: np.ndarray, numba_dir: Path) -> float:
    """Seconds of ``project(data, UMAP)`` in this process after a warm-up (the floor)."""
    os.environ["NUMBA_CACHE_DIR"] = str(numba_dir)
    from panels_core.projection import ProjectionSpec, project, warm_up

    warm_up()
    started = time.perf_counter()
    project(data, ProjectionSpec(method="umap"))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    import panels_core

    code = Path(panels_core.__file__).resolve().parent.parent
    print(f"code measured: {code}", flush=True)
    data = make_clustered(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        workspace = write_workspace(tmp, data)
        numba_dir = tmp / "numba"
        numba_dir.mkdir()
        print(f"UMAP card over {args.rows:,} x {data.shape[1]}", flush=True)
        print(f"  {'run':<34} {'from server start':>18} {'from page open':>15}", flush=True)
        for run in ("first (empty numba cache)", "second (numba cache filled)"):
            try:
                total, page = serve_and_draw(workspace, args.rows, numba_dir, args.timeout, code)
                print(f"  {run:<34} {total:16.1f} s {page:13.1f} s", flush=True)
            except Exception as exc:
                print(f"  {run:<34} FAILED: {type(exc).__name__}: {exc}", flush=True)
        floor = warm_in_process(data, numba_dir)
        print(f"  {'warm project() in one process':<34} {floor:16.1f} s", flush=True)


if __name__ == "__main__":
    main()
