"""A misbehaving plugin only breaks its own card: hung renders get a deadline and cannot
starve built-in cards or other sessions; sys.exit and a raising ``_repr_html_`` give an
error card naming the plugin."""

from __future__ import annotations

import html
import queue
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource

from panels_core.cli import main
from panels_core.panel import Panel, PanelConfig
from panels_core.panel_registry import Registry
from panels_core.query.model import Query
from panels_core.view import View
from panels_core.workspace import CardSpec, background
from panels_core.workspace.app import CardView, Workspace

BOUND = 600.0  # seconds: a generous bound for a machine many times slower, never a measure
RELEASE = threading.Event()
SCORES = np.round(np.linspace(0.0, 1.0, 41) ** 2, 4)


class Hangs(Panel[PanelConfig]):
    """A plugin whose render blocks until the test releases it."""

    kind = "test_hangs"

    def render(self, view: Any) -> Any:
        RELEASE.wait()
        return pn.pane.Markdown("released")


class Quick(Panel[PanelConfig]):
    kind = "test_quick"

    def render(self, view: Any) -> Any:
        return pn.pane.Markdown("quick answer")


class Exits(Panel[PanelConfig]):
    kind = "test_exits"

    def render(self, view: Any) -> Any:
        import sys

        sys.exit(3)


class BadHtml:
    def _repr_html_(self) -> str:
        raise ValueError("no html today")


class ReturnsBadHtml(Panel[PanelConfig]):
    kind = "test_bad_html"

    def render(self, view: Any) -> Any:
        return BadHtml()


class NestsBadHtml(Panel[PanelConfig]):
    kind = "test_nested_bad_html"

    def render(self, view: Any) -> Any:
        return pn.Column(pn.pane.Markdown("before"), BadHtml())


class NotConvertible:
    def __panel__(self) -> Any:
        raise RuntimeError("cannot become a pane")


class ReturnsNotConvertible(Panel[PanelConfig]):
    kind = "test_not_convertible"

    def render(self, view: Any) -> Any:
        return NotConvertible()


class Interrupted(Panel[PanelConfig]):
    kind = "test_interrupted"

    def render(self, view: Any) -> Any:
        raise KeyboardInterrupt


class ExitsInMatch(Quick):
    kind = "test_exits_in_match"

    @classmethod
    def match(cls, view_type: Any) -> float | None:
        raise SystemExit("leaving")


class BadModel(pn.pane.Markdown):
    """A pane Panel accepts but cannot build into the page."""

    priority = False  # never picked by pn.panel() for other tests' strings

    def _get_model(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no model for this pane")


class ReturnsBadModel(Panel[PanelConfig]):
    kind = "test_bad_model"

    def render(self, view: Any) -> Any:
        return BadModel("never drawn")


PLUGINS = (
    Hangs,
    ReturnsBadModel,
    Quick,
    Exits,
    ReturnsBadHtml,
    NestsBadHtml,
    ReturnsNotConvertible,
    Interrupted,
    ExitsInMatch,
)


class Session:
    """A served session's document, as far as cards need one: results come back as
    next-tick callbacks, which the test runs on its own thread (the event loop)."""

    session_context = types.SimpleNamespace(id="test", request=types.SimpleNamespace(arguments={}))

    def __init__(self) -> None:
        self.ticks: queue.Queue[Callable[[], None]] = queue.Queue()

    def add_next_tick_callback(self, callback: Callable[[], None]) -> None:
        self.ticks.put(callback)

    def run_until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.ticks.get(timeout=BOUND)()


@pytest.fixture
def reg() -> Registry:
    registry = Registry(autodiscover=True)
    for cls in PLUGINS:
        registry.register(cls, distribution="misbehaving-panels", version="0.1")
    return registry


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Session], None]]:
    """``serving(session)`` makes the cards built next belong to that session; at the
    end every hung render is released and every card thread has ended."""
    monkeypatch.delenv(background.RENDER_TIMEOUT_ENV, raising=False)
    RELEASE.clear()
    current: list[Session] = []
    monkeypatch.setattr(background, "current_document", lambda: current[-1])
    yield current.append
    RELEASE.set()
    assert background.PLUGINS.join(BOUND) and background.BUILTINS.join(BOUND)
    lanes = {f"panels-{lane.name}" for lane in (background.BUILTINS, background.PLUGINS)}
    for thread in threading.enumerate():
        if thread.name in lanes:
            thread.join(BOUND)
            assert not thread.is_alive(), thread.name


