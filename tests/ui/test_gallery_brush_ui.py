"""The sidebar's column summaries brush the linked selection in a real browser: clicking a
top-value bar and a histogram bin sets the summary line to the rows pandas counts; the same
bar again clears it. A gallery tile's "select" box selects its row for the other cards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from panels_core import View
from panels_core.workspace.sidebar import SUMMARY_BINS
from tests.ui.conftest import UI_WAIT_MS

pytestmark = pytest.mark.ui

WAIT = UI_WAIT_MS
N = 500


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(
        {
            "score": np.round(rng.uniform(0, 10, N), 3),
            "label": pd.Categorical(rng.choice(["cat", "dog", "owl"], N, p=[0.5, 0.3, 0.2])),
        }
    )


def _serve(tmp_path: Path, run_cli, frame: pd.DataFrame) -> str:
    frame.to_parquet(tmp_path / "runs.parquet")
    cards = [{"kind": "table", "input": {"table": "runs"}}]
    spec = {"schema_version": 1, "tables": {"runs": "runs.parquet"}, "cards": cards}
    (tmp_path / "ws.json").write_text(json.dumps(spec))
    return run_cli("serve", "--workspace", str(tmp_path / "ws.json"))


def _bar(page, column: str, bar: int):
    entry = page.locator(".workspace-sidebar .table-entry").first
    return entry.locator(f'tr[data-column="{column}"] rect.summary-bar[data-bar="{bar}"]').last


def test_clicking_sidebar_bars_selects_the_rows_pandas_counts(page, run_cli, tmp_path) -> None:
    frame = _frame()
    page.goto(_serve(tmp_path, run_cli, frame))
    summary = page.locator(".selection-summary")

    top = frame.label.value_counts()
    _bar(page, "label", 0).click(timeout=WAIT)
    expect(summary).to_contain_text(f"runs: {top.iloc[0]:,} of {N:,} rows selected", timeout=WAIT)
    expect(_bar(page, "label", 0)).to_have_class(re.compile("active"), timeout=WAIT)

    edges = View.of(frame).histogram("score", bins=SUMMARY_BINS).edges
    last = SUMMARY_BINS - 1
    _bar(page, "score", last).click(timeout=WAIT)  # AND the last bin (closed at its top)
    inside = (
        (frame.label == top.index[0]) & (frame.score >= edges[last]) & (frame.score <= edges[-1])
    )
    expect(summary).to_contain_text(
        f"runs: {int(inside.sum()):,} of {N:,} rows selected", timeout=WAIT
    )

    _bar(page, "label", 0).click()  # the same bar again: only the bin is left
    in_bin = (frame.score >= edges[last]) & (frame.score <= edges[-1])
    expect(summary).to_contain_text(
        f"runs: {int(in_bin.sum()):,} of {N:,} rows selected", timeout=WAIT
    )
    _bar(page, "score", last).click()
    expect(summary).to_have_count(0, timeout=WAIT)
    expect(page.locator("rect.summary-bar.active")).to_have_count(0)


def test_ticking_gallery_tiles_selects_their_rows(page, run_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PANELS_DEMO_DIR", str(tmp_path / "demo_data"))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(run_cli("serve", "--demo"))
    gallery = page.locator(".workspace-card.card-kind-gallery").first
    tiles = gallery.locator(".gallery-tile")
    expect(tiles).to_have_count(24, timeout=WAIT)
    tiles.nth(0).locator(".gallery-check input").check()
    tiles.nth(5).locator(".gallery-check input").check()  # at once: the first one stays
    expect(page.locator(".selection-summary").first).to_contain_text(
        "digits: 2 of 1,797 rows selected", timeout=WAIT
    )
    marked = gallery.locator(".gallery-tile.gallery-marked")
    expect(marked).to_have_count(2, timeout=WAIT)
    expect(tiles.nth(0)).to_have_class(re.compile("gallery-marked"))
    expect(tiles.nth(5)).to_have_class(re.compile("gallery-marked"))
    expect(tiles.nth(0).locator(".gallery-check input")).to_be_checked()
    expect(tiles.nth(5).locator(".gallery-check input")).to_be_checked()
    expect(gallery.locator(".gallery-detail")).to_be_hidden()  # ticking opens no row
    gallery.locator(".gallery-selected-only button").click()
    expect(gallery).to_contain_text("images 1-2 of 2", timeout=WAIT)
    expect(marked).to_have_count(2, timeout=WAIT)
    assert page.console_errors == []
