"""Linked selection across real built-in cards in one workspace, driven from Python: the
projection's points key (one per projection, the same in every session), the projection
following a selection in place (its figure kept), a region brush whose points are not
registered yet (the cards say so, then show it once they are), and a bad brush's note."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from panels_core.data.table import Table
from panels_core.query.model import Query
from panels_core.query.selection import RangeBrush, RegionBrush, RowsBrush, Selection
from panels_core.view import View
from panels_core.workspace import CardSpec
from panels_core.workspace.app import Workspace

N = 400


def _frame(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            "score": rng.random(n),
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "label": pd.Categorical(np.array(["cat", "dog"])[np.arange(n) % 2]),
        }
    )


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Table]:
    _frame().to_parquet(tmp_path / "runs.parquet")
    _frame().to_parquet(tmp_path / "twin.parquet")  # the same rows, another table
    return {
        "runs": Table.from_parquet(tmp_path / "runs.parquet"),
        "twin": Table.from_parquet(tmp_path / "twin.parquet"),
    }


PROJECTION = {"columns": ["x", "y"], "method": "pca"}
HISTOGRAM = {"column": "score", "bins": 4, "range": [0, 1]}


def _workspace(tables: dict[str, Table], **options: Any) -> Workspace:
    cards = [
        CardSpec(kind="projection", input=Query(table="runs"), config=PROJECTION),
        CardSpec(kind="histogram", input=Query(table="runs"), config=HISTOGRAM),
    ]
    return Workspace(tables, cards, **options)


def _selected_bins(card: Any) -> list[int] | None:
    """The histogram card's selected series as drawn (None while it is hidden)."""
    from bokeh.models import GlyphRenderer

    (pane,) = [o for o in card.body[0] if hasattr(o, "object") and hasattr(o.object, "select")]
    found = pane.object.select_one({"type": GlyphRenderer, "name": "selected"})
    return list(found.data_source.data["count"]) if found.visible else None


def _plot(card: Any) -> Any:
    """The ProjectionPlot whose layout the card shows (its ``follow_selection`` is the plot's)."""
    (layout,) = card.body.objects
    return layout.follow_selection.__self__


def test_the_points_key_is_one_per_projection_and_the_same_in_every_session(tables) -> None:
    first, second = _workspace(tables), _workspace(tables)
    key = _plot(first.cards[0]).points_key
    assert key.startswith("projection:")
    assert _plot(second.cards[0]).points_key == key  # another session, the same projection
    engine = first.engine

    def key_of(table: str, config: dict, filter: str | None = None) -> str:
        from panels_builtin.projection import Projection2D

        view = View(engine, Query(table=table, filter=filter))
        cfg = Projection2D.validate_config(config, view.type)
        return Projection2D(cfg).render(view).points_key

    assert key_of("runs", PROJECTION) == key
    others = {
        key_of("twin", PROJECTION),  # the same values in another table
        key_of("runs", PROJECTION, "score >= 0"),  # the same rows through a filter
        key_of("runs", {**PROJECTION, "pca_whiten": True}),
        key_of("runs", {**PROJECTION, "columns": ["y", "x"]}),
    }
    assert len(others) == 4 and key not in others
    # a selection does not change the key: a region brush keeps naming the same points
    chosen = Selection().with_brush("h", RangeBrush(column="score", low=0.5))
    first.linking.set("runs", chosen)
    assert _plot(first.cards[0]).points_key == key


def test_the_projection_follows_a_selection_without_drawing_again(tables) -> None:
    ws = _workspace(tables)
    projection, histogram = ws.cards
    plot = _plot(projection)
    figure, source = plot.figure, plot.source
    assert set(source.data["alpha"]) == {0.8}
    histogram.view.select(RangeBrush(column="score", low=0.5))
    assert _plot(projection) is plot and plot.figure is figure and plot.source is source
    frame = _frame()
    alpha = np.asarray(source.data["alpha"])
    assert plot.table_rows[alpha > 0.85].tolist() == frame.index[frame.score >= 0.5].tolist()
    # the histogram follows in place too, with the selected series
    assert (
        _selected_bins(histogram)
        == np.histogram(frame.score[frame.score >= 0.5], bins=4, range=(0, 1))[0].tolist()
    )
    ws.linking.clear("runs")
    assert set(source.data["alpha"]) == {0.8} and _selected_bins(histogram) is None


def test_a_box_drawn_on_the_projection_stays_until_its_brush_is_cleared(tables) -> None:
    from bokeh import events

    ws = _workspace(tables)
    projection, histogram = ws.cards
    plot = _plot(projection)
    geometry = {"type": "rect", "x0": -1.0, "x1": 1.0, "y0": -1.0, "y1": 1.0}
    inside = np.flatnonzero(
        (np.abs(plot.result.points[:, 0]) <= 1) & (np.abs(plot.result.points[:, 1]) <= 1)
    )
    plot.source.selected.indices = inside.tolist()  # what Bokeh's box select does
    plot.figure._trigger_event(events.SelectionGeometry(plot.figure, geometry, final=True))
    assert ws.linking.selection("runs").brush_of(projection.card_id).points == plot.points_key
    histogram.view.select(RangeBrush(column="score", low=0.5))  # AND: the box stays drawn
    assert plot.source.selected.indices == inside.tolist()
    ws.linking.clear("runs")  # the box is no longer the selection: Bokeh's selection goes
    assert plot.source.selected.indices == []


