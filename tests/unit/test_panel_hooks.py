"""Panels say what they need: the app asks ``first_screen`` and ``warm_up``, naming no panel."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd

from panels_builtin.table import TablePanel
from panels_core.data.table import Table
from panels_core.panel import Column, Panel, PanelConfig, WarmUp
from panels_core.panel_registry import Registry
from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.types import NumberType
from panels_core.workspace import CardSpec, server
from panels_core.workspace.app import default_cards

RAN: list[str] = []


class ScoreConfig(PanelConfig):
    column: Annotated[str, Column(accepts=NumberType())]


class Score(Panel[ScoreConfig]):
    kind = "score_plot"

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        return 2

    @classmethod
    def warm_up(cls) -> WarmUp | None:
        return WarmUp("Scores", lambda: RAN.append("scores"))

    def render(self, view: Any) -> Any:
        return None


class Quiet(Panel[ScoreConfig]):
    kind = "quiet_plot"

    def render(self, view: Any) -> Any:
        return None


def _registry(*panels: type[Panel[Any]]) -> Registry:
    reg = Registry()
    for cls in panels:
        reg.register(cls)
    return reg


def _engine() -> Engine:
    return Engine({"t": Table(dataframe=pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))})


def test_a_plugin_takes_part_in_the_first_screen() -> None:
    cards = default_cards(_engine(), _registry(Quiet, Score, TablePanel))
    assert [c.kind for c in cards] == ["table", "score_plot"]  # the lead, then the extra


def test_without_a_lead_the_best_match_leads() -> None:
    cards = default_cards(_engine(), _registry(Quiet))
    assert [c.kind for c in cards] == ["quiet_plot"]
    assert _registry(Quiet).lead_kind() == "quiet_plot"
    assert _registry(Quiet, TablePanel).lead_kind() == "table"
    assert Registry().lead_kind() is None


def test_the_warm_up_runs_what_the_cards_panels_ask_for(monkeypatch) -> None:
    monkeypatch.delenv(server.WARM_UP_ENV, raising=False)
    panels = _registry(Quiet, Score)
    quiet = [CardSpec(kind="quiet_plot", input=Query(table="t"))]
    assert server.start_warm_up(quiet, panels) is None  # Quiet asks for nothing
    scores = [*quiet, CardSpec(kind="score_plot", input=Query(table="t"))]
    thread = server.start_warm_up(scores, panels)
    assert thread is not None and thread.name == "panels-scores-warm-up"
    thread.join(600)
    assert RAN == ["scores"]
    unknown = [CardSpec(kind="not_installed", input=Query(table="t"))]
    assert server.start_warm_up(unknown, panels) is None
