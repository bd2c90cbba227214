"""Linked selection across cards in a real browser: a selection made in one card (a
histogram range dragged with Bokeh's box select, table check boxes, a lasso on a raster
projection) is checked in the OTHER cards by the numbers the user sees, against the same
rows computed here with pandas/numpy: the other histogram's highlighted series, the
table's rows (selected only), the projection's highlighted points, the summary line;
then "Filter to selection", save and restart, OR mode, and Clear."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from panels_builtin.projection.config import DIM_ALPHA, MAX_SCATTER_POINTS
from tests.ui.conftest import ARTIFACTS, UI_WAIT_MS, eventually

pytestmark = pytest.mark.ui

WAIT = UI_WAIT_MS
N = 3000
LOSS_EDGES = np.linspace(0, 1, 6)

# Where the figure with a glyph named `name` (the `nth` such figure on the page) draws data
# points `xy` ([x, y] pairs), in page pixels; and a glyph's source column (Bokeh's own views).
PLOT_JS = """
([name, nth, xy]) => {
  const found = [];
  for (const view of Bokeh.index.all_views()) {
    if (!view.frame || !Array.isArray(view.model.renderers)) continue;
    if (view.model.renderers.some(r => r.name == name)) found.push(view);
  }
  const view = found[nth];
  if (!view) return null;
  const box = view.el.getBoundingClientRect();
  const frame = view.frame.bbox;
  return xy.map(([x, y]) => [
    box.left + view.frame.x_scale.compute(x),
    box.top + view.frame.y_scale.compute(y),
  ]).concat([[box.left + frame.x0, box.top + frame.y0 + frame.height / 2]]);
}
"""
SOURCE_JS = """
([name, nth, column]) => {
  const found = [];
  for (const view of Bokeh.index.all_views()) {
    if (!Array.isArray(view.model.renderers)) continue;
    for (const r of view.model.renderers)  // a hidden series (no selection) is not drawn
      if (r.name == name && r.visible && r.data_source.data[column] !== undefined) found.push(r);
  }
  const r = found[nth];
  if (!r) return null;
  const data = r.data_source.data[column];
  // an image column: one 2-D array per row, sent as a typed array (or nested arrays)
  const flat = (v) => (v && v.length !== undefined && typeof v !== "string")
    ? Array.from(v).flatMap(flat) : [v];
  return column == "selected" ? flat(data[0]).map(Number) : Array.from(data);
}
"""
# Make the tool of type `kind` (e.g. "LassoSelectTool") the active drag of the figure that
# draws the glyph named `name`.
ACTIVATE_JS = """
([name, kind]) => {
  for (const view of Bokeh.index.all_views()) {
    if (!Array.isArray(view.model.renderers) || !view.model.toolbar) continue;
    if (!view.model.renderers.some(r => r.name == name)) continue;
    const tool = view.model.toolbar.tools.find(t => t.type == kind);
    if (!tool) return false;
    view.model.toolbar.active_drag = tool;
    return true;
  }
  return false;
}
"""

# The id of the figure drawing the glyph named `name`, its x range, and zooming its x range.
FIGURE_ID_JS = """
(name) => {
  for (const view of Bokeh.index.all_views())
    if (view.frame && view.model.renderers.some(r => r.name == name))
      return view.model.id;
  return null;
}
"""
RANGE_JS = """
(name) => {
  for (const view of Bokeh.index.all_views())
    if (view.frame && view.model.renderers.some(r => r.name == name))
      return [view.model.x_range.start, view.model.x_range.end];
  return null;
}
"""
ZOOM_JS = """
([name, [start, end]]) => {
  for (const view of Bokeh.index.all_views())
    if (view.frame && view.model.renderers.some(r => r.name == name))
      view.model.x_range.setv({start, end});
}
"""


def _frame(n: int = N, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.array(["cat", "dog", "bird"])[rng.integers(0, 3, n)]
    centres = {"cat": (0.0, 0.0, 4.0, 0.0), "dog": (4.0, 0.0, 0.0, 0.0), "bird": (0, 4.0, 0, 0)}
    emb = np.array([centres[k] for k in label]) + rng.normal(0, 1, (n, 4))
    return pd.DataFrame(
        {
            "item": np.arange(n),
            "score": np.round(rng.uniform(0, 10, n), 4),
            "loss": np.round(rng.uniform(0, 1, n), 4),
            "label": pd.Categorical(label),
            "emb": list(emb.astype(np.float32)),
        }
    )


def _write(folder: Path, frame: pd.DataFrame, cards: list[dict]) -> Path:
    frame.to_parquet(folder / "runs.parquet")
    spec = {"schema_version": 1, "tables": {"runs": "runs.parquet"}, "cards": cards}
    path = folder / "ws.json"
    path.write_text(json.dumps(spec))
    return path


HIST_SCORE = {
    "kind": "histogram",
    "input": {"table": "runs"},
    "config": {"column": "score", "bins": 10, "range": [0, 10]},
}
HIST_LOSS = {
    "kind": "histogram",
    "input": {"table": "runs"},
    "config": {"column": "loss", "bins": 5, "range": [0, 1]},
}
TABLE = {
    "kind": "table",
    "input": {"table": "runs"},
    "config": {"page_size": 10, "selected": "only", "columns": ["item", "score", "label"]},
}
PROJECTION = {
    "kind": "projection",
    "input": {"table": "runs"},
    "config": {"columns": ["emb"], "method": "pca", "colour_by": "label"},
}


def _summary(frame: pd.DataFrame, chosen: pd.DataFrame) -> str:
    counts = sorted(chosen.label.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    breakdown = ", ".join(f"{label} {n:,}" for label, n in counts if n)
    return f"runs: {len(chosen):,} of {len(frame):,} rows selected · label: {breakdown}"


def _drag(page, points: list[list[float]]) -> None:
    """Press at the first point, move through the others, release at the last."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=6)
    page.mouse.up()


