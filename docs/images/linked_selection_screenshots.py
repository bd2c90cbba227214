"""The README's linked-selection screenshots, taken in Debian's Chromium with Playwright.

Run from the repository root (a served workspace on the demo's digits table: a 2D
projection, the digit bars, a pixel histogram and the table; a box drawn on the
projection, every other card following)::

    PYTHONPATH=. .venv/bin/python docs/images/linked_selection_screenshots.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from panels_core.demo import write_demo
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, wait_for_port

HERE = Path(__file__).resolve().parent
WAIT = 300_000
"""How long a page step may take, in ms (a busy machine)."""
PROJECTION = {"columns": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)], "method": "pca"}
CARDS = [
    {
        "kind": "projection",
        "input": {"table": "digits"},
        "config": {**PROJECTION, "colour_by": "target", "scale": "none"},
    },
    {"kind": "histogram", "input": {"table": "digits"}, "config": {"column": "target"}},
    {
        "kind": "table",
        "input": {"table": "digits"},
        "config": {
            "page_size": 6,
            "columns": ["image", "target", "pixel_3_3"],
            "thumbnail_size": 32,
        },
    },
    {
        "kind": "histogram",
        "input": {"table": "digits"},
        "config": {"column": "pixel_3_3", "bins": 17, "range": [-0.5, 16.5]},
    },
]
# the data point (x, y) of the figure drawing `name`, in page pixels
PLOT_JS = """
([name, xy]) => {
  for (const view of Bokeh.index.all_views()) {
    if (!view.frame || !view.model.renderers.some(r => r.name == name)) continue;
    const box = view.el.getBoundingClientRect();
    return xy.map(([x, y]) => [box.left + view.frame.x_scale.compute(x),
                               box.top + view.frame.y_scale.compute(y)]);
  }
  return null;
}
"""
ACTIVATE_BOX_JS = """
(name) => {
  for (const view of Bokeh.index.all_views()) {
    if (!view.frame || !view.model.renderers.some(r => r.name == name)) continue;
    view.model.toolbar.active_drag = view.model.toolbar.tools.find(t => t.type == "BoxSelectTool");
    return true;
  }
  return false;
}
"""


def _around(*boxes: dict) -> dict:
    """The page area holding every box (Playwright's bounding boxes)."""
    x0, y0 = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    x1 = max(b["x"] + b["width"] for b in boxes)
    y1 = max(b["y"] + b["height"] for b in boxes)
    return {"x": x0 - 4, "y": y0 - 4, "width": x1 - x0 + 8, "height": y1 - y0 + 8}


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    folder = Path(tempfile.mkdtemp())
    paths = write_demo(folder / "demo", log=None)
    spec = {"tables": {"digits": str(paths["digits"])}, "cards": CARDS}
    (folder / "ws.json").write_text(json.dumps(spec))
    port = free_port()
    command = [sys.executable, "-m", "panels_core.cli", "serve", "--workspace", "ws.json"]
    env = {**os.environ, "PANELS_WARM_UP": "0"}
    with (folder / "serve.log").open("w") as log:
        server = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [*command, "--port", str(port)], cwd=folder, env=env, stdout=log, stderr=log
        )
    try:
        wait_for_port(port, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.set_default_timeout(300_000)
            page.goto(f"http://127.0.0.1:{port}")
            page.wait_for_function("() => Bokeh.index && Object.keys(Bokeh.index).length > 0")
            page.wait_for_function(f"() => ({PLOT_JS})(['points', [[0, 0]]]) !== null")
            expect(page.locator(".card-kind-table .tabulator-row")).to_have_count(6, timeout=WAIT)
            page.wait_for_timeout(3000)  # every card drawn and laid out
            page.evaluate(ACTIVATE_BOX_JS, "points")
            # a box around the cluster at the left of the first two components
            (x0, y0), (x1, y1) = page.evaluate(PLOT_JS, ["points", [[-30, -8], [-12, 12]]])
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x1, y1, steps=12)
            page.mouse.up()
            expect(page.locator(".selection-summary")).to_contain_text(
                "rows selected", timeout=WAIT
            )
            page.mouse.move(5, 5)  # no hover tooltip in the picture
            page.wait_for_timeout(5000)  # the other cards draw their highlight
            cards = [page.locator(".workspace-card").nth(i).bounding_box() for i in range(4)]
            bar = page.locator(".selection-bar").bounding_box()
            page.screenshot(path=str(HERE / "linked-selection.png"), clip=_around(bar, *cards[:2]))
            page.screenshot(path=str(HERE / "linked-selection-table.png"), clip=_around(*cards[2:]))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
