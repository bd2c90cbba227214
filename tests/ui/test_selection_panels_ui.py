"""Linked selection in a real browser: drag Bokeh's box select over histogram bars in a
served workspace; the card draws the selected rows' counts (a second series on the same
bins), and they are the engine's counts of the rows in the range of the bars dragged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import ARTIFACTS, UI_WAIT_MS, eventually

pytestmark = pytest.mark.ui

WAIT = UI_WAIT_MS

# Where the figure with a glyph named `name` draws data x values, in page pixels, and the
# middle of its frame's height; and the data of a glyph's source (Bokeh's own views).
PLOT_JS = """
([name, xs]) => {
  for (const view of Bokeh.index.all_views()) {
    if (!view.frame || !view.model.renderers) continue;
    if (!view.model.renderers.some(r => r.name == name)) continue;
    const box = view.el.getBoundingClientRect();
    const frame = view.frame.bbox;
    return {
      x: xs.map(x => box.left + view.frame.x_scale.compute(x)),
      y: box.top + frame.y0 + frame.height / 2,
    };
  }
  return null;
}
"""
SOURCE_JS = """
([name, column]) => {
  for (const view of Bokeh.index.all_views()) {
    if (!view.model.renderers) continue;
    const found = view.model.renderers.find(r => r.name == name);
    if (found) return Array.from(found.data_source.data[column]);
  }
  return null;
}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """runs.parquet (1,000 scores in [0, 10)) and a workspace with one histogram of them in
    ten bins of width 1."""
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"score": rng.uniform(0, 10, 1000), "label": rng.choice(["a", "b"], 1000)})
    frame.to_parquet(tmp_path / "runs.parquet")
    card = {
        "kind": "histogram",
        "input": {"table": "runs"},
        "config": {"column": "score", "bins": 10, "range": [0, 10]},
    }
    spec = {"tables": {"runs": str(tmp_path / "runs.parquet")}, "cards": [card]}
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(spec))
    return path, frame


def test_dragging_over_histogram_bars_selects_their_range(page, run_cli, workspace) -> None:
    path, frame = workspace
    page.goto(run_cli("serve", "--workspace", str(path)))
    body = page.locator(".workspace-card .card-body")
    expect(body).to_contain_text("1,000 values of score in 10 bins", timeout=WAIT)
    at = eventually(page, lambda: page.evaluate(PLOT_JS, ["bins", [2.3, 5.6]]), "the histogram")

    # drag the box select (the histogram's active drag tool) from bin 2 into bin 5
    page.mouse.move(at["x"][0], at["y"])
    page.mouse.down()
    page.mouse.move(at["x"][1], at["y"], steps=12)
    page.mouse.up()

    # the brush is the range of the bars dragged: [2, 6)
    chosen = frame[(frame.score >= 2) & (frame.score < 6)]
    expect(body).to_contain_text(f"{len(chosen):,} of them selected", timeout=WAIT)
    counts = eventually(
        page, lambda: page.evaluate(SOURCE_JS, ["selected", "count"]), "the selected series"
    )
    expected = np.histogram(chosen.score, bins=np.arange(11))[0]
    assert counts == expected.tolist()
    assert counts[:2] == [0, 0] and counts[6:] == [0, 0, 0, 0]
    full = page.evaluate(SOURCE_JS, ["bins", "count"])
    assert full == np.histogram(frame.score, bins=np.arange(11))[0].tolist()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "selection-histogram.png"), full_page=True)
    assert page.console_errors == []


def test_ticking_a_table_row_brings_it_first_and_only(page, run_cli, workspace) -> None:
    path, frame = workspace
    spec = json.loads(path.read_text())
    spec["cards"] = [{"kind": "table", "input": {"table": "runs"}, "config": {"page_size": 10}}]
    path.write_text(json.dumps(spec))
    page.goto(run_cli("serve", "--workspace", str(path)))
    table = page.locator(".workspace-card.card-kind-table")
    rows = table.locator(".tabulator-row")
    expect(rows).to_have_count(10, timeout=WAIT)
    # tick the third row's box: it stays where the user ticked it, ticked and highlighted
    rows.nth(2).locator("input[type=checkbox]").click()
    score = f"{frame.score[2]:.4f}".rstrip("0")
    toggle = table.locator(".selection-toggle")
    expect(toggle).to_contain_text("selected first", timeout=WAIT)
    expect(rows.nth(2).locator("[tabulator-field=score]")).to_have_text(score)
    expect(rows.nth(2).locator("input[type=checkbox]")).to_be_checked()
    highlight = re.compile("background-color: rgb\\(253, 227, 200\\)")
    expect(rows.nth(2).locator("[tabulator-field=score]")).to_have_attribute(
        "style", highlight, timeout=WAIT
    )
    expect(table).to_contain_text("rows 1-10 of 1,000")
    # "selected only": just that row
    toggle.get_by_text("selected only").click()
    expect(table).to_contain_text("rows 1-1 of 1", timeout=WAIT)
    expect(rows).to_have_count(1)
    expect(rows.first.locator("[tabulator-field=score]")).to_have_text(score)
    # "selected first": that row first, then the others
    toggle.get_by_text("selected first").click()
    expect(table).to_contain_text("rows 1-10 of 1,000", timeout=WAIT)
    expect(rows.first.locator("[tabulator-field=score]")).to_have_text(score)
    expect(rows.first.locator("input[type=checkbox]")).to_be_checked()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "selection-table.png"), full_page=True)
    assert page.console_errors == []
