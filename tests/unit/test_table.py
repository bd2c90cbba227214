"""Table, JoinedTable and inference: constructors, type checks, round trips, bad input."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from panels_core.data.infer import SAMPLE_ROWS, sample_rows
from panels_core.data.media import Classes, Image
from panels_core.data.table import JoinedTable, Table, infer_table_type
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TableType,
    TimestampType,
    UnknownType,
)

NUM = NumberType()
INT = NumberType(integer=True)

HELLO = [
    [0.2, 0.4, 0.1, 0.7, 0.5],
    [0.3, 0.1, 0.9, 0.2, 0.7],
    [0.4, 0.5, 0.2, 0.2, 0.1],
]


def test_hello_world_rows_are_five_number_columns():
    table = Table(columns=["D1", "D2", "D3", "D4", "D5"], data=HELLO)
    assert len(table) == 3
    assert table.type == TableType(columns={f"D{i}": NUM for i in range(1, 6)})
    assert table.to_arrow().column("D3").to_pylist() == [0.1, 0.9, 0.2]


def test_dataframe_with_images_embeddings_and_categories():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 17, size=(30, 64))
    df = pd.DataFrame(pixels.astype(float), columns=[f"p{i}" for i in range(64)])
    df["target"] = [str(i % 10) for i in range(30)]
    df["image"] = [Image(row.reshape(8, 8) / 16.0) for row in pixels]
    df["embedding"] = list(pixels.astype(np.float32))
    table = Table(dataframe=df)
    t = table.type.columns
    assert t["p0"] == NUM
    assert t["target"] == CategoryType(categories=tuple(str(i) for i in range(10)))
    assert t["image"] == ImageType()
    assert t["embedding"] == EmbeddingType(dim=64)
    arrow = table.to_arrow()
    # images live in Arrow as encoded PNG bytes, not Python objects
    first = arrow.column("image")[0].as_py()
    assert first["data"].startswith(b"\x89PNG") and (first["width"], first["height"]) == (8, 8)
    emb = table.get_column("embedding", convert_to="numpy")
    np.testing.assert_array_equal(emb, pixels.astype(np.float32))
    back = table.to_pandas()
    assert isinstance(back["image"][3], Image)
    np.testing.assert_array_equal(
        back["image"][3].to_numpy(), np.rint(pixels[3].reshape(8, 8) / 16 * 255).astype(np.uint8)
    )


class _ArrowStreamOnly:
    """Stands in for polars & co: exposes only the Arrow PyCapsule stream."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def test_dataframe_accepts_the_arrow_stream_interface():
    source = pa.table({"x": [1, 2, 3], "label": ["a", "b", "a"]})
    table = Table(dataframe=_ArrowStreamOnly(source))
    assert table.to_arrow().equals(source)
    assert table.type.columns["x"] == INT


def test_from_arrow_is_zero_copy_and_typed():
    source = pa.table(
        {
            "emb": pa.array([[1.0, 2.0], [3.0, 4.0], None], pa.list_(pa.float32(), 2)),
            "ragged": pa.array([[1.0], [1.0, 2.0], [3.0]]),
            "same_len": pa.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, 0.0, 0.0]]),
            "tags": pa.array([["a"], ["b", "c"], []]),
            "flag": [True, False, None],
            "when": pa.array([0, 1, 2], pa.timestamp("ms", tz="UTC")),
            "cat": pa.array(["x", "y", "x"]).dictionary_encode(),
            "rec": pa.array([{"s": 1.0}, {"s": 2.0}, {"s": 3.0}]),
        }
    )
    table = Table.from_arrow(source)
    assert table.to_arrow() is source
    assert table.type.columns == {
        "emb": OptionalType(inner=EmbeddingType(dim=2)),
        "ragged": ListType(item=NUM),
        "same_len": EmbeddingType(dim=3),
        "tags": ListType(item=StringType()),
        "flag": OptionalType(inner=BooleanType()),
        "when": TimestampType(unit="ms", tz="UTC"),
        "cat": CategoryType(categories=("x", "y")),
        "rec": StructType(fields={"s": NUM}),
    }


