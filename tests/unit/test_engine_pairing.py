"""Comparisons of tables sorted by an integer key pair rows by a merge, not a hash join.

The merge (``panels_core.query.engine.pairing``) is checked against a brute-force
pairing, also when it streams the tables in batches cut anywhere; the engine's
merged comparisons against its hash-join answers for the same queries, over
Arrow tables and Parquet files.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import panels_core.query.engine.merge as merge_module
import panels_core.query.engine.pairing as pairing
from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.engine.merge import Merger
from panels_core.query.model import Query

# ------------------------------------------------------------------ the merge itself


def brute_pairs(a: np.ndarray, b: np.ndarray, keep_left: bool, keep_right: bool) -> list:
    pairs = [(i, j) for i in range(a.size) for j in range(b.size) if a[i] == b[j]]
    if keep_left:
        pairs += [(i, -1) for i in range(a.size) if a[i] not in b]
    if keep_right:
        pairs += [(-1, j) for j in range(b.size) if b[j] not in a]
    return sorted(pairs)


@pytest.mark.parametrize(
    ("keep_left", "keep_right"), list(itertools.product([False, True], repeat=2))
)
def test_pair_sorted_matches_brute_force(keep_left: bool, keep_right: bool) -> None:
    rng = np.random.default_rng(0)
    for _ in range(150):
        a = np.sort(rng.integers(-5, 25, rng.integers(0, 40)))  # duplicates and gaps
        b = np.sort(rng.integers(0, 30, rng.integers(0, 40)))
        pairs = pairing.pair_sorted(a, b, keep_left, keep_right)
        assert pairs is not None
        left, right = pairs
        assert sorted(zip(left.tolist(), right.tolist())) == brute_pairs(
            a, b, keep_left, keep_right
        )
        # in key order: the key of each pair never steps down
        keys = np.where(left >= 0, a[np.maximum(left, 0)] if a.size else 0, 0)
        keys = np.where(left >= 0, keys, b[np.maximum(right, 0)] if b.size else 0)
        assert np.all(np.diff(keys) >= 0)


def test_pair_sorted_refuses_unsorted_keys() -> None:
    ordered = np.arange(1000)
    for broken in (
        np.r_[5, np.arange(999)],  # the first step
        np.r_[np.arange(500), 3, np.arange(500, 999)],  # in the middle of a part
        np.r_[np.arange(999), 0],  # the last step
    ):
        assert pairing.pair_sorted(broken, ordered, True, True) is None
        assert pairing.pair_sorted(ordered, broken, False, False) is None


def batches_of(keys: np.ndarray, size: int) -> list[pa.RecordBatch]:
    table = pa.table({"k": pa.array(keys, pa.int64()), "row": np.arange(keys.size)})
    return table.to_batches(max_chunksize=size)


@pytest.mark.parametrize(("left_batch", "right_batch"), [(1, 1), (3, 5), (7, 2), (100, 100)])
@pytest.mark.parametrize("keep", list(itertools.product([False, True], repeat=2)))
def test_merged_batches_pair_as_the_whole_merge_does(
    left_batch: int, right_batch: int, keep: tuple[bool, bool]
) -> None:
    """Streamed in batches cut anywhere (a key's rows split over batches, one side ending
    first), the pairs are those of one merge of the whole columns, in the same order,
    and no batch handed on holds more pairs than the rows of the batches read for it."""
    rng = np.random.default_rng(3)
    schema = pa.schema([("0.row", pa.int64()), ("1.row", pa.int64())])
    for _ in range(40):
        a = np.sort(rng.integers(-5, 25, rng.integers(0, 40)))  # duplicates and gaps
        b = np.sort(rng.integers(0, 30, rng.integers(0, 40)))
        sides = (batches_of(a, left_batch), batches_of(b, right_batch))
        out = list(
            pairing.merged_batches(
                (iter(sides[0]), iter(sides[1])),
                (sides[0][0].schema if sides[0] else batches_of(a, 1)[0].schema,) * 2,
                keep,
                schema,
                ([1], [1]),
            )
        )
        got = [(r["0.row"], r["1.row"]) for batch in out for r in batch.to_pylist()]
        whole = pairing.pair_sorted(a, b, *keep)
        assert whole is not None
        expected = [
            (None if i < 0 else i, None if j < 0 else j)
            for i, j in zip(whole[0].tolist(), whole[1].tolist())
        ]
        assert got == expected


@pytest.mark.parametrize(
    "keys",
    [
        [[1, 2, 3], [2, 9]],  # steps down between two batches
        [[1, 3, 2]],  # inside a batch
        [[1, None, 3]],  # a null
    ],
)
def test_merged_batches_refuse_unsorted_or_null_keys(keys: list) -> None:
    side = [pa.record_batch({"k": pa.array(k, pa.int64())}) for k in keys]
    other = [pa.record_batch({"k": pa.array([0, 1, 2, 3, 9, 10], pa.int64())})]
    schema = pa.schema([("k", pa.int64())])
    for readers in ((iter(side), iter(other)), (iter(other), iter(side))):
        with pytest.raises(pairing.Unsorted):
            list(pairing.merged_batches(readers, (schema, schema), (True, True), schema, ([0], [])))


# ------------------------------------------------------------------ the engine


def version(ids: np.ndarray, seed: int, key: str = "id") -> pa.Table:
    rng = np.random.default_rng(seed)
    n = ids.size
    return pa.table(
        {
            key: pa.array(ids, pa.int32()),
            "x": rng.normal(size=n),
            "y": pa.array(rng.normal(size=n), mask=rng.random(n) < 0.2),
            "label": pa.array(np.array(["cat", "dog", "emu"])[rng.integers(0, 3, n)]),
            "tags": [[f"t{i % 4}"] * (i % 3) for i in range(n)],
        }
    )


RNG = np.random.default_rng(11)
A = version(np.sort(RNG.integers(0, 300, 400)), 1)  # duplicate keys on both sides
B = version(np.sort(RNG.integers(100, 420, 350)), 2)
FILTERS = [
    None,
    "0.present and 1.present",
    "0.present",
    "1.present",
    "abs(0.x - 1.x) > 0.5",
    "0.present and 1.label == 'cat'",
    "0.x > 0 or 1.y is null",
    "len(0.tags) == 2",
]
SORTS = [(), ("id",), ("-0.x",), ("1.label", "-id")]


def answers(engine: Engine, on: object) -> list:
    out = []
    for text, sort in itertools.product(FILTERS, SORTS):
        query = Query(
            table="a", compare_with={"table": "b", "on": on}, filter=text, sort=list(sort)
        )
        out.append(
            (
                engine.count(query),
                engine.page(query, limit=40).to_pylist(),
                engine.page(query, offset=13, limit=7, columns=["x", "present"]).to_pylist(),
                engine.histogram(query, "x", bins=9).counts.tolist(),
                engine.value_counts(query, "label").counts.tolist(),
                np.nan_to_num(engine.column_numpy(query, "1.y")).tolist(),
            )
        )
    return out


@pytest.fixture
def merged_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every comparison of any size may merge; records whether each one did."""
    calls: list[bool] = []
    paired = Merger.paired

    def spy(self: Merger, *args: object, **kwargs: object) -> object:
        result = paired(self, *args, **kwargs)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(Merger, "paired", spy)
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 0)
    return calls


