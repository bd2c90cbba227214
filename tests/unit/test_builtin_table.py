"""The Table panel: pages are the data's rows, paging/filter/sort go through the engine,
typed cells draw the right numbers (thumbnails, boxes, masks, histograms, bars)."""

from __future__ import annotations

import base64
import html
import io
import re

import numpy as np
import pandas as pd
import panel as pn
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage
from pydantic import ValidationError

from panels_builtin.table import (
    CellRenderer,
    PagedTable,
    TablePanel,
    compared_histogram_cell,
    compared_number_cell,
    embedding_cell,
    histogram_cell,
    image_cell,
    number_formatter,
)
from panels_core import View, registry
from panels_core.data.media import Classes, Image
from panels_core.data.table import Table
from panels_core.demo import digits_table
from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.types import ImageType

PNG_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def digits_path(tmp_path_factory):
    """The demo's digits table, saved as Parquet (as ``write_demo`` does)."""
    return digits_table().save(tmp_path_factory.mktemp("demo") / "digits.parquet")


@pytest.fixture(scope="module")
def digits(digits_path):
    return Table.from_parquet(digits_path)


@pytest.fixture(scope="module")
def digits_df(digits_path):
    return pq.read_table(digits_path).to_pandas()


PIXELS = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]


def decoded_pngs(cell: str) -> list[PILImage.Image]:
    return [PILImage.open(io.BytesIO(base64.b64decode(m))) for m in PNG_URI.findall(cell)]


# --------------------------------------------------------------------------- paging


def test_first_page_is_the_first_rows(digits, digits_df) -> None:
    paged = TablePanel().build(View.of(digits))
    assert paged.total == 1797 and paged.page_table.num_rows == 50
    assert list(paged.frame.columns) == list(digits_df.columns)
    expected = digits_df.head(50)
    np.testing.assert_array_equal(paged.frame[PIXELS].to_numpy(), expected[PIXELS].to_numpy())
    assert paged.frame["target"].tolist() == expected["target"].astype(str).tolist()
    assert paged.status == "rows 1-50 of 1,797"
    assert paged.buttons["previous"].disabled and not paged.buttons["next"].disabled
    # the Tabulator holds exactly this page, not the table
    assert len(paged.tabulator.value) == 50


def test_page_two_shows_rows_50_to_99(digits, digits_df) -> None:
    paged = TablePanel(page_size=50).build(View.of(digits))
    paged.next()
    assert paged.offset == 50 and paged.status == "rows 51-100 of 1,797"
    expected = digits_df.iloc[50:100]
    np.testing.assert_array_equal(paged.frame[PIXELS].to_numpy(), expected[PIXELS].to_numpy())
    assert paged.frame["target"].tolist() == expected["target"].astype(str).tolist()
    paged.last()
    assert paged.offset == 1750 and paged.page_table.num_rows == 47
    assert paged.frame["pixel_2_3"].tolist() == digits_df["pixel_2_3"].iloc[1750:].tolist()
    assert paged.buttons["next"].disabled and paged.buttons["last"].disabled
    paged.next()  # past the end: stays on the last page
    assert paged.offset == 1750
    paged.previous()
    assert paged.offset == 1700
    paged.first()
    assert paged.offset == 0 and paged.buttons["first"].disabled


def test_chosen_columns_and_page_size(digits, digits_df) -> None:
    paged = TablePanel(columns=["target", "pixel_0_3"], page_size=7).build(View.of(digits))
    assert list(paged.frame.columns) == ["target", "pixel_0_3"]
    assert paged.page_table.column_names == ["target", "pixel_0_3"]
    assert paged.frame["pixel_0_3"].tolist() == digits_df["pixel_0_3"].head(7).tolist()


