"""A workspace that reads at a glance: the one-line query bar, the gallery panel, the first
screen's card order and the sidebar's column summaries, checked against the data."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from panels_builtin.gallery import Gallery, GalleryPanel, caption_text
from panels_core import View, registry
from panels_core.data.media import Classes, Image
from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.workspace.defaults import default_cards
from panels_core.workspace.querybar import QueryBar, QueryFields, summary_text
from panels_core.workspace.sidebar import column_summaries, summary_svg

LABELS = ["cat", "dog", "<b>bird</b>"]


def _shapes(n: int) -> Table:
    """``n`` rows: id, a label, a price, a 4-d embedding and a 6x8 image with one box."""
    rng = np.random.default_rng(7)
    classes = Classes([{"id": i, "name": name} for i, name in enumerate(LABELS)])
    rows = []
    for i in range(n):
        pixels = np.full((6, 8, 3), i % 255, dtype=np.uint8)
        box = {"position": {"minX": 0.1, "minY": 0.1, "maxX": 0.6, "maxY": 0.9}, "class_id": i % 3}
        image = Image(pixels, boxes={"pred": [box]}, classes=classes)
        rows.append([i, LABELS[i % 3], round(float(rng.random()) * 100, 2), rng.random(4), image])
    return Table(
        columns=["id", "label", "price", "embedding", "image"],
        data=rows,
        dtypes={"label": "category"},
    )


@pytest.fixture
def shapes() -> Table:
    return _shapes(30)


# -- the query bar ---------------------------------------------------------------------


def test_summary_text_names_sort_direction_and_groups() -> None:
    fields = QueryFields(sort="price", descending=True, group_by=["label"])
    assert summary_text(fields) == "sorted by price ↓ · grouped by label"
    both = QueryFields(sort="id", compare_with="runs_b", compare_on="id", only_both=True)
    assert summary_text(both) == "sorted by id ↑ · compared with runs_b on id · only rows in both"
    assert summary_text(QueryFields(filter="price > 3")) == ""


def test_the_bar_is_one_line_until_opened(shapes: Table) -> None:
    engine = Engine({"shapes": shapes})
    bar = QueryBar(engine, Query(table="shapes"))
    assert not bar.expanded and not bar.extra.visible and not bar.summary.visible
    bar.more.value = True
    assert bar.extra.visible and bar.sort.visible
    bar.sort.value, bar.direction.value = "price", "descending"
    bar.group_by.value = ["label"]
    assert bar.query.sort[0].column == "price" and bar.query.group_by == ("label",)
    bar.more.value = False  # closing hides the fields, not what they do
    assert not bar.extra.visible and bar.summary.visible
    assert bar.summary.object == "sorted by price ↓ · grouped by label"
    assert bar.query.group_by == ("label",)


def test_a_saved_sort_and_group_opens_the_bar(shapes: Table) -> None:
    engine = Engine({"shapes": shapes})
    query = Query(
        table="shapes", sort=[{"column": "price", "descending": True}], group_by=["label"]
    )
    bar = QueryBar(engine, query)
    assert bar.expanded and bar.extra.visible
    assert (bar.sort.value, bar.direction.value, bar.group_by.value) == (
        "price",
        "descending",
        ["label"],
    )


# -- the gallery -----------------------------------------------------------------------


def test_gallery_config_defaults_to_the_image_and_the_label(shapes: Table) -> None:
    config = GalleryPanel.default_config(View.of(shapes).type)
    assert (config.image, config.caption, config.page_size) == ("image", ["label"], 24)
    assert "gallery" in [m.kind for m in registry.compatible(View.of(shapes).type)]


def test_gallery_first_page_is_the_engines_first_page_with_captions(shapes: Table) -> None:
    view = View.of(shapes).with_query(filter="price > 20", sort=[{"column": "price"}])
    config = GalleryPanel.default_config(view.type).model_copy(
        update={"page_size": 5, "caption": ["label", "price"]}
    )
    gallery = Gallery(view, config)
    page = view.page(0, 5).to_pylist()
    assert [r["id"] for r in gallery.rows] == [r["id"] for r in page]
    assert len(gallery.tiles) == len(gallery.grid.tiles) == 5
    for row, tile in zip(page, gallery.grid.tiles, strict=True):
        (caption,) = re.findall(r'<div class="gallery-caption">(.*?)</div>', tile)
        assert html.unescape(caption) == f"label: {row['label']} · price: {row['price']:.4g}"
        assert "<rect" in tile and "<img" in tile  # the thumbnail with its box
    assert "<b>" not in "".join(gallery.grid.tiles)  # a label is text, never markup
    assert gallery.status == f"images 1-5 of {view.count()}"
    gallery.go_to(5)
    assert [r["id"] for r in gallery.rows] == [r["id"] for r in view.page(5, 5).to_pylist()]


def test_clicking_a_thumbnail_shows_every_field_of_its_row(shapes: Table) -> None:
    view = View.of(shapes)
    gallery = Gallery(view, GalleryPanel.default_config(view.type))
    assert not gallery.detail.visible and gallery.grid.visible
    gallery.grid.selected = 2  # what the browser sets on a click
    assert gallery.detail.visible and not gallery.grid.visible
    shown = gallery.detail_pane.object
    row = view.page(2, 1).to_pylist()[0]
    names = [html.unescape(n) for n in re.findall(r"<th[^>]*>(.*?)</th>", shown)]
    assert names == ["id", "label", "price", "embedding", "image"]
    assert ">2</td>" in shown and f">{row['price']!r}</td>" in shown
    assert html.escape(row["label"]) in shown and "<b>bird" not in shown
    assert "dim 4" in shown and "<img" in shown  # embedding and the large image
    assert "row 3 of 30" in shown
    gallery.close()
    assert not gallery.detail.visible and gallery.grid.selected == -1


def test_caption_of_one_column_is_its_value() -> None:
    assert caption_text({"label": "cat", "price": 1.5}, ["label"]) == "cat"
    assert caption_text({"label": None, "n": 1200}, ["label", "n"]) == "label: null · n: 1,200"


# -- the first screen ------------------------------------------------------------------


def test_first_screen_of_an_image_and_embedding_table_and_a_three_row_table() -> None:
    tiny = Table(dataframe=pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}))
    engine = Engine({"tiny": tiny, "shapes": _shapes(30)})
    cards = default_cards(engine)
    assert [(c.kind, c.input.table) for c in cards] == [
        ("projection", "shapes"),
        ("gallery", "shapes"),
        ("histogram", "shapes"),
        ("table", "shapes"),
        ("table", "tiny"),  # 3 rows: after the others although it is listed first
    ]
    assert cards[2].config["column"] == "price"  # a measure, not the row id


def test_many_number_columns_are_features_with_no_histogram_first() -> None:
    pixels = pd.DataFrame(np.arange(60.0).reshape(3, 20), columns=[f"p{i}" for i in range(20)])
    image = Image(np.zeros((4, 4, 3), dtype=np.uint8))
    features = Table(dataframe=pixels.assign(image=[image] * 3))
    cards = default_cards(Engine({"features": features}))
    # twenty number columns: projected, but none is the main measure worth a histogram
    assert [c.kind for c in cards] == ["projection", "gallery", "table"]


# -- the sidebar -----------------------------------------------------------------------


def test_sidebar_summaries_are_the_engines_histogram_and_value_counts(shapes: Table) -> None:
    view = View.of(shapes)
    summaries = column_summaries(view, view.type.columns)
    assert set(summaries) == {"id", "label", "price"}  # no bars for embeddings or images
    hist = view.histogram("price", bins=12)
    assert summaries["price"].counts == tuple(hist.counts.tolist())
    assert summaries["price"].labels[0] == f"{hist.edges[0]:.4g} to {hist.edges[1]:.4g}"
    top = view.value_counts("label", top=5)
    assert summaries["label"].counts == tuple(top.counts.tolist()) == (10, 10, 10)
    assert summaries["label"].labels == tuple(top.values)
    svg = summary_svg(summaries["label"])
    titles = [html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", svg)]
    assert titles == [f"{v}: 10" for v in top.values]
    assert "<b>bird" not in svg
    widths = [float(w) for w in re.findall(r'width="([\d.]+)" height="16.0"', svg)]
    assert widths == pytest.approx([80 / 3] * 3, abs=0.1)  # one bar split by the counts


def test_gallery_names_are_text_and_an_empty_view_says_so() -> None:
    image = Image(np.zeros((4, 4, 3), dtype=np.uint8))
    table = Table(columns=["<i>n</i>", "image"], data=[[1, image], [2, image]])
    view = View.of(table)
    gallery = Gallery(view, GalleryPanel.default_config(view.type))
    gallery.show(1)
    assert "<th" in gallery.detail_html and "<i>" not in gallery.detail_html
    assert "&lt;i&gt;n&lt;/i&gt;" in gallery.detail_html
    empty = GalleryPanel(image="image").render(view.with_query(filter="`<i>n</i>` > 5"))
    assert "the filter keeps none" in empty.object
