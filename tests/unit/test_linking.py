"""Linked selection in a workspace, driven from Python: brushes through a card's view,
the other cards following, the summary line, clear, AND/OR, filter to selection, saving."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pytest

from panels_core.data.table import Table
from panels_core.panel import Panel, PanelConfig
from panels_core.panel_registry import Registry
from panels_core.query.model import Query
from panels_core.query.selection import RangeBrush, RowsBrush, Selection, ValuesBrush
from panels_core.workspace import CardSpec
from panels_core.workspace.app import Workspace
from panels_core.workspace.linking import selection_summary

N = 600


class ShowsSelected(Panel[PanelConfig]):
    """Draws what a linked card sees: its selected rows' count and score bins."""

    kind = "test_shows_selected"
    can_select = True

    def render(self, view: Any) -> Any:
        bins = view.selected().histogram("score", bins=4, range=(0.0, 1.0)).counts.tolist()
        return pn.pane.HTML(f"selected={view.selected().count()} bins={bins}")


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "score": rng.random(N),
            "label": pd.Categorical(np.array(["cat", "dog", "bird"])[np.arange(N) % 3]),
            "x": rng.random(N),
        }
    )


@pytest.fixture
def reg() -> Registry:
    panels = Registry(autodiscover=True)
    panels.register(ShowsSelected)
    return panels


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Table]:
    _frame().to_parquet(tmp_path / "runs.parquet")
    _frame().head(50).to_parquet(tmp_path / "other.parquet")
    return {
        "runs": Table.from_parquet(tmp_path / "runs.parquet"),
        "other": Table.from_parquet(tmp_path / "other.parquet"),
    }


def _workspace(tables: dict[str, Table], reg: Registry, **options: Any) -> Workspace:
    cards = [
        CardSpec(kind="test_shows_selected", input=Query(table="runs")),
        CardSpec(kind="test_shows_selected", input=Query(table="runs", filter="x < 0.5")),
        CardSpec(kind="test_shows_selected", input=Query(table="other")),
    ]
    return Workspace(tables, cards, panels=reg, **options)


def _shown(card: Any) -> str:
    return card.body[0].object


def _expected(frame: pd.DataFrame, mask: np.ndarray) -> str:
    rows = frame[mask]
    bins = np.histogram(rows.score, bins=4, range=(0.0, 1.0))[0].tolist()
    return f"selected={len(rows)} bins={bins}"


def test_a_brush_from_one_card_reaches_every_card_on_its_table(tables, reg):
    ws = _workspace(tables, reg)
    frame = _frame()
    first, second, other = ws.cards
    first.view.select(RangeBrush(column="score", low=0.25, high=0.75))
    selection = ws.linking.selection("runs")
    assert second.view.query.selection == selection
    assert selection.brushes == ((first.card_id, RangeBrush(column="score", low=0.25, high=0.75)),)
    in_range = frame.score.between(0.25, 0.75, inclusive="left").to_numpy()
    assert _shown(first) == _expected(frame, in_range)
    assert _shown(second) == _expected(frame, in_range & (frame.x < 0.5).to_numpy())
    # another table's card does not follow
    assert other.view.query.selection is None
    assert _shown(other) == _expected(frame.head(50), np.ones(50, dtype=bool))


def test_and_or_clear_and_closing_a_card(tables, reg):
    ws = _workspace(tables, reg)
    frame = _frame()
    first, second, _ = ws.cards
    first.view.select(RangeBrush(column="score", low=0.5))
    second.view.select(ValuesBrush(column="label", values=("cat",)))
    high, cat = (frame.score >= 0.5).to_numpy(), (frame.label == "cat").to_numpy()
    assert _shown(first) == _expected(frame, high & cat)
    ws.linking.set_mode("runs", "or")
    assert _shown(first) == _expected(frame, high | cat)
    ws.linking.clear("runs", second.card_id)  # "Clear mine" on the second card
    assert _shown(first) == _expected(frame, high)
    second.view.select(ValuesBrush(column="label", values=("dog",)))
    ws.close(second)  # its brush goes with it
    assert ws.linking.selection("runs").brushes == (
        (first.card_id, RangeBrush(column="score", low=0.5)),
    )
    ws.linking.clear("runs")
    assert ws.linking.selection("runs") is None
    assert _shown(first) == _expected(frame, np.ones(N, dtype=bool))


def test_the_same_brush_again_does_not_render_again(tables, reg, monkeypatch):
    ws = _workspace(tables, reg)
    first, second, _ = ws.cards
    first.view.select(RowsBrush(rows=(1, 2)))
    renders = []
    monkeypatch.setattr(type(second), "_render", lambda self, **_: renders.append(self))
    first.view.select(RowsBrush(rows=(1, 2)))
    assert renders == []