def test_filter_shows_only_matching_rows_and_their_total(digits, digits_df) -> None:
    view = View.of(digits).with_query(filter='target == "3" and pixel_0_4 > 8')
    paged = TablePanel(page_size=20).build(view)
    expected = digits_df[(digits_df["target"].astype(str) == "3") & (digits_df["pixel_0_4"] > 8)]
    assert paged.total == len(expected) > 20
    assert set(paged.frame["target"]) == {"3"}
    assert (paged.frame["pixel_0_4"] > 8).all()
    np.testing.assert_array_equal(
        paged.frame[PIXELS].to_numpy(), expected[PIXELS].head(20).to_numpy()
    )
    assert paged.status == f"rows 1-20 of {len(expected)}"


def test_empty_view_says_so(digits) -> None:
    view = View.of(digits).with_query(filter='target == "nope"')
    paged = TablePanel().build(view)
    assert paged.total == 0 and paged.page_table.num_rows == 0 and len(paged.frame) == 0
    assert paged.status == "no rows"
    assert paged.alert.visible and "keeps none" in paged.alert.object


# --------------------------------------------------------------------------- sorting


def test_header_sort_sorts_through_the_query(digits, digits_df) -> None:
    paged = TablePanel(page_size=30).build(View.of(digits))
    paged.tabulator.sorters = [{"field": "pixel_3_3", "dir": "desc"}]  # what a header click sets
    assert paged.view.query.sort[0].column == "pixel_3_3" and paged.view.query.sort[0].descending
    expected = digits_df.sort_values("pixel_3_3", ascending=False, kind="stable").head(30)
    np.testing.assert_array_equal(paged.frame[PIXELS].to_numpy(), expected[PIXELS].to_numpy())
    paged.next()
    expected = digits_df.sort_values("pixel_3_3", ascending=False, kind="stable").iloc[30:60]
    np.testing.assert_array_equal(paged.frame[PIXELS].to_numpy(), expected[PIXELS].to_numpy())
    # two keys: the first sorter is the primary key
    paged.apply_sorters([{"field": "target", "dir": "asc"}, {"field": "pixel_0_3", "dir": "asc"}])
    assert paged.offset == 0
    expected = digits_df.assign(target=digits_df["target"].astype(str)).sort_values(
        ["target", "pixel_0_3"], kind="stable"
    )
    assert paged.frame["target"].tolist() == expected["target"].head(30).tolist()
    assert paged.frame["pixel_0_3"].tolist() == expected["pixel_0_3"].head(30).tolist()


def test_sort_puts_nulls_last_both_ways() -> None:
    x = [3.0, None, 1.0, 5.0, None, 2.0, 4.0]
    table = Table(dataframe=pd.DataFrame({"x": x, "name": list("abcdefg")}))
    paged = TablePanel(page_size=5).build(View.of(table))
    frame = pd.DataFrame({"x": x, "name": list("abcdefg")})
    for direction in ("asc", "desc"):
        paged.apply_sorters([{"field": "x", "dir": direction}])
        expected = frame.sort_values(
            "x", ascending=direction == "asc", na_position="last", kind="stable"
        )
        assert paged.frame["name"].tolist() == expected["name"].head(5).tolist()
        paged.last()
        assert paged.frame["name"].tolist() == expected["name"].iloc[5:].tolist()
        assert paged.frame["x"].isna().all()


def test_sorting_an_unsortable_column_is_refused_with_a_message(digits) -> None:
    paged = TablePanel(page_size=5).build(View.of(digits))
    before = paged.frame["pixel_0_2"].tolist()
    paged.apply_sorters([{"field": "image", "dir": "asc"}])
    assert paged.alert.visible and "cannot sort by `image`" in html.unescape(paged.alert.object)
    assert paged.frame["pixel_0_2"].tolist() == before and paged.view.query.sort == ()
    assert paged.tabulator.sortable["image"] is False
    assert paged.tabulator.sortable["embedding"] is False
    assert paged.tabulator.sortable["pixel_0_2"] is True


# --------------------------------------------------------------------------- 10M rows