def test_add_data_is_buffered_and_checked():
    table = Table(columns=["id", "score", "emb"])
    for i in range(1000):
        table.add_data(i, i / 10, np.full(4, i, dtype=np.float32))
    assert len(table) == 1000
    assert len(table._pending) == 1000  # nothing converted yet: no Arrow concat per row
    arrow = table.to_arrow()
    assert table._pending == []
    assert arrow.column("id").num_chunks == 1
    assert arrow.column("score").to_pylist()[:3] == [0.0, 0.1, 0.2]
    assert table.type.columns["emb"] == EmbeddingType(dim=4)
    table.add_data(1000, 100.0, np.zeros(4, dtype=np.float32))
    assert len(table.to_arrow()) == 1001


def test_add_data_mixed_type_names_column_row_and_types_and_keeps_rows():
    table = Table(columns=["label", "score"], data=[["cat", 0.5], ["dog", 0.7]])
    with pytest.raises(TypeError) as err:
        table.add_data("bird", "high")
    message = str(err.value)
    assert "column `score`" in message and "row 2" in message
    assert "string" in message and "number" in message and "allow_mixed_types" in message
    assert len(table) == 2
    assert table.to_arrow().column("label").to_pylist() == ["cat", "dog"]


def test_mixed_types_in_data_raise_unless_allowed():
    with pytest.raises(TypeError, match=r"column `x`, row 2: string value 'a'"):
        Table(columns=["x"], data=[[1], [2.5], ["a"]])
    table = Table(columns=["x"], data=[[1], [2.5], ["a"], [None]], allow_mixed_types=True)
    assert table.type.columns["x"] == AnyType()
    assert table.to_pandas()["x"].tolist() == [1, 2.5, "a", None]


def test_row_length_errors_name_the_row():
    with pytest.raises(
        ValueError, match=r"row 1 has 1 values but the table has 2 columns \(a, b\)"
    ):
        Table(columns=["a", "b"], data=[[1, 2], [3]])
    table = Table(columns=["a", "b"])
    with pytest.raises(ValueError, match="row 0 has 3 values"):
        table.add_data(1, 2, 3)


def test_add_col_and_computed_columns():
    table = Table(columns=["x"], data=[[1.0], [2.0], [3.0]])
    table.add_col("emb", np.arange(6, dtype=np.float32).reshape(3, 2))
    assert table.type.columns["emb"] == EmbeddingType(dim=2)
    table.add_computed_columns(lambda row, index: {"double": row["x"] * 2, "index": index})
    arrow = table.to_arrow()
    assert arrow.column("double").to_pylist() == [2.0, 4.0, 6.0]
    assert arrow.column("index").to_pylist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"add_col\(`y`\): 2 values for a table of 3 rows"):
        table.add_col("y", [1, 2])
    with pytest.raises(ValueError, match="already has a column `x`"):
        table.add_col("x", [1, 2, 3])


def test_ragged_embeddings_become_a_list_type():
    table = Table(columns=["e"], data=[[[1.0, 2.0]], [[1.0, 2.0, 3.0]]])
    assert table.type.columns["e"] == ListType(item=NUM)


def test_nan_and_inf_are_kept():
    table = Table(columns=["x", "e"], data=[[np.nan, [np.inf, 1.0]], [1.0, [0.0, np.nan]]])
    x = table.get_column("x", convert_to="numpy")
    assert np.isnan(x[0]) and x[1] == 1.0
    e = table.get_column("e", convert_to="numpy")
    assert np.isinf(e[0, 0]) and np.isnan(e[1, 1])
    assert table.type.columns["e"] == EmbeddingType(dim=2)


def test_dtypes_override_wins_and_is_checked():
    table = Table(
        columns=["label", "name"],
        data=[[i % 3, f"n{i}"] for i in range(9)],
        dtypes={"label": "category"},
    )
    assert table.type.columns["label"] == CategoryType(categories=(0, 1, 2))
    with pytest.raises(KeyError, match="not columns"):
        Table(columns=["a"], data=[[1]], dtypes={"b": "category"})
    with pytest.raises(TypeError, match=r"cannot treat .* as embedding"):
        Table(columns=["a"], data=[["x"]], dtypes={"a": "embedding"}).type


