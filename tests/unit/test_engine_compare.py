"""Engine: comparing two tables (on a key or by position) and joining tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from panels_core.data.table import JoinedTable, Table
from panels_core.query.engine import Engine
from panels_core.query.errors import QueryError
from panels_core.query.model import Query
from panels_core.types import (
    BooleanType,
    ComparedType,
    JoinedTableType,
    ListType,
    NumberType,
    OptionalType,
)

V1 = pa.table(
    {
        "id": [1, 2, 3, 4, 5],
        "score": [0.5, None, 2.0, 1.0, 0.5],
        "label": ["a", "b", "a", "c", "c"],
        "only_v1": [10, 20, 30, 40, 50],
    }
)
V2 = pa.table(
    {
        "id": [2, 3, 4, 6],
        "score": [1.0, 2.5, 0.25, 7.0],
        "label": ["b", "a", "x", "y"],
    }
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine({"v1": V1, "v2": V2})


def compare(**query: object) -> Query:
    return Query(table="v1", compare_with={"table": "v2", "on": "id"}, **query)


def test_compare_on_key_rows_and_flags(engine: Engine) -> None:
    rows = engine.compared(compare()).to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6]  # left rows in order, then right-only
    assert rows[0] == {
        "id": 1,
        "score": {"0": 0.5, "1": None},
        "label": {"0": "a", "1": None},
        "only_v1": 10,
        "present": {"0": True, "1": False},
    }
    assert rows[2]["score"] == {"0": 2.0, "1": 2.5}
    assert rows[5]["present"] == {"0": False, "1": True}
    assert rows[5]["only_v1"] is None


def test_compare_types(engine: Engine) -> None:
    columns = engine.result_type(compare()).columns
    assert columns["id"] == NumberType(integer=True)
    assert columns["score"] == ComparedType(
        item=OptionalType(inner=NumberType()), sources=("0", "1")
    )
    assert columns["present"] == ComparedType(item=BooleanType(), sources=("0", "1"))
    assert isinstance(columns["only_v1"], OptionalType)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.present and 1.present", [2, 3, 4]),
        ("0.present and not 1.present", [1, 5]),
        ("not 0.present", [6]),
        ("1.present", [2, 3, 4, 6]),
        ("0.present", [1, 2, 3, 4, 5]),
        ("0.present and 1.present and 0.score < 1.score", [3]),
        # the same rows when the flags are not top-level conjuncts (a full outer join)
        ("not (not 0.present or not 1.present) and 0.score < 1.score", [3]),
        ("0.label != 1.label", [4]),
        ("1.score > 2 and 0.score is null", [6]),
        ("id > 4", [5, 6]),
    ],
)
def test_compare_filters(engine: Engine, text: str, expected: list[int]) -> None:
    assert engine.page(compare(filter=text), columns=["id"]).column("id").to_pylist() == expected
    assert engine.count(compare(filter=text)) == len(expected)


def test_compare_sort_and_named_sources(engine: Engine) -> None:
    query = Query(
        table="v1",
        compare_with={"table": "v2", "on": "id", "names": ["old", "new"]},
        sort=["-1.score"],
    )
    page = engine.page(query, columns=["id", "score"])
    assert page.column("id").to_pylist() == [6, 3, 2, 4, 1, 5]
    assert page.column("score").to_pylist()[0] == {"old": None, "new": 7.0}
    assert engine.result_type(query).columns["score"].sources == ("old", "new")
    named = query.model_copy(update={"filter": Query(table="v1", filter="0.score > 1").filter})
    assert engine.page(named, columns=["id"]).column("id").to_pylist() == [3]


def test_compare_by_row_position(engine: Engine) -> None:
    query = Query(table="v1", compare_with={"table": "v2"})
    rows = engine.compared(query).to_pylist()
    assert len(rows) == 5
    assert rows[0]["id"] == {"0": 1, "1": 2}  # no key: every common column is compared
    assert rows[3]["score"] == {"0": 1.0, "1": 7.0}
    assert rows[4]["present"] == {"0": True, "1": False}
    assert (
        engine.count(
            query.model_copy(update={"filter": Query(table="v1", filter="0.id == 1.id").filter})
        )
        == 0
    )


def test_compared_histogram_per_source(engine: Engine) -> None:
    hist = engine.histogram(compare(), "score", bins=4)
    assert hist.groups == ["0", "1"]
    edges = np.linspace(0.25, 7.0, 5)
    np.testing.assert_array_equal(hist.edges, edges)
    np.testing.assert_array_equal(hist.counts[0], np.histogram([0.5, 2.0, 1.0, 0.5], bins=edges)[0])
    np.testing.assert_array_equal(
        hist.counts[1], np.histogram([1.0, 2.5, 0.25, 7.0], bins=edges)[0]
    )
    assert hist.nulls == 1  # v1's id 2 (rows absent from a source are not counted)


def test_compare_then_group(engine: Engine) -> None:
    query = compare(filter="0.present and 1.present", group_by=["only_v1"], sort=["only_v1"])
    columns = engine.result_type(query).columns
    assert columns["score"] == ComparedType(
        item=ListType(item=OptionalType(inner=NumberType())), sources=("0", "1")
    )
    query = compare(group_by=["id"], sort=["id"], filter="id <= 3")
    rows = engine.page(query, columns=["id", "score"]).to_pylist()
    assert rows == [
        {"id": 1, "score": {"0": [0.5], "1": [None]}},
        {"id": 2, "score": {"0": [None], "1": [1.0]}},
        {"id": 3, "score": {"0": [2.0], "1": [2.5]}},
    ]
    grouped = engine.grouped(query).to_pylist()
    assert grouped[2]["label"] == {"0": ["a"], "1": ["a"]}
    hist = engine.histogram(query, "score", bins=2)
    assert hist.groups == ["1 / 0", "1 / 1", "2 / 0", "2 / 1", "3 / 0", "3 / 1"]
    assert hist.counts.sum(axis=1).tolist() == [1, 0, 0, 1, 1, 1]


def test_compare_errors(engine: Engine) -> None:
    with pytest.raises(QueryError, match="unknown column `idd`"):
        engine.count(Query(table="v1", compare_with={"table": "v2", "on": "idd"}))
    with pytest.raises(QueryError, match="unknown table `v3`"):
        engine.count(Query(table="v1", compare_with={"table": "v3", "on": "id"}))
    with pytest.raises(QueryError, match="no compare_with"):
        engine.compared(Query(table="v1"))


@pytest.mark.parametrize("how", ["inner", "left", "outer"])
def test_join_matches_pandas_merge(engine: Engine, how: str) -> None:
    query = Query(table="v1", join={"table": "v2", "on": "id", "how": how})
    page = engine.page(query, limit=100).to_pylist()
    merged = V1.to_pandas().merge(V2.to_pandas(), on="id", how=how, suffixes=("_l", "_r"))
    assert len(page) == len(merged) == engine.count(query)
    got = sorted(
        (
            (
                r["v1"]["id"] if r["v1"] else None,
                r["v2"]["id"] if r["v2"] else None,
                r["v1"]["label"] if r["v1"] else None,
                r["v2"]["label"] if r["v2"] else None,
            )
            for r in page
        ),
        key=repr,
    )
    expected = sorted(
        (
            (
                None if pd.isna(row.only_v1) else int(row.id),
                int(row.id) if isinstance(row.label_r, str) else None,
                row.label_l if isinstance(row.label_l, str) else None,
                row.label_r if isinstance(row.label_r, str) else None,
            )
            for row in merged.itertuples()
        ),
        key=repr,
    )
    assert got == expected, how


def test_join_type_filter_sort_and_counts(engine: Engine) -> None:
    query = Query(table="v1", join={"table": "v2", "on": "id"})
    joined = engine.result_type(query)
    assert isinstance(joined, JoinedTableType)
    assert (joined.left_name, joined.right_name, joined.left_key) == ("v1", "v2", "id")
    filtered = query.model_copy(
        update={"filter": Query(table="v1", filter="v2.score > v1.score").filter, "sort": ()}
    )
    assert [r["v1"]["id"] for r in engine.page(filtered).to_pylist()] == [3]
    by_right = Query(table="v1", join={"table": "v2", "on": "id"}, sort=["-v2.score"])
    assert [r["v1"]["id"] for r in engine.page(by_right).to_pylist()] == [3, 2, 4]
    assert engine.join_counts(query) == (3, 2, 1)
    named = Query(table="v1", join={"table": "v2", "on": "id", "names": ["a", "b"]})
    assert engine.page(named, limit=1).column_names == ["a", "b"]


def test_joined_table_source() -> None:
    left, right = Table.from_arrow(V1), Table.from_arrow(V2)
    engine = Engine({"j": JoinedTable(left, right, "id", names=("pred", "truth"))})
    query = Query(table="j")
    assert engine.result_type(query) == JoinedTable(left, right, "id", names=("pred", "truth")).type
    rows = engine.page(query).to_pylist()
    assert [(r["pred"]["id"], r["truth"]["label"]) for r in rows] == [(2, "b"), (3, "a"), (4, "x")]
    mismatched = engine.page(Query(table="j", filter="pred.label != truth.label")).to_pylist()
    assert [r["pred"]["id"] for r in mismatched] == [4]
    assert engine.join_counts(query) == (3, 2, 1)
    with pytest.raises(QueryError, match="group_by on a joined table"):
        engine.count(Query(table="j", group_by=["pred"]))


def test_pages_of_duplicate_keys_pair_exact_rows() -> None:
    # many-to-many keys: a sorted page is read in two passes (positions, then columns);
    # each (left row, right row) pair must come back once, in the sorted order
    a = pa.table({"id": [1, 1, 2], "v": ["a0", "a1", "a2"]})
    b = pa.table({"id": [1, 1, 3], "v": ["b0", "b1", "b2"]})
    engine = Engine({"a": a, "b": b})
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, sort=["-id"])
    rows = [(r["id"], r["v"]["0"], r["v"]["1"]) for r in engine.page(query).to_pylist()]
    assert rows == [
        (3, None, "b2"),
        (2, "a2", None),
        (1, "a0", "b0"),
        (1, "a0", "b1"),
        (1, "a1", "b0"),
        (1, "a1", "b1"),
    ]
    assert [r[1:] for r in rows[2:4]] == [
        (r["v"]["0"], r["v"]["1"]) for r in engine.page(query, offset=2, limit=2).to_pylist()
    ]
    joined = Query(table="a", join={"table": "b", "on": "id", "how": "outer"}, sort=["b.v"])
    pairs = [
        (r["a"]["v"] if r["a"] else None, r["b"]["v"] if r["b"] else None)
        for r in engine.page(joined).to_pylist()
    ]
    assert pairs == [
        ("a0", "b0"),
        ("a1", "b0"),
        ("a0", "b1"),
        ("a1", "b1"),
        (None, "b2"),
        ("a2", None),
    ]


def test_value_counts_of_a_compared_column_per_source(engine: Engine) -> None:
    vc = engine.value_counts(compare(), "label", top=3)
    # v1 labels a b a c c (ids 1-5), v2 labels b a x y (ids 2, 3, 4, 6)
    assert vc.groups == ["0", "1"]
    assert vc.values == ["a", "b", "c"]  # totals 3, 2, 2: ties by value
    assert vc.counts.tolist() == [[2, 1, 2], [1, 1, 0]]
    assert (vc.other, vc.nulls) == (2, 0)  # x and y
    pairs = engine.value_counts(compare(filter="0.present and 1.present"), ["0.label", "1.label"])
    assert dict(zip(pairs.values, pairs.counts.tolist())) == {
        ("b", "b"): 1,
        ("a", "a"): 1,
        ("c", "x"): 1,
    }


def test_value_counts_of_a_compared_column_count_nan_as_one_value() -> None:
    v1 = pa.table({"id": [1, 2, 3, 4], "x": [float("nan"), float("nan"), 1.0, None]})
    v2 = pa.table({"id": [1, 3, 5], "x": [float("nan"), 1.0, float("nan")]})
    engine = Engine({"v1": v1, "v2": v2})
    query = Query(table="v1", compare_with={"table": "v2", "on": "id"})
    vc = engine.value_counts(query, "x", top=5)
    assert [str(v) for v in vc.values] == ["nan", "1.0"]  # once, not once per source
    assert vc.counts.tolist() == [[2, 1], [2, 1]]
    assert (vc.other, vc.nulls) == (0, 1)


def _key_ordered_files(tmp_path) -> tuple[pa.Table, pa.Table, Table, Table]:
    # ids ascending by row group (what the per-range join needs), null and repeated keys,
    # keys on one side only, and row groups of the two files ending at different ids
    rng = np.random.default_rng(3)
    ids_a = [*range(0, 60), None, 60, 61, 61, 62, *range(63, 90), None]
    ids_b = [None, *range(5, 40), 40, 40, *range(41, 70), None, *range(75, 110)]
    a = pa.table({"id": pa.array(ids_a, pa.int64()), "x": rng.normal(0, 1, len(ids_a))})
    b = pa.table({"id": pa.array(ids_b, pa.int64()), "x": rng.normal(0, 1, len(ids_b))})
    pa_path, pb_path = tmp_path / "a.parquet", tmp_path / "b.parquet"
    import pyarrow.parquet as pq

    pq.write_table(a, pa_path, row_group_size=16)
    pq.write_table(b, pb_path, row_group_size=11)
    return a, b, Table.from_parquet(pa_path), Table.from_parquet(pb_path)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "0.present",
        "1.present",
        "0.present and 1.present",
        "0.present and 1.present and abs(0.x - 1.x) > 0.5",
        "not 1.present or 0.x > 0",
    ],
)
def test_compare_in_key_ranges_gives_the_same_rows(tmp_path, monkeypatch, text) -> None:
    import panels_core.query.engine.compare as compare_module

    monkeypatch.setattr(compare_module, "PART_ROWS", 10)
    a, b, disk_a, disk_b = _key_ordered_files(tmp_path)
    disk = Engine({"a": disk_a, "b": disk_b})
    memory = Engine({"a": a, "b": b})  # in memory: always one join
    spec = {"table": "b", "on": "id"}
    catalog = disk._catalog
    splits = compare_module.key_splits(
        catalog,
        catalog.source("a"),
        catalog.source("b"),
        Query(table="a", compare_with=spec).compare_with,
    )
    assert splits is not None and len(splits) >= 3  # the per-range path is the one tested
    for sort in ([], ["id"], ["-1.x"]):
        query = Query(table="a", compare_with=spec, filter=text, sort=sort)
        expected = memory.compared(query).to_pylist()
        assert disk.compared(query).to_pylist() == expected
        assert disk.count(query) == memory.count(query) == len(expected)
        assert disk.page(query, offset=3, limit=7).to_pylist() == expected[3:10]
    rows = disk.compared(Query(table="a", compare_with=spec)).to_pylist()
    # every row of both files once: 82 matched pairs (61 twice in a, 40 twice in b),
    # 10 + 2 null-key rows of a only, 20 + 2 null-key rows of b only
    flags = [(r["present"]["0"], r["present"]["1"]) for r in rows]
    assert (flags.count((True, True)), flags.count((True, False))) == (82, 12)
    assert flags.count((False, True)) == 22
    assert sum(r["id"] is None for r in rows) == 4


def test_compare_of_unordered_files_is_one_join(tmp_path, monkeypatch) -> None:
    import pyarrow.parquet as pq

    import panels_core.query.engine.compare as compare_module

    monkeypatch.setattr(compare_module, "PART_ROWS", 4)
    t = pa.table({"id": [5, 1, 9, 2, 7, 3, 8, 4], "x": [float(i) for i in range(8)]})
    pq.write_table(t, tmp_path / "u.parquet", row_group_size=2)  # row groups overlap in id
    pq.write_table(t.slice(0, 6), tmp_path / "v.parquet", row_group_size=2)
    engine = Engine(
        {
            "u": Table.from_parquet(tmp_path / "u.parquet"),
            "v": Table.from_parquet(tmp_path / "v.parquet"),
        }
    )
    query = Query(table="u", compare_with={"table": "v", "on": "id"}, sort=["id"])
    catalog = engine._catalog
    sides = catalog.source("u"), catalog.source("v")
    assert compare_module.key_splits(catalog, *sides, query.compare_with) is None
    rows = engine.compared(query).to_pylist()
    assert [(r["id"], r["present"]["1"]) for r in rows] == [
        (1, True),
        (2, True),
        (3, True),
        (4, False),
        (5, True),
        (7, True),
        (8, False),
        (9, True),
    ]


def test_count_of_a_comparison_offset_past_its_rows_is_zero(engine: Engine) -> None:
    query = Query(table="v1", compare_with={"table": "v2", "on": "id"}, offset=1000)
    assert engine.count(query) == 0
    assert engine.page(query).num_rows == 0
