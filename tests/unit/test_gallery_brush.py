"""Linked selection in the gallery and the sidebar's column summaries: the brush a tick or a
bar click publishes, the tiles highlighted, and the rows "selected only" pages, checked
against pandas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from panels_builtin.gallery import Gallery, GalleryPanel
from panels_core import View
from panels_core.data.media import Image
from panels_core.data.table import Table
from panels_core.query.selection import RangeBrush, RowsBrush, Selection, ValuesBrush


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 40
    return pd.DataFrame(
        {
            "price": np.round(rng.uniform(0, 100, size=n), 2),
            "label": rng.choice(["cat", "dog", "owl"], size=n),
        }
    )


def _view(frame: pd.DataFrame) -> View:
    images = [Image(np.full((4, 6, 3), i, dtype=np.uint8)) for i in range(len(frame))]
    table = Table(
        columns=["price", "label", "image"],
        data=[[p, lab, im] for p, lab, im in zip(frame.price, frame.label, images, strict=True)],
        dtypes={"label": "category"},
    )
    return View.of(table)


def _gallery(view: View, page_size: int = 10) -> Gallery:
    config = GalleryPanel.default_config(view.type).model_copy(update={"page_size": page_size})
    return Gallery(view, config)


def test_the_gallery_can_select() -> None:
    assert GalleryPanel.can_select is True


def test_ticking_tiles_publishes_their_row_numbers(frame: pd.DataFrame) -> None:
    got: list[Any] = []
    view = (
        _view(frame).with_query(filter="price > 30", sort=["-price"]).with_select_sink(got.append)
    )
    gallery = _gallery(view)
    order = frame[frame.price > 30].sort_values("price", ascending=False).index.tolist()
    assert gallery.page_rows.tolist() == order[:10]
    assert gallery.grid.selectable
    gallery.grid.checked = [0, 4]  # what the tiles' "select" boxes send
    gallery.go_to(10)
    assert gallery.grid.checked == []
    gallery.grid.checked = [2]
    chosen = sorted([order[0], order[4], order[12]])
    assert got == [
        RowsBrush(rows=tuple(sorted([order[0], order[4]]))),
        RowsBrush(rows=tuple(chosen)),
    ]
    gallery.go_to(0)  # the page's ticked tiles show ticked again
    assert gallery.grid.checked == [0, 4]
    gallery.grid.checked = []
    gallery.go_to(10)
    gallery.grid.checked = []
    assert got[-1] is None


def test_selected_rows_tiles_are_highlighted_and_selected_only_pages_them(
    frame: pd.DataFrame,
) -> None:
    brush = RangeBrush(column="price", low=20, high=60)
    view = _view(frame).with_selection(Selection().with_brush("other", brush))
    gallery = _gallery(view)
    inside = (frame.price >= 20) & (frame.price < 60)
    assert gallery.marked == [i for i in range(10) if inside.iloc[i]]
    assert gallery.grid.marked == gallery.marked
    assert gallery.only.visible
    gallery.only.value = True
    assert gallery.total == int(inside.sum())
    assert gallery.page_rows.tolist() == frame.index[inside].tolist()[:10]
    assert gallery.marked == list(range(min(10, int(inside.sum()))))
    assert [r["price"] for r in gallery.rows] == frame.price[inside].tolist()[:10]
    gallery.only.value = False
    assert gallery.total == len(frame)


def test_ticked_rows_of_the_selection_start_ticked(frame: pd.DataFrame) -> None:
    view = _view(frame).with_selection(Selection().with_brush("g", RowsBrush(rows=(1, 3, 25))))
    gallery = _gallery(view)
    assert gallery.checked == {1, 3, 25}
    assert gallery.grid.checked == [1, 3]
    assert gallery.marked == [1, 3]


def test_without_a_selection_there_is_no_selected_only_toggle(frame: pd.DataFrame) -> None:
    gallery = _gallery(_view(frame).with_query(filter="price > 50"))
    assert gallery.selectable
    assert not gallery.only.visible  # no selection: nothing to page


# -- the sidebar's summary bars --------------------------------------------------------


@pytest.fixture
def workspace(frame: pd.DataFrame, tmp_path: Any) -> Any:
    from panels_core.query.model import Query
    from panels_core.workspace import CardSpec
    from panels_core.workspace.app import Workspace

    frame.to_parquet(tmp_path / "runs.parquet")
    tables = {"runs": Table.from_parquet(tmp_path / "runs.parquet")}
    cards = [
        CardSpec(kind="table", input=Query(table="runs")),
        CardSpec(kind="table", input=Query(table="runs", filter="price < 50")),
    ]
    return Workspace(tables, cards)


def _bars(workspace: Any) -> Any:
    from panels_core.workspace.sidebar import SummaryBars, table_entry

    entry = table_entry(workspace.engine, "runs", [], workspace.linking)
    (bars,) = [o for o in entry.objects if isinstance(o, SummaryBars)]
    return bars


def test_clicking_a_bin_brushes_its_range_and_again_clears_it(
    workspace: Any, frame: pd.DataFrame
) -> None:
    bars = _bars(workspace)
    edges = np.array(bars.summaries["price"].edges)
    assert 'data-bar="11"' in bars.html
    last = len(edges) - 2
    bars._handle_msg({"column": "price", "bar": last})  # what the browser sends on a click
    brush = RangeBrush(column="price", low=edges[last], high=edges[-1], closed_high=True)
    selection = workspace.linking.selection("runs")
    assert selection.brushes == (("sidebar:price", brush),)
    for card in workspace.cards:
        assert card.view.query.selection == selection
    expected = frame[(frame.price >= edges[last]) & (frame.price <= edges[-1])]
    assert len(expected) == int(np.histogram(frame.price, bins=edges)[0][-1]) > 0
    chosen = View.of(frame).with_selection(selection).selected()
    assert chosen.count() == len(expected)
    bars._handle_msg({"column": "price", "bar": last})  # the same bar again
    assert workspace.linking.selection("runs") is None


def test_clicking_a_top_value_brushes_that_value(workspace: Any, frame: pd.DataFrame) -> None:
    from panels_core.query.selection import ValuesBrush
    from panels_core.workspace.linking import selection_summary

    bars = _bars(workspace)
    top = frame.label.value_counts()
    assert bars.summaries["label"].values[0] == top.index[0]
    bars._handle_msg({"column": "label", "bar": 0})
    selection = workspace.linking.selection("runs")
    assert selection.brushes == (
        ("sidebar:label", ValuesBrush(column="label", values=(top.index[0],))),
    )
    text = selection_summary(workspace.engine, "runs", selection)
    assert text.startswith(f"{top.iloc[0]:,} of {len(frame):,} rows selected")
    bars._handle_msg({"column": "price", "bar": 0})  # another column's bar: AND
    assert [s for s, _ in workspace.linking.selection("runs").brushes] == [
        "sidebar:label",
        "sidebar:price",
    ]


def test_a_bad_click_message_brushes_nothing(workspace: Any) -> None:
    bars = _bars(workspace)
    for message in ({"column": "nope", "bar": 0}, {"column": "price", "bar": 99}, "x", {}):
        bars._handle_msg(message)
    assert workspace.linking.selection("runs") is None


def test_the_other_values_bar_has_no_brush() -> None:
    from panels_core.workspace.sidebar import ColumnSummary, summary_brush, summary_svg

    summary = ColumnSummary("top", (5, 3), ("a", "b"), other=2, values=("a", "b"))
    svg = summary_svg(summary)
    assert svg.count('class="summary-bar"') == 2  # the "other values" bar is not clickable
    assert summary_brush("k", summary, 2) is None


def test_selected_only_with_a_selection_the_engine_cannot_evaluate_says_why(
    frame: pd.DataFrame,
) -> None:
    brush = RangeBrush(column="nope", low=1)
    gallery = _gallery(_view(frame).with_selection(Selection().with_brush("x", brush)))
    assert gallery.marked == []  # drawn as without a selection
    gallery.only.value = True
    assert "nope" in (gallery.error or "") and gallery.alert.visible
    assert gallery.total == len(frame) and len(gallery.rows) == 10


def test_the_brushed_bar_is_outlined_until_the_selection_drops_it(workspace: Any) -> None:
    import re

    bars = _bars(workspace)

    def outlined() -> list[tuple[str, str]]:
        rows = re.findall(r'<tr data-column="(\w+)">(.*?)</tr>', bars.html)
        return [
            (column, bar)
            for column, row in rows
            for bar in re.findall(r'class="summary-bar active" data-bar="(\d+)"', row)
        ]

    assert outlined() == []
    bars._handle_msg({"column": "label", "bar": 1})
    assert outlined() == [("label", "1")]
    bars._handle_msg({"column": "price", "bar": 3})
    assert outlined() == [("price", "3"), ("price", "3"), ("label", "1")]  # hit area and bar
    workspace.linking.clear("runs")  # the selection bar's Clear
    assert outlined() == []
    bars._handle_msg({"column": "label", "bar": 1})
    workspace.linking.filter_to_selection("runs")  # now a filter, no longer a brush
    assert outlined() == []
    workspace.linking.publish("runs", "sidebar:label", ValuesBrush(column="label", values=("x",)))
    assert outlined() == []  # a value no bar shows
