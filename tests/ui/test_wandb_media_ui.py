"""A served W&B table with audio, video, HTML, 3D, plot and molecule cells, in the real
browser: the audio plays from its data URI, the HTML page stays in a sandboxed frame and
its script never runs.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.ui.conftest import eventually
from tests.ui.test_workspace_ui import WAIT, shot
from tests.unit.test_wandb_media import MP4, PWN, write_media_export

pytestmark = pytest.mark.ui

_DURATION = """
(audio) => new Promise((done) => {
  audio.onloadedmetadata = () => done(audio.duration);
  audio.onerror = () => done(-1);
  audio.preload = "metadata";
  audio.load();
})
"""


def _pwned_in_frame(page) -> list[str] | None:
    """Whether the HTML cell's script ran, read in its loaded frame (``["no"]`` if it did
    not); None while no frame is loaded. The cell's frame is drawn again whenever the table
    draws (a resize, a screenshot), so a frame found a moment ago may be gone: look again."""
    for frame in page.frames:
        if frame.url != "about:srcdoc" or frame.is_detached():
            continue
        try:
            frame.wait_for_load_state("load", timeout=WAIT)  # its script, had it been allowed, ran
            return ["yes" if frame.evaluate("() => window.__pwned ?? null") else "no"]
        except PlaywrightError:  # the frame went while we read it
            return None
    return None


def test_served_wandb_media_cells(page, run_cli, tmp_path) -> None:
    write_media_export(tmp_path)
    page.goto(run_cli("serve", "media.table.json"))
    table = page.locator(".workspace-card.card-kind-table").first
    expect(table.locator(".row-count")).to_have_text("2 of 2 rows", timeout=WAIT)

    # audio: a player of the WAV itself (the browser decodes it: 0.5 s), and its waveform
    audio = table.locator("audio")
    expect(audio).to_have_count(1, timeout=WAIT)
    assert audio.get_attribute("src").startswith("data:audio/wav;base64,UklGR")  # "RIFF"
    assert audio.get_attribute("controls") is not None
    assert audio.evaluate(_DURATION) == 0.5
    expect(table.locator("img[alt='waveform']")).to_be_visible()
    expect(table.get_by_text("tone.wav · tone <b> · 8000 Hz 0.50 s")).to_be_visible()

    # video: a player whose source is the file's bytes
    video = table.locator("video")
    expect(video).to_have_count(1)
    assert video.get_attribute("src") == "data:video/mp4;base64,AAAAGGZ0eXBtcDQyAAAAAG1wNDJpc29t"
    assert MP4.startswith(b"\x00\x00\x00\x18ftypmp42")

    # html: one frame, sandboxed with no permissions, holding the page as text of srcdoc
    frame = table.locator("iframe")
    expect(frame).to_have_count(1)
    assert frame.get_attribute("sandbox") == ""
    assert PWN in frame.get_attribute("srcdoc")
    expect(table.frame_locator("iframe").locator("p")).to_have_text("hello")
    assert table.locator("script").count() == 0  # never inline markup of the page

    # 3D, plots, molecules: a thumbnail and text
    expect(table.locator("img[alt='3D points']")).to_be_visible()
    expect(table.get_by_text("cloud.pts.json · 2 points")).to_be_visible()
    expect(table.get_by_text("fig.bokeh.json · bokeh plot", exact=False)).to_be_visible()
    expect(table.get_by_text("ala.pdb · 3 atoms")).to_be_visible()
    shot(page, "wandb-media")

    assert page.evaluate("() => window.__pwned ?? null") is None  # the page's script sets both
    assert eventually(page, lambda: _pwned_in_frame(page), "a loaded srcdoc frame") == ["no"]
    assert not [e for e in page.console_errors if "pwned" in e]
