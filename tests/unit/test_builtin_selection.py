"""Linked selection in the built-in panels: what each draws for a selection, checked against
numpy and pandas, and the brush each publishes for a selection event."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.models import BoxSelectTool, ColumnDataSource, GlyphRenderer

from panels_builtin.histogram import Histogram
from panels_core.query.selection import (
    RangeBrush,
    RegionBrush,
    RowsBrush,
    Selection,
    ValuesBrush,
)
from panels_core.view import View


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 2000
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.uniform(size=n),
            "k": rng.integers(0, 6, size=n),
            "label": rng.choice(["cat", "dog", "owl", "emu"], size=n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def figure_of(obj: Any) -> Any:
    (pane,) = [o for o in obj if isinstance(o, pn.pane.Bokeh)]
    return pane.object


def source_of(obj: Any, name: str) -> Any:
    (source,) = figure_of(obj).select({"type": ColumnDataSource, "name": name})
    return source


def selected_shown(obj: Any) -> bool:
    """Whether the chart shows its selected series (drawn hidden until a selection comes)."""
    (renderer,) = figure_of(obj).select({"type": GlyphRenderer, "name": "selected"})
    return bool(renderer.visible)


def y_range(low: float, high: float) -> Selection:
    return Selection().with_brush("other", RangeBrush(column="y", low=low, high=high))


# --------------------------------------------------------------------------- histogram


def test_histogram_draws_the_selected_counts_on_the_same_bins(frame: pd.DataFrame) -> None:
    view = View.of(frame).with_selection(y_range(0.2, 0.5))
    obj = Histogram(column="x", bins=12).render(view)
    full, chosen = source_of(obj, "bins").data, source_of(obj, "selected").data
    edges = np.append(full["left"], full["right"][-1])
    np.testing.assert_array_equal(chosen["left"], full["left"])
    picked = frame.x[(frame.y >= 0.2) & (frame.y < 0.5)]
    np.testing.assert_array_equal(chosen["count"], np.histogram(picked, bins=edges)[0])
    np.testing.assert_array_equal(full["count"], np.histogram(frame.x, bins=edges)[0])
    assert f"{len(picked):,} of them selected" in obj[0].object


def test_histogram_without_a_selection_draws_one_series(frame: pd.DataFrame) -> None:
    obj = Histogram(column="x", bins=12).render(View.of(frame))
    assert not selected_shown(obj)
    assert list(source_of(obj, "selected").data["count"]) == [0] * 12
    assert "selected" not in obj[0].object


def test_brushing_bins_publishes_their_range(frame: pd.DataFrame) -> None:
    got: list[Any] = []
    view = View.of(frame).with_select_sink(got.append)
    obj = Histogram(column="x", bins=10).render(view)
    source = source_of(obj, "bins")
    left, right = source.data["left"], source.data["right"]
    (tool,) = figure_of(obj).select({"type": BoxSelectTool})
    assert tool.dimensions == "width"
    source.selected.indices = [3, 4, 5]
    source.selected.indices = [8, 9]
    source.selected.indices = []
    assert got == [
        RangeBrush(column="x", low=left[3], high=right[5], closed_high=False),
        RangeBrush(column="x", low=left[8], high=right[9], closed_high=True),
        None,
    ]
    # the brushed range selects exactly the rows counted in those bins
    chosen = View.of(frame).with_selection(Selection().with_brush("h", got[0])).selected()
    assert chosen.count() == int(np.sum(source.data["count"][3:6]))
    last = View.of(frame).with_selection(Selection().with_brush("h", got[1])).selected()
    assert last.count() == int(np.sum(source.data["count"][8:10]))


def test_integer_bins_select_on_their_centred_edges(frame: pd.DataFrame) -> None:
    view = View.of(frame).with_selection(
        Selection().with_brush("t", ValuesBrush(column="label", values=("owl",)))
    )
    obj = Histogram(column="k").render(view)
    counts = source_of(obj, "selected").data["count"]
    expected = frame.k[frame.label == "owl"].value_counts().sort_index()
    np.testing.assert_array_equal(counts, expected.to_numpy())


def test_value_count_bars_show_selected_against_all(frame: pd.DataFrame) -> None:
    view = View.of(frame).with_selection(y_range(0.0, 0.25))
    obj = Histogram(column="label", top=3).render(view)
    full, chosen = source_of(obj, "bars").data, source_of(obj, "selected").data
    assert list(full["label"]) == ["cat", "dog", "owl", "(other)"]
    picked = frame.label[frame.y < 0.25].value_counts()
    expected = [picked["cat"], picked["dog"], picked["owl"], picked["emu"]]
    assert list(chosen["count"]) == expected
    assert list(chosen["label"]) == list(full["label"])


def test_clicking_bars_publishes_their_values(frame: pd.DataFrame) -> None:
    got: list[Any] = []
    obj = Histogram(column="label", top=3).render(View.of(frame).with_select_sink(got.append))
    source = source_of(obj, "bars")
    source.selected.indices = [2, 0]
    source.selected.indices = [3]  # (other) alone names no value: clears
    assert got == [ValuesBrush(column="label", values=("cat", "owl")), None]
    chosen = View.of(frame).with_selection(Selection().with_brush("h", got[0])).selected()
    assert chosen.count() == int(frame.label.isin(["cat", "owl"]).sum())


def test_panels_that_select_say_so() -> None:
    from panels_builtin.multi_histogram import MultiHistogram
    from panels_builtin.projection import Projection2D
    from panels_builtin.table import TablePanel

    assert Histogram.can_select and MultiHistogram.can_select and TablePanel.can_select
    assert Projection2D.can_select


# --------------------------------------------------------------------------- multi-histogram


def test_multi_histogram_brushes_a_range_and_counts_the_selected(frame: pd.DataFrame) -> None:
    from panels_builtin.multi_histogram import MultiHistogram

    got: list[Any] = []
    view = View.of(frame).with_select_sink(got.append)
    panel = MultiHistogram(column="x", by="label", bins=8)
    obj = panel.render(view)
    brush = source_of(obj, "brush")
    left, right = brush.data["left"], brush.data["right"]
    brush.selected.indices = [1, 2]
    assert got == [RangeBrush(column="x", low=left[1], high=right[2], closed_high=False)]
    assert "selected" not in obj[0].object
    chosen = panel.render(view.with_selection(y_range(0.5, 1.0)))
    assert f"{int((frame.y >= 0.5).sum()):,} of them selected" in chosen[0].object


# --------------------------------------------------------------------------- table


def test_table_selected_only_pages_exactly_the_selected_rows(frame: pd.DataFrame) -> None:
    from panels_builtin.table import TablePanel

    view = View.of(frame).with_selection(y_range(0.1, 0.12))
    paged = TablePanel(columns=["x", "y"], page_size=500, selected="only").build(view)
    expected = frame[(frame.y >= 0.1) & (frame.y < 0.12)]
    assert paged.total == len(expected) == paged.selected_rows
    assert paged.page_rows.tolist() == expected.index.tolist()
    assert paged.page_table.column("x").to_pylist() == expected.x.tolist()
    assert paged.highlighted == list(range(len(expected)))


def test_table_selected_first_then_the_other_rows(frame: pd.DataFrame) -> None:
    from panels_builtin.table import TablePanel

    view = View.of(frame).with_selection(y_range(0.1, 0.12))
    chosen = frame.index[(frame.y >= 0.1) & (frame.y < 0.12)].tolist()
    rest = [i for i in frame.index if i not in set(chosen)]
    paged = TablePanel(columns=["x"], page_size=50).build(view)
    assert paged.total == len(frame)
    assert paged.page_rows.tolist() == (chosen + rest)[:50]
    assert paged.highlighted == list(range(len(chosen)))
    styled = paged.tabulator.get_root().cell_styles["data"]  # what the browser colours
    assert sorted(styled) == list(range(len(chosen)))
    paged.go_to(50)
    assert paged.page_rows.tolist() == (chosen + rest)[50:100]
    assert paged.highlighted == []
    obj = TablePanel(columns=["x"]).render(view)
    toggle = obj[0]
    toggle.value = "only"
    assert obj[1][-1].value["x"].tolist() == frame.x[chosen].tolist()


def test_checking_rows_publishes_their_row_numbers(frame: pd.DataFrame) -> None:
    from panels_builtin.table import TablePanel

    got: list[Any] = []
    view = View.of(frame).with_query(filter="y > 0.5", sort=["-x"]).with_select_sink(got.append)
    paged = TablePanel(columns=["x"], page_size=20).build(view)
    assert paged.tabulator.selectable == "checkbox"
    paged.tabulator.selection = [0, 3]
    first = paged.page_rows[[0, 3]].tolist()
    paged.next()
    paged.tabulator.selection = [1]
    second = int(paged.page_rows[1])
    assert got == [
        RowsBrush(rows=tuple(sorted(first))),
        RowsBrush(rows=tuple(sorted([*first, second]))),
    ]
    kept = frame.loc[sorted([*first, second])]
    picked = View.of(frame).with_selection(Selection().with_brush("t", got[-1])).selected()
    assert picked.page(0, 10, ["x"]).column("x").to_pylist() == kept.x.tolist()
    paged.previous()  # the page's checked rows show checked again
    assert paged.tabulator.selection == [0, 3]
    paged.tabulator.selection = []
    paged.next()
    paged.tabulator.selection = []
    assert got[-1] is None


def test_grouped_tables_have_no_check_boxes(frame: pd.DataFrame) -> None:
    from panels_builtin.table import TablePanel

    paged = TablePanel().build(View.of(frame).with_query(group_by=["label"]))
    assert not paged.selectable and paged.tabulator.selectable != "checkbox"


# --------------------------------------------------------------------------- projection


def _projection(frame: pd.DataFrame, view: View) -> Any:
    from panels_builtin.projection import Projection2D

    config = Projection2D.validate_config({"columns": ["x", "y"], "method": "pca"}, view.type)
    return Projection2D(config).render(view)


def test_projection_highlights_exactly_the_selected_rows(frame: pd.DataFrame) -> None:
    view = View.of(frame).with_query(filter="x > -1")
    plain = _projection(frame, view)
    assert plain.chosen is None and set(plain.source.data["alpha"]) == {0.8}
    plot = _projection(frame, view.with_selection(y_range(0.3, 0.4)))
    kept = frame[frame.x > -1]
    expected = kept.index[(kept.y >= 0.3) & (kept.y < 0.4)]
    assert plot.table_rows.tolist() == kept.index.tolist()
    assert plot.table_rows[plot.chosen].tolist() == expected.tolist()
    alpha = np.asarray(plot.source.data["alpha"])
    assert plot.table_rows[alpha > 0.5].tolist() == expected.tolist()


def test_a_box_on_the_scatter_selects_the_points_inside(frame: pd.DataFrame) -> None:
    from bokeh import events

    got: list[Any] = []
    view = View.of(frame).with_select_sink(got.append)
    plot = _projection(frame, view)
    geometry = {"type": "rect", "x0": -1.0, "x1": 0.5, "y0": -0.2, "y1": 0.3}
    plot.figure._trigger_event(events.SelectionGeometry(plot.figure, geometry, final=True))
    box = ((-1.0, -0.2), (0.5, -0.2), (0.5, 0.3), (-1.0, 0.3))
    assert got == [RegionBrush(points=plot.points_key, polygon=box)]
    xy = plot.result.points
    inside = (xy[:, 0] > -1) & (xy[:, 0] < 0.5) & (xy[:, 1] > -0.2) & (xy[:, 1] < 0.3)
    chosen = view.with_selection(Selection().with_brush("p", got[0])).selected()
    assert chosen.row_numbers().tolist() == sorted(plot.table_rows[inside].tolist())
    assert _projection(frame, view).points_key == plot.points_key  # stable for the same rows


def test_a_lasso_on_the_raster_publishes_its_polygon_in_data_space(monkeypatch) -> None:
    from bokeh import events

    from panels_builtin.projection import plot as plot_module

    monkeypatch.setattr(plot_module, "MAX_SCATTER_POINTS", 100)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=3000), "y": rng.normal(size=3000)})
    got: list[Any] = []
    view = View.of(frame).with_select_sink(got.append)
    plot = _projection(frame, view)
    assert plot.source is None and plot.raster is not None
    lasso = {"type": "poly", "x": [0.0, 2.0, 0.0], "y": [0.0, 0.0, 2.0]}
    plot.figure._trigger_event(events.SelectionGeometry(plot.figure, lasso, final=True))
    (brush,) = got
    assert brush == RegionBrush(points=plot.points_key, polygon=((0, 0), (2, 0), (0, 2)))
    xy = plot.result.points
    inside = (xy[:, 0] > 0) & (xy[:, 1] > 0) & (xy[:, 0] + xy[:, 1] < 2)
    linked = view.with_selection(Selection().with_brush("p", brush))
    assert linked.selected().count() == int(inside.sum())
    # the raster draws the selected points again, as a layer of their own
    drawn = _projection(frame, linked)
    assert drawn.raster.selected.sum() == int(inside.sum())
    shown = drawn.raster_source.data["selected"][0]  # the second image Bokeh draws on top
    np.testing.assert_array_equal(shown != 0, drawn.raster.selected > 0)
    assert drawn.figure.select({"name": "selected"})
    assert drawn.table_rows[drawn.chosen].tolist() == sorted(drawn.table_rows[inside].tolist())


def test_a_selection_the_engine_cannot_evaluate_leaves_the_cards_drawing(
    frame: pd.DataFrame,
) -> None:
    from panels_builtin.table import TablePanel

    box = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))
    lost = Selection().with_brush("p", RegionBrush(points="never-registered", polygon=box))
    view = View.of(frame).with_selection(lost)
    obj = Histogram(column="x", bins=5).render(view)
    assert list(source_of(obj, "bins").data["count"]) == np.histogram(frame.x, bins=5)[0].tolist()
    assert not selected_shown(obj)
    paged = TablePanel(columns=["x"]).build(view)
    assert paged.selected_rows == 0 and paged.total == len(frame)
