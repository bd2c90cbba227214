"""The selection API stand-in (replaced by sel-core's at merge): what the panels rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panels_core.query.errors import QueryError
from panels_core.query.selection import RangeBrush, RegionBrush, RowsBrush, Selection, ValuesBrush
from panels_core.view import View


@pytest.fixture
def view() -> View:
    frame = pd.DataFrame({"x": np.arange(20.0), "c": list("ab") * 10})
    return View.of(frame)


def _x(table) -> list[float]:
    return table.column("x").to_pylist()


def test_selected_narrows_to_the_brushed_rows(view: View) -> None:
    chosen = view.with_selection(Selection().with_brush("h", RangeBrush(column="x", low=3, high=6)))
    assert chosen.count() == 20
    assert _x(chosen.selected().page(0, 10, ["x"])) == [3.0, 4.0, 5.0]
    both = chosen.with_selection(chosen.selection.with_brush("t", RowsBrush(rows=(1, 4, 5))))
    assert _x(both.selected().page(0, 10, ["x"])) == [4.0, 5.0]
    either = both.with_selection(both.selection.model_copy(update={"mode": "or"}))
    assert _x(either.selected().page(0, 10, ["x"])) == [1.0, 3.0, 4.0, 5.0]
    values = view.with_selection(
        Selection().with_brush("v", ValuesBrush(column="c", values=("a",)))
    )
    assert values.selected().count() == 10
    assert view.selected() is view


def test_selected_first_pages_the_selected_rows_first(view: View) -> None:
    brush = RangeBrush(column="x", low=3, high=6)
    first = view.with_selection(Selection().with_brush("h", brush)).selected_first()
    assert _x(first.page(0, 6, ["x"])) == [3.0, 4.0, 5.0, 0.0, 1.0, 2.0]
    assert _x(first.page(2, 3, ["x"])) == [5.0, 0.0, 1.0]
    assert first.count() == 20


def test_row_numbers_and_regions(view: View) -> None:
    assert view.with_query(filter="x > 16").row_numbers().tolist() == [17, 18, 19]
    view.register_points("p", np.arange(20), np.c_[np.arange(20.0), np.zeros(20)])
    box = ((1.5, -1.0), (4.5, -1.0), (4.5, 1.0), (1.5, 1.0))
    region = view.with_selection(Selection().with_brush("p", RegionBrush(points="p", polygon=box)))
    assert _x(region.selected().page(0, 10, ["x"])) == [2.0, 3.0, 4.0]
    unknown = view.with_selection(Selection().with_brush("q", RegionBrush(points="q", polygon=box)))
    with pytest.raises(QueryError, match="no projected points are registered as `q`"):
        unknown.selected().count()


def test_select_goes_to_the_sink(view: View) -> None:
    got = []
    view.select(RowsBrush(rows=(1,)))  # no sink: nothing happens
    linked = view.with_select_sink(got.append)
    linked.with_query(filter="x > 1").select(RowsBrush(rows=(2,)))
    assert got == [RowsBrush(rows=(2,))]