def _source(page, name: str, column: str, nth: int = 0):
    return page.evaluate(SOURCE_JS, [name, nth, column])


def _check_cards_show(page, frame: pd.DataFrame, chosen: pd.DataFrame) -> None:
    """The loss histogram's selected series, the table (selected only) and the projection's
    highlighted points are exactly ``chosen``'s rows."""
    expected = np.histogram(chosen.loss, bins=LOSS_EDGES)[0].tolist()
    eventually(
        page, lambda: _source(page, "selected", "count", nth=1) == expected, "loss: selected"
    )
    table = page.locator(".workspace-card.card-kind-table")
    expect(table).to_contain_text(f"rows 1-10 of {len(chosen):,}", timeout=WAIT)
    items = table.locator(".tabulator-row [tabulator-field=item]")
    expect(items).to_have_text([str(i) for i in chosen.item[:10]], timeout=WAIT)

    def highlighted() -> set[int] | None:
        rows, alpha = _source(page, "points", "row"), _source(page, "points", "alpha")
        if rows is None or alpha is None or max(alpha) < 0.85:
            return None
        return {int(r) for r, a in zip(rows, alpha) if a > 0.85}

    bright = eventually(page, highlighted, "the projection's highlighted points")
    assert bright == set(chosen.item.tolist())
    dim = [a for a in _source(page, "points", "alpha") if a < 0.85]
    assert dim and set(dim) == {DIM_ALPHA}