def hash_answers(tables: dict, on: object, monkeypatch: pytest.MonkeyPatch) -> list:
    with monkeypatch.context() as patch:
        patch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
        return answers(Engine(tables), on)


@pytest.mark.parametrize("on", ["id", None])
def test_merged_comparison_of_arrow_tables_equals_the_hash_join(
    merged_calls: list[bool], monkeypatch: pytest.MonkeyPatch, on: object
) -> None:
    tables = {"a": A, "b": B}
    merged = answers(Engine(tables), on)
    assert merged_calls and all(merged_calls)
    assert merged == hash_answers(tables, on, monkeypatch)


def test_merged_comparison_of_parquet_files_equals_the_hash_join(
    merged_calls: list[bool], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    for name, table in (("a", A), ("b", B)):
        pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=64)
    tables = {name: Table.from_parquet(tmp_path / f"{name}.parquet") for name in "ab"}
    handed: list[int] = []
    merged_batches = pairing.merged_batches

    def counting(*args: object) -> object:
        for batch in merged_batches(*args):  # type: ignore[arg-type]
            handed.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pairing, "merged_batches", counting)
    monkeypatch.setattr(merge_module, "STREAM_BATCH", 37)  # many batches, cut anywhere
    merged = answers(Engine(tables), "id")
    assert merged_calls and all(merged_calls)
    # the paired rows reach DuckDB in many small batches, never the whole comparison
    assert len(handed) > 10 and max(handed) < 2 * 37 * 4
    assert merged == hash_answers(tables, "id", monkeypatch)
    # and the rows are the ones the Arrow tables give
    assert merged == answers(Engine({"a": A, "b": B}), "id")


