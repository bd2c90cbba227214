"""The workspace in a real browser: `panels serve` started on a free port, driven by Playwright.

Steps: the demo workspace loads its cards; on a small generated workspace a card's
panel is swapped through the selector (a Bokeh canvas appears), a filter changes the
row count to the right number, a bad filter shows its message, grouping shows
histogram cells, and a saved workspace reopens (server restarted with --workspace)
with the same cards, filter and config. Every page must log no console error.
Screenshots of each step go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import ARTIFACTS, UI_WAIT_MS

pytestmark = pytest.mark.ui

WAIT = UI_WAIT_MS  # ms; the machine may be busy


def shot(page, name: str) -> None:
    """Keep a screenshot of this step."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"workspace-{name}.png"), full_page=True)


def card(page, title: str, kind: str | None = None):
    """The card whose title is ``title`` (and whose selector shows ``kind``)."""
    selector = ".workspace-card" + (f".card-kind-{kind}" if kind else "")
    exact = re.compile(rf"^\s*{re.escape(title)}\s*$")
    return page.locator(selector).filter(has=page.locator(".card-title", has_text=exact)).first


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """runs.parquet: 600 rows (id, label in 3 classes, score, loss); runs_b.parquet: 400 rows."""
    folder = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    n = 600
    labels = np.array(["cat", "dog", "bird"])[np.arange(n) % 3]
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "label": labels,
            "score": np.round(rng.random(n), 3),
            "loss": np.round(rng.random(n) * 2, 3),
        }
    )
    frame.to_parquet(folder / "runs.parquet")
    other = frame.iloc[:400].assign(score=lambda d: np.round(d.score * 0.9, 3))
    other.to_parquet(folder / "runs_b.parquet")
    return folder


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo") / "demo_data"


def test_demo_workspace_loads_its_cards(page, run_cli, demo_dir, monkeypatch) -> None:
    monkeypatch.setenv("PANELS_DEMO_DIR", str(demo_dir))
    url = run_cli("serve", "--demo")
    page.goto(url)
    digits = card(page, "digits", "table")
    expect(digits.locator(".row-count")).to_have_text("1,797 of 1,797 rows", timeout=WAIT)
    expect(card(page, "joined:v0").locator(".row-count")).to_contain_text("rows", timeout=WAIT)
    sidebar = page.locator(".workspace-sidebar")
    expect(sidebar).to_contain_text("digits · 1,797 rows · 67 columns")
    expect(sidebar).to_contain_text("versions: predictions:v0, predictions:v1")
    assert page.locator(".workspace-card").count() >= 5
    shot(page, "1-demo")
    assert page.console_errors == []


def test_swap_filter_group_save_and_reload(page, run_cli, small_data, tmp_path) -> None:
    ws_path = tmp_path / "ws.json"
    data = [str(small_data / "runs.parquet"), str(small_data / "runs_b.parquet")]
    url = run_cli("serve", *data, "--workspace", str(ws_path))
    page.goto(url)
    runs = card(page, "runs", "table")
    count = runs.locator(".row-count")
    expect(count).to_have_text("600 of 600 rows", timeout=WAIT)
    shot(page, "2-loaded")

    # swap the panel through the selector: the histogram's Bokeh canvas appears
    runs.locator(".panel-selector select").select_option(label="Histogram")
    runs = card(page, "runs", "histogram")
    count = runs.locator(".row-count")
    expect(runs.locator(".card-body canvas").first).to_be_attached(timeout=WAIT)
    shot(page, "3-histogram")

    # a filter changes the row count to the right number
    box = runs.locator(".query-filter input")
    box.fill('label == "cat" and score > 0.5')
    box.press("Enter")
    frame = pd.read_parquet(small_data / "runs.parquet")
    expected = int(((frame.label == "cat") & (frame.score > 0.5)).sum())
    expect(count).to_have_text(f"{expected:,} of 600 rows", timeout=WAIT)
    shot(page, "4-filtered")

    # a bad filter shows its message under the box and changes nothing
    box.fill("score >")
    expect(runs.locator(".query-error")).to_contain_text("expected a value after `>`")
    box.fill("scor > 1")
    expect(runs.locator(".query-error")).to_contain_text("did you mean `score`")
    expect(count).to_have_text(f"{expected:,} of 600 rows")
    shot(page, "5-bad-filter")
    box.fill('label == "cat" and score > 0.5')
    box.press("Enter")
    expect(runs.locator(".query-error")).to_be_hidden()

    # the gear: set the histogram's bins to 7
    runs.locator(".card-gear button").click()
    bins = runs.locator(".card-settings input[type=text]").first
    expect(bins).to_have_value("auto", timeout=WAIT)
    bins.fill("7")
    bins.press("Enter")
    expect(runs.locator(".card-settings")).not_to_contain_text("Input should")
    shot(page, "6-settings")

    # group by label: the table shows a histogram cell per group
    other = card(page, "runs_b", "table")
    other.locator(".query-more").click()  # the bar is one line: open sort, group, compare
    other.locator(".query-group input").click()
    other.locator(".choices__item--choice", has_text="label").first.click()
    expect(other.locator(".row-count")).to_have_text("3 groups · 400 of 400 rows", timeout=WAIT)
    expect(other.locator(".card-body svg, .card-body canvas, .card-body img").first).to_be_attached(
        timeout=WAIT
    )
    shot(page, "7-grouped")

    # save, restart the server on the saved workspace, find the same state
    page.locator(".save-path input").fill(str(ws_path))
    page.locator(".save-workspace button").click()
    expect(page.locator(".save-status")).to_contain_text("Saved", timeout=WAIT)
    saved = json.loads(ws_path.read_text())
    kinds = [c["kind"] for c in saved["cards"]]
    assert kinds[0] == "histogram"
    assert saved["cards"][0]["config"]["bins"] == 7
    assert saved["cards"][0]["input"]["filter"] == 'label == "cat" and score > 0.5'
    assert saved["cards"][1]["input"]["group_by"] == ["label"]
    assert page.console_errors == []

    url2 = run_cli("serve", "--workspace", str(ws_path))
    page.goto(url2)
    runs = card(page, "runs", "histogram")
    expect(runs.locator(".row-count")).to_have_text(f"{expected:,} of 600 rows", timeout=WAIT)
    expect(runs.locator(".query-filter input")).to_have_value('label == "cat" and score > 0.5')
    expect(card(page, "runs_b").locator(".row-count")).to_have_text(
        "3 groups · 400 of 400 rows", timeout=WAIT
    )
    expect(runs.locator(".card-body canvas").first).to_be_attached(timeout=WAIT)
    runs.locator(".card-gear button").click()
    expect(runs.locator(".card-settings input[type=text]").first).to_have_value("7", timeout=WAIT)
    shot(page, "8-reloaded")
    assert page.locator(".workspace-card").count() == len(kinds)
    assert page.console_errors == []
