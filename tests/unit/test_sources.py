"""open_table: each reader gives the values and types written, and bad input names the file and line."""

from __future__ import annotations

import datetime
import html
import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from panels_core.data.media import Image
from panels_core.data.sources import open_table, wandb_type_to_datatype
from panels_core.data.sources.csv_reader import sniff_delimiter
from panels_core.data.table import JoinedTable, Table
from panels_core.types import (
    BooleanType,
    CategoryType,
    ClassLabel,
    EmbeddingType,
    ImageType,
    ListType,
    NumberType,
    OptionalType,
    PlotType,
    StringType,
    StructType,
    UnknownType,
    VideoType,
)

# --------------------------------------------------------------------------- Parquet


def _odd_names_table() -> Table:
    return Table(
        columns=["class", "my col", "größe", "emb"],
        data=[
            [1, "a", 1.5, [0.0, 1.0]],
            [2, "b", None, [2.0, 3.0]],
            [3, "a", 2.5, [4.0, 5.0]],
        ],
    )


def test_parquet_open_reads_no_rows(tmp_path, monkeypatch):
    original = _odd_names_table()
    path = original.save(tmp_path / "t.parquet")

    def no_reading(*args, **kwargs):
        raise AssertionError("rows were read on open")

    monkeypatch.setattr(pq, "read_table", no_reading)
    table = open_table(path)
    assert isinstance(table, Table)
    assert table._arrow is None
    assert table.parquet_path == path.resolve()
    assert len(table) == 3
    assert table.columns == ["class", "my col", "größe", "emb"]
    assert table.schema.field("größe").type == pa.float64()
    assert table.type == original.type  # from the file's metadata, still no rows read
    assert table._arrow is None
    monkeypatch.undo()
    assert table.to_arrow().to_pylist() == original.to_arrow().to_pylist()
    assert table.equals(original)