def test_keys_with_different_names(merged_calls: list[bool], monkeypatch) -> None:
    b = version(np.arange(50, 150), 3, key="uid")
    tables = {"a": version(np.arange(100), 4), "b": b}
    query = Query(
        table="a", compare_with={"table": "b", "on": ["id", "uid"]}, filter="1.x > 0", sort=["-id"]
    )
    merged = (Engine(tables).count(query), Engine(tables).page(query, limit=20).to_pylist())
    assert all(merged_calls)
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    assert merged == (Engine(tables).count(query), Engine(tables).page(query, limit=20).to_pylist())
    assert merged[1][0]["id"] == 149 and merged[1][0]["present"] == {"0": False, "1": True}


@pytest.mark.parametrize(
    "b_ids",
    [
        np.r_[np.arange(50), 3, np.arange(50, 99)],  # not sorted
        None,  # a null key
    ],
)
def test_unsorted_or_null_keys_fall_back_to_the_hash_join(
    merged_calls: list[bool], monkeypatch, b_ids
) -> None:
    a = version(np.arange(100), 5)
    b = version(np.arange(100), 6)
    if b_ids is None:
        b = b.set_column(0, "id", pa.array([None, *range(1, 100)], pa.int32()))
    else:
        b = b.set_column(0, "id", pa.array(b_ids, pa.int32()))
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter="0.x < 1.x")
    engine = Engine({"a": a, "b": b})
    got = (engine.count(query), engine.page(query).to_pylist())
    # the count's stream found the keys unsorted and ran again over the hash join; the
    # page plans the hash join at once
    assert merged_calls == [True, False]
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    assert got == (
        Engine({"a": a, "b": b}).count(query),
        Engine({"a": a, "b": b}).page(query).to_pylist(),
    )


def test_text_keys_keep_the_hash_join(merged_calls: list[bool]) -> None:
    a = pa.table({"name": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    b = pa.table({"name": ["b", "c", "d"], "x": [2.0, 5.0, 1.0]})
    query = Query(table="a", compare_with={"table": "b", "on": "name"}, filter="0.x != 1.x")
    engine = Engine({"a": a, "b": b})
    assert engine.page(query).column("name").to_pylist() == ["c"]  # null != 1.0 is null
    assert merged_calls == [False]


@pytest.mark.parametrize(
    ("text", "sort", "key_gathered"),
    [
        ("0.present and 1.x > 0", ["id"], False),  # pair order is key order: no key, no sort
        ("0.present", ["id"], False),  # rows of 0 alone keep their place in key order
        ("1.present", ["id"], True),  # rows of 1 alone would slot in between: sort by key
        ("0.present", ["-id"], True),  # descending: sorted by DuckDB
        ("0.present and id > 150", ["id"], True),  # the filter reads the key
    ],
)
def test_a_comparison_sorted_by_its_key_needs_no_key_column(
    merged_calls: list[bool], monkeypatch, text: str, sort: list[str], key_gathered: bool
) -> None:
    taken: list[int] = []
    merged_batches = pairing.merged_batches

    def counting(*args: object) -> object:
        taken.append("__tp_a.id" in args[3].names)  # type: ignore[attr-defined]
        return merged_batches(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pairing, "merged_batches", counting)
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter=text, sort=sort)
    engine = Engine({"a": A, "b": B})  # duplicate keys on both sides: ties by row
    merged = (engine.count(query), engine.page(query, limit=60).to_pylist())
    merged_tail = engine.page(query, offset=40, limit=30, columns=["id", "x"]).to_pylist()
    assert all(merged_calls) and taken and all(t == key_gathered for t in taken)
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    plain = Engine({"a": A, "b": B})
    assert merged == (plain.count(query), plain.page(query, limit=60).to_pylist())
    assert merged_tail == plain.page(query, offset=40, limit=30, columns=["id", "x"]).to_pylist()
    ids = [row["id"] for row in merged[1]]
    assert ids == sorted(ids, reverse=sort[0].startswith("-")) and len(set(ids)) < len(ids)


def test_warm_up_loads_the_kernels() -> None:
    pairing.warm_up()  # raises if a kernel does not compile or gives a wrong pairing


def test_merged_comparisons_from_many_threads_at_once(merged_calls: list[bool]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def run(threshold: float) -> tuple[int, list]:
        engine = Engine({"a": A, "b": B})  # each its own pairing: every thread merges
        query = Query(
            table="a",
            compare_with={"table": "b", "on": "id"},
            filter=f"abs(0.x - 1.x) > {threshold}",
            sort=["id"],
        )
        return engine.count(query), engine.page(query, limit=5).column("id").to_pylist()

    thresholds = [0.1 * i for i in range(8)]
    expected = [run(t) for t in thresholds]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, thresholds)) == expected
    assert all(merged_calls)
    assert [n for n, _ in expected] == sorted((n for n, _ in expected), reverse=True)


