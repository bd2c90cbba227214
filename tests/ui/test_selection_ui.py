"""Linked selection in a real browser: a saved selection comes back after a restart,
the selection bar says how many rows are selected (by category), "Filter to selection"
gives a card that count, Save writes the selection, and Clear removes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import ARTIFACTS, UI_WAIT_MS, eventually

pytestmark = pytest.mark.ui

N = 600


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "label": pd.Categorical(np.array(["cat", "dog", "bird"])[rng.integers(0, 3, N)]),
            "score": np.round(rng.random(N), 3),
        }
    )


def _workspace(folder: Path) -> Path:
    _frame().to_parquet(folder / "runs.parquet")
    spec = {
        "schema_version": 1,
        "tables": {"runs": "runs.parquet"},
        "cards": [
            {"kind": "histogram", "input": {"table": "runs"}, "config": {"column": "score"}},
            {"kind": "table", "input": {"table": "runs"}},
        ],
        "selections": {
            "runs": {"brushes": [["0", {"kind": "range", "column": "score", "low": 0.7}]]}
        },
    }
    path = folder / "ws.json"
    path.write_text(json.dumps(spec))
    return path


def test_saved_selection_summary_filter_save_and_clear(page, run_cli, tmp_path) -> None:
    ws_path = _workspace(tmp_path)
    url = run_cli("serve", "--workspace", str(ws_path))
    page.goto(url)
    frame = _frame()
    chosen = frame[frame.score >= 0.7]
    counts = sorted(chosen.label.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    breakdown = ", ".join(f"{label} {n}" for label, n in counts)
    summary = page.locator(".selection-summary")
    expect(summary).to_have_text(
        f"runs: {len(chosen)} of {N} rows selected · label: {breakdown}", timeout=UI_WAIT_MS
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "selection-1-restored.png"), full_page=True)

    # "Filter to selection" on the table card: its count is the selected rows'
    table = page.locator(".workspace-card.card-kind-table")
    expect(table.locator(".row-count")).to_have_text(f"{N} of {N} rows")
    table.locator(".card-filter-selection button").click()
    expect(table.locator(".row-count")).to_have_text(f"{len(chosen)} of {N} rows")
    expect(table.locator(".query-filter input")).to_have_value("score >= 0.7")

    # Save writes the selection, by card position
    page.locator(".save-workspace button").click()
    expect(page.locator(".save-status")).to_contain_text("Saved")
    saved = json.loads(ws_path.read_text())
    assert saved["selections"]["runs"]["brushes"] == [
        ["0", {"kind": "range", "column": "score", "low": 0.7}]
    ]

    # Clear: the bar goes, the selection is no longer saved
    page.locator(".selection-clear button").click()
    expect(summary).to_have_count(0)
    page.locator(".save-workspace button").click()
    eventually(
        page,
        lambda: "selections" not in json.loads(ws_path.read_text()),
        "the workspace saved without a selection",
    )
    assert page.console_errors == []
