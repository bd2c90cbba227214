"""Static reports in a real browser: the exported HTML opened from file:// with the network
off draws its plots (hover still answers), shows the table's first rows, asks for nothing
remote and logs no console error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panels_core.query.model import CompareWith, Query
from panels_core.workspace.spec import CardSpec, WorkspaceSpec

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import block_network, eventually

pytestmark = pytest.mark.ui

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from panels_core.demo import write_demo

    folder = tmp_path_factory.mktemp("demo")
    write_demo(folder, log=lambda _line: None)
    return folder


@pytest.fixture(scope="module")
def report(demo) -> Path:
    """The demo as a saved workspace (files and store versions), exported like `panels export`."""
    from panels_core.workspace.report import export_inputs

    spec = WorkspaceSpec(
        tables={
            "digits": "digits.parquet",
            "predictions": "predictions:v1",
            "before": "predictions:v0",
        },
        cards=(
            CardSpec(
                kind="histogram",
                input=Query(table="predictions"),
                config={"column": "score", "bins": 20},
                title="Scores",
            ),
            CardSpec(
                kind="multi_histogram",
                input=Query(
                    table="predictions",
                    compare_with=CompareWith(table="before", on="id", names=("v1", "v0")),
                ),
                config={"column": "score"},
                title="v1 vs v0",
            ),
            CardSpec(
                kind="projection",
                input=Query(table="digits"),
                config={"columns": ["embedding"], "method": "pca", "colour_by": "target"},
                title="Digits PCA",
            ),
            CardSpec(
                kind="table",
                input=Query(table="predictions"),
                config={"page_size": 20},
                title="Predictions",
            ),
        ),
    )
    path = demo / "report.json"
    path.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    return export_inputs([path], demo / "out" / "report.html", title="Demo report")


def test_exported_workspace_works_offline(page, report, demo):
    from panels_core.data.store import Store

    asked = block_network(page)
    page.goto(report.resolve().as_uri())

    # the plots: histogram, multi-histogram and projection canvases with real sizes
    canvases = page.locator(".bk-Canvas canvas, canvas")
    canvases.first.wait_for(state="visible")
    page.get_by_text("Digits PCA").first.wait_for()

    def drawn() -> list[dict]:
        sizes = [canvases.nth(i).bounding_box() for i in range(canvases.count())]
        drawn = [s for s in sizes if s and s["width"] > 200 and s["height"] > 200]
        return drawn if len(drawn) >= 3 else []

    eventually(page, drawn, "three plots drawn at full size")
    # every card drew: no card shows an error
    alerts = page.locator(".alert-danger, .alert-warning")
    shown = [alerts.nth(i) for i in range(alerts.count()) if alerts.nth(i).is_visible()]
    assert shown == [], [a.inner_text() for a in shown]
    expect(page.get_by_text("1,797 points").first).to_be_visible()

    # the table's first page: rows in the data's order, and the note
    first = Store(demo / "store").get("predictions:v1").to_arrow().slice(0, 20).to_pylist()
    rows = page.locator(".tabulator-row")
    rows.first.wait_for(state="visible")
    expect(rows).to_have_count(20)
    for i in (0, 19):
        text = rows.nth(i).inner_text()
        assert first[i]["image_id"] in text and first[i]["split"] in text
    expect(page.get_by_text("first 20 of 2,000 rows")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reports_export_top.png"))

    # hover still answers without a server: the tooltip of a histogram bar
    histogram = canvases.first
    histogram.scroll_into_view_if_needed()
    box = histogram.bounding_box()
    tooltip = page.locator(".bk-tooltip-content")

    def hover_shows_a_tooltip() -> bool:
        for fraction in (0.5, 0.6, 0.7, 0.8, 0.4):
            page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.72)
            page.wait_for_timeout(200)
            if tooltip.count() and tooltip.first.is_visible():
                return True
        return False

    eventually(page, hover_shows_a_tooltip, "a histogram bar's tooltip on hover")
    assert "count" in tooltip.first.inner_text() and "range" in tooltip.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "reports_export_hover.png"))

    assert asked == [], f"the report asked the network for {asked}"
    assert page.console_errors == []


def test_rendered_panel_file_works_offline(page, tmp_path):
    import numpy as np
    import pandas as pd

    from panels_core import render

    frame = pd.DataFrame({"score": np.linspace(0, 1, 200), "label": ["a", "b"] * 100})
    path = render(frame, "histogram", column="score", bins=10).save(tmp_path / "one.html")
    asked = block_network(page)
    page.goto(path.resolve().as_uri())
    canvas = page.locator("canvas").first
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    assert box["width"] > 200 and box["height"] > 200
    expect(page.get_by_text("200 values of")).to_be_visible()
    assert asked == [] and page.console_errors == []
