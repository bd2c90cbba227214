"""The demo workspace reads at a glance, in a real browser: a card's query bar is one line
until opened, a table card with thumbnails is exactly as tall as its grid row and scrolls
inside, and the gallery shows a page of thumbnails whose click opens the row's fields.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from panels_core.workspace.cards import CARD_HEIGHT
from tests.ui.conftest import ARTIFACTS, UI_WAIT_MS

pytestmark = pytest.mark.ui

WAIT = UI_WAIT_MS


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"glance-{name}.png"), full_page=True)


def card(page, title: str, kind: str):
    exact = re.compile(rf"^\s*{re.escape(title)}\s*$")
    return (
        page.locator(f".workspace-card.card-kind-{kind}")
        .filter(has=page.locator(".card-title", has_text=exact))
        .first
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo") / "demo_data"


@pytest.fixture
def demo(page, run_cli, demo_dir, monkeypatch):
    monkeypatch.setenv("PANELS_DEMO_DIR", str(demo_dir))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(run_cli("serve", "--demo"))
    return page


def test_query_bar_is_one_line_until_opened(demo) -> None:
    table = card(demo, "digits", "table")
    expect(table.locator(".row-count")).to_have_text("1,797 of 1,797 rows", timeout=WAIT)
    bar = table.locator(".query-bar").first
    line = table.locator(".query-filter").first.bounding_box()
    assert bar.bounding_box()["height"] < 2 * line["height"]  # the filter's line only
    expect(table.locator(".query-sort")).to_be_hidden()
    table.locator(".query-more").click()
    expect(table.locator(".query-sort select")).to_be_visible(timeout=WAIT)
    assert bar.bounding_box()["height"] > 2 * line["height"]
    table.locator(".query-sort select").select_option("target")
    table.locator(".query-order select").select_option("descending")
    table.locator(".query-more").click()  # closed again: what is in effect stays named
    expect(table.locator(".query-summary")).to_have_text("sorted by target ↓", timeout=WAIT)
    first_target = table.locator('.tabulator-row .tabulator-cell[tabulator-field="target"]').first
    expect(first_target).to_have_text("9", timeout=WAIT)
    shot(demo, "1-bar")
    assert demo.console_errors == []


def test_table_card_keeps_its_row_height_and_gallery_opens_a_row(demo) -> None:
    table = card(demo, "digits", "table")
    expect(table.locator(".tabulator-row img").first).to_be_visible(timeout=WAIT)
    projection = card(demo, "digits", "projection")
    row_cards = [projection, card(demo, "digits", "gallery")]
    # the first row of the screen is the digits' projection and gallery, each a grid row tall
    for each in row_cards:
        box = each.bounding_box()
        assert round(box["height"]) == CARD_HEIGHT and round(box["y"]) == round(
            row_cards[0].bounding_box()["y"]
        )
    for each in demo.locator(".workspace-card").all():  # a long title never pushes ✕ out
        edge = each.bounding_box()
        close = each.locator(".card-close").first.bounding_box()
        assert close["x"] + close["width"] <= edge["x"] + edge["width"]
    box = table.bounding_box()
    assert round(box["height"]) == CARD_HEIGHT  # 50 rows of thumbnails do not grow it
    holder = table.locator(".tabulator-tableholder").first
    sizes = holder.evaluate("e => [e.scrollHeight, e.clientHeight]")
    assert sizes[0] > 3 * sizes[1]  # the page scrolls inside the table
    assert holder.evaluate("e => (e.scrollTop = e.scrollHeight, e.scrollTop)") > 0
    assert round(table.bounding_box()["height"]) == CARD_HEIGHT

    gallery = row_cards[1]
    tiles = gallery.locator(".gallery-tile")
    expect(tiles).to_have_count(24, timeout=WAIT)
    expect(gallery).to_contain_text("images 1-24 of 1,797")
    expect(tiles.nth(3).locator(".gallery-caption")).to_have_text("3")  # its target
    tiles.nth(3).click()
    detail = gallery.locator(".gallery-detail")
    expect(detail).to_be_visible(timeout=WAIT)
    expect(detail).to_contain_text("row 4 of 1,797")
    names = detail.locator("th").all_inner_texts()
    assert names[:2] == ["image", "target"] and len(names) == 67  # every column of the row
    shot(demo, "2-gallery-detail")
    detail.locator(".gallery-back button").click()
    expect(tiles).to_have_count(24, timeout=WAIT)
    assert demo.console_errors == []