def test_ten_million_row_parquet_fetches_only_a_page(tmp_path, monkeypatch) -> None:
    n = 10_000_000
    path = tmp_path / "big.parquet"
    pq.write_table(
        pa.table({"id": np.arange(n, dtype=np.int64), "x": np.arange(n, dtype=np.float64) / 7}),
        path,
        row_group_size=1 << 20,
    )
    table = Table.from_parquet(path)
    monkeypatch.setattr(Table, "to_arrow", lambda self: pytest.fail("the table was loaded"))
    view = View.of(table)
    calls: list[tuple[int, int]] = []
    page = view.engine.page

    def counting(query, offset=0, limit=50, columns=None):
        result = page(query, offset=offset, limit=limit, columns=columns)
        calls.append((offset, result.num_rows))
        return result

    monkeypatch.setattr(view.engine, "page", counting)
    paged = TablePanel(page_size=25).build(view)
    assert calls == [(0, 25)] and paged.total == n
    assert paged.frame["id"].tolist() == list(range(25))
    assert len(paged.tabulator.value) == 25
    paged.last()
    assert calls[-1] == (n - 25, 25) and paged.frame["id"].iloc[-1] == n - 1
    paged.apply_sorters([{"field": "x", "dir": "desc"}])
    assert calls[-1] == (0, 25) and paged.frame["id"].tolist() == list(range(n - 1, n - 26, -1))
    assert sum(rows for _, rows in calls) == 75


# --------------------------------------------------------------------------- typed cells


def test_number_formatting() -> None:
    assert number_formatter(True).format == "0,0"
    assert number_formatter(False, 3).format == "0,0.[000]"
    table = Table(dataframe=pd.DataFrame({"n": [1, 2], "f": [0.5, 1.25], "b": [True, False]}))
    paged = TablePanel(precision=2).build(View.of(table))
    formatters = paged.tabulator.formatters
    assert formatters["n"].format == "0,0" and formatters["f"].format == "0,0.[00]"
    assert formatters["b"]["type"] == "tickCross"
    assert paged.frame["f"].tolist() == [0.5, 1.25]


def test_digit_image_cells_are_png_thumbnails(digits) -> None:
    paged = TablePanel(columns=["image", "embedding"], page_size=3, thumbnail_size=48).build(
        View.of(digits)
    )
    for cell in paged.frame["image"]:
        (png,) = decoded_pngs(cell)
        assert png.format == "PNG" and max(png.size) <= 48
        assert png.size == (8, 8)  # small images are not upscaled, only displayed larger
        assert 'width="48" height="48"' in cell
    assert all("dim 64" in cell for cell in paged.frame["embedding"])


def test_embedding_cell_sparkline_follows_the_values() -> None:
    cell = embedding_cell([0.0, 1.0, 0.5])
    assert "dim 3" in cell
    (points,) = re.findall(r'points="([^"]+)"', cell)
    ys = [float(p.split(",")[1]) for p in points.split()]
    assert ys == [16.0, 0.0, 8.0]  # lowest value at the bottom, highest at the top