def test_summary_line_counts_and_breaks_down_by_category(tables, reg):
    ws = _workspace(tables, reg)
    frame = _frame()
    ws.cards[0].view.select(RangeBrush(column="score", low=0.9))
    high = frame[frame.score >= 0.9]
    counts = high.label.value_counts()
    order = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    expected = f"{len(high):,} of {N:,} rows selected · label: " + ", ".join(
        f"{k} {v}" for k, v in order
    )
    text = selection_summary(ws.engine, "runs", ws.linking.selection("runs"))
    assert text == expected
    (line,) = ws.linking.bar.objects
    assert line.objects[0].object == f"runs: {expected}"


def test_filter_to_selection_for_one_card_and_for_every_card(tables, reg):
    ws = _workspace(tables, reg)
    frame = _frame()
    first, second, _ = ws.cards
    first.view.select(RangeBrush(column="score", low=0.25, high=0.75))
    ws.linking.filter_to_selection("runs", second)
    assert second.spec.input.filter.to_text() == "x < 0.5 and (score >= 0.25 and score < 0.75)"
    mask = frame.score.between(0.25, 0.75, inclusive="left") & (frame.x < 0.5)
    assert second.view.count() == int(mask.sum())
    ws.linking.filter_to_selection("runs")  # every card; the selection is then cleared
    assert first.spec.input.filter.to_text() == "score >= 0.25 and score < 0.75"
    assert ws.linking.selection("runs") is None
    assert _shown(first) == _expected(frame, frame.score.between(0.25, 0.75, "left").to_numpy())


def test_selection_is_saved_and_restored(tables, reg, tmp_path):
    ws = _workspace(tables, reg)
    first, second, _ = ws.cards
    first.view.select(RangeBrush(column="score", low=0.5))
    second.view.select(RowsBrush(rows=(0, 3, 6)))
    ws.linking.set_mode("runs", "or")
    path = ws.save(tmp_path / "ws.json")
    saved = json.loads(path.read_text())
    assert saved["selections"] == {
        "runs": {
            "brushes": [
                ["0", {"kind": "range", "column": "score", "low": 0.5}],
                ["1", {"kind": "rows", "rows": [0, 3, 6]}],
            ],
            "mode": "or",
        }
    }
    again = Workspace.from_spec(path, panels=reg)
    selection = again.linking.selection("runs")
    assert selection == ws.linking.selection("runs").model_copy(
        update={
            "brushes": (
                (again.cards[0].card_id, RangeBrush(column="score", low=0.5)),
                (again.cards[1].card_id, RowsBrush(rows=(0, 3, 6))),
            )
        }
    )
    assert again.cards[1].view.selection == selection
    assert _shown(again.cards[0]) == _shown(ws.cards[0])
    # "Clear mine" on the restored card clears the brush it saved
    again.linking.clear("runs", again.cards[1].card_id)
    assert [s for s, _ in again.linking.selection("runs").brushes] == [again.cards[0].card_id]


def test_a_saved_selection_of_an_unlisted_table_is_refused():
    from panels_core.workspace import WorkspaceSpec

    with pytest.raises(ValueError, match="saves a selection of table `gone`, which it does not"):
        WorkspaceSpec.model_validate({"tables": {}, "selections": {"gone": {"brushes": []}}})


def test_a_bad_brush_shows_in_the_cards_and_the_rest_works(tables, reg):
    ws = _workspace(tables, reg)
    first, _, other = ws.cards
    first.view.select(RangeBrush(column="scor", low=0.5))
    text = html.unescape(first.body[0].object)
    assert "unknown column `scor`: did you mean `score`?" in text
    assert _shown(other).startswith("selected=50")


def test_a_card_that_cannot_load_keeps_the_saved_brushes_on_their_cards(tables, reg, tmp_path):
    from panels_core.workspace import WorkspaceSpec

    spec = WorkspaceSpec(
        tables={"runs": str(tmp_path / "runs.parquet")},
        cards=(
            CardSpec(kind="Not A Kind", input=Query(table="runs")),
            CardSpec(kind="test_shows_selected", input=Query(table="runs")),
        ),
        selections={"runs": Selection(brushes=(("1", RowsBrush(rows=(0, 1, 2))),))},
    )
    ws = Workspace.from_spec(spec, base_dir=tmp_path, panels=reg)
    good = ws.cards[1]
    assert ws.linking.selection("runs").brushes == ((good.card_id, RowsBrush(rows=(0, 1, 2))),)
    assert _shown(good).startswith("selected=3 ")
    assert ws.to_spec().selections == spec.selections