def test_a_histogram_range_drives_every_other_card(page, run_cli, tmp_path) -> None:
    frame = _frame()
    path = _write(tmp_path, frame, [HIST_SCORE, HIST_LOSS, TABLE, PROJECTION])
    page.goto(run_cli("serve", "--workspace", str(path)))
    expect(page.locator(".workspace-card.card-kind-histogram").first).to_contain_text(
        "3,000 values of score in 10 bins", timeout=WAIT
    )
    eventually(page, lambda: _source(page, "points", "row"), "the projection's points")
    at = eventually(page, lambda: page.evaluate(PLOT_JS, ["bins", 0, [[2.3, 0], [5.6, 0]]]), "plot")
    middle = at[-1][1]
    _drag(page, [[at[0][0], middle], [at[1][0], middle]])

    # the brush is the range of the bars dragged: [2, 6)
    chosen = frame[(frame.score >= 2) & (frame.score < 6)]
    summary = page.locator(".selection-summary")
    expect(summary).to_have_text(_summary(frame, chosen), timeout=WAIT)
    _check_cards_show(page, frame, chosen)
    # the card that brushed shows its selected series too: the bars dragged, in full
    expected = np.histogram(chosen.score, bins=np.arange(11))[0].tolist()
    assert _source(page, "selected", "count", nth=0) == expected
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "linked-1-histogram-brush.png"), full_page=True)

    # "Filter to selection" on the table card: its count line says the selected rows
    table = page.locator(".workspace-card.card-kind-table")
    table.locator(".card-filter-selection button").click()
    expect(table.locator(".row-count")).to_have_text(f"{len(chosen):,} of {N:,} rows")
    expect(table.locator(".query-filter input")).to_have_value("score >= 2.0 and score < 6.0")

    # save, restart the server with the saved workspace: the selection is back
    page.locator(".save-workspace button").click()
    expect(page.locator(".save-status")).to_contain_text("Saved")
    page.goto(run_cli("serve", "--workspace", str(path)))
    summary = page.locator(".selection-summary")
    expect(summary).to_have_text(_summary(frame, chosen), timeout=WAIT)
    expected = np.histogram(chosen.loss, bins=LOSS_EDGES)[0].tolist()
    eventually(
        page, lambda: _source(page, "selected", "count", nth=1) == expected, "restored series"
    )
    table = page.locator(".workspace-card.card-kind-table")
    expect(table.locator(".row-count")).to_have_text(f"{len(chosen):,} of {N:,} rows")

    # Clear: every card shows every row again
    page.locator(".selection-clear button").click()
    expect(summary).to_have_count(0)
    eventually(page, lambda: _source(page, "selected", "count") is None, "no selected series")
    expect(table).to_contain_text(f"rows 1-10 of {len(chosen):,}", timeout=WAIT)
    eventually(
        page,
        lambda: (alpha := _source(page, "points", "alpha")) and set(alpha) == {0.8},
        "the projection without highlight",
    )
    assert page.console_errors == []


def _inside(xy: np.ndarray, polygon: list[list[float]]) -> np.ndarray:
    """Even-odd point-in-polygon, written out plainly (the engine's is sorted and sliced)."""
    x, y = xy[:, 0], xy[:, 1]
    odd = np.zeros(len(xy), dtype=bool)
    corners = np.asarray(polygon, dtype=np.float64)
    for (ax, ay), (bx, by) in zip(corners, np.roll(corners, -1, axis=0)):
        level = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = ax + (y - ay) * (bx - ax) / (by - ay)
        odd ^= level & (x < cross)
    return odd


def _projected(frame: pd.DataFrame, config: dict) -> tuple[np.ndarray, np.ndarray]:
    """The table row numbers and 2D points the projection card registers (same code path:
    the panel's inputs and the cached projection)."""
    from panels_builtin.projection.config import ProjectionConfig
    from panels_builtin.projection.inputs import fetch_inputs
    from panels_core import projection as proj
    from panels_core.view import View

    view = View.of(frame, "runs")
    cfg = ProjectionConfig.model_validate(config)
    inputs = fetch_inputs(view, cfg)
    result = proj.project_cached(inputs.values, cfg.spec(embedding=inputs.embedding), inputs.key)
    return view.row_numbers()[result.kept_indices], result.points


