"""Bad workspace files and damaged data in a real browser: the bad card says why, the rest renders.

A workspace file with a card whose kind holds a space used to leave the whole
page blank (the kind went into a CSS class name); a damaged Parquet page used
to give a raw engine error. Here `panels serve --workspace ws.json` must show
the good histogram's plot next to a card naming each problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.unit.test_sources import write_damaged_parquet

pytestmark = pytest.mark.ui

WAIT = 90_000  # ms; the machine may be busy


def test_a_bad_card_kind_and_a_damaged_page_leave_the_other_cards_working(
    page, run_cli, tmp_path: Path
) -> None:
    pd.DataFrame({"score": np.linspace(0, 1, 200)}).to_parquet(tmp_path / "runs.parquet")
    write_damaged_parquet(tmp_path / "damaged.parquet", "snappy")
    spec = {
        "schema_version": 1,
        "tables": {"runs": "runs.parquet", "damaged": "damaged.parquet"},
        "cards": [
            {"kind": "bad kind", "input": {"table": "runs"}},
            {"kind": "histogram", "input": {"table": "runs"}, "config": {"column": "score"}},
            {"kind": "histogram", "input": {"table": "damaged"}, "config": {"column": "x"}},
        ],
    }
    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(spec))
    page.goto(run_cli("serve", "--workspace", str(ws)))

    good = page.locator(".workspace-card.card-kind-histogram").first
    expect(good.locator(".row-count")).to_have_text("200 of 200 rows", timeout=WAIT)
    expect(good.locator(".card-body canvas").first).to_be_attached(timeout=WAIT)

    bad = page.locator(".workspace-card", has_text="cannot load").first
    expect(bad).to_contain_text("the card's kind 'bad kind' cannot name a panel", timeout=WAIT)
    expect(bad).to_contain_text("fix `kind` in the workspace file")

    damaged = page.locator(".workspace-card.card-kind-histogram").nth(1)
    expect(damaged).to_contain_text("corrupt data in column `x` (row group 1)", timeout=WAIT)
    expect(damaged).to_contain_text("damaged.parquet")
    assert page.locator(".workspace-card").count() == 3