def test_parquet_round_trip_keeps_odd_names_images_and_empty(tmp_path):
    img = Image(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    table = Table(columns=["class", "my col", "größe"], data=[[1, img, "x"], [2, None, "y"]])
    back = open_table(table.save(tmp_path / "odd.parquet"))
    assert back.equals(table)
    assert back.get_column("my col")[0].data == img.data
    assert back.get_column("my col")[1] is None

    empty = Table(columns=["a b", "ß"])
    back = open_table(empty.save(tmp_path / "empty.parquet"))
    assert len(back) == 0
    assert back.columns == ["a b", "ß"]
    assert back.type == empty.type


def test_parquet_dtypes_override_and_magic_detection(tmp_path):
    arrow = pa.table({"label": [1, 2, 1, 2], "x": [0.5, 1.5, 2.5, 3.5]})
    pq.write_table(arrow, tmp_path / "data.bin")  # no telling suffix: found by its magic bytes
    table = open_table(tmp_path / "data.bin", dtypes={"label": "category"})
    assert table.type.columns["label"] == CategoryType(categories=(1, 2))
    assert table.type.columns["x"] == NumberType()
    assert table.to_arrow().equals(arrow)


def test_truncated_parquet_names_the_file(tmp_path):
    path = _odd_names_table().save(tmp_path / "cut.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        ValueError, match=r"`.*cut\.parquet` is not a readable Parquet file.*truncated"
    ):
        open_table(path)


# --------------------------------------------------------------------------- CSV


def test_csv_values_and_types(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,score,label,my col\n1,0.5,cat,x\n2,1.5,dog,y\n3,,cat,z\n")
    table = open_table(path)
    assert table.to_arrow().to_pylist() == [
        {"id": 1, "score": 0.5, "label": "cat", "my col": "x"},
        {"id": 2, "score": 1.5, "label": "dog", "my col": "y"},
        {"id": 3, "score": None, "label": "cat", "my col": "z"},
    ]
    assert table.type.columns["id"] == NumberType(integer=True)
    assert table.type.columns["score"] == OptionalType(inner=NumberType())
    assert table.type.columns["label"] == CategoryType(categories=("cat", "dog"))


def test_tsv_and_delimiter_option(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\tx\n2\ty\n")
    assert open_table(tsv).to_arrow().to_pydict() == {"a": [1, 2], "b": ["x", "y"]}
    semi = tmp_path / "t.csv"
    semi.write_text("a;b\n1;x\n")
    assert open_table(semi, delimiter=";").to_arrow().to_pydict() == {"a": [1], "b": ["x"]}


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiter_is_sniffed(tmp_path, delimiter):
    rows = [["id", "score", "label"], ["1", "0,5" if delimiter == ";" else "0.5", "cat"]]
    rows += [["2", "1.5", "dog"], ["3", "", "cat"]]
    path = tmp_path / "t.csv"
    path.write_text("".join(delimiter.join(row) + "\n" for row in rows))
    expected = {"id": [1, 2, 3], "label": ["cat", "dog", "cat"]}
    data = open_table(path).to_arrow().to_pydict()
    assert {k: data[k] for k in expected} == expected
    assert list(data) == ["id", "score", "label"]
    # a decimal comma under `;` keeps its column as text: the sniffer chose `;`, not `,`
    assert data["score"] == (["0,5", "1.5", ""] if delimiter == ";" else [0.5, 1.5, None])


def test_forced_delimiter_wins_over_the_sniffed_one(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b,c\n1;2,3\n4;5,6\n")  # `;` and `,` both split it evenly
    assert list(open_table(path).to_arrow().to_pydict()) == ["a;b", "c"]
    assert open_table(path, delimiter=";").to_arrow().to_pydict() == {
        "a": [1, 4],
        "b,c": ["2,3", "5,6"],
    }
    with pytest.raises(ValueError, match=r"`.*t\.csv`: the delimiter must be one character.*';;'"):
        open_table(path, delimiter=";;")


def test_one_column_csv_opens(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("name\nalpha\nbeta gamma\n")
    assert open_table(path).to_arrow().to_pydict() == {"name": ["alpha", "beta gamma"]}


def test_sniff_delimiter_on_text():
    assert sniff_delimiter("a|b|c\n1|2|3\n") == "|"
    assert sniff_delimiter("a\tb\n1\t2\n", default=",") == "\t"
    assert sniff_delimiter("x\n1\n", default="\t") == "\t"  # one column: the default
    # ragged lines: the default, so the reader's error names the bad line
    assert sniff_delimiter("a,b,c\n1,2,3\n4,5\n") == ","
    assert sniff_delimiter("a;b\n1;2\n3;4;5;6;7;8;9", default=",") == ";"  # cut last line ignored


def test_corrupt_csv_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n7,8\n9,10,11\n")
    with pytest.raises(
        ValueError, match=r"`.*bad\.csv`: line 4 has 2 values but the header names 3"
    ):
        open_table(path)


def test_csv_mixed_column_is_text_and_forcing_numbers_names_the_value(tmp_path):
    path = tmp_path / "late.csv"
    path.write_text("n,m\n" + "1,2\n" * 400_000 + "oops,3\n")
    table = open_table(path)  # a late string keeps the whole column as text: nothing is lost
    assert table.schema.field("n").type == pa.string()
    assert table.get_column("n")[-1] == "oops"
    assert table.type.columns["m"] == NumberType(integer=True)
    with pytest.raises(
        ValueError, match=r"column `n` cannot be read as double: it holds 'oops'.*\"n\": \"string\""
    ):
        open_table(path, dtypes={"n": "number"})


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match=r"`.*empty\.csv`: the file is empty"):
        open_table(path)


# --------------------------------------------------------------------------- Arrow IPC


def test_arrow_ipc_feather_and_stream(tmp_path):
    arrow = pa.table({"x": [1.0, 2.0, 3.0], "name": ["a", "b", "c"]})
    feather.write_feather(arrow, tmp_path / "t.feather")
    with ipc.new_file(tmp_path / "t.arrow", arrow.schema) as writer:
        writer.write_table(arrow)
    with ipc.new_stream(tmp_path / "t.arrows", arrow.schema) as writer:
        writer.write_table(arrow)
    for name in ("t.feather", "t.arrow", "t.arrows"):
        table = open_table(tmp_path / name)
        assert table.to_arrow().equals(arrow), name
        assert table.type.columns["x"] == NumberType()


def test_arrow_ipc_is_memory_mapped(tmp_path):
    values = np.arange(2_000_000, dtype=np.float64)
    with ipc.new_file(tmp_path / "big.ipc", pa.schema([("v", pa.float64())])) as writer:
        writer.write_table(pa.table({"v": values}))
    before = pa.total_allocated_bytes()
    table = open_table(tmp_path / "big.ipc")
    arrow = table.to_arrow()
    grown = pa.total_allocated_bytes() - before
    assert arrow.num_rows == 2_000_000
    assert arrow.column("v")[1_999_999].as_py() == 1_999_999.0
    assert grown < values.nbytes / 10  # the 16 MB of values stay in the mapped file


def test_corrupt_arrow_file(tmp_path):
    path = tmp_path / "bad.arrow"
    path.write_bytes(b"ARROW1\x00\x00garbage")
    with pytest.raises(ValueError, match=r"`.*bad\.arrow`.*truncated"):
        open_table(path)


# --------------------------------------------------------------------------- W&B


def _png(path, value, size=(6, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.full(size, value, dtype=np.uint8)).save(path)


def _wandb_export(tmp_path):
    _png(tmp_path / "media/images/a.png", 10)
    _png(tmp_path / "media/images/b.png", 200)
    mask = np.zeros((6, 4), dtype=np.uint8)
    mask[2:, :] = 1
    PILImage.fromarray(mask).save(tmp_path / "media/images/a.mask.png")
    (tmp_path / "media/classes").mkdir(parents=True)
    (tmp_path / "media/classes/c_cls.classes.json").write_text(
        json.dumps(
            {"_type": "classes", "class_set": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
        )
    )
    box = {
        "position": {"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.6},
        "class_id": 1,
        "box_caption": "cat",
        "scores": {"conf": 0.75},
    }
    image_a = {
        "_type": "image-file",
        "path": "media/images/a.png",
        "format": "png",
        "width": 4,
        "height": 6,
        "boxes": {"pred": [box]},
        "masks": {"seg": {"_type": "mask", "path": "media/images/a.mask.png"}},
        "classes": {"type": "classes-file", "path": "media/classes/c_cls.classes.json"},
    }
    image_b = {"_type": "image-file", "path": "media/images/b.png", "format": "png"}
    doc = {
        "_type": "table",
        "columns": ["id", "class", "score", "ok", "vec", "img", "empty"],
        "data": [
            [0, "cat", 0.5, True, [1.0, 2.0, 3.0], image_a, None],
            [1, "dog", None, False, [4.0, 5.0, 6.0], image_b, None],
            [2, "cat", 1.5, True, [7.0, 8.0, 9.0], None, None],
        ],
        "ncols": 7,
        "nrows": 3,
        "column_types": {
            "wb_type": "typedDict",
            "params": {
                "type_map": {
                    "id": {"wb_type": "number"},
                    "class": {"wb_type": "string"},
                    "score": {
                        "wb_type": "union",
                        "params": {"allowed_types": [{"wb_type": "none"}, {"wb_type": "number"}]},
                    },
                    "ok": {"wb_type": "boolean"},
                    "vec": {
                        "wb_type": "list",
                        "params": {"element_type": {"wb_type": "number"}, "length": 3},
                    },
                    "img": {
                        "wb_type": "image-file",
                        "params": {"class_map": {"1": "cat", "2": "dog"}},
                    },
                    "empty": {
                        "wb_type": "union",
                        "params": {"allowed_types": [{"wb_type": "none"}, {"wb_type": "number"}]},
                    },
                }
            },
        },
    }
    path = tmp_path / "preds.table.json"
    path.write_text(json.dumps(doc))
    return path, doc


def test_wandb_table_values_types_and_images(tmp_path):
    path, _ = _wandb_export(tmp_path)
    table = open_table(path)
    t = table.type.columns
    assert t["id"] == NumberType(integer=True)
    assert t["class"] == CategoryType(categories=("cat", "dog"))
    assert t["score"] == OptionalType(inner=NumberType())
    assert t["ok"] == BooleanType()
    assert t["vec"] == EmbeddingType(dim=3)
    assert t["empty"] == OptionalType(inner=NumberType())  # all null: typed by column_types
    assert t["img"] == OptionalType(
        inner=ImageType(
            box_layers=("pred",),
            mask_layers=("seg",),
            classes=(ClassLabel(id=1, name="cat"), ClassLabel(id=2, name="dog")),
        )
    )
    assert table.get_column("vec") == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    a, b, missing = table.get_column("img")
    assert missing is None
    assert a.data == (tmp_path / "media/images/a.png").read_bytes()
    assert b.to_numpy()[0, 0] == 200
    (box,) = a.boxes["pred"]
    assert (box["x_min"], box["y_min"], box["x_max"], box["y_max"]) == (0.1, 0.2, 0.5, 0.6)
    assert box["class_id"] == 1 and box["scores"] == {"conf": 0.75}
    assert a.mask("seg")[:, 0].tolist() == [0, 0, 1, 1, 1, 1]
    assert a.classes.name_of(2) == "dog"


def test_wandb_boxes_from_a_run_file(tmp_path):
    _png(tmp_path / "media/images/a.png", 10)
    boxes = {
        "box_data": [
            {
                "position": {"middle": [2, 3], "width": 2, "height": 2},
                "domain": "pixel",
                "class_id": 7,
            }
        ],
        "class_labels": {"7": "bird"},
    }
    (tmp_path / "media/metadata/boxes2D").mkdir(parents=True)
    (tmp_path / "media/metadata/boxes2D/x.boxes2D.json").write_text(json.dumps(boxes))
    cell = {
        "_type": "image-file",
        "path": "media/images/a.png",
        "boxes": {"gt": {"_type": "boxes2D", "path": "media/metadata/boxes2D/x.boxes2D.json"}},
    }
    (tmp_path / "media/table").mkdir(parents=True)
    path = tmp_path / "media/table/t_1.table.json"  # run files: paths relative to the run root
    path.write_text(json.dumps({"columns": ["img"], "data": [[cell]]}))
    (image,) = open_table(path).get_column("img")
    (box,) = image.boxes["gt"]
    assert (box["x_min"], box["x_max"], box["y_min"], box["y_max"]) == (0.25, 0.75, 2 / 6, 4 / 6)
    assert image.classes.name_of(7) == "bird"


def test_wandb_row_of_wrong_length(tmp_path):
    path = tmp_path / "t.table.json"
    rows = [[i, "x", 0.5, True] for i in range(10)]
    rows[7] = [7, "x", 0.5]
    path.write_text(json.dumps({"columns": ["a", "b", "c", "d"], "data": rows}))
    with pytest.raises(
        ValueError, match=r"`.*t\.table\.json`: row 7 has 3 values but `columns` names 4"
    ):
        open_table(path)


def test_wandb_missing_image_file(tmp_path):
    path, _ = _wandb_export(tmp_path)
    (tmp_path / "media/images/b.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"column `img`, row 1: image file `media/images/b.png`"
    ):
        open_table(path)
    table = open_table(path, missing_media="null")
    assert [img is None for img in table.get_column("img")] == [False, True, True]


def test_wandb_mixed_column_names_file_column_and_row(tmp_path):
    path = tmp_path / "mixed.table.json"
    path.write_text(json.dumps({"columns": ["v"], "data": [[1], [2], ["three"]]}))
    with pytest.raises(TypeError, match=r"`.*mixed\.table\.json`: column `v`, row 2"):
        open_table(path)


def test_wandb_joined_table(tmp_path):
    (tmp_path / "left.table.json").write_text(
        json.dumps({"columns": ["id", "pred"], "data": [[1, "cat"], [2, "dog"]]})
    )
    (tmp_path / "right.table.json").write_text(
        json.dumps({"columns": ["key", "truth"], "data": [[2, "dog"], [1, "dog"]]})
    )
    path = tmp_path / "j.joined-table.json"
    path.write_text(
        json.dumps(
            {
                "_type": "joined-table",
                "table1": "left.table.json",
                "table2": "right.table.json",
                "join_key": ["id", "key"],
            }
        )
    )
    joined = open_table(path)
    assert isinstance(joined, JoinedTable)
    assert (joined.left_key, joined.right_key) == ("id", "key")
    assert joined.left.get_column("pred") == ["cat", "dog"]
    assert joined.right.get_column("key") == [2, 1]

    (tmp_path / "right.table.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"`table2` names `right\.table\.json`"):
        open_table(path)


def test_wandb_timestamps_and_numpy_columns(tmp_path):
    (tmp_path / "media/serialized_data").mkdir(parents=True)
    big = np.arange(2 * 200, dtype=np.float32).reshape(2, 200)
    np.savez_compressed(tmp_path / "media/serialized_data/feat_x.npz", feat=big)
    doc = {
        "columns": ["when", "feat"],
        "data": [[1_700_000_000_000, None], [None, None]],
        "column_types": {
            "wb_type": "typedDict",
            "params": {
                "type_map": {
                    "when": {
                        "wb_type": "union",
                        "params": {
                            "allowed_types": [{"wb_type": "none"}, {"wb_type": "timestamp"}]
                        },
                    },
                    "feat": {
                        "wb_type": "ndarray",
                        "params": {
                            "shape": [200],
                            "serialization_path": {
                                "path": "media/serialized_data/feat_x.npz",
                                "key": "feat",
                            },
                        },
                    },
                }
            },
        },
    }
    path = tmp_path / "t.table.json"
    path.write_text(json.dumps(doc))
    table = open_table(path)
    when = table.get_column("when")
    assert when[0] == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)
    assert when[1] is None
    assert table.type.columns["feat"] == EmbeddingType(dim=200)
    np.testing.assert_array_equal(table.get_column("feat", convert_to="numpy"), big)


def test_wandb_partitioned_and_incremental_tables(tmp_path):
    (tmp_path / "parts").mkdir()
    for k in range(3):
        (tmp_path / f"parts/{k}.table.json").write_text(
            json.dumps({"columns": ["k", "v"], "data": [[k, 10 * k], [k, 10 * k + 1]]})
        )
    path = tmp_path / "all.partitioned-table.json"
    path.write_text(json.dumps({"_type": "partitioned-table", "parts_path": "parts"}))
    assert open_table(path).get_column("v") == [0, 1, 10, 11, 20, 21]
    (tmp_path / "parts/3.table.json").write_text(json.dumps({"columns": ["k"], "data": [[3]]}))
    with pytest.raises(
        ValueError, match=r"`.*3\.table\.json` has columns \['k'\], the parts before"
    ):
        open_table(path)

    inc = tmp_path / "inc"
    inc.mkdir()
    for k in (0, 1, 10):
        (inc / f"{k}.table.json").write_text(json.dumps({"columns": ["k"], "data": [[k]]}))
    main = inc / "log.table.json"
    main.write_text(
        json.dumps({"columns": ["k"], "data": [], "log_mode": "INCREMENTAL", "_increment_num": 10})
    )
    assert open_table(main).get_column("k") == [0, 1, 10]


def test_wandb_not_a_table(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"lr": 0.1}))
    with pytest.raises(ValueError, match=r"not a W&B table export.*\['lr'\]"):
        open_table(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"not valid JSON \(line 1"):
        open_table(path)


@pytest.mark.parametrize(
    ("wb_type", "expected"),
    [
        ({"wb_type": "number"}, NumberType()),
        ({"wb_type": "string"}, StringType()),
        ({"wb_type": "boolean"}, BooleanType()),
        ({"wb_type": "none"}, OptionalType(inner=UnknownType())),
        (
            {
                "wb_type": "union",
                "params": {"allowed_types": [{"wb_type": "none"}, {"wb_type": "string"}]},
            },
            OptionalType(inner=StringType()),
        ),
        (
            {"wb_type": "list", "params": {"element_type": {"wb_type": "number"}, "length": 8}},
            EmbeddingType(dim=8),
        ),
        (
            {"wb_type": "list", "params": {"element_type": {"wb_type": "string"}}},
            ListType(item=StringType()),
        ),
        ({"wb_type": "ndarray", "params": {"shape": [64]}}, EmbeddingType(dim=64)),
        (
            {"wb_type": "typedDict", "params": {"type_map": {"a": {"wb_type": "number"}}}},
            StructType(fields={"a": NumberType()}),
        ),
        (
            {
                "wb_type": "image-file",
                "params": {
                    "box_layers": {"pred": {}},
                    "mask_layers": {},
                    "class_map": {"wb_type": "const", "params": {"val": {"0": "car"}}},
                },
            },
            ImageType(box_layers=("pred",), classes=(ClassLabel(id=0, name="car"),)),
        ),
        ({"wb_type": "video-file"}, VideoType()),
        ({"wb_type": "plotly-file"}, PlotType(library="plotly")),
        ({"wb_type": "hologram-file"}, UnknownType()),
        (None, UnknownType()),
    ],
)
def test_wandb_type_mapping(wb_type, expected):
    assert wandb_type_to_datatype(wb_type) == expected


# --------------------------------------------------------------------------- TensorBoard


def _tensors(path, rows):
    path.write_text("".join("\t".join(str(v) for v in row) + "\n" for row in rows))


def test_tensorboard_folder_with_header_metadata(tmp_path):
    _tensors(tmp_path / "tensors.tsv", [[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]])
    (tmp_path / "metadata.tsv").write_text("word\tcount\tnote\ncat\t3\t\ndog\t5\thi\n")
    table = open_table(tmp_path)
    assert table.columns == ["embedding", "word", "count", "note"]
    assert table.type.columns["embedding"] == EmbeddingType(dim=3)
    assert table.type.columns["count"] == NumberType(integer=True)
    assert table.get_column("embedding", convert_to="numpy").tolist() == [
        [0.5, 1.0, 1.5],
        [2.0, 2.5, 3.0],
    ]
    assert table.get_column("word") == ["cat", "dog"]
    assert table.get_column("count") == [3, 5]
    assert table.get_column("note") == [None, "hi"]


def test_tensorboard_single_column_metadata_has_no_header(tmp_path):
    _tensors(tmp_path / "tensors.tsv", [[1, 2], [3, 4], [5, 6]])
    (tmp_path / "metadata.tsv").write_text("a\nb\na\n")
    table = open_table(tmp_path / "tensors.tsv")
    assert table.columns == ["embedding", "label"]
    assert table.get_column("label") == ["a", "b", "a"]


def test_tensorboard_pair_and_no_metadata(tmp_path):
    _tensors(tmp_path / "vecs.tsv", [[1, 2], [3, 4]])
    (tmp_path / "labels.tsv").write_text("x\ny\n")
    table = open_table((tmp_path / "vecs.tsv", tmp_path / "labels.tsv"))
    assert table.get_column("label") == ["x", "y"]
    alone = tmp_path / "only"
    alone.mkdir()
    _tensors(alone / "tensors.tsv", [[1, 2]])
    table = open_table(alone)
    assert table.columns == ["embedding"]
    assert table.get_column("embedding") == [[1.0, 2.0]]


def test_tensorboard_projector_config(tmp_path):
    (tmp_path / "emb").mkdir()
    _tensors(tmp_path / "emb/first.tsv", [[1, 1], [2, 2]])
    _tensors(tmp_path / "emb/second.tsv", [[9, 9, 9]])
    (tmp_path / "emb/meta.tsv").write_text("a\nb\n")
    (tmp_path / "projector_config.pbtxt").write_text(
        'embeddings {\n  tensor_name: "first"\n  tensor_path: "emb/first.tsv"\n'
        '  metadata_path: "emb/meta.tsv"\n}\n'
        'embeddings {\n  tensor_name: "second"\n  tensor_path: "emb/second.tsv"\n}\n'
    )
    with pytest.raises(ValueError, match=r"lists 2 embeddings: 'first', 'second'; open one"):
        open_table(tmp_path)
    table = open_table(tmp_path, tensor_name="first")
    assert table.get_column("embedding") == [[1.0, 1.0], [2.0, 2.0]]
    assert table.get_column("label") == ["a", "b"]
    second = open_table(tmp_path / "projector_config.pbtxt", tensor_name="second")
    assert second.get_column("embedding") == [[9.0, 9.0, 9.0]]
    with pytest.raises(ValueError, match=r"no embedding named 'third'; it has 'first', 'second'"):
        open_table(tmp_path, tensor_name="third")


def test_tensorboard_ragged_rows(tmp_path):
    rows = [[0.1] * 64 for _ in range(20)]
    rows[11] = [0.1] * 63
    _tensors(tmp_path / "tensors.tsv", rows)
    with pytest.raises(ValueError, match=r"`.*tensors\.tsv`: line 12 has 63 values, the others 64"):
        open_table(tmp_path)


def test_tensorboard_non_numeric(tmp_path):
    _tensors(tmp_path / "tensors.tsv", [[1, 2], [3, "cat"]])
    with pytest.raises(ValueError, match=r"line 2, value 2 is 'cat', not a number"):
        open_table(tmp_path)


def test_tensorboard_metadata_rows_must_match(tmp_path):
    _tensors(tmp_path / "tensors.tsv", [[1, 2], [3, 4], [5, 6]])
    (tmp_path / "metadata.tsv").write_text("name\tscore\na\t1\nb\t2\n")
    with pytest.raises(
        ValueError, match=r"`.*metadata\.tsv` has 2 rows after its header row but .* has 3 vectors"
    ):
        open_table(tmp_path)


def test_metadata_file_alone_is_refused(tmp_path):
    (tmp_path / "metadata.tsv").write_text("a\n")
    with pytest.raises(ValueError, match="needs its vectors"):
        open_table(tmp_path / "metadata.tsv")


# --------------------------------------------------------------------------- paths and formats


def test_unknown_file_type(tmp_path):
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(
        ValueError, match=r"cannot open `.*x\.xlsx`: .* supported formats are Parquet"
    ):
        open_table(path)


def test_missing_path_lists_the_folder(tmp_path):
    (tmp_path / "data.parquet").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match=r"cannot open `.*dta\.parquet`: no such file.*data\.parquet"
    ):
        open_table(tmp_path / "dta.parquet")


def test_folder_without_table_data(tmp_path):
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(ValueError, match=r"cannot open folder .* \(it holds: notes\.md\)"):
        open_table(tmp_path)


def test_unknown_option_and_forced_format(tmp_path):
    path = tmp_path / "t.dat"
    path.write_text("a,b\n1,2\n")
    assert open_table(path, format="csv").to_arrow().to_pydict() == {"a": [1], "b": [2]}
    with pytest.raises(TypeError, match="the csv reader does not take sheet; it takes delimiter"):
        open_table(path, format="csv", sheet=1)


# --------------------------------------------------------------------------- hostile files


def test_binary_garbage_csv_is_refused_as_not_text(tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "garbage.csv"
    for head in (b"\x88\x01garbage", b"ab\x00cd"):
        path.write_bytes(head + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
        with pytest.raises(ValueError, match=r"`.*garbage\.csv`: it is (not UTF-8 text|binary data)"):
            open_table(path)


def test_csv_in_another_encoding_names_the_column(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,x\ncafé,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"`.*latin\.csv`: it is not UTF-8 text \(byte 10.*UTF-8"):
        open_table(latin)
    late = tmp_path / "late.csv"  # the first 64 KiB are fine: the column says it
    late.write_bytes(b"name,x\n" + b"abc,1\n" * 20_000 + "café,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"`.*late\.csv`: column `name` holds text that is not UTF-8"):
        open_table(late)


@pytest.mark.parametrize(
    ("column_types", "where", "kind"),
    [
        ([1, 2], "column_types", "a list"),
        ("typedDict", "column_types", "text"),
        ({"params": [1]}, "column_types.params", "a list"),
        ({"params": {"type_map": 3}}, "column_types.params.type_map", "a number"),
    ],
)
def test_wandb_malformed_column_types_names_the_file_and_key(tmp_path, column_types, where, kind):
    path = tmp_path / "t.table.json"
    path.write_text(json.dumps({"columns": ["a"], "data": [[1]], "column_types": column_types}))
    with pytest.raises(ValueError) as info:
        open_table(path)
    assert str(info.value).startswith(f"`{path}`: `{where}` is {kind}, but `column_types` must be")
    assert "delete `column_types`" in str(info.value)


def test_wandb_malformed_column_type_entries_fall_back_to_the_values(tmp_path):
    path = tmp_path / "t.table.json"
    type_map = {
        "a": {"wb_type": "union", "params": {"allowed_types": 3}},
        "b": {"wb_type": "ndarray", "params": {"shape": 5}},
        "c": {"wb_type": "image-file", "params": {"box_layers": 1}},
        "d": [1],
    }
    column_types = {"wb_type": "typedDict", "params": {"type_map": type_map}}
    data = {"columns": ["a", "b", "c", "d"], "data": [[1, 2.5, "x", True]]}
    path.write_text(json.dumps({**data, "column_types": column_types}))
    table = open_table(path)
    assert table.to_arrow().to_pylist() == [{"a": 1, "b": 2.5, "c": "x", "d": True}]
    assert wandb_type_to_datatype(type_map["b"]) == ListType(item=NumberType())


@pytest.mark.parametrize("depth", [900, 100_000])
def test_wandb_json_nested_deep_names_the_file(tmp_path, depth):
    path = tmp_path / "deep.table.json"
    path.write_text('{"columns": ["a"], "data": [[' + "[" * depth + "]" * depth + "]]}")
    with pytest.raises(ValueError, match=r"cannot read `.*deep\.table\.json`: it is nested too deeply"):
        open_table(path)


# --------------------------------------------------------------------------- column names a file gets wrong


def _write_named(path, names, fmt):
    arrays = [pa.array([10 * i + 1, 10 * i + 2, 10 * i + 3]) for i in range(len(names))]
    arrow = pa.Table.from_arrays(arrays, names=names)
    if fmt == "parquet":
        pq.write_table(arrow, path)
    elif fmt == "arrow":
        feather.write_feather(arrow, path)
    else:
        lines = [",".join(names)] + [",".join(str(a[r]) for a in arrays) for r in range(3)]
        path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "csv"])
def test_repeated_and_empty_column_names_work_under_shown_names(tmp_path, fmt):
    from panels_core.query.engine import Engine
    from panels_core.query.model import Query

    path = tmp_path / f"named.{'feather' if fmt == 'arrow' else fmt}"
    # the file already has `x (2)`: the second `x` shows as `x (3)`
    _write_named(path, ["x", "x", "x (2)", "", "y"], fmt)
    table = open_table(path)
    assert table.columns == ["x", "x (3)", "x (2)", "(empty)", "y"]
    assert table.renamed == {"x (3)": "x", "(empty)": ""}
    assert list(table.type.columns) == table.columns
    engine = Engine({"t": table})
    page = engine.page(Query(table="t", filter="`x (3)` > 11 and `(empty)` < 33", sort=["-y"]))
    assert page.to_pydict() == {
        "x": [2],
        "x (3)": [12],
        "x (2)": [22],
        "(empty)": [32],
        "y": [42],
    }
    assert engine.histogram(Query(table="t"), "(empty)", bins=3).counts.tolist() == [1, 1, 1]
    assert table.to_arrow().column_names == table.columns


def test_a_column_named_file_row_number_simply_works(tmp_path):
    from panels_core.query.engine import Engine
    from panels_core.query.model import Query

    path = tmp_path / "rows.parquet"
    arrow = pa.table({"file_row_number": [30, 10, 20, 40], "y": [0.5, 1.5, 2.5, 3.5]})
    pq.write_table(arrow, path, row_group_size=2)
    table = open_table(path)
    assert table.renamed == {}
    engine = Engine({"t": table})
    assert engine.page(Query(table="t")).to_pydict() == arrow.to_pydict()
    sorted_page = engine.page(Query(table="t", filter="file_row_number > 15", sort=["y"]))
    assert sorted_page.column("file_row_number").to_pylist() == [30, 20, 40]
    assert engine.page(Query(table="t"), offset=2, limit=1).to_pylist() == [
        {"file_row_number": 20, "y": 2.5}
    ]
    assert engine.count(Query(table="t", filter="file_row_number < 25")) == 2


# --------------------------------------------------------------------------- damaged Parquet data


def write_damaged_parquet(path, compression, row_group=1, column=0):
    """Ten thousand rows in two row groups; 64 bytes of one column chunk overwritten, the
    footer intact (uncompressed: the page header; snappy: the middle of the chunk)."""
    n = 10_000
    arrow = pa.table(
        {"x": np.arange(n, dtype=np.float64), "s": [f"s{i % 7}" for i in range(n)], "k": np.arange(n)}
    )
    pq.write_table(arrow, path, compression=compression, row_group_size=n // 2)
    chunk = pq.read_metadata(path).row_group(row_group).column(column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    offset = start + (3 if compression == "none" else chunk.total_compressed_size // 2)
    data = bytearray(path.read_bytes())
    data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("compression", "why"), [("none", "thrift"), ("snappy", "snappy")])
def test_a_damaged_data_page_names_the_file_column_and_row_group(tmp_path, compression, why):
    from panels_core.query.engine import Engine
    from panels_core.query.errors import QueryError
    from panels_core.query.model import Query

    path = tmp_path / "data.parquet"
    write_damaged_parquet(path, compression)
    table = open_table(path)  # the footer reads: the table opens, typed from its first rows
    assert table.type.columns["k"] == NumberType(integer=True)
    engine = Engine({"t": table})
    assert engine.page(Query(table="t"), limit=3).column("k").to_pylist() == [0, 1, 2]
    assert engine.histogram(Query(table="t"), "k", bins=2).counts.tolist() == [5000, 5000]
    expected = (
        rf"^histogram: `{path}`: corrupt data in column `x` \(row group 1\): .*{why}.*; "
        "the file may be truncated or damaged: write it again, or get another copy$"
    )
    with pytest.raises(QueryError, match=expected):
        engine.histogram(Query(table="t"), "x")
    with pytest.raises(QueryError, match=r"^count: .*corrupt data in column `x` \(row group 1\)"):
        engine.count(Query(table="t", filter="x > 3"))
    with pytest.raises(ValueError, match=rf"^`{path}`: corrupt data in column `x` \(row group 1\)"):
        table.to_arrow()


def test_a_damaged_first_page_still_opens_and_types_the_other_columns(tmp_path):
    path = tmp_path / "data.parquet"
    write_damaged_parquet(path, "none", row_group=0, column=1)
    table = open_table(path)
    assert table.type.columns["x"] == NumberType()
    assert table.type.columns["k"] == NumberType(integer=True)


def test_a_damaged_page_shows_in_the_workspace_cards_that_read_it(tmp_path):
    from panels_core.query.model import Query
    from panels_core.workspace import CardSpec
    from panels_core.workspace.app import Workspace

    path = tmp_path / "data.parquet"
    write_damaged_parquet(path, "snappy")
    cards = [
        CardSpec(kind="histogram", input=Query(table="data"), config={"column": "x"}),
        CardSpec(kind="histogram", input=Query(table="data"), config={"column": "k"}),
    ]
    damaged, fine = Workspace({"data": open_table(path)}, cards).cards
    message = html.unescape(damaged.body[0].object)
    assert f"`{path}`: corrupt data in column `x` (row group 1)" in message
    assert "the file may be truncated or damaged" in message
    assert type(fine.body[0]).__name__ != "Alert" and fine.count.object == "10,000 of 10,000 rows"