def test_empty_table_and_unusual_names():
    table = Table(columns=["class", "my col", "größe"])
    assert len(table) == 0
    assert table.type.columns == {
        "class": OptionalType(inner=UnknownType()),
        "my col": OptionalType(inner=UnknownType()),
        "größe": OptionalType(inner=UnknownType()),
    }
    with pytest.raises(ValueError, match="appears twice"):
        Table(columns=["a", "a"])
    with pytest.raises(ValueError, match="cannot be empty"):
        Table(columns=[""])


def test_unstorable_value_is_refused_clearly():
    with pytest.raises(TypeError, match=r"column `obj`, row 0: a object cannot be stored"):
        Table(columns=["obj"], data=[[object()]])


def test_category_by_cardinality_and_bounded_sample():
    many = Table(columns=["s"], data=[[f"id-{i}"] for i in range(500)])
    few = Table(columns=["s"], data=[[f"c{i % 5}"] for i in range(500)])
    assert many.type.columns["s"] == StringType()
    assert few.type.columns["s"] == CategoryType(categories=("c0", "c1", "c2", "c3", "c4"))
    big = pa.table({"x": np.arange(3_000_000)})
    sample = sample_rows(big)
    assert sample.num_rows <= SAMPLE_ROWS
    # the sample spans the table, not only its head
    assert sample.column("x")[sample.num_rows - 1].as_py() == 2_999_999
    assert infer_table_type(big) == TableType(columns={"x": INT})


# --------------------------------------------------------------------------- images


