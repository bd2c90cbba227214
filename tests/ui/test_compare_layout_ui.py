"""The workspace in a real browser: comparing two tables, and the card grid.

Compare: a table card compared with a second version on a key shows one bar per
source in its number cells, "only rows in both" keeps the shared rows, grouping
the comparison shows mini multi-histograms whose counts are the groups' sizes, and
the multi-histogram panel draws it. Grid: at 1400 px two cards sit side by side; the
⇔ button makes a card span the row, and that placement is saved and reloaded.
Every page must log no console error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.test_workspace_ui import WAIT, card, shot

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> Path:
    """runs.parquet: 600 rows (id, label, score, loss); runs_b.parquet: its first 400, rescored."""
    folder = tmp_path_factory.mktemp("versions")
    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "label": np.array(["cat", "dog", "bird"])[np.arange(n) % 3],
            "score": np.round(rng.random(n), 3),
            "loss": np.round(rng.random(n) * 2, 3),
        }
    )
    frame.to_parquet(folder / "runs.parquet")
    frame.iloc[:400].assign(score=lambda d: np.round(d.score * 0.5, 3)).to_parquet(
        folder / "runs_b.parquet"
    )
    return folder


def test_compare_versions_bars_then_grouped_multi_histograms(page, run_cli, versions) -> None:
    url = run_cli("serve", str(versions / "runs.parquet"), str(versions / "runs_b.parquet"))
    page.goto(url)
    runs = card(page, "runs", "table")
    count = runs.locator(".row-count")
    expect(count).to_have_text("600 of 600 rows", timeout=WAIT)

    # compare with the second version, joined on id
    runs.locator(".query-more").click()  # the bar is one line: open sort, group, compare
    runs.locator(".query-compare select").select_option("runs_b")
    runs.locator(".query-compare-on select").select_option("id")
    expect(count).to_have_text(
        "600 rows comparing 0 = runs (600 rows) and 1 = runs_b (400 rows)", timeout=WAIT
    )
    frame = pd.read_parquet(versions / "runs.parquet")
    # per row, score then loss: one bar per source, value in data-value (compared on
    # row position first, `id` was a compared column too: wait for the keyed page)
    expect(runs.locator(".card-body svg rect[data-value]").first).to_have_attribute(
        "data-value", f"{frame.score[0]:.4g}", timeout=WAIT
    )
    values = _bar_values(runs)
    assert values[:4] == [
        f"{frame.score[0]:.4g}",
        f"{round(frame.score[0] * 0.5, 3):.4g}",
        f"{frame.loss[0]:.4g}",
        f"{frame.loss[0]:.4g}",
    ]
    # sorted by id, descending: the last row is only in the first version
    runs.locator(".query-sort select").select_option("id")
    runs.locator(".query-order select").select_option("descending")
    expect(runs.locator(".card-body svg rect[data-value]").first).to_have_attribute(
        "data-value", f"{frame.score[599]:.4g}", timeout=WAIT
    )
    assert _bar_values(runs)[:2] == [f"{frame.score[599]:.4g}", "null"]
    shot(page, "compare-1-bars")

    runs.locator(".query-both input").check()
    expect(count).to_have_text(
        "400 rows comparing 0 = runs (600 rows) and 1 = runs_b (400 rows)", timeout=WAIT
    )

    # group the comparison by label: a mini multi-histogram per group and column
    runs.locator(".query-group input").click()
    runs.locator(".choices__item--choice", has_text="label").first.click()
    expect(count).to_have_text(
        "3 groups · 400 rows comparing 0 = runs (600 rows) and 1 = runs_b (400 rows)", timeout=WAIT
    )
    titles = runs.locator(".card-body svg > title")
    expect(titles.first).to_be_attached(timeout=WAIT)
    tips = titles.all_text_contents()
    sizes = frame.iloc[:400].label.value_counts()
    for label, size in sizes.items():
        assert f"0: {size} | 1: {size}" in tips, (label, tips)
    shot(page, "compare-2-grouped")

    # the registry offers the multi-histogram for the grouped comparison; it draws
    runs.locator(".panel-selector select").select_option(label="Multi-histogram")
    multi = card(page, "runs", "multi_histogram")
    expect(multi.locator(".card-body canvas").first).to_be_attached(timeout=WAIT)
    # both sources' 400 shared rows, pooled over the groups
    expect(multi.locator(".card-body")).to_contain_text(
        "800 values of score, one series per compared source (2 shown)", timeout=WAIT
    )
    shot(page, "compare-3-multi-histogram")
    assert page.console_errors == []


def _bar_values(card_locator) -> list[str]:
    """The values of the compared-number bars on the card's page, in order."""
    bars = card_locator.locator(".card-body svg rect[data-value]")
    expect(bars.first).to_be_attached(timeout=WAIT)
    return bars.evaluate_all("rects => rects.map(r => r.getAttribute('data-value'))")


def _box(locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None
    return box


def test_cards_side_by_side_and_a_wide_card_reloads_wide(page, run_cli, versions, tmp_path) -> None:
    ws_path = tmp_path / "ws.json"
    data = [str(versions / "runs.parquet"), str(versions / "runs_b.parquet")]
    page.goto(run_cli("serve", *data, "--workspace", str(ws_path)))
    a, b = card(page, "runs"), card(page, "runs_b")
    expect(a.locator(".row-count")).to_have_text("600 of 600 rows", timeout=WAIT)
    expect(b.locator(".row-count")).to_have_text("400 of 400 rows", timeout=WAIT)
    box_a, box_b = _box(a), _box(b)
    assert abs(box_a["y"] - box_b["y"]) < 2 and box_b["x"] > box_a["x"] + box_a["width"] - 2
    shot(page, "grid-1-side-by-side")

    # ⇔ makes the first card span the row; the second moves below it
    a.locator(".card-wide button").click()
    page.wait_for_function(
        "([a, b]) => a.getBoundingClientRect().width > 1.8 * b.getBoundingClientRect().width",
        arg=[a.element_handle(), b.element_handle()],
        timeout=WAIT,
    )
    wide_a, below_b = _box(a), _box(b)
    assert below_b["y"] >= wide_a["y"] + wide_a["height"] - 2
    shot(page, "grid-2-wide")

    page.locator(".save-path input").fill(str(ws_path))
    page.locator(".save-workspace button").click()
    expect(page.locator(".save-status")).to_contain_text("Saved", timeout=WAIT)
    saved = json.loads(ws_path.read_text())
    assert saved["layout"]["placements"] == [{"card": 0, "width": 2}]

    page.goto(run_cli("serve", "--workspace", str(ws_path)))
    a, b = card(page, "runs"), card(page, "runs_b")
    expect(b.locator(".row-count")).to_have_text("400 of 400 rows", timeout=WAIT)
    page.wait_for_function(
        "([a, b]) => a.getBoundingClientRect().width > 1.8 * b.getBoundingClientRect().width",
        arg=[a.element_handle(), b.element_handle()],
        timeout=WAIT,
    )
    shot(page, "grid-3-reloaded")
    assert page.console_errors == []