def test_merged_grouped_and_split_histograms_equal_the_hash_join(merged_calls, monkeypatch) -> None:
    def histograms(engine: Engine) -> list:
        out = []
        for text in (None, "0.present", "0.x > 1.x"):
            compare = {"table": "b", "on": "id"}
            grouped = Query(table="a", compare_with=compare, filter=text, group_by=["1.label"])
            per_group = engine.histogram(grouped, "x", bins=5)
            split = engine.histogram(
                Query(table="a", compare_with=compare, filter=text), "0.x", bins=5, by="1.label"
            )
            out.append((per_group.counts.tolist(), per_group.groups, split.counts.tolist()))
            out.append((split.groups, engine.count(grouped)))
        return out

    merged = histograms(Engine({"a": A, "b": B}))
    assert any(merged_calls)
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    assert merged == histograms(Engine({"a": A, "b": B}))


@pytest.mark.parametrize(
    ("a_ids", "b_ids"),
    [
        ([], [1, 2, 3]),  # one side empty
        ([1, 2, 3], []),
        ([1, 2, 3], [4, 5, 6]),  # no key in common
        ([5, 5, 5], [5, 5]),  # one key, every pair
    ],
)
def test_edge_cases_equal_the_hash_join(merged_calls, monkeypatch, a_ids, b_ids) -> None:
    a = pa.table({"id": pa.array(a_ids, pa.int64()), "x": pa.array([0.5] * len(a_ids))})
    b = pa.table({"id": pa.array(b_ids, pa.int64()), "x": pa.array([1.5] * len(b_ids))})
    queries = [
        Query(table="a", compare_with={"table": "b", "on": "id"}, filter=text, sort=["-id"])
        for text in (None, "0.present and 1.present", "1.present")
    ]

    def run() -> list:
        engine = Engine({"a": a, "b": b})
        return [(engine.count(q), engine.page(q).to_pylist()) for q in queries]

    merged = run()
    assert merged_calls and all(merged_calls)
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    assert merged == run()


def test_a_file_unsorted_inside_a_row_group_falls_back(merged_calls, tmp_path) -> None:
    # row groups ascend ([0, 9], [10, 19]) but the rows inside the first do not
    ids = [3, 1, 2, 0, 4, 5, 6, 7, 8, 9, *range(10, 20)]
    pq.write_table(
        pa.table({"id": ids, "x": [float(i) for i in ids]}),
        tmp_path / "a.parquet",
        row_group_size=10,
    )
    pq.write_table(pa.table({"id": list(range(20)), "x": [0.0] * 20}), tmp_path / "b.parquet")
    engine = Engine({n: Table.from_parquet(tmp_path / f"{n}.parquet") for n in "ab"})
    query = Query(
        table="a", compare_with={"table": "b", "on": "id"}, filter="0.x > 1.x", sort=["id"]
    )
    assert engine.page(query).column("id").to_pylist() == list(range(1, 20))
    assert engine.page(query, offset=1).column("id").to_pylist() == list(range(2, 20))
    # the stream found the rows unsorted: the hash join answered, and answers the next page
    assert merged_calls == [True, False]


def test_unsigned_keys_past_int64_fall_back(merged_calls) -> None:
    big = 2**63 + 5
    a = pa.table({"id": pa.array([1, big], pa.uint64()), "x": [1.0, 2.0]})
    b = pa.table({"id": pa.array([1, big], pa.uint64()), "x": [1.0, 3.0]})
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter="0.x != 1.x")
    engine = Engine({"a": a, "b": b})
    assert engine.page(query).column("id").to_pylist() == [big]
    assert engine.page(query, offset=1).num_rows == 0
    assert merged_calls == [True, False]