def test_a_lasso_on_a_raster_projection_selects_the_rows_inside(page, run_cli, tmp_path) -> None:
    n = 200_000
    assert n > MAX_SCATTER_POINTS  # the projection rasterises on the server
    frame = _frame(n, seed=8)
    path = _write(tmp_path, frame, [PROJECTION, HIST_SCORE])
    rows, xy = _projected(frame, PROJECTION["config"])
    page.goto(run_cli("serve", "--workspace", str(path)))
    card = page.locator(".workspace-card.card-kind-projection")
    expect(card).to_contain_text("200,000 points, rasterised on the server", timeout=WAIT)
    eventually(page, lambda: page.evaluate(ACTIVATE_JS, ["raster", "LassoSelectTool"]), "lasso")

    # a pentagon around the middle of the points, a standard deviation wide
    centre, spread = np.median(xy, axis=0), xy.std(axis=0)
    angles = np.linspace(0, 2 * np.pi, 5, endpoint=False) + 0.3
    drawn = [
        [float(centre[0] + spread[0] * np.cos(a)), float(centre[1] + spread[1] * np.sin(a))]
        for a in angles
    ]
    # zoom in first: the card that lassos keeps its zoom (only its highlight is redrawn)
    window = [float(centre[0] - 2.5 * spread[0]), float(centre[0] + 2.5 * spread[0])]
    page.evaluate(ZOOM_JS, ["raster", window])
    eventually(page, lambda: page.evaluate(RANGE_JS, "raster") == window, "the zoom")
    figure_id = page.evaluate(FIGURE_ID_JS, "raster")
    at = eventually(page, lambda: page.evaluate(PLOT_JS, ["raster", 0, drawn]), "the raster")
    _drag(page, [*at[:-1], at[0]])

    # the polygon the server got (in data coordinates) is saved with the workspace
    summary = page.locator(".selection-summary")
    expect(summary).to_contain_text("rows selected", timeout=WAIT)
    page.locator(".save-workspace button").click()
    expect(page.locator(".save-status")).to_contain_text("Saved")
    ((source, brush),) = json.loads(path.read_text())["selections"]["runs"]["brushes"]
    assert source == "0" and brush["kind"] == "region"
    assert len(brush["polygon"]) >= 5
    inside = rows[_inside(xy, brush["polygon"])]
    chosen = frame.iloc[np.sort(inside)]
    assert 1_000 < len(chosen) < n // 2
    expect(summary).to_have_text(_summary(frame, chosen), timeout=WAIT)
    expected = np.histogram(chosen.score, bins=np.arange(11))[0].tolist()
    eventually(page, lambda: _source(page, "selected", "count") == expected, "score: selected")

    # the projection draws the selected points' own image over the dimmed raster
    image = eventually(
        page, lambda: (i := _source(page, "selected", "selected")) and any(i) and i, "lit"
    )
    lit = sum(1 for p in image if p)
    assert 0 < lit <= len(chosen)
    assert page.evaluate(FIGURE_ID_JS, "raster") == figure_id  # the same figure, not redrawn
    assert page.evaluate(RANGE_JS, "raster") == window
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "linked-2-raster-lasso.png"), full_page=True)

    # restarted: the region's points are registered again when the projection is drawn,
    # and the cards and the summary line show the selection then
    page.goto(run_cli("serve", "--workspace", str(path)))
    expect(summary).to_have_text(_summary(frame, chosen), timeout=WAIT)
    eventually(page, lambda: _source(page, "selected", "count") == expected, "restored series")
    eventually(page, lambda: any(_source(page, "selected", "selected") or ()), "restored image")
    expect(page.locator(".card-selection-note:visible")).to_have_count(0)
    assert page.console_errors == []


