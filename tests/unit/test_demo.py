"""The demo data: the values written, the store's versions and join, determinism and idempotence."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest
from sklearn.datasets import load_digits

from panels_core import demo
from panels_core.data.sources import open_table
from panels_core.data.store import Store
from panels_core.data.table import JoinedTable
from panels_core.types import CategoryType, EmbeddingType, ImageType, NumberType


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    paths = demo.write_demo(out, log=lines.append)
    return out, paths, lines


def test_first_run_reports_everything_written(written):
    out, paths, lines = written
    assert paths == {
        "hello": out / "hello.parquet",
        "digits": out / "digits.parquet",
        "store": out / "store",
    }
    assert lines == [
        f"wrote  {out / 'hello.parquet'} (3 rows, 5 columns)",
        f"wrote  {out / 'digits.parquet'} (1797 rows, 67 columns)",
        f"added  {out / 'store'}/predictions:v0",
        f"added  {out / 'store'}/predictions:v1",
        f"added  {out / 'store'}/ground_truth:v0",
        f"added  {out / 'store'}/joined:v0",
    ]


def test_hello_is_the_seed_table(written):
    out, _, _ = written
    hello = open_table(out / "hello.parquet")
    assert hello.columns == ["D1", "D2", "D3", "D4", "D5"]
    assert hello.to_arrow().to_pylist()[1] == {
        "D1": 0.3,
        "D2": 0.1,
        "D3": 0.9,
        "D4": 0.2,
        "D5": 0.7,
    }
    assert all(t == NumberType() for t in hello.type.columns.values())


def test_digits_values(written):
    out, _, _ = written
    digits = open_table(out / "digits.parquet")
    reference = load_digits()
    assert len(digits) == 1797
    assert digits.columns[:3] == ["image", "target", "pixel_0_0"]
    assert digits.columns[-1] == "embedding"
    assert [c for c in digits.columns if c.startswith("pixel_")] == [
        f"pixel_{r}_{c}" for r in range(8) for c in range(8)
    ]
    types = digits.type.columns
    assert types["target"] == CategoryType(categories=tuple(str(d) for d in range(10)))
    assert types["embedding"] == EmbeddingType(dim=64)
    assert types["image"] == ImageType()
    assert types["pixel_3_4"] == NumberType()
    assert digits.get_column("target")[:5] == [str(t) for t in reference.target[:5]]
    np.testing.assert_array_equal(
        digits.get_column("pixel_3_4", convert_to="numpy"), reference.data[:, 28]
    )
    embedding = digits.get_column("embedding", convert_to="numpy")
    assert embedding.dtype == np.float32
    np.testing.assert_array_equal(embedding, reference.data.astype(np.float32))
    image = digits.get_column("image")[42]
    assert (image.width, image.height) == (8, 8)
    expected = np.rint(reference.images[42] / 16.0 * 255).astype(np.uint8)
    np.testing.assert_array_equal(image.to_numpy(), expected)


def test_store_versions_and_join(written):
    out, _, _ = written
    store = Store(out / "store")
    assert {e.name: e.versions for e in store.list()} == {
        "ground_truth": ("v0",),
        "joined": ("v0",),
        "predictions": ("v0", "v1"),
    }
    v0, v1 = store.get("predictions:v0"), store.get("predictions:v1")
    assert len(v0) == len(v1) == 2000
    assert v0.columns == ["id", "image_id", "split", "label", "predicted", "score", "loss", "image"]
    types = v1.type.columns
    assert types["label"] == CategoryType(categories=tuple(sorted(demo.SHAPES)))
    assert types["split"] == CategoryType(categories=("test", "train", "val"))
    assert types["image"].box_layers == ("predictions", "ground_truth")
    assert [c.name for c in types["image"].classes] == list(demo.SHAPES)
    a0, a1 = v0.to_arrow(), v1.to_arrow()
    assert a0["label"].equals(a1["label"]) and a0["id"].equals(a1["id"])
    accuracy0 = pc.mean(pc.equal(a0["label"], a0["predicted"])).as_py()
    accuracy1 = pc.mean(pc.equal(a1["label"], a1["predicted"])).as_py()
    assert 0.5 < accuracy0 < accuracy1 < 1.0  # version 1 is the better model
    assert pc.min(a1["score"]).as_py() > 0 and pc.max(a1["score"]).as_py() <= 1
    assert pc.min(a1["loss"]).as_py() >= 0
    first = v1.get_column("image")[0]
    assert first.boxes["ground_truth"][0]["class_id"] == demo.SHAPES.index(
        v1.get_column("label")[0]
    )
    assert first.boxes["predictions"][0]["class_id"] == demo.SHAPES.index(
        v1.get_column("predicted")[0]
    )
    joined = store.get("joined")
    assert isinstance(joined, JoinedTable)
    assert (joined.left_key, joined.right_key, joined.left_name, joined.right_name) == (
        "id",
        "id",
        "predictions",
        "ground_truth",
    )
    assert joined.left.equals(v1)
    assert joined.right.get_column("label") == v1.get_column("label")
    # 2,000 images shared by both versions, the ground truth and the join: stored once each
    assert len(list((out / "store" / "media").iterdir())) == 2000


def test_second_run_adds_nothing(written, capsys):
    out, _, _ = written
    store_dir = out / "store"
    before = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if p.is_file()}
    digits_mtime = (out / "digits.parquet").stat().st_mtime_ns
    assert demo.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"kept   {out / 'hello.parquet'} (exists)"
    assert all(line.startswith("kept") for line in printed) and len(printed) == 6
    after = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if p.is_file()}
    assert after == before
    assert (out / "digits.parquet").stat().st_mtime_ns == digits_mtime
    assert Store(store_dir).versions("predictions") == ["v0", "v1"]


def test_only_missing_versions_are_added(tmp_path):
    store = Store(tmp_path / "store")
    store.add(demo.hello_table(), "ground_truth")  # as if a run stopped after v0
    lines: list[str] = []
    demo._ensure_versions(store, "ground_truth", [demo.hello_table] * 2, lines.append)
    assert lines == [
        f"kept   {store.folder}/ground_truth:v0 (exists)",
        f"added  {store.folder}/ground_truth:v1",
    ]
    assert store.versions("ground_truth") == ["v0", "v1"]


def test_generation_is_deterministic():
    first, second = demo._Shapes(n=40), demo._Shapes(n=40)
    assert first.pngs == second.pngs and first.boxes == second.boxes
    a = demo.predictions_table(0, first).to_arrow()
    b = demo.predictions_table(0, second).to_arrow()
    assert a.equals(b)
    c = demo.predictions_table(1, first).to_arrow()
    assert not a["predicted"].equals(c["predicted"]) or not a["score"].equals(c["score"])
