"""Store: versions round-trip exactly, images are stored once, writes are atomic and locked."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading

import numpy as np
import pytest

from panels_core.data import store as store_module
from panels_core.data.media import Classes, Image
from panels_core.data.store import Store, StoreEntry, StoreError
from panels_core.data.table import JoinedTable, Table
from panels_core.types import CategoryType, NumberType


def _images(n: int, offset: int = 0) -> list[Image]:
    return [
        Image(
            np.full((5, 7, 3), (17 * (i + offset)) % 256, dtype=np.uint8),
            boxes={
                "gt": [
                    {
                        "position": {"minX": 0.1, "maxX": 0.4, "minY": 0.2, "maxY": 0.9},
                        "class_id": i % 2,
                        "scores": {"conf": 0.5},
                    }
                ]
            },
            classes=Classes([{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]),
        )
        for i in range(n)
    ]


def _image_table(images: list[Image | None], label: str = "a") -> Table:
    return Table(
        columns=["id", "class", "my col", "größe", "image"],
        data=[[i, label, f"row {i}", i * 0.5, img] for i, img in enumerate(images)],
        dtypes={"id": "category"},
    )


def _plain(value: int) -> Table:
    return Table(columns=["id", "v"], data=[[1, value], [2, value + 1]])


def test_table_round_trip_is_exact(tmp_path):
    store = Store(tmp_path / "s")
    table = _image_table([*_images(3), None])
    ref = store.add(table, "preds")
    assert ref == "preds:v0"
    back = store.get("preds")
    assert back.type == table.type
    assert back.type.columns["id"] == CategoryType(categories=(0, 1, 2, 3))  # the override kept
    assert back.to_arrow().equals(table.to_arrow())
    assert back.equals(table)
    images = back.get_column("image")
    assert images[3] is None
    assert [img.data for img in images[:3]] == [img.data for img in table.get_column("image")[:3]]
    assert images[1].boxes == table.get_column("image")[1].boxes


def test_plain_table_comes_back_lazy(tmp_path):
    store = Store(tmp_path)
    store.add(_plain(10), "plain")
    back = store.get("plain:v0")
    assert back.parquet_path is not None and back._arrow is None  # no row read yet
    assert back.to_arrow().to_pydict() == {"id": [1, 2], "v": [10, 11]}
    assert back.type.columns["v"] == NumberType(integer=True)


def test_empty_table_round_trip(tmp_path):
    store = Store(tmp_path)
    empty = Table(columns=["class", "my col"])
    store.add(empty, "empty")
    back = store.get("empty")
    assert len(back) == 0 and back.columns == ["class", "my col"]
    assert back.type == empty.type


def test_joined_table_round_trip(tmp_path):
    store = Store(tmp_path)
    left = _image_table(_images(3))
    right = Table(
        columns=["key", "truth"],
        data=[[0, "cat"], [1, "dog"], [2, "cat"]],
        dtypes={"key": "category"},
    )
    joined = JoinedTable(left, right, ("id", "key"), names=("preds", "truth"))
    assert store.add(joined, "joined") == "joined:v0"
    back = store.get("joined")
    assert isinstance(back, JoinedTable)
    assert (back.left_key, back.right_key, back.left_name, back.right_name) == (
        "id",
        "key",
        "preds",
        "truth",
    )
    assert back.left.equals(left) and back.right.equals(right)
    assert back.type == joined.type
    assert store.manifest("joined").rows == (3, 3)


def test_versions_and_latest(tmp_path):
    store = Store(tmp_path)
    refs = [store.add(_plain(v), "runs") for v in (0, 10, 20)]
    assert refs == ["runs:v0", "runs:v1", "runs:v2"]
    assert store.versions("runs") == ["v0", "v1", "v2"]
    assert store.get("runs").get_column("v") == [20, 21]
    assert store.get("runs:latest").get_column("v") == [20, 21]
    assert store.get("runs:v1").get_column("v") == [10, 11]
    assert "runs:v2" in store and "runs:v3" not in store
    store.add(_image_table(_images(1)), "other")
    entries = store.list()
    assert [e.name for e in entries] == ["other", "runs"]
    runs = entries[1]
    assert isinstance(runs, StoreEntry)
    assert (runs.versions, runs.latest, runs.kind, runs.rows) == (
        ("v0", "v1", "v2"),
        "v2",
        "table",
        2,
    )


def test_images_are_stored_once_across_tables_and_versions(tmp_path, monkeypatch):
    store = Store(tmp_path)
    writes: list[str] = []
    real_write = store_module._write_media_file

    def counting(path, data):
        writes.append(path.name)
        real_write(path, data)

    monkeypatch.setattr(store_module, "_write_media_file", counting)
    images = _images(4)
    images.append(images[0])  # the same image twice in one table
    store.add(_image_table(images), "a")
    assert len(writes) == 4
    store.add(_image_table(images, label="b"), "a")  # a new version, same images
    store.add(_image_table(_images(4)), "b")  # another table, equal images
    assert len(writes) == 4
    store.add(_image_table(_images(2, offset=100)), "b")
    assert len(writes) == 6
    media = sorted(p.name for p in (tmp_path / "media").iterdir())
    assert media == sorted(writes)
    expected = {hashlib.sha256(img.data).hexdigest() + ".png" for img in images}
    assert expected <= set(media)
    back = store.get("a:v1").get_column("image")
    assert [img.data for img in back] == [img.data for img in images]
    assert (
        tmp_path / "media" / f"{hashlib.sha256(images[2].data).hexdigest()}.png"
    ).read_bytes() == images[2].data


def test_parquet_holds_no_image_bytes(tmp_path):
    import pyarrow.parquet as pq

    store = Store(tmp_path)
    store.add(_image_table(_images(3)), "t")
    raw = pq.read_table(tmp_path / "tables/t/v0/table.parquet")
    image = raw.column("image").combine_chunks()
    assert image.field("data").null_count == 3
    assert image.field("sha256").to_pylist() == [
        hashlib.sha256(img.data).hexdigest() for img in _images(3)
    ]


def test_crash_mid_write_leaves_previous_versions(tmp_path, monkeypatch):
    store = Store(tmp_path)
    store.add(_plain(1), "t")

    def crash(arrow, path):
        path.write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_write_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        store.add(_plain(2), "t")
    monkeypatch.undo()
    assert store.versions("t") == ["v0"]
    assert [e.versions for e in store.list()] == [("v0",)]
    assert store.get("t").get_column("v") == [1, 2]
    assert [p.name for p in (tmp_path / "tables/t").iterdir()] == ["v0"]  # no temp folder left
    assert store.add(_plain(3), "t") == "t:v1"


def test_stale_temp_folder_of_a_killed_writer_is_invisible(tmp_path):
    store = Store(tmp_path)
    store.add(_plain(1), "t")
    stale = tmp_path / "tables/t/.tmp-deadbeef"
    stale.mkdir()
    (stale / "table.parquet").write_bytes(b"half")
    half = tmp_path / "tables/t/v1"  # a version folder without a manifest is not a version
    half.mkdir()
    assert store.versions("t") == ["v0"]
    assert store.get("t").get_column("v") == [1, 2]
    with pytest.raises(KeyError, match="no version v1 of `t`; versions: v0"):
        store.get("t:v1")


def test_concurrent_adds_in_threads_get_distinct_versions(tmp_path):
    store = Store(tmp_path)
    barrier = threading.Barrier(6)
    refs: dict[int, str] = {}

    def add(k: int) -> None:
        table = _plain(100 * k)
        barrier.wait()
        refs[k] = Store(tmp_path).add(table, "shared")

    threads = [threading.Thread(target=add, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(refs.values()) == [f"shared:v{i}" for i in range(6)]
    for k, ref in refs.items():
        assert store.get(ref).get_column("v") == [100 * k, 100 * k + 1]


def _add_in_process(folder: str, k: int) -> str:
    return Store(folder).add(_plain(1000 * k), "shared")


def test_concurrent_adds_in_processes_get_distinct_versions(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        refs = pool.starmap(_add_in_process, [(str(tmp_path), k) for k in range(6)])
    assert sorted(refs) == [f"shared:v{i}" for i in range(6)]
    store = Store(tmp_path)
    for k, ref in enumerate(refs):
        assert store.get(ref).get_column("v") == [1000 * k, 1000 * k + 1]


@pytest.mark.parametrize("name", ["a/b", "preds:v1", "", ".hidden", "with space", "..", "x\\y"])
def test_invalid_names(tmp_path, name):
    with pytest.raises(ValueError, match=r"invalid store name .*no '/', no ':'"):
        Store(tmp_path).add(_plain(1), name)


def test_unknown_name_and_version(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(KeyError, match=r"no table `preds` .*names: none yet"):
        store.get("preds")
    store.add(_plain(1), "preds")
    store.add(_plain(2), "preds")
    store.add(_plain(3), "labels")
    with pytest.raises(KeyError) as info:
        store.get("preds:v7")
    assert str(info.value) == "no version v7 of `preds`; versions: v0, v1"
    with pytest.raises(KeyError, match=r"no table `pred` in store .*; names: labels, preds"):
        store.versions("pred")
    with pytest.raises(ValueError, match="invalid version 'seven'"):
        store.get("preds:seven")


def test_damaged_manifest_and_missing_media(tmp_path):
    store = Store(tmp_path)
    store.add(_plain(1), "t")
    manifest = tmp_path / "tables/t/v0/manifest.json"
    manifest.write_text(manifest.read_text().replace('"kind": "table"', '"kind": "chart"'))
    with pytest.raises(StoreError, match=r"manifest `.*manifest\.json` of `t:v0` is damaged"):
        store.get("t")
    store.add(_image_table(_images(2)), "imgs")
    for media in (tmp_path / "media").iterdir():
        media.unlink()
    with pytest.raises(StoreError, match=r"row 0: its image `.*\.png` is missing"):
        store.get("imgs")


def test_add_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="takes a Table or JoinedTable, not dict"):
        Store(tmp_path).add({"a": [1]}, "t")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="it is a file"):
        Store(tmp_path / "file")
