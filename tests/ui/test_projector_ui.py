"""A PyTorch-style TensorBoard projector folder served in a real browser: each embedding of
its config is a table, and the sprite sheet's tiles show as thumbnails in the table card."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.test_workspace_ui import card
from tests.unit.test_tensorboard_projector import add_embedding, tile_colour

pytestmark = pytest.mark.ui

WAIT = 300_000  # ms; a bound for a busy machine

PIXEL_JS = """img => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const [r, g, b] = context.getImageData(1, 1, 1, 1).data;
    return [r, g, b];
}"""


def test_served_projector_folder_shows_every_embedding_and_the_sprite_tiles(
    page, run_cli, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    add_embedding(
        runs,
        "default",
        0,
        [[float(i), float(i % 3), 0.5] for i in range(7)],
        [f"d{i}" for i in range(7)],
    )
    add_embedding(runs, "words", 3, [[1.0, 2.0], [3.0, 4.0]], None)
    page.goto(run_cli("serve", str(runs)))

    sidebar = page.locator(".workspace-sidebar")
    expect(sidebar).to_contain_text("default:00000 · 7 rows", timeout=WAIT)
    expect(sidebar).to_contain_text("words:00003 · 2 rows")
    digits = card(page, "default:00000", "table")
    expect(digits.locator(".row-count")).to_have_text("7 of 7 rows", timeout=WAIT)
    thumbnails = digits.locator("img[src^='data:image/png']")
    expect(thumbnails).to_have_count(7, timeout=WAIT)
    pixels = [thumbnails.nth(i).evaluate(PIXEL_JS) for i in (0, 6)]
    assert pixels == [list(tile_colour(0)), list(tile_colour(6))]
    words = card(page, "words:00003", "table")
    expect(words.locator(".row-count")).to_have_text("2 of 2 rows", timeout=WAIT)
