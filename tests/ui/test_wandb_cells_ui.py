"""A W&B table with bad mask cells, served: it loads, and its cards say which rows lost a layer.

`panels serve segments.table.json` on an export whose rows 1 and 4 hold RGBA masks used
to refuse the table (and with it the whole server); now every card over the table
shows the note naming the rows, in a real Chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import UI_WAIT_MS
from tests.unit.test_wandb_cells import RGBA_NOTE, rgba_export

pytestmark = pytest.mark.ui


def test_the_cards_of_a_table_with_bad_mask_cells_show_the_note(
    page, run_cli, tmp_path: Path
) -> None:
    path = rgba_export(tmp_path / "export")
    page.goto(run_cli("serve", str(path)))

    cards = page.locator(".workspace-card")
    expect(cards.first.locator(".row-count")).to_have_text("6 of 6 rows", timeout=UI_WAIT_MS)
    assert cards.count() >= 1
    for i in range(cards.count()):
        notes = cards.nth(i).locator(".card-notes")
        expect(notes).to_be_visible()
        expect(notes).to_have_text(f"⚠ {RGBA_NOTE}")
    assert page.console_errors == []
