"""Parquet datasets (a folder, a glob, a list of files; Hive partitions) through the engine.

The same assertions run on the same rows laid out as one Parquet file and as a
dataset of 40 files (``LAYOUTS``): every answer must equal the same query on the
concatenated table in pandas/numpy. Another engine joins the parametrization by
adding a layout (a name -> a function opening the tables for an engine).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panels_core.data import dataset as dataset_module
from panels_core.data.dataset import SAMPLE_FILES, DatasetError
from panels_core.data.sources import detect_format, open_table
from panels_core.data.store import Store
from panels_core.data.table import JoinedTable, Table
from panels_core.query.engine import Engine
from panels_core.query.errors import QueryError
from panels_core.query.model import CompareWith, JoinSpec, Query, SortKey
from panels_core.query.parse import parse_filter
from panels_core.types import CategoryType, EmbeddingType, NumberType, OptionalType
from tests.unit.test_sources import write_damaged_parquet

SPLITS = ("test", "train")  # sorted: the dataset's file order is its paths' order
SHARDS = 20
LABELS = np.array(["cat", "dog", "bird", None], dtype=object)


def shard_rows(rng: np.random.Generator, split: str, shard: int, start: int) -> pa.Table:
    """One shard: scores with ties, nulls and NaN; ``n`` int32 in train, int64 in test; an
    extra column in one file."""
    rows = int(rng.integers(20, 60))
    score = np.round(rng.normal(size=rows), 1)
    score[rng.random(rows) < 0.05] = np.nan
    score_mask = rng.random(rows) < 0.05
    table = pa.table(
        {
            "id": pa.array(np.arange(start, start + rows) * 7 % 100_003, pa.int64()),
            "score": pa.array(score, mask=score_mask),
            "label": pa.array(LABELS[rng.integers(0, 4, rows)].tolist(), pa.string()),
            "n": pa.array(rng.integers(0, 9, rows), pa.int32() if split == "train" else pa.int64()),
            "emb": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.normal(size=rows * 4).astype(np.float32)), 4
            ),
        }
    )
    if (split, shard) == ("train", 7):
        table = table.append_column("note", pa.array([f"note {i}" for i in range(rows)]))
    return table


def write_arrow_dataset(folder: Path, seed: int = 0) -> pa.Table:
    """40 files ``split=*/shard=NN/part-0.parquet``; the concatenated rows (partition
    columns included, file order) as one Arrow table."""
    rng = np.random.default_rng(seed)
    parts, start = [], 0
    for split in SPLITS:
        for shard in range(SHARDS):
            table = shard_rows(rng, split, shard, start)
            start += table.num_rows
            out = folder / f"split={split}" / f"shard={shard:02d}"
            out.mkdir(parents=True)
            pq.write_table(table, out / "part-0.parquet")
            table = table.set_column(3, "n", table.column("n").cast(pa.int64()))
            rows = table.num_rows
            table = table.append_column("split", pa.array([split] * rows))
            parts.append(table.append_column("shard", pa.array([shard] * rows, pa.int64())))
    return pa.concat_tables(parts, promote_options="default")


def as_frame(arrow: pa.Table) -> pd.DataFrame:
    """The rows in pandas, with ``score_null`` telling null from NaN (pandas cannot)."""
    frame = arrow.to_pandas()
    frame["score_null"] = arrow.column("score").is_null().to_numpy(zero_copy_only=False)
    return frame


def write_dataset(folder: Path, seed: int = 0) -> pd.DataFrame:
    """``write_arrow_dataset``, its rows as a reference frame."""
    return as_frame(write_arrow_dataset(folder, seed))


def other_rows(reference: pd.DataFrame) -> pd.DataFrame:
    """A second table to compare and join with: every third id, scores moved, new ids."""
    other = reference.iloc[::3][["id", "score"]].copy()
    other["score"] = other["score"] + 1
    extra = pd.DataFrame({"id": [10**6, 10**6 + 1], "score": [0.0, 1.0]})
    return pd.concat([other, extra], ignore_index=True)


def open_file_layout(tmp_path: Path, reference: pd.DataFrame) -> dict[str, Any]:
    pq.write_table(reference.attrs["arrow"], tmp_path / "preds.parquet")
    other_rows(reference).to_parquet(tmp_path / "other.parquet", index=False)
    return {
        "preds": open_table(tmp_path / "preds.parquet"),
        "other": open_table(tmp_path / "other.parquet"),
    }


def open_dataset_layout(tmp_path: Path, reference: pd.DataFrame) -> dict[str, Any]:
    other = other_rows(reference)
    folder = tmp_path / "other"
    folder.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(other)), 5)):
        other.iloc[chunk].to_parquet(folder / f"part-{i}.parquet", index=False)
    return {"preds": open_table(tmp_path / "preds"), "other": open_table(folder)}


LAYOUTS: dict[str, Callable[[Path, pd.DataFrame], dict[str, Any]]] = {
    "one file": open_file_layout,
    "dataset": open_dataset_layout,
    "dask cluster": open_dataset_layout,
}
"""The same rows laid out (and served) differently; every answer must be the same."""
CLUSTER_LAYOUTS = {"dask cluster"}
"""The layouts served by an engine on a Dask cluster (``dask_client``), not in this process."""


@dataclass
class Served:
    engine: Engine
    reference: pd.DataFrame
    other: pd.DataFrame


@pytest.fixture(params=list(LAYOUTS))
def served(request, tmp_path: Path) -> Served:
    arrow = write_arrow_dataset(tmp_path / "preds")
    reference = as_frame(arrow)
    reference.attrs["arrow"] = arrow
    tables = LAYOUTS[request.param](tmp_path, reference)
    cluster = None
    if request.param in CLUSTER_LAYOUTS:
        cluster = request.getfixturevalue("dask_client")
    engine = Engine(tables, cluster=cluster)
    yield Served(engine, reference, other_rows(reference))
    engine.close()


def preds(**fields: Any) -> Query:
    return Query(table="preds", **fields)


# --------------------------------------------------------------------------- the same answers


def test_count_and_filter_equal_pandas(served: Served) -> None:
    ref = served.reference
    assert served.engine.count(preds()) == len(ref) > 1000
    query = preds(filter=parse_filter('score > 0.5 and split == "train" and n >= 3'))
    expected = ((ref.score > 0.5) & (ref.split == "train") & (ref.n >= 3)).sum()
    assert served.engine.count(query) == expected
    assert served.engine.count(preds(filter=parse_filter("shard == 7"))) == (ref.shard == 7).sum()


def test_sorted_pages_break_ties_by_row_order(served: Served) -> None:
    ref = served.reference
    # the engine's order: numbers, then NaN, then null; ties in row order (stable)
    rank = np.where(ref.score_null, 2, np.where(ref.score.isna(), 1, 0))
    key = ref.score.fillna(0.0)
    order = pd.DataFrame({"rank": rank, "key": key}).sort_values(["rank", "key"], kind="stable")
    expected_ids = ref.id.to_numpy()[order.index.to_numpy()]
    query = preds(sort=(SortKey(column="score"),))
    for offset in (0, 700, len(ref) - 30):
        page = served.engine.page(query, offset, 50, columns=["id", "split", "shard"])
        assert page.column("id").to_pylist() == expected_ids[offset : offset + 50].tolist()
    unsorted = served.engine.page(preds(), 0, len(ref), columns=["id"])
    assert unsorted.column("id").to_pylist() == ref.id.tolist()  # rows in file order


def test_a_partition_filter_keeps_every_rows_number(served: Served) -> None:
    # DuckDB numbers only the files a partition filter leaves: the row numbers (and so
    # the ties' order and the page's second pass) must not shift
    ref = served.reference
    kept = ref[ref["shard"] != 3]
    rank = np.where(kept.score_null, 2, np.where(kept.score.isna(), 1, 0))
    order = pd.DataFrame({"rank": rank, "key": kept.score.fillna(0.0)}, index=kept.index)
    expected = kept.loc[order.sort_values(["rank", "key"], kind="stable").index]
    query = preds(filter=parse_filter("shard != 3"), sort=(SortKey(column="score"),))
    for offset in (0, 600):
        page = served.engine.page(query, offset, 50, columns=["id", "shard"]).to_pandas()
        assert page.id.tolist() == expected.id.iloc[offset : offset + 50].tolist()
        assert 3 not in page.shard.tolist()


def test_histogram_counts_equal_numpys(served: Served) -> None:
    ref = served.reference
    hist = served.engine.histogram(preds(), "score", bins=12)
    values = ref.score.to_numpy(float)
    finite = values[np.isfinite(values)]
    assert hist.edges[0] == finite.min() and hist.edges[-1] == finite.max()
    assert hist.counts.tolist() == np.histogram(finite, bins=hist.edges)[0].tolist()
    assert hist.nonfinite + hist.nulls == len(values) - len(finite)
    by = served.engine.histogram(preds(), "score", bins=12, by="split")
    assert by.groups == list(SPLITS)
    for group, counts in zip(by.groups, by.counts, strict=True):
        part = ref.score[ref.split == group].to_numpy(float)
        part = part[np.isfinite(part)]
        assert counts.tolist() == np.histogram(part, bins=by.edges)[0].tolist()


def test_value_counts_equal_pandas(served: Served) -> None:
    ref = served.reference
    counts = served.engine.value_counts(preds(), "label", top=10)
    expected = ref.label.value_counts()
    assert dict(zip(counts.values, counts.counts.tolist(), strict=True)) == expected.to_dict()
    assert counts.nulls == ref.label.isna().sum()
    splits = served.engine.value_counts(preds(), "split")
    assert dict(zip(splits.values, splits.counts.tolist(), strict=True)) == (
        ref.split.value_counts().to_dict()
    )


def test_group_counts_equal_pandas(served: Served) -> None:
    ref = served.reference
    grouped = served.engine.grouped(preds(group_by=("split", "shard"), sort=()), sample=10_000)
    expected = ref.groupby(["split", "shard"]).size()
    got = {
        (r["split"], r["shard"]): r["count"]
        for r in grouped.select(["split", "shard", "count"]).to_pylist()
    }
    assert got == expected.to_dict()
    rows = grouped.to_pylist()
    first = rows[0]
    members = ref[(ref.split == first["split"]) & (ref.shard == first["shard"])]
    assert first["n"] == members.n.tolist()


def test_compare_on_a_key_equals_an_outer_merge(served: Served) -> None:
    ref, other = served.reference, served.other
    query = preds(compare_with=CompareWith(table="other", on="id"))
    compared = served.engine.compared(query).select(["id", "score", "present"]).to_pylist()
    merged = ref[["id", "score"]].merge(other, on="id", how="outer", suffixes=("0", "1"))
    merged = merged.sort_values("id", kind="stable")
    assert [r["id"] for r in compared] == merged.id.tolist()
    assert served.engine.count(query) == len(merged)
    both = [r for r in compared if r["present"]["0"] and r["present"]["1"]]
    assert len(both) == len(set(ref.id) & set(other.id))
    by_id = merged.set_index("id")
    for row in both[:200]:
        expected = by_id.loc[row["id"], "score1"]
        got = row["score"]["1"]
        assert (got is None and pd.isna(expected)) or got == pytest.approx(expected, nan_ok=True)


def test_join_counts_equal_pandas(served: Served) -> None:
    ref, other = served.reference, served.other
    query = preds(join=JoinSpec(table="other", on="id", how="inner"))
    inner = ref.merge(other, on="id")
    assert served.engine.count(query) == len(inner)
    matched, left_only, right_only = served.engine.join_counts(query)
    assert (matched, left_only, right_only) == (
        len(inner),
        (~ref.id.isin(other.id)).sum(),
        (~other.id.isin(ref.id)).sum(),
    )


def test_column_numpy_for_projection_equals_the_rows(served: Served) -> None:
    ref = served.reference
    emb = served.engine.column_numpy(preds(), "emb")
    assert emb.shape == (len(ref), 4)
    np.testing.assert_array_equal(emb, np.stack(ref.emb.to_numpy()).astype(np.float32))
    filtered = served.engine.column_numpy(preds(filter=parse_filter('split == "train"')), "score")
    np.testing.assert_array_equal(filtered, ref.score[ref.split == "train"].to_numpy(float))


# --------------------------------------------------------------------------- opening datasets


def test_a_folder_opens_as_one_typed_table_from_footers_and_a_bounded_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = write_dataset(tmp_path / "preds")
    opened: list[str] = []
    real = dataset_module.pq.ParquetFile

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dataset_module.pq, "ParquetFile", counting)
    table = open_table(tmp_path / "preds")
    assert detect_format(tmp_path / "preds") == "parquet"
    assert len(table) == len(reference)
    columns = table.type.columns
    assert len(set(opened)) <= SAMPLE_FILES  # the type is settled from a sample of files
    assert columns["split"] == CategoryType(categories=SPLITS)
    assert columns["shard"] == NumberType(integer=True)
    assert columns["n"] == NumberType(integer=True)
    assert table.schema.field("n").type == pa.int64()  # int32 and int64 files widen
    assert isinstance(columns["note"], OptionalType)  # only one file has it
    assert columns["emb"] == EmbeddingType(dim=4)
    assert table.parquet_dataset.name == "preds"
    assert table.columns == ["id", "score", "label", "n", "emb", "note", "split", "shard"]


@pytest.mark.parametrize(
    "spelling",
    ["preds/*/*/*.parquet", "preds/**/*.parquet", "list"],
)
def test_a_glob_or_a_list_of_files_opens_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    reference = write_dataset(tmp_path / "preds")
    monkeypatch.chdir(tmp_path)
    files = sorted(str(p) for p in (tmp_path / "preds").rglob("*.parquet"))
    table = open_table(files if spelling == "list" else spelling)
    with closing(Engine({"preds": table})) as engine:
        assert (
            engine.count(preds(filter=parse_filter('split == "test"')))
            == (reference.split == "test").sum()
        )
        page = engine.page(preds(), 0, len(reference), columns=["id", "shard"])
    assert page.column("id").to_pylist() == reference.id.tolist()
    assert page.column("shard").to_pylist() == reference.shard.tolist()


def test_a_corrupt_shard_is_named_and_the_other_tables_keep_working(tmp_path: Path) -> None:
    write_dataset(tmp_path / "preds")
    shard = tmp_path / "preds" / "split=train" / "shard=03" / "part-0.parquet"
    write_damaged_parquet(shard, "snappy")
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / "fine.parquet")
    with closing(
        Engine(
            {"preds": open_table(tmp_path / "preds"), "fine": open_table(tmp_path / "fine.parquet")}
        )
    ) as engine:
        with pytest.raises(
            QueryError,
            match=r"^histogram: `.*split=train/shard=03/part-0\.parquet`: corrupt data in column",
        ):
            engine.histogram(preds(), "x", bins=4)
        assert engine.histogram(Query(table="fine"), "x", bins=2).counts.tolist() == [1, 2]
    shard.write_bytes(b"not parquet at all")
    with pytest.raises(
        DatasetError,
        match=r"^dataset `preds`: the file `split=train/shard=03/part-0\.parquet` is not a readable Parquet file",
    ):
        open_table(tmp_path / "preds")


def test_schemas_that_cannot_be_unified_are_refused_naming_both_files(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    pq.write_table(pa.table({"id": [1], "meta": ["x"]}), folder / "a" / "part.parquet")
    pq.write_table(pa.table({"id": [2], "meta": [{"k": 1}]}), folder / "b" / "part.parquet")
    with pytest.raises(DatasetError) as info:
        open_table(folder)
    assert str(info.value) == (
        "dataset `runs`: column `meta` is string in `a/part.parquet` but struct<k: int64> in "
        "`b/part.parquet`, which cannot be unified; write the column with one type in every "
        "file, or open the files apart"
    )


def test_files_under_different_partition_folders_are_refused(tmp_path: Path) -> None:
    for part in ("split=train/x.parquet", "y.parquet"):
        (tmp_path / "d" / part).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [1]}), tmp_path / "d" / part)
    with pytest.raises(
        DatasetError,
        match=r"^dataset `d`: `split=train/x\.parquet` is partitioned by \(split\) but `y\.parquet` by \(nothing\)",
    ):
        open_table(tmp_path / "d")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(ValueError, match=r"cannot open folder `.*empty`: it has no Parquet files"):
        open_table(tmp_path / "empty")


def test_a_tensorboard_folder_stays_tensorboard(tmp_path: Path) -> None:
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "tensors.tsv").write_text("1\t2\n3\t4\n")
    pq.write_table(pa.table({"id": [1]}), tmp_path / "tb" / "stray.parquet")
    assert detect_format(tmp_path / "tb") == "tensorboard"


def test_the_store_keeps_a_dataset_version_of_many_files(tmp_path: Path) -> None:
    reference = write_dataset(tmp_path / "preds")
    store = Store(tmp_path / "store")
    ref = store.add(tmp_path / "preds", "preds")
    assert ref == "preds:v0"
    manifest = store.manifest(ref)
    assert len(manifest.files) == 2 * SHARDS and manifest.rows == len(reference)
    shutil.rmtree(tmp_path / "preds")  # the version holds its own copy
    table = store.get(ref)
    assert table.parquet_dataset is not None and len(table) == len(reference)
    assert table.type == open_table(store.folder / "tables" / "preds" / "v0" / "data").type
    with closing(Engine({"preds": table})) as engine:
        assert engine.count(preds(filter=parse_filter("shard < 5"))) == (reference.shard < 5).sum()
    assert store.add(table, "again") == "again:v0"  # a dataset table is stored as its files
    assert len(store.get("again").parquet_dataset.files) == 2 * SHARDS


def test_panels_info_names_the_folder_and_counts_the_rows(tmp_path: Path, capsys) -> None:
    from panels_core.cli import main

    reference = write_dataset(tmp_path / "preds")
    assert main(["info", str(tmp_path / "preds"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == len(reference)
    assert {"name": "split", "type": "category(2)"} in info["columns"]


def test_a_modified_dataset_table_is_served_from_its_rows(tmp_path: Path) -> None:
    reference = write_dataset(tmp_path / "preds")
    table = open_table(tmp_path / "preds")
    table.add_col("twice", (reference.n * 2).tolist())
    assert table.parquet_dataset is None
    with closing(Engine({"preds": table})) as engine:
        assert engine.count(preds(filter=parse_filter("twice > 10"))) == (reference.n > 5).sum()
    assert isinstance(
        JoinedTable(table, Table.from_arrow(pa.table({"id": [7]})), "id"), JoinedTable
    )


def test_a_served_folder_or_pattern_is_named_after_its_folder(tmp_path: Path, capsys) -> None:
    from panels_core.cli import main
    from panels_core.workspace.loading import load_sources

    reference = write_dataset(tmp_path / "preds.v2")
    loaded = load_sources(
        [tmp_path / "preds.v2", tmp_path / "preds.v2" / "split=test" / "*" / "*.parquet"]
    )
    assert {name: len(item.table) for name, item in loaded.items()} == {
        "preds.v2": len(reference),
        "split=test": (reference.split == "test").sum(),
    }
    assert main(["info", str(tmp_path / "preds.v2" / "**" / "*.parquet")]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(f"{len(reference):,} rows, 8 columns")


def test_partition_values_are_decoded_numbers_or_null_as_the_engine_reads_them(
    tmp_path: Path,
) -> None:
    for folder, x in (
        ("label=a%20b/year=2024", 1.5),
        ("label=c/year=2023", 2.5),
        ("label=__HIVE_DEFAULT_PARTITION__/year=2024", 3.5),
    ):
        (tmp_path / "d" / folder).mkdir(parents=True)
        pq.write_table(pa.table({"x": [x, x]}), tmp_path / "d" / folder / "p.parquet")
    table = open_table(tmp_path / "d")
    assert table.type.columns["label"] == OptionalType(inner=CategoryType(categories=("a b", "c")))
    assert table.type.columns["year"] == NumberType(integer=True)
    with closing(Engine({"d": table})) as engine:
        counts = engine.value_counts(Query(table="d"), "label")
        assert (counts.values, counts.counts.tolist(), counts.nulls) == (["a b", "c"], [2, 2], 2)
        assert (
            engine.count(Query(table="d", filter=parse_filter('label == "a b" and year == 2024')))
            == 2
        )
        page = engine.page(Query(table="d"), 0, 10)
    assert page.column("year").to_pylist() == [2024, 2024, 2024, 2024, 2023, 2023]
    assert page.column("label").to_pylist() == [None, None, "a b", "a b", "c", "c"]


def test_a_dataset_added_to_a_running_engine_is_allowed_with_the_tables_before_it(
    tmp_path: Path,
) -> None:
    reference = write_dataset(tmp_path / "preds")
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(tmp_path / "first.parquet")
    with closing(Engine({"first": open_table(tmp_path / "first.parquet")})) as engine:
        engine.add_table("preds", open_table(tmp_path / "preds"))
        assert engine.count(preds()) == len(reference)
        assert engine.count(Query(table="first")) == 2


def test_a_dataset_column_that_would_hide_the_row_numbers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"file_row_number": [5, 6]}), tmp_path / "d" / "p.parquet")
    with pytest.raises(QueryError) as info:
        Engine({"d": open_table(tmp_path / "d")})
    assert str(info.value) == (
        "dataset `d`: its column `file_row_number` hides DuckDB's row numbers, which the "
        "engine needs; rename the column in the files"
    )


def test_a_region_filter_keeps_row_order_over_many_files(tmp_path: Path) -> None:
    """A region selection is a semi-join on the row number, which DuckDB runs in
    parallel out of row order: row numbers and columns must still come in row order,
    together (a projection pairs its points with the rows by position)."""
    start = 0
    for i in range(4):
        pq.write_table(
            pa.table({"id": np.arange(start, start + 50_000)}),
            tmp_path / f"part-{i}.parquet",
            row_group_size=10_000,
        )
        start += 50_000
    engine = Engine({"t": open_table(tmp_path)})
    xy = np.random.default_rng(0).random((start, 2))
    engine.register_points("points", np.arange(start), xy)
    region = 'in_selection("points", (0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5))'
    query = Query(table="t", filter=parse_filter(region))
    inside = np.flatnonzero((xy[:, 0] < 0.5) & (xy[:, 1] < 0.5))
    np.testing.assert_array_equal(engine.row_numbers(query), inside)
    np.testing.assert_array_equal(engine.column_numpy(query, "id"), inside)