@pytest.fixture
def view() -> View:
    return View.of(pa.table({"score": SCORES}))


def workspace(reg: Registry, kinds: list[str]) -> Workspace:
    cards = [CardSpec(kind=k, input=Query(table="t")) for k in kinds]
    return Workspace({"t": pa.table({"score": SCORES})}, cards, panels=reg)


def shown(card: CardView) -> Any:
    (obj,) = card.body.objects
    return obj


def settled(*cards: CardView) -> Callable[[], bool]:
    return lambda: not any(card.body.loading for card in cards)


# --------------------------------------------------------------------------- hung renders


def test_hung_plugin_cards_do_not_starve_built_ins_or_other_sessions(
    reg: Registry, serving: Callable[[Session], None]
) -> None:
    first, second = Session(), Session()
    serving(first)
    ws = workspace(reg, ["test_hangs"] * 24 + ["histogram"])
    histogram = ws.cards[-1]
    first.run_until(settled(histogram))
    (figure,) = shown(histogram).select(pn.pane.Bokeh)
    (source,) = figure.object.select({"type": ColumnDataSource, "name": "bins"})
    edges = np.append(source.data["left"], source.data["right"][-1])
    np.testing.assert_array_equal(source.data["count"], np.histogram(SCORES, bins=edges)[0])
    # the hung renders hold only their session's plugin slots; the rest wait their turn
    assert background.PLUGINS.running == background.PLUGINS.per_session
    assert all(card.body.loading for card in ws.cards[:-1])

    serving(second)
    other = workspace(reg, ["test_quick"])
    second.run_until(settled(*other.cards))
    assert shown(other.cards[0]).object == "quick answer"


def test_a_render_past_its_deadline_turns_into_a_message(
    reg: Registry, serving: Callable[[Session], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(background.RENDER_TIMEOUT_ENV, "1")
    session = Session()
    serving(session)
    ws = workspace(reg, ["test_hangs"] * 6 + ["histogram"])
    session.run_until(settled(*ws.cards))
    for card in ws.cards[:-1]:
        text = error_text(shown(card))
        assert "This panel did not finish within 1 s" in text, text
        assert "--render-timeout SECONDS" in text
    assert isinstance(shown(ws.cards[-1]), pn.Column)  # the histogram drew
    # abandoned renders no longer hold a slot: a new card gets one at once
    assert background.PLUGINS.running == 0
    card = ws.add_card("t", "test_quick")
    session.run_until(settled(card))
    assert shown(card).object == "quick answer"


@pytest.mark.parametrize("text", ["0", "-5", "soon", "inf", "nan"])
def test_a_bad_timeout_setting_falls_back_to_the_default(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(background.RENDER_TIMEOUT_ENV, text)
    assert background.render_timeout() == background.DEFAULT_RENDER_TIMEOUT == 180.0
    with pytest.raises(ValueError, match=f"must be a number of seconds > 0, got '{text}'"):
        background.parse_timeout(text)
    monkeypatch.setenv(background.RENDER_TIMEOUT_ENV, " 2.5 ")
    assert background.render_timeout() == 2.5


# --------------------------------------------------------------------------- plugin faults


def error_text(obj: Any) -> str:
    assert isinstance(obj, pn.pane.Alert) and obj.alert_type == "danger", obj
    return html.unescape(obj.object)  # the message is escaped Markdown: read it as shown


def test_sys_exit_in_render_gives_an_error_card_naming_the_plugin(
    reg: Registry, view: View
) -> None:
    with pytest.warns(RuntimeWarning, match="render raised SystemExit"):
        card = reg.render_object("test_exits", view)
    text = error_text(card)
    assert "`test_exits`" in text and "misbehaving-panels 0.1" in text
    assert "render raised SystemExit: sys.exit(3) was called" in text
    assert reg.status("test_exits").error == "render raised SystemExit: sys.exit(3) was called"


@pytest.mark.parametrize("kind", ["test_bad_html", "test_nested_bad_html"])
def test_a_raising_repr_html_gives_an_error_card(reg: Registry, view: View, kind: str) -> None:
    with pytest.warns(RuntimeWarning, match="render raised ValueError"):
        card = reg.render_object(kind, view)
    text = error_text(card)
    assert f"`{kind}`" in text and "render raised ValueError: no html today" in text


def test_an_object_that_cannot_become_a_pane_gives_an_error_card(reg: Registry, view: View) -> None:
    with pytest.warns(RuntimeWarning, match="render raised RuntimeError"):
        card = reg.render_object("test_not_convertible", view)
    assert "render raised RuntimeError: cannot become a pane" in error_text(card)


def test_html_that_works_is_kept(reg: Registry, view: View) -> None:
    class GoodHtml:
        def _repr_html_(self) -> str:
            return "<b>fine</b>"

    class ReturnsGoodHtml(Panel[PanelConfig]):
        kind = "test_good_html"

        def render(self, view: Any) -> Any:
            return pn.Column(GoodHtml(), pn.pane.DataFrame(pd.DataFrame({"a": [1]})))

    reg.register(ReturnsGoodHtml)
    column = reg.render_object("test_good_html", view)
    html, frame = column.objects
    assert html.object == "<b>fine</b>"
    assert isinstance(frame.object, pd.DataFrame)  # other panes keep their objects


def test_keyboard_interrupt_is_not_swallowed(reg: Registry, view: View) -> None:
    with pytest.raises(KeyboardInterrupt):
        reg.render_object("test_interrupted", view)


def test_sys_exit_in_match_leaves_only_that_plugin_out(reg: Registry, view: View) -> None:
    with pytest.warns(RuntimeWarning, match="match raised SystemExit"):
        kinds = [m.kind for m in reg.compatible(view.type)]
    assert "test_exits_in_match" not in kinds
    assert {"histogram", "table", "test_quick"} <= set(kinds)


def test_served_cards_show_the_plugin_error_and_the_page_draws(
    reg: Registry, serving: Callable[[Session], None]
) -> None:
    session = Session()
    serving(session)
    ws = workspace(reg, ["test_exits", "test_bad_html", "test_nested_bad_html", "histogram"])
    session.run_until(settled(*ws.cards))
    exits, bad, nested, histogram = (shown(card) for card in ws.cards)
    assert "render raised SystemExit: sys.exit(3) was called" in error_text(exits)
    assert "render raised ValueError: no html today" in error_text(bad)
    assert "render raised ValueError: no html today" in error_text(nested)
    assert isinstance(histogram, pn.Column)
    ws.main().get_root(Document())  # every card's models build


def test_serve_render_timeout_option_sets_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import panels_core.workspace.server as server

    monkeypatch.setenv(background.RENDER_TIMEOUT_ENV, "7")
    served: list[float] = []
    monkeypatch.setattr(
        server, "serve_paths", lambda *a, **k: served.append(background.render_timeout())
    )
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"score": SCORES}), table)
    assert main(["serve", str(table), "--render-timeout", "45"]) == 0
    assert served == [45.0]
    assert main(["serve", str(table), "--render-timeout", "0"]) == 2
    assert capsys.readouterr().err == (
        "panels: error: --render-timeout: a render timeout must be a number of seconds > 0, "
        "got '0'\n"
    )
    assert served == [45.0]  # not served


