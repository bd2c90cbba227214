"""The projection card of a dataset served with ``--cluster local:2``, coloured by a column
whose value is markup: its legend and the hover show it as text, and it never runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import eventually
from tests.ui.test_workspace_ui import WAIT, card, shot

pytestmark = pytest.mark.ui

HOSTILE = "<img src=x onerror=window.__pwned=1>"
FILES, ROWS = 3, 400

_LEGEND = """() => {
  const labels = [];
  for (const doc of window.Bokeh.documents)
    for (const model of doc._all_models.values())
      if (model.constructor.__name__ === "LegendItem") labels.push(model.label.value);
  return labels;
}"""


_FILLED_PIXELS = """() => {
  // screen positions of up to 60 raster pixels that hold a point (row >= 0), spread out
  const doc = Bokeh.documents[Bokeh.documents.length - 1];
  const renderer = [...doc._all_models.values()].find(
    (m) => m.constructor.__name__ == "GlyphRenderer" && m.name == "raster");
  const view = Bokeh.index.find_one(renderer);
  const data = renderer.data_source.data;
  const get = (k) => (data instanceof Map ? data.get(k) : data[k])[0];
  const rows = get("row");
  const [height, width] = rows.shape;
  const box = view.plot_view.canvas_view.el.getBoundingClientRect();
  const filled = [];
  for (let k = 0; k < rows.length; k++) if (rows[k] >= 0) filled.push(k);
  const step = Math.max(1, Math.floor(filled.length / 60));
  const out = [];
  for (let n = 0; n < filled.length; n += step) {
    const i = Math.floor(filled[n] / width), j = filled[n] % width;
    const x = get("x") + (j + 0.5) * get("dw") / width;
    const y = get("y") + (i + 0.5) * get("dh") / height;
    out.push({x: box.left + view.coordinates.x_scale.compute(x),
              y: box.top + view.coordinates.y_scale.compute(y)});
  }
  return out;
}"""


def _write(folder: Path) -> None:
    """FILES files of ROWS rows: ``emb`` (4 dims) and ``kind``, HOSTILE in 2 rows of 3."""
    folder.mkdir()
    rng = np.random.default_rng(15)
    for i in range(FILES):
        emb = rng.normal(size=(ROWS, 4)).astype(np.float32)
        kind = [HOSTILE if r % 3 else "plain" for r in range(ROWS)]
        table = pa.table(
            {
                "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 4),
                "kind": pa.array(kind),
            }
        )
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=100)


def test_a_hostile_category_is_the_clusters_legend_and_hover_as_text(
    page, run_cli, tmp_path: Path
) -> None:
    _write(tmp_path / "preds")
    projection = {
        "kind": "projection",
        "input": {"table": "preds"},
        "config": {"columns": ["emb"], "colour_by": "kind"},
    }
    spec = {"tables": {"preds": "preds"}, "cards": [projection]}
    (tmp_path / "ws.json").write_text(json.dumps(spec), "utf-8")
    page.goto(run_cli("serve", "--workspace", str(tmp_path / "ws.json"), "--cluster", "local:2"))
    shown = card(page, "preds", "projection")
    rows = f"{FILES * ROWS:,}"
    caption = f"PCA of emb: {rows} points, drawn on the cluster"
    expect(shown).to_contain_text(caption, timeout=2 * WAIT)
    canvas = shown.locator(".card-body canvas").first
    expect(canvas).to_be_visible(timeout=WAIT)
    # the legend: both categories, sorted, the hostile one as a plain label
    legend = eventually(page, lambda: page.evaluate(_LEGEND), "the colour legend")
    assert legend == sorted([HOSTILE, "plain"])
    shown.scroll_into_view_if_needed()
    pixels = eventually(page, lambda: page.evaluate(_FILLED_PIXELS), "the raster's points")

    def hovered_hostile() -> bool:
        # hover the drawn pixels until a row of the hostile kind is shown beside the plot
        for at in pixels:
            page.mouse.move(at["x"], at["y"])
            page.wait_for_timeout(150)
            if shown.get_by_text(f"kind: {HOSTILE}", exact=False).count():
                return True
        return False

    eventually(page, hovered_hostile, "the hover of a hostile row")
    # the hover pane: the row in bold, then its value as text (no image was inserted)
    expect(shown.locator("b").filter(has_text=re.compile(r"^row \d+$")).first).to_be_visible()
    assert shown.locator("img").count() == 0
    shot(page, "cluster-card-hover")
    page.wait_for_load_state("networkidle", timeout=WAIT)
    assert page.evaluate("() => window.__pwned ?? null") is None
    assert page.console_errors == []