def test_table_ticks_and_a_histogram_range_in_and_then_or(page, run_cli, tmp_path) -> None:
    frame = _frame()
    table_card = {**TABLE, "config": {**TABLE["config"], "selected": "first"}}
    path = _write(tmp_path, frame, [HIST_SCORE, HIST_LOSS, table_card])
    page.goto(run_cli("serve", "--workspace", str(path)))
    table = page.locator(".workspace-card.card-kind-table")
    rows = table.locator(".tabulator-row")
    expect(rows).to_have_count(10, timeout=WAIT)
    first = frame.head(10)
    in_range = (first.score >= 2) & (first.score < 6)
    ticked = [*first.item[in_range][:2], *first.item[~in_range][:1]]
    assert len(ticked) == 3
    summary = page.locator(".selection-summary")
    items = table.locator(".tabulator-row [tabulator-field=item]")
    checks = table.locator(".tabulator-row input[type=checkbox]")

    # tick three rows, one right after the other: each stays where it is, ticked
    for item in ticked:
        cell = page.locator("[tabulator-field=item]", has_text=re.compile(f"^{item}$"))
        rows.filter(has=cell).locator("input[type=checkbox]").click()
    chosen = frame[frame.item.isin(ticked)]
    expect(summary).to_have_text(_summary(frame, chosen), timeout=WAIT)
    expected = np.histogram(chosen.loss, bins=LOSS_EDGES)[0].tolist()
    eventually(page, lambda: _source(page, "selected", "count", nth=1) == expected, "ticked")
    expect(items).to_have_text([str(i) for i in first.item], timeout=WAIT)
    for position, item in enumerate(first.item):
        expected_check = expect(checks.nth(position))
        if item in ticked:
            expected_check.to_be_checked(timeout=WAIT)
        else:
            expected_check.not_to_be_checked(timeout=WAIT)

    # and a score range [2, 6) from the first histogram: AND keeps the two ticked in it
    at = eventually(page, lambda: page.evaluate(PLOT_JS, ["bins", 0, [[2.3, 0], [5.6, 0]]]), "plot")
    _drag(page, [[at[0][0], at[-1][1]], [at[1][0], at[-1][1]]])
    ranged = (frame.score >= 2) & (frame.score < 6)
    both = frame[frame.item.isin(ticked) & ranged]
    assert len(both) == 2
    expect(summary).to_have_text(_summary(frame, both), timeout=WAIT)
    expected = np.histogram(both.loss, bins=LOSS_EDGES)[0].tolist()
    eventually(page, lambda: _source(page, "selected", "count", nth=1) == expected, "AND")

    # OR: the ticked rows and every row in the range
    page.locator(".selection-mode").get_by_text("OR").click()
    either = frame[frame.item.isin(ticked) | ranged]
    expect(summary).to_have_text(_summary(frame, either), timeout=WAIT)
    expected = np.histogram(either.loss, bins=LOSS_EDGES)[0].tolist()
    eventually(page, lambda: _source(page, "selected", "count", nth=1) == expected, "OR")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "linked-3-table-or.png"), full_page=True)
    assert page.console_errors == []


def test_two_quick_ticks_on_page_two_are_both_kept(page, run_cli, tmp_path) -> None:
    """A tick made while the table follows the one before is not lost: two ticks on page 2
    without waiting; the page stays, the ticked rows in place."""
    frame = _frame()
    table_card = {**TABLE, "config": {**TABLE["config"], "selected": "first"}}
    path = _write(tmp_path, frame, [HIST_SCORE, table_card])
    page.goto(run_cli("serve", "--workspace", str(path)))
    table = page.locator(".workspace-card.card-kind-table")
    rows = table.locator(".tabulator-row")
    expect(rows).to_have_count(10, timeout=WAIT)
    table.locator("button", has_text="▶").click()
    expect(table).to_contain_text("rows 11-20 of 3,000", timeout=WAIT)
    checks = table.locator(".tabulator-row input[type=checkbox]")
    checks.nth(2).click()  # two ticks, the second without waiting for the first
    checks.nth(6).click()
    summary = page.locator(".selection-summary")
    ticked = frame[frame.item.isin([12, 16])]
    expect(summary).to_have_text(_summary(frame, ticked), timeout=WAIT)
    expect(summary).to_contain_text("runs: 2 of 3,000 rows selected")
    # the page stays where the user was, the ticked rows in place, ticked and no others
    expect(table).to_contain_text("rows 11-20 of 3,000")
    items = table.locator(".tabulator-row [tabulator-field=item]")
    expect(items).to_have_text([str(i) for i in range(10, 20)], timeout=WAIT)
    for position in range(10):
        box = expect(checks.nth(position))
        if position in (2, 6):
            box.to_be_checked(timeout=WAIT)
        else:
            box.not_to_be_checked(timeout=WAIT)
    assert page.console_errors == []
