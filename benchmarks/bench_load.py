"""Load: 20 concurrent browser sessions against one `panels serve`, one running a UMAP projection.

    .venv/bin/python benchmarks/bench_load.py [--sessions 20] [--rows 20000] [--timeout 300]

Writes a generated table (an embedding, a label and a score) to a temporary folder,
starts `panels serve` on a free loopback port, and drives Debian's headless Chromium
with Playwright (one browser, one page per session):

1. baseline: the other sessions open at once with nothing else running; each one's
   time to first render (every card's row count shown) is recorded;
2. session 0 switches its projection card to UMAP (a long compute) through the gear;
3. while UMAP runs, as many new sessions open at once, timed the same way;
4. leak check: session 1 types a filter; no other session's filter box or row count
   changes, and a session opened afterwards starts clean.

It prints every session's time, the medians with and without UMAP running (a ratio
near 1 means no session waited behind the projection), when UMAP finished, and any
console error. Bounded: at most --sessions pages and --timeout seconds.

Real users' browsers run on their own machines. With ``--split-cores`` (the default
on a machine with 2 or more cores) the server runs on the last core and Chromium on
the others, so the browsers' rendering does not eat the server's CPU and the times
show the server's behaviour; ``--no-split-cores`` lets them share every core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PANELS_CHROMIUM", "/usr/bin/chromium")


def write_data(folder: Path, rows: int) -> list[Path]:
    """emb.parquet: ``rows`` rows of a 32-d embedding in 8 clusters, label, score (its
    default workspace: a table card and a 2D projection card)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, rows)
    centers = rng.normal(0, 4, (8, 32))
    emb = (centers[labels] + rng.normal(0, 1, (rows, 32))).astype(np.float32)
    table = pa.table(
        {
            "id": np.arange(rows),
            "label": pa.array([f"c{i}" for i in labels]).dictionary_encode(),
            "score": rng.random(rows),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 32),
        }
    )
    path = folder / "emb.parquet"
    pq.write_table(table, path)
    return [path]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    paths: list[Path], port: int, cwd: Path, cores: set[int] | None = None
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "panels_core.cli",
        "serve",
        *map(str, paths),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=None if cores is None else lambda: os.sched_setaffinity(0, cores),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited: {process.stdout.read().decode() if process.stdout else ''}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    process.kill()
    raise TimeoutError("the server did not start")


async def first_render(page, url: str, timeout_ms: int) -> float:
    """Seconds from navigation until every card shows its row count."""
    start = time.perf_counter()
    await page.goto(url)
    await page.wait_for_selector(".workspace-card", timeout=timeout_ms)
    await page.wait_for_function(
        """() => {
            const find = (root, out) => {
                root.querySelectorAll('*').forEach(el => {
                    if (el.classList && el.classList.contains('row-count')) out.push(el);
                    if (el.shadowRoot) find(el.shadowRoot, out);
                });
                return out;
            };
            const counts = find(document, []);
            const text = el => (el.shadowRoot ? el.shadowRoot.textContent : '') + el.textContent;
            return counts.length >= 2 && counts.every(el => /rows/.test(text(el)));
        }""",
        timeout=timeout_ms,
        polling=200,
    )
    return time.perf_counter() - start


async def text_of(locator) -> str:
    """The text of a Panel pane, whose content sits in its shadow root."""
    return await locator.evaluate(
        "el => ((el.shadowRoot ? el.shadowRoot.querySelector('div')?.textContent || '' : '')"
        " + el.textContent).trim()"
    )


def report(what: str, times: list) -> None:
    """Each session's first-render time, then the count, median and worst."""
    print(f"-- {what}:")
    for i, t in enumerate(times, 1):
        shown = f"{t:.2f} s" if isinstance(t, float) else f"FAILED: {t}"
        print(f"   session {i:2d}: first render {shown}")
    ok = [t for t in times if isinstance(t, float)]
    if ok:
        print(
            f"   {len(ok)}/{len(times)} rendered; median {statistics.median(ok):.2f} s, "
            f"worst {max(ok):.2f} s"
        )


def card(page, title: str, kind: str):
    exact = re.compile(rf"^\s*{re.escape(title)}\s*$")
    return (
        page.locator(f".workspace-card.card-kind-{kind}")
        .filter(has=page.locator(".card-title", has_text=exact))
        .first
    )