@pytest.fixture
def boxed() -> Table:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    mask = np.zeros((20, 40), dtype=np.uint8)
    mask[:10, :20] = 1
    image = Image(
        pixels,
        boxes={
            "truth": [
                {"position": {"minX": 0.25, "minY": 0.5, "maxX": 0.75, "maxY": 1.0}, "class_id": 1}
            ],
            "pred": [
                {
                    "position": {"minX": 0.0, "minY": 0.0, "maxX": 0.5, "maxY": 0.5},
                    "class_id": 0,
                    "scores": {"score": 0.75},
                }
            ],
        },
        masks={"seg": mask},
        classes=Classes([{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]),
    )
    return Table(columns=["image"], data=[[image]])


def rects(cell: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', r)) for r in re.findall(r"<rect [^>]*>", cell)]


def test_boxes_are_svg_rects_at_their_place_with_class_names(boxed) -> None:
    view = View.of(boxed)
    image_type = view.type.columns["image"]
    assert isinstance(image_type, ImageType) and set(image_type.box_layers) == {"truth", "pred"}
    paged = TablePanel(thumbnail_size=80, mask_layers=[]).build(view)
    cell = paged.frame["image"][0]
    (png,) = decoded_pngs(cell)
    assert png.size == (40, 20)  # 40x20 fits 80: kept, displayed at 80x40
    assert 'width="80" height="40"' in cell
    found = {r["data-layer"]: r for r in rects(cell)}
    truth, pred = found["truth"], found["pred"]
    assert [float(truth[k]) for k in ("x", "y", "width", "height")] == [20.0, 20.0, 40.0, 20.0]
    assert [float(pred[k]) for k in ("x", "y", "width", "height")] == [0.0, 0.0, 40.0, 20.0]
    assert ">dog</text>" in cell and ">cat</text>" in cell and "score=0.75" in cell
    # toggling layers: config, and the live toggle redraws the same page
    only_truth = TablePanel(box_layers=["truth"]).build(view).frame["image"][0]
    assert [r["data-layer"] for r in rects(only_truth)] == ["truth"]
    assert rects(TablePanel(box_layers=[]).build(view).frame["image"][0]) == []
    (toggle,) = [w for w in paged.extra if getattr(w, "label", None) == "box layers"]
    toggle.value = ["pred"]
    assert [r["data-layer"] for r in rects(paged.frame["image"][0])] == ["pred"]
    assert paged.fetches == 1


def test_masks_are_drawn_into_the_thumbnail(boxed) -> None:
    view = View.of(boxed)
    with_mask = TablePanel(box_layers=[]).build(view).frame["image"][0]
    (png,) = decoded_pngs(with_mask)
    rgba = np.asarray(png.convert("RGBA"))
    assert rgba.shape == (20, 40, 4)
    assert (rgba[:10, :20, :3].sum(axis=2) > 0).all()  # class 1 blended over black
    assert (rgba[10:, 20:, :3] == 0).all()  # class 0 (background) left as it was
    without = TablePanel(box_layers=[], mask_layers=[]).build(view).frame["image"][0]
    (plain,) = decoded_pngs(without)
    assert (np.asarray(plain.convert("RGB")) == 0).all()


def test_image_cell_without_bytes_and_big_images_shrink() -> None:
    assert "no image" in image_cell(None, ImageType())
    big = Image(np.full((300, 150, 3), 200, dtype=np.uint8))
    record = {"data": big.data, "width": 150, "height": 300}
    (png,) = decoded_pngs(image_cell(record, ImageType(), size=64))
    assert max(png.size) == 64 and png.size == (32, 64)


def test_layer_config_is_checked_against_the_view(boxed) -> None:
    view_type = View.of(boxed).type
    TablePanel.validate_config({"box_layers": ["pred"]}, view_type)
    with pytest.raises(ValidationError, match="unknown layer `boxes`"):
        TablePanel.validate_config({"box_layers": ["boxes"]}, view_type)
    with pytest.raises(ValidationError, match="unknown column `nope`"):
        TablePanel.validate_config({"columns": ["nope"]}, view_type)
    with pytest.raises(ValidationError):
        TablePanel.validate_config({"page_size": 0}, view_type)


def bar_counts(cell: str) -> list[int]:
    return [int(r["data-count"]) for r in rects(cell)]


def bar_heights(cell: str) -> list[float]:
    return [float(r["height"]) for r in rects(cell)]


def test_histogram_cell_heights_are_proportional_to_counts() -> None:
    cell = histogram_cell([1, 4, 2, 0], [0, 1, 2, 3, 4], height=20)
    assert bar_counts(cell) == [1, 4, 2, 0]
    assert bar_heights(cell) == [5.0, 20.0, 10.0, 0.0]
    assert "7 values" in cell


def test_grouped_numbers_are_mini_histograms_of_each_group(digits, digits_df) -> None:
    view = View.of(digits).with_query(group_by=["target"], sort=["target"])
    paged = TablePanel(columns=["target", "count", "pixel_2_2", "image"], page_size=4).build(view)
    assert paged.total == 10 and paged.status == "groups 1-4 of 10"
    grouped = paged.page_table.column("pixel_2_2").to_pylist()
    edges = np.asarray(grouped[0]["edges"])  # groups of ~180 rows: the engine bins them
    for target, count, cell in zip(
        paged.frame["target"], paged.frame["count"], paged.frame["pixel_2_2"]
    ):
        values = digits_df.loc[digits_df["target"].astype(str) == target, "pixel_2_2"]
        expected, _ = np.histogram(values, bins=edges)
        assert bar_counts(cell) == expected.tolist() and sum(bar_counts(cell)) == count
        heights = bar_heights(cell)
        top = max(expected)
        np.testing.assert_allclose(heights, expected / top * 28, atol=0.01)
    assert len(decoded_pngs(paged.frame["image"][0])) == 4 and "+" in paged.frame["image"][0]
    paged.next()
    assert paged.frame["target"].tolist() == ["4", "5", "6", "7"]


def test_small_groups_are_binned_from_their_values() -> None:
    df = pd.DataFrame({"g": ["a", "a", "a", "b", "b", "b"], "x": [0.0, 1.0, 1.0, 2.0, 2.0, 3.0]})
    view = View.of(Table(dataframe=df)).with_query(group_by=["g"], sort=["g"])
    paged = TablePanel().build(view)
    assert paged.page_table.column("x").to_pylist()[0] == [0.0, 1.0, 1.0]
    edges = np.linspace(0.0, 3.0, 13)  # shared by the page
    for g, cell in zip(paged.frame["g"], paged.frame["x"]):
        expected, _ = np.histogram(df.loc[df["g"] == g, "x"], bins=edges)
        assert bar_counts(cell) == expected.tolist()


def test_compared_number_cell_has_one_bar_per_source() -> None:
    cell = compared_number_cell({"v0": 2.0, "v1": 1.0, "v2": None}, scale=4.0, height=20)
    assert bar_heights(cell) == [10.0, 5.0, 0.0]
    assert [r["data-value"] for r in rects(cell)] == ["2", "1", "null"]


def two_versions() -> Engine:
    a = pd.DataFrame({"id": [1, 2, 3, 4], "g": list("xxyy"), "score": [0.5, 1.0, 2.0, 4.0]})
    b = pd.DataFrame({"id": [1, 2, 3, 5], "g": list("xxyy"), "score": [1.0, 0.5, 4.0, 8.0]})
    return Engine({"a": Table(dataframe=a), "b": Table(dataframe=b)})


def test_compared_numbers_in_a_comparison_view_share_a_scale() -> None:
    query = Query(table="a", compare_with={"table": "b", "on": "id"})
    paged = TablePanel().build(View(two_versions(), query))
    assert paged.total == 5
    cells = dict(zip(paged.frame["id"], paged.frame["score"]))
    # page scale = 8 (largest magnitude); bars are 20 px at most
    assert bar_heights(cells[1]) == [1.25, 2.5]
    assert bar_heights(cells[4]) == [10.0, 0.0] and "null" in cells[4]
    assert bar_heights(cells[5]) == [0.0, 20.0]


def test_compared_lists_are_mini_multi_histograms() -> None:
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, group_by=["0.g"])
    view = View(two_versions(), query)
    paged = TablePanel().build(view)
    frame = paged.frame.set_index("0.g")
    edges = np.linspace(0.5, 8.0, 13)
    got = bar_counts(frame.loc["x", "score"])
    a, _ = np.histogram([0.5, 1.0], bins=edges)
    b, _ = np.histogram([1.0, 0.5], bins=edges)
    assert got == a.tolist() + b.tolist() and a[0] == 2  # one series of bars per source
    cell = compared_histogram_cell({"a": [1, 3], "b": [2, 0]}, [0, 1, 2], height=30)
    assert bar_heights(cell) == [10.0, 30.0, 20.0, 0.0]  # a: 1, 3 then b: 2, 0 (top 3)


def test_cell_renderer_other_values_are_escaped_text() -> None:
    df = pd.DataFrame({"meta": [{"a": "<b>", "n": 1}, None]})
    paged = TablePanel().build(View.of(Table(dataframe=df)))
    assert "&lt;b&gt;" in paged.frame["meta"][0] and "null" in paged.frame["meta"][1]
    assert paged.tabulator.formatters["meta"] == {"type": "html"}


# --------------------------------------------------------------------------- registry


def test_registry_offers_the_table_last_with_every_column(digits) -> None:
    matches = registry.compatible(View.of(digits).type)
    kinds = [m.kind for m in matches]
    assert "table" in kinds and kinds[-1] == "table"
    table = matches[-1]
    assert table.score == min(m.score for m in matches) == 0.0
    assert table.config.model_dump() == {
        "columns": [],
        "page_size": 50,
        "precision": 4,
        "thumbnail_size": 64,
        "box_layers": None,
        "mask_layers": None,
        "selected": "first",
    }
    records = Table(dataframe=pd.DataFrame({"meta": [{"a": 1}, {"a": 2}]}))
    assert [m.kind for m in registry.compatible(View.of(records).type)] == ["table"]
    texts = Table(dataframe=pd.DataFrame({"s": ["a", "b"]}))
    assert [m.kind for m in registry.compatible(View.of(texts).type)][-1] == "table"


def test_render_through_the_registry(digits) -> None:
    view = View.of(digits)
    obj = registry.render_object("table", view, {"page_size": 10, "columns": ["target"]})
    assert isinstance(obj, pn.Column)
    (tabulator,) = [o for o in obj.select(pn.widgets.Tabulator)]
    assert tabulator.value["target"].tolist() == [str(i) for i in range(10)]


def test_pager_works_on_any_view_without_a_panel(digits) -> None:
    cells = CellRenderer(precision=1)
    paged = PagedTable(View.of(digits), ["pixel_0_2"], page_size=3, cells=cells)
    assert paged.names == ["pixel_0_2"] and paged.page_table.num_rows == 3


def test_times_booleans_and_all_null_columns() -> None:
    df = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-03-01", "2023-01-02", None]),
            "ok": [True, None, False],
            "empty": [None, None, None],
            "n": [1.5, None, float("nan")],
        }
    )
    paged = TablePanel().build(View.of(Table(dataframe=df)))
    assert paged.frame["when"].tolist() == ["2024-03-01 00:00:00", "2023-01-02 00:00:00", None]
    assert paged.frame["ok"].tolist() == [True, None, False]
    assert paged.frame["n"].iloc[0] == 1.5 and paged.frame["n"].iloc[1:].isna().all()
    assert len(paged.frame["empty"]) == 3
    seen = []
    paged.on_sort = seen.append
    paged.apply_sorters([{"field": "when", "dir": "asc"}])
    assert paged.frame["when"].tolist() == ["2023-01-02 00:00:00", "2024-03-01 00:00:00", None]
    assert seen == [paged.view.query] and seen[0].sort[0].column == "when"


def test_the_views_sort_shows_as_header_arrows(digits) -> None:
    view = View.of(digits).with_query(sort=["-pixel_0_3", "target"])
    paged = TablePanel(page_size=5).build(view)
    assert paged.tabulator.sorters == [
        {"field": "pixel_0_3", "dir": "desc"},
        {"field": "target", "dir": "asc"},
    ]
    assert paged.fetches == 1  # showing the arrows fetched nothing more
