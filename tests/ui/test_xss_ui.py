"""Script from data never runs: hostile names, values and titles are shown as text.

Every payload sets ``window.__pwned`` to the name of its place if it ever runs as
script. Each test serves (or exports) a table or workspace carrying them, drives
the page until every place is shown, then checks that the global is still unset
and that the payload is shown literally, where it belongs. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import eventually
from tests.ui.test_workspace_ui import WAIT, shot

pytestmark = pytest.mark.ui


def payload(place: str) -> str:
    """An image tag whose error handler would mark ``place`` as broken."""
    return f"<img src=x onerror=\"window.__pwned='{place}'\">"


FILE_NAME = "runs<img src=x onerror=window.__pwned=1>"  # a file name holds no quotes here
BROKEN = "broken<img src=x onerror=window.__pwned=2>"  # a file that cannot be opened
COLUMN = payload("column")
TICK = "tick`" + payload("backtick") + "`"  # a backtick breaks a Markdown code span
FIELD = payload("struct field")
VALUE = "<script>window.__pwned='value'</script>" + payload("value")
TABLE = payload("table name")
TITLE = payload("card title")
LINK = "[open me](javascript:window.__pwned='link')"
N = 30


def _table(rows: int = N) -> pa.Table:
    """id; COLUMN (two hostile values); TICK (numbers); meta struct with the FIELD field;
    emb, a 4-dim embedding."""
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "id": pa.array(np.arange(rows)),
            COLUMN: pa.array([VALUE if i % 2 else "plain" for i in range(rows)]),
            TICK: pa.array(np.round(rng.random(rows), 3)),
            "meta": pa.array([{FIELD: float(i)} for i in range(rows)]),
            "emb": pa.array(
                [list(map(float, v)) for v in rng.random((rows, 4))], pa.list_(pa.float32(), 4)
            ),
        }
    )


def _pwned(page) -> object:
    """What a payload that ran set (None: nothing ran)."""
    return page.evaluate("() => window.__pwned ?? null")


def _settled(page) -> None:
    """Wait until the page has no request in flight, so an ``<img src=x>`` that was
    inserted has failed to load and its error handler would have run."""
    page.wait_for_load_state("networkidle", timeout=WAIT)


def _literal(locator, text: str) -> None:
    """``text`` is shown, as text, inside ``locator``."""
    expect(locator.get_by_text(text, exact=False).first).to_be_visible(timeout=WAIT)


def _card(page, kind: str, title: str | None = None):
    cards = page.locator(f".workspace-card.card-kind-{kind}")
    if title is not None:
        cards = cards.filter(has=page.locator(".card-title", has_text=title))
    return cards.first


def test_served_names_and_values_are_text(page, run_cli, tmp_path) -> None:
    table = _table().drop_columns(["emb"])
    pq.write_table(table, tmp_path / f"{FILE_NAME}.parquet")
    pq.write_table(table.slice(0, 20), tmp_path / "other.parquet")
    (tmp_path / f"{BROKEN}.parquet").write_bytes(b"not a parquet file")  # cannot be opened
    page.goto(run_cli("serve", f"{FILE_NAME}.parquet", "other.parquet", f"{BROKEN}.parquet"))
    runs = _card(page, "table", FILE_NAME)
    expect(runs.locator(".row-count")).to_have_text(f"{N} of {N} rows", timeout=WAIT)

    # the sidebar: table name, column names, struct field names, one table per entry
    sidebar = page.locator(".workspace-sidebar")
    _literal(sidebar, f"{FILE_NAME} · {N} rows · 4 columns")
    _literal(sidebar, f"{BROKEN}.parquet cannot be opened")  # the unreadable file's alert
    entry = sidebar.locator(".table-entry").filter(has_text=FILE_NAME).first
    for name, shown in ((COLUMN, "category(2)"), (TICK, "number")):  # name, type, chart
        expect(entry.locator("tr").filter(has_text=name).first).to_contain_text(shown, timeout=WAIT)
    expect(entry).to_contain_text(FIELD, timeout=WAIT)
    expect(entry.locator("svg.column-summary").first).to_be_attached(timeout=WAIT)
    # the card: its title, the Tabulator's column headers and the cells
    _literal(runs.locator(".card-title"), FILE_NAME)
    headers = runs.locator(".tabulator-col-title")
    expect(headers.filter(has_text=COLUMN).first).to_be_visible(timeout=WAIT)
    expect(headers.filter(has_text=TICK).first).to_be_visible()
    _literal(runs.locator(".tabulator-row").nth(1), VALUE)
    shot(page, "xss-1-table")

    # the filter's message quotes a hostile column name
    box = runs.locator(".query-filter input")
    box.fill("tic > 1")
    error = runs.locator(".query-error")
    expect(error).to_contain_text("unknown column `tic`", timeout=WAIT)
    expect(error).to_contain_text(COLUMN)
    expect(error).to_contain_text(TICK)
    box.fill("")

    # the group-by choices list the hostile column; choosing it groups by it
    runs.locator(".query-more").click()  # the bar is one line: open sort, group, compare
    runs.locator(".query-group input").click()
    choice = runs.locator(".choices__item--choice", has_text=COLUMN).first
    expect(choice).to_be_visible(timeout=WAIT)
    expect(choice).to_have_text(COLUMN)
    choice.click()
    expect(runs.locator(".row-count")).to_have_text(f"2 groups · {N} of {N} rows", timeout=WAIT)
    expect(runs.locator(".choices__item--selectable", has_text=COLUMN).first).to_be_visible()
    shot(page, "xss-2-grouped")

    # compared with the hostile-named table: its name in the count line
    other = _card(page, "table", "other")
    other.locator(".query-more").click()
    other.locator(".query-compare select").select_option(FILE_NAME)
    expect(other.locator(".row-count")).to_have_text(
        f"{N} rows comparing 0 = other (20 rows) and 1 = {FILE_NAME} ({N} rows)", timeout=WAIT
    )
    shot(page, "xss-3-compared")
    _settled(page)
    assert _pwned(page) is None


def _workspace(folder: Path, name: str = "ws") -> Path:
    """A workspace over TABLE (a hostile table name) with hostile card titles: a table,
    a histogram of TICK and a PCA projection labelled by COLUMN."""
    pq.write_table(_table(), folder / "data.parquet")
    cards = [
        {"kind": "table", "input": {"table": TABLE}, "title": TITLE},
        {
            "kind": "histogram",
            "input": {"table": TABLE},
            "config": {"column": TICK, "bins": 5},
            "title": LINK,
        },
        {
            "kind": "projection",
            "input": {"table": TABLE},
            "config": {
                "columns": ["emb"],
                "method": "pca",
                "label": COLUMN,
                "tooltip": [TICK],
                "knn_k": 3,
            },
            "title": "map",
        },
    ]
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"tables": {TABLE: "data.parquet"}, "cards": cards}), "utf-8")
    return path


_POINT_ON_SCREEN = """
(index) => {
  const doc = Bokeh.documents[Bokeh.documents.length - 1];
  const renderer = [...doc._all_models.values()].find(
    (m) => m.constructor.__name__ == "GlyphRenderer" && m.name == "points");
  const view = Bokeh.index.find_one(renderer);
  const box = view.plot_view.canvas_view.el.getBoundingClientRect();
  return {x: box.left + view.glyph.sx[index], y: box.top + view.glyph.sy[index]};
}
"""


def test_workspace_titles_and_clicked_point_label_are_text(page, run_cli, tmp_path) -> None:
    spec = _workspace(tmp_path)
    page.goto(run_cli("serve", "--workspace", str(spec)))
    table = _card(page, "table", TITLE)
    expect(table.locator(".row-count")).to_have_text(f"{N} of {N} rows", timeout=WAIT)
    _literal(table.locator(".card-title"), TITLE)
    sidebar = page.locator(".workspace-sidebar")
    _literal(sidebar, f"{TABLE} · {N} rows · 5 columns")

    # a Markdown link in a title is text, not a link
    histogram = _card(page, "histogram", LINK)
    _literal(histogram.locator(".card-title"), LINK)
    _literal(histogram, f"values of {TICK} in 5 bins")
    assert page.locator("a[href^='javascript']").count() == 0

    # click a point: its label (a hostile value) heads the neighbour list
    projection = _card(page, "projection", "map")
    expect(projection.locator("canvas").first).to_be_visible(timeout=WAIT)
    projection.scroll_into_view_if_needed()
    point = page.evaluate(_POINT_ON_SCREEN, 1)  # row 1 holds VALUE
    page.mouse.click(point["x"], point["y"])
    _literal(projection, f"Row 1 ({VALUE})")
    # the pointer rests on the point: its tooltip names the hostile column as text
    tooltip = page.locator(".bk-tooltip-content").filter(has_text=TICK).first
    expect(tooltip).to_contain_text(f"{TICK}: ", timeout=WAIT)
    neighbours = projection.locator(".tabulator")
    expect(neighbours.locator(".tabulator-col-title", has_text=COLUMN).first).to_be_visible()
    shot(page, "xss-4-workspace")
    _settled(page)
    assert _pwned(page) is None


def test_exported_report_shows_names_and_titles_as_text(page, tmp_path) -> None:
    spec = _workspace(tmp_path, FILE_NAME)  # the report is titled by the file's name
    report = tmp_path / "out" / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "panels_core.cli", "export", str(spec), "-o", str(report)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    page.goto(report.resolve().as_uri())
    _literal(page, FILE_NAME)
    assert page.title() == FILE_NAME
    summary = page.locator("table").filter(has_text="columns").first
    for text in (TABLE, COLUMN, TICK, FIELD):
        _literal(summary, text)
    _literal(page, f"{TITLE} · Table")
    _literal(page, f"{LINK} · Histogram")
    expect(page.locator(".tabulator-col-title", has_text=COLUMN).first).to_be_visible()
    _literal(page.locator(".tabulator-row").nth(1), VALUE)
    assert page.locator("a[href^='javascript']").count() == 0
    shot(page, "xss-5-report")
    _settled(page)
    assert _pwned(page) is None


_SERIES_NAMES = """() => {
  const names = [];
  for (const doc of window.Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      if (model.constructor.__name__ !== "ColumnDataSource") continue;
      const data = model.data instanceof Map ? Object.fromEntries(model.data) : model.data;
      if ("name" in data) names.push(...Array.from(data.name));
    }
  }
  return [...new Set(names)];
}"""


def test_selected_series_of_a_hostile_category_are_text(page, run_cli, tmp_path) -> None:
    """A multi-histogram split by a column whose values are payloads, under a saved
    selection: its selected series ("<value> (selected)") are drawn, and hovering the
    chart shows their names as text; the selection summary's breakdown is text too."""
    table = _table().drop_columns(["emb"])
    pq.write_table(table, tmp_path / "data.parquet")
    card = {"kind": "multi_histogram", "input": {"table": "t"}}
    card["config"] = {"column": TICK, "by": COLUMN, "bins": 5}
    brush = {"kind": "range", "column": TICK, "low": 0.3}
    spec = {
        "tables": {"t": "data.parquet"},
        "cards": [card, {"kind": "table", "input": {"table": "t"}}],
    }
    spec["selections"] = {"t": {"brushes": [["1", brush]]}}
    (tmp_path / "ws.json").write_text(json.dumps(spec), "utf-8")
    page.goto(run_cli("serve", "--workspace", str(tmp_path / "ws.json")))

    chosen = table.filter(pc.greater_equal(table[TICK], 0.3))
    hostile = sum(1 for v in chosen[COLUMN].to_pylist() if v == VALUE)
    expect(page.locator(".selection-summary")).to_contain_text(
        f"{len(chosen)} of {N} rows selected", timeout=WAIT
    )
    _literal(page.locator(".selection-summary"), f"{VALUE} {hostile}")
    chart = _card(page, "multi_histogram")
    expect(chart.locator("canvas").first).to_be_visible(timeout=WAIT)
    names = eventually(
        page, lambda: [n for n in page.evaluate(_SERIES_NAMES) if "(selected)" in n], "selected"
    )
    assert f"{VALUE} (selected)" in names  # the hostile series is drawn, selected rows too
    box = chart.locator("canvas").first.bounding_box()
    for step in range(1, 20):  # sweep the pointer over the bars: every tooltip shows
        page.mouse.move(box["x"] + box["width"] * step / 20, box["y"] + box["height"] * 0.8)
        page.wait_for_timeout(50)
    shot(page, "xss-5-selected-series")
    _settled(page)
    assert _pwned(page) is None
