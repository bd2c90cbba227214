"""Panels following a new linked selection in place (``Panel.follow_selection``): what they
draw is the new selection's, checked against numpy and pandas, and what the user sees stays
the same object (figure, sources, pager, gallery grid, page); and the selected series of a
histogram binned by ``bin_width`` lands in exactly the full series' bins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.models import ColumnDataSource, GlyphRenderer

from panels_builtin.gallery import GalleryPanel
from panels_builtin.histogram import Histogram
from panels_builtin.multi_histogram import MultiHistogram
from panels_builtin.table import TablePanel
from panels_core.data.media import Image
from panels_core.data.table import Table
from panels_core.panel import Panel
from panels_core.query.selection import RangeBrush, RowsBrush, Selection
from panels_core.view import View


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 600
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.uniform(size=n),
            "label": rng.choice(["cat", "dog", "owl"], size=n),
        }
    )


def figure_of(obj: Any) -> Any:
    (pane,) = [o for o in obj if isinstance(o, pn.pane.Bokeh)]
    return pane.object


def renderer(obj: Any, name: str) -> Any:
    return figure_of(obj).select_one({"type": GlyphRenderer, "name": name})


def data_of(obj: Any, name: str) -> dict[str, np.ndarray]:
    (source,) = figure_of(obj).select({"type": ColumnDataSource, "name": name})
    return {k: np.asarray(v) for k, v in source.data.items()}


def edges_of(data: dict[str, np.ndarray]) -> np.ndarray:
    return np.append(data["left"], data["right"][-1])


def selecting(**brushes: Any) -> Selection:
    selection = Selection()
    for source, brush in brushes.items():
        selection = selection.with_brush(source, brush)
    return selection


def follow(panel: Panel, obj: Any, view: View) -> None:
    """What a card does: the hook (off the loop in a server), then what it returned."""
    show = panel.follow_selection(obj, view)
    assert callable(show), "the panel should follow in place"
    show()


# --------------------------------------------------------------------------- bins on edges


@pytest.mark.parametrize(
    ("values", "options"),
    [
        # the brief's case: bin_width 0.1 over 0..1, values on the edges 0.3 and 0.7
        ([0.0, 0.3, 0.3, 0.5, 0.7, 0.7, 0.9, 1.0], {"range": (0.0, 1.0)}),
        # no range: edges from the minimum 0.2; bins=6 over the span would put 0.7 one bin
        # lower (its edge would be 0.7000000000000002)
        ([0.2, 0.3, 0.3, 0.45, 0.7, 0.7, 0.7, 0.75], {}),
        # no range: the span's float width makes the engine add a bin for the maximum 0.6
        ([0.0, 0.1, 0.3, 0.3, 0.5, 0.6, 0.6], {}),
    ],
)
def test_the_selected_series_is_binned_on_the_full_series_edges(values, options) -> None:
    rows = pd.DataFrame({"x": np.repeat(values, 3), "y": np.tile([0.1, 0.5, 0.9], len(values))})
    chosen = rows[rows.y >= 0.4]
    view = View.of(rows).with_selection(selecting(h=RangeBrush(column="y", low=0.4)))
    obj = Histogram(column="x", bin_width=0.1, **options).render(view)
    full, picked = data_of(obj, "bins"), data_of(obj, "selected")
    edges = edges_of(full)
    assert np.array_equal(edges_of(picked), edges)
    np.testing.assert_array_equal(full["count"], np.histogram(rows.x, bins=edges)[0])
    np.testing.assert_array_equal(picked["count"], np.histogram(chosen.x, bins=edges)[0])
    assert (picked["count"] <= full["count"]).all()
    assert picked["count"].sum() == len(chosen)


def test_the_multi_histogram_bins_its_selected_series_on_the_same_edges() -> None:
    values = [0.2, 0.3, 0.3, 0.45, 0.7, 0.7, 0.7, 0.75]
    rows = pd.DataFrame(
        {
            "x": np.repeat(values, 4),
            "y": np.tile([0.1, 0.5, 0.9, 0.6], len(values)),
            "label": np.tile(["a", "b"], 2 * len(values)),
        }
    )
    view = View.of(rows).with_selection(selecting(h=RangeBrush(column="y", low=0.4)))
    obj = MultiHistogram(column="x", by="label", bin_width=0.1).render(view)
    chosen = rows[rows.y >= 0.4]
    for name in ("a", "b"):
        full, picked = data_of(obj, f"series:{name}"), data_of(obj, f"selected:{name}")
        edges = edges_of(full)
        assert np.array_equal(edges_of(picked), edges)
        mine = chosen[chosen.label == name].x
        np.testing.assert_array_equal(picked["count"], np.histogram(mine, bins=edges)[0])
        assert (picked["count"] <= full["count"]).all()


# --------------------------------------------------------------------------- histograms


def test_the_histogram_follows_a_selection_in_its_own_figure(frame: pd.DataFrame) -> None:
    got: list[Any] = []
    view = View.of(frame).with_select_sink(got.append)
    panel = Histogram(column="x", bins=10)
    obj = panel.render(view)
    figure, bins = figure_of(obj), renderer(obj, "bins")
    assert not renderer(obj, "selected").visible
    bins.data_source.selected.indices = [2, 3]  # the user drags over two bars
    (dragged,) = got
    follow(panel, obj, view.with_selection(selecting(me=dragged)))
    assert figure_of(obj) is figure and renderer(obj, "bins") is bins
    edges = edges_of(data_of(obj, "bins"))
    picked = frame.x[(frame.x >= dragged.low) & (frame.x < dragged.high)]
    assert data_of(obj, "selected")["count"].tolist() == np.histogram(picked, bins=edges)[0].tolist()
    assert renderer(obj, "selected").visible and bins.glyph.fill_alpha == 0.45
    assert f"{len(picked):,} of them selected" in obj[0].object
    assert bins.data_source.selected.indices == [2, 3]  # the dragged range stays
    # a selection from elsewhere: the range dragged here is gone from it, so is the drawn box
    other = RangeBrush(column="y", low=0.5)
    follow(panel, obj, view.with_selection(selecting(other=other)))
    picked = frame.x[frame.y >= 0.5]
    assert data_of(obj, "selected")["count"].tolist() == np.histogram(picked, bins=edges)[0].tolist()
    assert bins.data_source.selected.indices == []
    follow(panel, obj, view)  # cleared
    assert not renderer(obj, "selected").visible and bins.glyph.fill_alpha == 1.0
    assert "selected" not in obj[0].object


def test_value_count_bars_follow_a_selection_in_place(frame: pd.DataFrame) -> None:
    panel = Histogram(column="label")
    view = View.of(frame)
    obj = panel.render(view)
    figure = figure_of(obj)
    follow(panel, obj, view.with_selection(selecting(o=RangeBrush(column="y", high=0.25))))
    assert figure_of(obj) is figure
    labels = data_of(obj, "bars")["label"].tolist()
    counts = frame[frame.y < 0.25].label.value_counts()
    assert data_of(obj, "selected")["count"].tolist() == [int(counts[v]) for v in labels]


def test_the_multi_histogram_follows_with_a_selected_series_per_series(
    frame: pd.DataFrame,
) -> None:
    panel = MultiHistogram(column="x", by="label", bins=8, mode="stack")
    view = View.of(frame)
    obj = panel.render(view)
    figure = figure_of(obj)
    assert not renderer(obj, "selected:cat").visible
    follow(panel, obj, view.with_selection(selecting(o=RangeBrush(column="y", low=0.7))))
    assert figure_of(obj) is figure
    chosen = frame[frame.y >= 0.7]
    for name in ("cat", "dog", "owl"):
        full, picked = data_of(obj, f"series:{name}"), data_of(obj, f"selected:{name}")
        mine = chosen[chosen.label == name].x
        assert picked["count"].tolist() == np.histogram(mine, bins=edges_of(full))[0].tolist()
        np.testing.assert_array_equal(picked["bottom"], full["bottom"])  # on its own series
        np.testing.assert_array_equal(picked["top"] - picked["bottom"], picked["count"])
        assert renderer(obj, f"selected:{name}").visible
    assert f"{len(chosen):,} of them selected" in obj[0].object


# --------------------------------------------------------------------------- table


def test_the_table_marks_a_selection_from_elsewhere_on_the_same_page(frame: pd.DataFrame) -> None:
    panel = TablePanel(columns=["x"], page_size=50)
    view = View.of(frame)
    obj = panel.render(view)
    paged, tabulator = obj.pager, obj.pager.tabulator
    assert not obj[0].visible
    paged.next()
    follow(panel, obj, view.with_selection(selecting(o=RangeBrush(column="y", high=0.1))))
    assert obj.pager is paged and paged.tabulator is tabulator and obj[1] is paged.layout
    chosen = frame.index[frame.y < 0.1].tolist()
    order = chosen + [i for i in frame.index if i not in set(chosen)]
    assert paged.offset == 50 and paged.page_rows.tolist() == order[50:100]  # selected first
    assert paged.selected_rows == len(chosen) and obj[0].visible
    assert paged.highlighted == list(range(max(0, len(chosen) - 50)))


def test_ticks_on_page_two_keep_the_page_and_are_marked_there(frame: pd.DataFrame) -> None:
    got: list[Any] = []
    panel = TablePanel(columns=["x"], page_size=50)
    view = View.of(frame).with_select_sink(got.append)
    obj = panel.render(view)
    paged = obj.pager
    paged.next()
    rows = paged.page_rows.tolist()
    paged.tabulator.selection = [3]  # a tick: the selection comes back, marked in place
    follow(panel, obj, view.with_selection(selecting(me=got[-1])))
    assert paged.page_rows.tolist() == rows and paged.highlighted == [3]
    paged.tabulator.selection = [3, 7]  # a second tick on the same page
    assert got[-1] == RowsBrush(rows=tuple(sorted([rows[3], rows[7]])))
    follow(panel, obj, view.with_selection(selecting(me=got[-1])))
    assert paged.offset == 50 and paged.page_rows.tolist() == rows  # the page stays put
    assert paged.highlighted == [3, 7] and paged.tabulator.selection == [3, 7]
    assert paged.checked == {rows[3], rows[7]} and paged.selected_rows == 2
    assert got[-1] == RowsBrush(rows=tuple(sorted([rows[3], rows[7]])))  # nothing more sent
    obj[0].value = "only"  # two rows: Panel's selection of the old page is no untick
    assert paged.total == 2 and paged.page_rows.tolist() == sorted([rows[3], rows[7]])
    assert paged.tabulator.selection == [0, 1] and paged.checked == {rows[3], rows[7]}
    assert got[-1] == RowsBrush(rows=tuple(sorted([rows[3], rows[7]])))


def test_selected_only_pages_the_selection_after_it_changed_elsewhere(frame: pd.DataFrame) -> None:
    panel = TablePanel(columns=["x"], page_size=20, selected="only")
    view = View.of(frame).with_selection(selecting(o=RangeBrush(column="y", high=0.5)))
    obj = panel.render(view)
    paged = obj.pager
    follow(panel, obj, view.with_selection(selecting(o=RangeBrush(column="y", high=0.05))))
    chosen = frame.index[frame.y < 0.05].tolist()
    assert paged.total == len(chosen) and paged.page_rows.tolist() == chosen[:20]
    obj[0].value = "first"  # the toggle re-pages the same pager, from the first page
    assert obj.pager is paged and paged.total == len(frame)
    assert paged.offset == 0 and paged.page_rows.tolist() == chosen[:20]


# --------------------------------------------------------------------------- gallery


def _images(frame: pd.DataFrame) -> View:
    images = [Image(np.full((4, 6, 3), i % 250, dtype=np.uint8)) for i in range(len(frame))]
    table = Table(
        columns=["y", "label", "image"],
        data=[[y, lab, im] for y, lab, im in zip(frame.y, frame.label, images, strict=True)],
        dtypes={"label": "category"},
    )
    return View.of(table)


def test_the_gallery_marks_a_new_selection_without_drawing_its_tiles_again(
    frame: pd.DataFrame,
) -> None:
    frame = frame.head(60)
    got: list[Any] = []
    view = _images(frame).with_select_sink(got.append)
    config = GalleryPanel.default_config(view.type).model_copy(update={"page_size": 12})
    panel = GalleryPanel(config)
    obj = panel.render(view)
    gallery = obj.gallery
    grid, tiles = gallery.grid, gallery.grid.tiles
    gallery.next.clicks += 1  # page 2
    gallery.grid.checked = [1]
    gallery.grid.checked = [1, 4]
    rows = gallery.page_rows.tolist()
    follow(panel, obj, view.with_selection(selecting(me=got[-1])))
    assert obj.gallery is gallery and gallery.grid is grid and gallery.offset == 12
    assert gallery.marked == [1, 4] and grid.checked == [1, 4]
    assert grid.tiles == gallery.tiles and gallery.page_rows.tolist() == rows
    assert tiles is not grid.tiles  # page 2's tiles, drawn by the pager, not by the follow
    follow(panel, obj, view.with_selection(selecting(o=RangeBrush(column="y", high=0.3))))
    inside = [i for i, r in enumerate(rows) if frame.y.iloc[r] < 0.3]
    assert gallery.marked == inside and grid.checked == [] and gallery.only.visible


# --------------------------------------------------------------------------- the contract


def test_a_panel_without_the_hook_is_rendered_again() -> None:
    class Plain(Panel):
        kind = "plain"

        def render(self, view: Any) -> Any:
            return pn.pane.Markdown("x")

    assert Plain().follow_selection(pn.pane.Markdown("x"), None) is None
    assert Histogram(column="x").follow_selection(pn.pane.Alert("nothing"), None) is None
    assert TablePanel().follow_selection(pn.Column(), None) is None
    assert GalleryPanel.follow_selection(GalleryPanel.__new__(GalleryPanel), pn.Column(), None) is None
