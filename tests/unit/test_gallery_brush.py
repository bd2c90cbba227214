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
from panels_core.query.selection import RangeBrush, RowsBrush, Selection


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