async def main_async(args: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright

    folder = Path(tempfile.mkdtemp(prefix="panels-bench-load-"))
    paths = write_data(folder, args.rows)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cores = sorted(os.sched_getaffinity(0))
    server_cores = None
    if args.split_cores and len(cores) >= 2:
        server_cores = {cores[-1]}
        os.sched_setaffinity(0, set(cores[:-1]))  # Chromium, started below, inherits it
        print(f"server on core {cores[-1]}, Chromium on cores {cores[:-1]}")
    server = start_server(paths, port, folder, server_cores)
    errors: dict[int, list[str]] = {}
    timeout_ms = int(args.timeout * 1000)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(timeout_ms)

            async def new_page(i: int):
                page = await context.new_page()
                errors[i] = []
                page.on("console", lambda m: m.type == "error" and errors[i].append(m.text))
                page.on("pageerror", lambda e: errors[i].append(str(e)))
                page.on("requestfailed", lambda r: errors[i].append(f"request failed: {r.url}"))
                return page

            # 1. warm-up, then the other sessions at once with nothing else running
            await first_render(await new_page(-1), url, timeout_ms)
            quiet_pages = [await new_page(100 + i) for i in range(args.sessions - 1)]
            quiet = await asyncio.gather(
                *(first_render(p, url, timeout_ms) for p in quiet_pages), return_exceptions=True
            )
            for p in quiet_pages:
                await p.close()
            report("no projection running", quiet)

            # 2. session 0 starts a UMAP projection through the gear
            pages = [await new_page(i) for i in range(args.sessions)]
            await first_render(pages[0], url, timeout_ms)
            proj = card(pages[0], "emb", "projection")
            await proj.locator(".card-gear button").click()
            method = proj.locator('.card-settings select:has(option[value="umap"])').first
            umap_start = time.perf_counter()
            await method.select_option("umap")

            async def umap_done() -> float:
                body = proj.locator(".card-body")
                await body.get_by_text(re.compile(r"UMAP")).first.wait_for(timeout=timeout_ms)
                return time.perf_counter() - umap_start

            umap_task = asyncio.create_task(umap_done())

            # 3. the same number of sessions open at once while UMAP runs
            times = await asyncio.gather(
                *(first_render(p, url, timeout_ms) for p in pages[1:]), return_exceptions=True
            )
            umap_running = not umap_task.done()
            report("while session 0 runs UMAP", times)
            ok = [t for t in times if isinstance(t, float)]
            quiet_ok = [t for t in quiet if isinstance(t, float)]
            if ok and quiet_ok:
                ratio = statistics.median(ok) / statistics.median(quiet_ok)
                print(
                    f"median first render with UMAP running / without: {ratio:.2f}x; "
                    f"UMAP still running when every session had rendered: {umap_running}"
                )
            try:
                umap_seconds = await asyncio.wait_for(umap_task, timeout=args.timeout)
                print(
                    f"UMAP of {args.rows:,} rows finished in session 0 after {umap_seconds:.1f} s"
                )
            except Exception as exc:
                print(f"UMAP did not finish: {type(exc).__name__}: {exc}")

            # 4. no state leaks between sessions
            typer, watcher = pages[1], pages[2]
            box = card(typer, "emb", "table").locator(".query-filter input")
            await box.fill("score > 0.5")
            await box.press("Enter")
            count = card(typer, "emb", "table").locator(".row-count")
            await (
                count.filter(has_text=re.compile(rf"of {args.rows:,} rows"))
                .filter(has_not_text=f"{args.rows:,} of")
                .wait_for(timeout=timeout_ms)
            )
            other_box = (
                await card(watcher, "emb", "table").locator(".query-filter input").input_value()
            )
            other_count = await text_of(card(watcher, "emb", "table").locator(".row-count"))
            late = await new_page(99)
            await first_render(late, url, timeout_ms)
            late_box = await card(late, "emb", "table").locator(".query-filter input").input_value()
            leaked = (
                other_box != "" or late_box != "" or not other_count.startswith(f"{args.rows:,} of")
            )
            print(
                f"leak check: session 1 filtered to '{await text_of(count)}'; session 2 "
                f"filter box '{other_box}', count '{other_count}'; a new session's filter box "
                f"'{late_box}' -> {'LEAK' if leaked else 'no leak'}"
            )
            bad = {i: e for i, e in errors.items() if e}
            if not bad:
                print("console errors: none")
            for i, found in sorted(bad.items()):
                kinds = {text: found.count(text) for text in dict.fromkeys(found)}
                shown = "; ".join(f"{n} x {text[:160]}" for text, n in kinds.items())
                print(f"console errors in session {i}: {shown}")
            await browser.close()
            return 0 if len(ok) == len(times) and not leaked and not bad else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--split-cores",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="server on the last core, Chromium on the others (default: on)",
    )
    args = parser.parse_args()
    if not 2 <= args.sessions <= 50:
        parser.error("--sessions must be between 2 and 50")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