def test_output_the_page_cannot_build_gives_an_error_card(
    reg: Registry, serving: Callable[[Session], None]
) -> None:
    session = Session()
    serving(session)
    ws = workspace(reg, ["test_bad_model", "histogram"])
    ws.main().get_root(Document())  # the page is up: new card bodies build at once
    session.run_until(settled(*ws.cards))
    bad, histogram = (shown(card) for card in ws.cards)
    assert "cannot be shown: RuntimeError('no model for this pane')" in error_text(bad)
    assert isinstance(histogram, pn.Column)


def test_abandoned_renders_are_bounded_then_the_lane_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(background.RENDER_TIMEOUT_ENV, "1")
    lane = background.Lane("test", limit=4, per_session=4, max_abandoned=2)
    release = threading.Event()
    delivered: queue.Queue[Any] = queue.Queue()
    try:
        for _ in range(2):
            lane.submit("s", release.wait, delivered.put)
        timeouts = [delivered.get(timeout=BOUND) for _ in range(2)]
        assert all(isinstance(t.error, background.RenderTimeout) for t in timeouts)
        assert lane.abandoned == 2 and lane.running == 0
        lane.submit("s", lambda: "never run", delivered.put)  # refused at once
        refused = delivered.get(timeout=BOUND)
        assert isinstance(refused.error, background.LaneJammed)
        assert str(refused.error).startswith("2 earlier test renders are still running")
    finally:
        release.set()
    deadline = BOUND
    while lane.abandoned and deadline > 0:  # the stuck threads end once released
        threading.Event().wait(0.05)
        deadline -= 0.05
    assert lane.abandoned == 0
    lane.submit("s", lambda: "drawn", delivered.put)
    assert delivered.get(timeout=BOUND) == "drawn"