@pytest.mark.parametrize("parquet", [False, True])
@pytest.mark.parametrize("offset", [0, -(2**31), 2**40, 2**62 - 150])
def test_int64_keys_of_any_range_merge(
    merged_calls, monkeypatch, tmp_path, parquet, offset
) -> None:
    """int64 keys merge whatever their range (keys past 2**53 stay exact: never floats);
    the answers stay those of the hash join."""
    tables = {
        name: table.set_column(
            0, "id", pa.array(table.column("id").to_numpy().astype(np.int64) + offset, pa.int64())
        )
        for name, table in (("a", A), ("b", B))
    }
    if parquet:
        for name, table in tables.items():
            pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=100)
        tables = {n: Table.from_parquet(tmp_path / f"{n}.parquet") for n in "ab"}
    query = Query(
        table="a", compare_with={"table": "b", "on": "id"}, filter="1.x > 0", sort=["-id"]
    )
    engine = Engine(tables)
    merged = (engine.count(query), engine.page(query, limit=30).to_pylist())
    assert merged_calls and all(merged_calls)
    ids = [row["id"] for row in merged[1]]
    assert ids == sorted(ids, reverse=True) and min(ids) >= offset + 100
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    plain = Engine(tables)
    assert merged == (plain.count(query), plain.page(query, limit=30).to_pylist())


def pandas_compared(a: pa.Table, b: pa.Table, how: str) -> list:
    """The comparison by pandas' merge of the keys and row numbers, each row's values
    then read from the tables (pandas would turn null into NaN). As SQL joins, a null
    key meets no row (pandas pairs null keys with each other): those rows stand alone."""
    frames = [
        pd.DataFrame({"id": t.column("id").to_pandas(), "row": np.arange(t.num_rows)})
        for t in (a, b)
    ]
    left, right = (f[f["id"].notna()] for f in frames)
    merged = left.merge(right, on="id", how=how, suffixes=("_0", "_1"), indicator="side")
    pairs = [
        (
            r.id,
            None if r.side == "right_only" else int(r.row_0),
            None if r.side == "left_only" else int(r.row_1),
        )
        for r in merged.itertuples()
    ]
    if how == "outer":
        pairs += [(None, i, None) for i in frames[0][frames[0]["id"].isna()]["row"]]
        pairs += [(None, None, j) for j in frames[1][frames[1]["id"].isna()]["row"]]
    xs = a.column("x").to_pylist(), b.column("x").to_pylist()
    rows = [
        (
            key,
            None if i is None else xs[0][i],
            None if j is None else xs[1][j],
            i is not None,
            j is not None,
        )
        for key, i, j in pairs
    ]
    return sorted((_plain(row) for row in rows), key=repr)


def _plain(row: tuple) -> tuple:
    """Null and NaN apart, as text; numbers as floats."""
    return tuple(
        "null" if v is None else v if isinstance(v, bool) else "nan" if np.isnan(v) else float(v)
        for v in row
    )


@pytest.mark.parametrize("null_keys", [False, True])
@pytest.mark.parametrize("parquet", [False, True])
def test_compared_rows_equal_pandas_merge(
    merged_calls, monkeypatch, tmp_path, null_keys: bool, parquet: bool
) -> None:
    """Duplicate keys on both sides, keys on one side only, NaN and null values, and
    (``null_keys``) null keys, which the stream finds and leaves to the hash join."""
    rng = np.random.default_rng(5)
    tables = {}
    for name, low, high, n in (("a", 0, 60, 90), ("b", 30, 90, 70)):
        ids = pa.array(np.sort(rng.integers(low, high, n)), pa.int64())
        if null_keys:
            ids = pa.array([None, *ids.to_pylist()[1:]], pa.int64())
        x = rng.normal(size=n)
        x[rng.random(n) < 0.1] = np.nan
        tables[name] = pa.table({"id": ids, "x": pa.array(x, mask=rng.random(n) < 0.1)})
    if parquet:
        for name, table in tables.items():
            pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=16)
        engine = Engine({n: Table.from_parquet(tmp_path / f"{n}.parquet") for n in "ab"})
    else:
        engine = Engine(tables)
    monkeypatch.setattr(merge_module, "STREAM_BATCH", 7)  # a key's rows over many batches
    for text, how in ((None, "outer"), ("0.present and 1.present", "inner")):
        query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter=text)
        rows = engine.page(query, limit=10_000).to_pylist()
        got = sorted(
            (
                _plain((r["id"], r["x"]["0"], r["x"]["1"], r["present"]["0"], r["present"]["1"]))
                for r in rows
            ),
            key=repr,
        )
        assert got == pandas_compared(tables["a"], tables["b"], how)
        assert engine.count(query) == len(rows)
    assert merged_calls[0] is True  # the first page streamed (and, with null keys, ran again)