def test_the_raster_follows_a_selection_in_its_selected_layer(tables, monkeypatch) -> None:
    from panels_builtin.projection import plot as plot_module

    monkeypatch.setattr(plot_module, "MAX_SCATTER_POINTS", 100)
    ws = _workspace(tables)
    projection, histogram = ws.cards
    plot = _plot(projection)
    assert plot.raster is not None and not np.any(plot.raster_source.data["selected"][0])
    assert plot.figure.select({"name": "selected"})  # the layer is there, transparent
    rows = (0, 1, 2, 3, 4)
    histogram.view.select(RowsBrush(rows=rows))
    assert _plot(projection) is plot
    assert plot.raster.selected.sum() == len(rows)
    shown = plot.raster_source.data["selected"][0]
    np.testing.assert_array_equal(shown != 0, plot.raster.selected > 0)


def test_a_region_over_points_not_registered_yet_says_so_then_shows(tables) -> None:
    frame = _frame()
    rows, xy = np.arange(N), frame[["x", "y"]].to_numpy()
    box = ((0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (0.0, 5.0))
    brush = RegionBrush(points="projection:restarted", polygon=box)
    saved = {"runs": Selection(brushes=(("1", brush),))}
    ws = _workspace(tables, selections=saved)
    histogram = ws.cards[1]
    note = histogram.selection_note
    assert note.visible
    assert "the selection waits for the projection that draws its points" in note.object
    assert _selected_bins(histogram) is None  # every row, and the card says why
    (line,) = ws.linking.bar.objects
    assert "waits for the projection" in line.objects[0].object
    assert ws.linking.waiting == {"projection:restarted"}

    ws.engine.register_points("projection:restarted", rows, xy)  # the projection is drawn
    ws.linking.points_arrived()
    inside = (frame.x >= 0) & (frame.y >= 0)
    assert not note.visible and ws.linking.waiting == set()
    expected = np.histogram(frame.score[inside], bins=4, range=(0, 1))[0].tolist()
    assert _selected_bins(histogram) == expected
    (line,) = ws.linking.bar.objects
    assert line.objects[0].object.startswith(f"runs: {int(inside.sum())} of {N} rows selected")


def test_a_brush_the_cards_cannot_use_is_named_in_each_card_escaped(tables) -> None:
    ws = _workspace(tables)
    projection, histogram = ws.cards
    histogram.view.select(RangeBrush(column="<b>scor</b>", low=0.5))
    for card in (projection, histogram):
        assert card.selection_note.visible
        text = card.selection_note.object
        assert "&lt;b&gt;scor&lt;/b&gt;" in text and "<b>" not in text
        assert "the selection is left out" in html.unescape(text)
    assert _selected_bins(histogram) is None


def test_the_card_that_publishes_keeps_what_it_shows_and_the_others_follow_in_place(
    tables,
) -> None:
    from bokeh.models import ColumnDataSource

    cards = [
        CardSpec(kind="histogram", input=Query(table="runs"), config=HISTOGRAM),
        CardSpec(kind="table", input=Query(table="runs"), config={"columns": ["score"]}),
    ]
    ws = Workspace(tables, cards)
    histogram, table = ws.cards
    chart, holder = histogram.body[0], table.body[0]
    figure = chart[1].object
    paged = holder.pager
    paged.next()
    rows = paged.page_rows.tolist()
    paged.tabulator.selection = [2]  # a tick on page 2 publishes the table's RowsBrush
    paged.tabulator.selection = [2, 5]
    assert histogram.body[0] is chart and chart[1].object is figure
    assert table.body[0] is holder and holder.pager is paged
    assert paged.offset == 50 and paged.page_rows.tolist() == rows and paged.highlighted == [2, 5]
    scores = _frame().score[[rows[2], rows[5]]]
    assert _selected_bins(histogram) == np.histogram(scores, bins=4, range=(0, 1))[0].tolist()
    # a range dragged on the histogram: AND with the ticks, the drawn bars stay
    bins = figure.select_one({"name": "bins", "type": ColumnDataSource})
    bins.selected.indices = [2, 3]
    assert bins.selected.indices == [2, 3] and histogram.body[0] is chart
    chosen = scores[scores >= 0.5]
    assert _selected_bins(histogram) == np.histogram(chosen, bins=4, range=(0, 1))[0].tolist()
    assert table.body[0] is holder and paged.selected_rows == len(chosen)
    ws.linking.clear("runs")  # Clear: the drawn range and the ticks go, in place
    assert bins.selected.indices == [] and _selected_bins(histogram) is None
    assert paged.checked == set() and paged.tabulator.selection == [] and not holder[0].visible