def _png_bytes(size=(6, 4), color=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_sources(tmp_path):
    path = tmp_path / "red.png"
    path.write_bytes(_png_bytes())
    from_path = Image(path)
    from_pil = Image(PILImage.new("RGB", (6, 4), (255, 0, 0)))
    from_bytes = Image(_png_bytes())
    from_float = Image(np.ones((4, 6)) * 0.5)
    from_rgba = Image(np.zeros((4, 6, 4), dtype=np.uint8))
    for image in (from_path, from_pil, from_bytes, from_float, from_rgba):
        assert (image.width, image.height) == (6, 4)
    assert from_path.to_numpy()[0, 0].tolist() == [255, 0, 0]
    assert from_float.to_numpy()[0, 0] == 128
    assert from_path.sha256 == from_bytes.sha256


def test_image_bad_input(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not an image")
    with pytest.raises(ValueError, match=r"image file `.*notes.txt` is not an image"):
        Image(bogus)
    with pytest.raises(ValueError, match="cannot read"):
        Image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"float pixels must lie in \[0, 1\]"):
        Image(np.full((2, 2), -1.0))
    with pytest.raises(ValueError, match="NaN"):
        Image(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="mask shape"):
        Image(np.zeros((4, 4)), masks={"seg": np.zeros((3, 3), dtype=int)})
    with pytest.raises(ValueError, match="needs minX/maxX/minY/maxY or middle/width/height"):
        Image(np.zeros((4, 4)), boxes={"gt": [{"position": {"x": 1}, "class_id": 1}]})
    with pytest.raises(ValueError, match="id 1 is named both"):
        Classes([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])
    with pytest.raises(ValueError, match="column `image`, row 1"):
        Table(columns=["image"], data=[[Image(np.zeros((2, 2)))], [b"\x89PNG\r\n\x1a\nbroken"]])


def test_boxes_masks_classes_and_thumbnail():
    classes = Classes([{"id": 0, "name": "cat"}, {"id": 13, "name": "car"}])
    image = Image(
        np.zeros((100, 200, 3), dtype=np.uint8),
        boxes={
            "ground_truth": [
                {
                    "position": {"minX": 20, "maxX": 60, "minY": 10, "maxY": 50},
                    "domain": "pixel",
                    "class_id": 13,
                    "scores": {"iou": 0.75},
                },
                {"position": {"middle": [0.5, 0.5], "width": 0.2, "height": 0.4}, "class_id": 0},
            ]
        },
        masks={"prediction": np.eye(100, 200, dtype=np.uint8) * 13},
        classes=classes,
    )
    first, second = image.boxes["ground_truth"]
    assert (first["x_min"], first["x_max"], first["y_min"], first["y_max"]) == (0.1, 0.3, 0.1, 0.5)
    assert first["scores"] == {"iou": 0.75}
    assert second["x_min"] == pytest.approx(0.4) and second["y_max"] == pytest.approx(0.7)
    assert image.mask("prediction")[5, 5] == 13
    assert classes.name_of(13) == "car" and classes.name_of(7) == "class 7"
    thumb = PILImage.open(io.BytesIO(image.thumbnail(64)))
    assert thumb.size == (64, 32)
    table = Table(columns=["image"], data=[[image], [None]])
    assert table.type.columns["image"] == OptionalType(
        inner=ImageType(
            box_layers=("ground_truth",), mask_layers=("prediction",), classes=tuple(classes)
        )
    )
    boxes = table.to_arrow().column("image")[0].as_py()["boxes"]["ground_truth"]
    assert [b["class_id"] for b in boxes] == [13, 0]


def test_save_and_open_round_trip_with_media(tmp_path):
    image = Image(
        np.arange(64, dtype=np.uint8).reshape(8, 8),
        boxes={
            "gt": [
                {"position": {"minX": 0.1, "maxX": 0.4, "minY": 0.2, "maxY": 0.9}, "class_id": 2}
            ]
        },
        classes=Classes([{"id": 2, "name": "two"}]),
    )
    table = Table(
        columns=["id", "image", "label", "emb"],
        data=[[1, image, "a", [0.0, 1.0]], [2, None, "b", [2.0, 3.0]]],
        dtypes={"label": "category"},
    )
    path = table.save(tmp_path / "t.parquet")
    back = Table.from_parquet(path)
    assert back.type == table.type
    assert back.to_arrow().equals(table.to_arrow())
    assert back.equals(table)
    restored = back.to_pandas()["image"][0]
    assert restored == image
    assert restored.classes.name_of(2) == "two"


def test_parquet_table_is_lazy(tmp_path, monkeypatch):
    path = tmp_path / "big.parquet"
    pq.write_table(
        pa.table({"x": np.arange(10_000), "s": ["a", "b"] * 5_000}), path, row_group_size=1000
    )

    def refuse(*args, **kwargs):
        raise AssertionError("rows were read")

    monkeypatch.setattr(pq, "read_table", refuse)
    table = Table.from_parquet(path)
    assert len(table) == 10_000
    assert table.parquet_path == path.resolve()
    assert table.type == TableType(columns={"x": INT, "s": CategoryType(categories=("a", "b"))})
    monkeypatch.undo()
    assert table.to_arrow().num_rows == 10_000


def test_truncated_parquet_gets_a_clear_error(tmp_path):
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"x": np.arange(1000)}), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        ValueError, match=r"`.*cut.parquet` is not a readable Parquet file .* truncated"
    ):
        Table.from_parquet(path)


def test_joined_table_type_and_errors():
    left = Table(columns=["id", "image_path"], data=[[1, "a.png"], [2, "b.png"]])
    right = Table(columns=["image_id", "score"], data=[[1, 0.5], [3, 0.1]])
    joined = JoinedTable(left, right, ("id", "image_id"), names=("data", "preds"))
    assert joined.type == JoinedTableType(
        left=left.type,
        right=right.type,
        left_key="id",
        right_key="image_id",
        left_name="data",
        right_name="preds",
    )
    with pytest.raises(KeyError, match="`uid` is not a column of the right table"):
        JoinedTable(left, right, ("id", "uid"))
    with pytest.raises(TypeError, match=r"cannot join category\(2\) `image_path` with number `score`"):
        JoinedTable(left, right, ("image_path", "score"))
