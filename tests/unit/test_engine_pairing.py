"""Comparisons of tables sorted by an integer key pair rows by a merge, not a hash join.

The merge (``panels_core.query.engine.pairing``) is checked against a brute-force
pairing; the engine's merged comparisons against its hash-join answers for
the same queries, over Arrow tables and Parquet files.
"""

from __future__ import annotations

import itertools

import numpy as np
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


def test_pair_positions() -> None:
    left, right = pairing.pair_positions(4, 2, keep_left=True, keep_right=True)
    assert left.tolist() == [0, 1, 2, 3] and right.tolist() == [0, 1, -1, -1]
    left, right = pairing.pair_positions(2, 3, keep_left=True, keep_right=False)
    assert left.tolist() == [0, 1] and right.tolist() == [0, 1]
    left, right = pairing.pair_positions(2, 3, keep_left=False, keep_right=True)
    assert left.tolist() == [0, 1, -1] and right.tolist() == [0, 1, 2]


def test_take_gathers_numbers_and_any_other_type() -> None:
    rows = np.array([2, -1, 0], dtype=np.int32)
    index = pairing.index_array(rows, partnerless=True)
    assert index.to_pylist() == [2, None, 0]
    assert pairing.take(pa.chunked_array([[1.5, 2.5], [3.5]]), rows, index).to_pylist() == [
        3.5,
        None,
        1.5,
    ]
    assert pairing.take(pa.array(["a", "b", "c"]), rows, index).to_pylist() == ["c", None, "a"]
    assert pairing.take(pa.array([1, None, 3]), rows, index).to_pylist() == [3, None, 1]
    full = pairing.index_array(np.array([1, 0], dtype=np.int64), partnerless=False)
    assert pairing.take(
        pa.array(np.array([7, 8], dtype=np.int16)), np.array([1, 0]), full
    ).to_pylist() == [8, 7]


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
    streamed: list[str] = []
    stream = pairing.gather_stream

    def counting_stream(batches: object, rows: np.ndarray, kind: pa.DataType) -> pa.Array:
        streamed.append(str(kind))
        return stream(batches, rows, kind)

    monkeypatch.setattr(pairing, "gather_stream", counting_stream)
    monkeypatch.setattr(merge_module, "STREAM_BATCH", 37)  # many batches, cut anywhere
    merged = answers(Engine(tables), "id")
    assert merged_calls and all(merged_calls)
    # numbers of a side whose positions ascend are streamed from the file in batches
    assert "double" in streamed and "int32" in streamed
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
    got = (Engine({"a": a, "b": b}).count(query), Engine({"a": a, "b": b}).page(query).to_pylist())
    assert merged_calls == [False, False]
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


def test_a_page_after_the_count_gathers_nothing_again(merged_calls, monkeypatch) -> None:
    gathered: list[int] = []
    take = pairing.take

    def counting_take(column: object, rows: np.ndarray, index: pa.Array) -> pa.Array:
        gathered.append(rows.size)
        return take(column, rows, index)

    monkeypatch.setattr(pairing, "take", counting_take)
    engine = Engine({"a": A, "b": B})
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter="0.x > 1.x")
    total = engine.count(query)
    after_count = len(gathered)
    assert after_count == 2  # x of each side (the key is not read: no sort, no filter on it)
    page = engine.page(query, limit=50)  # the count kept the first page's positions
    assert len(gathered) == after_count
    assert page.num_rows == 50 and total > 50
    assert all(r["x"]["0"] > r["x"]["1"] for r in page.to_pylist())


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
    take_key = merge_module.take_key

    def counting(*args: object) -> pa.Array:
        taken.append(1)
        return take_key(*args)

    monkeypatch.setattr(merge_module, "take_key", counting)
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter=text, sort=sort)
    engine = Engine({"a": A, "b": B})  # duplicate keys on both sides: ties by row
    merged = (engine.count(query), engine.page(query, limit=60).to_pylist())
    merged_tail = engine.page(query, offset=40, limit=30, columns=["id", "x"]).to_pylist()
    assert all(merged_calls) and bool(taken) == key_gathered
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    plain = Engine({"a": A, "b": B})
    assert merged == (plain.count(query), plain.page(query, limit=60).to_pylist())
    assert merged_tail == plain.page(query, offset=40, limit=30, columns=["id", "x"]).to_pylist()
    ids = [row["id"] for row in merged[1]]
    assert ids == sorted(ids, reverse=sort[0].startswith("-")) and len(set(ids)) < len(ids)


def test_warm_up_loads_the_kernels() -> None:
    pairing.warm_up()  # raises if a kernel does not compile or gives a wrong pairing
    assert pairing.collect_keys([pa.array([1, 2]), pa.array([3])], 3).tolist() == [1, 2, 3]
    assert pairing.collect_keys([pa.array([1, None, 3])], 3) is None


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


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        (
            [[10.0, 11.0, 12.0], [13.0, 14.0, 15.0], [16.0, 17.0]],
            [None, 10, 10, 12, None, 15, 17, None],
        ),
        (
            [[10.0, 11.0, 12.0], [13.0, None, 15.0], [16.0, 17.0]],
            [None, 10, 10, 12, None, 15, 17, None],
        ),
        (
            [[10.0, 11.0, 12.0], [13.0, 14.0, None], [16.0, 17.0]],
            [None, 10, 10, 12, None, None, 17, None],
        ),
        (
            [[10.0, 11.0, 12.0], [13.0, 14.0, 15.0]],
            [None, 10, 10, 12, None, 15, None, None],
        ),  # short
    ],
)
def test_gather_stream_places_each_batch(batches: list, expected: list) -> None:
    rows = np.array([-1, 0, 0, 2, -1, 5, 7, -1], dtype=np.int32)
    got = pairing.gather_stream([pa.array(b) for b in batches], rows, pa.float64())
    assert got.to_pylist() == expected


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
    assert merged_calls == [False]  # the pass found the rows unsorted: the hash join answered


def test_unsigned_keys_past_int64_fall_back(merged_calls) -> None:
    big = 2**63 + 5
    a = pa.table({"id": pa.array([1, big], pa.uint64()), "x": [1.0, 2.0]})
    b = pa.table({"id": pa.array([1, big], pa.uint64()), "x": [1.0, 3.0]})
    query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter="0.x != 1.x")
    assert Engine({"a": a, "b": b}).page(query).column("id").to_pylist() == [big]
    assert merged_calls == [False]


@pytest.mark.parametrize("parquet", [False, True])
@pytest.mark.parametrize(
    ("offset", "narrow"),
    [(0, True), (2**31 - 150, False), (-(2**31), True), (2**40, False)],
)
def test_int64_keys_merge_as_int32_when_every_key_fits(
    merged_calls, monkeypatch, tmp_path, parquet: bool, offset: int, narrow: bool
) -> None:
    """int64 keys within int32 (by the file's statistics, or a min/max of the column)
    are read and merged at half the bytes; the answers stay those of the hash join."""
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
    seen: list[str] = []
    pair_sorted = pairing.pair_sorted

    def spy(a: np.ndarray, b: np.ndarray, *keep: bool) -> object:
        seen.append(f"{a.dtype}/{b.dtype}")
        return pair_sorted(a, b, *keep)

    monkeypatch.setattr(pairing, "pair_sorted", spy)
    query = Query(
        table="a", compare_with={"table": "b", "on": "id"}, filter="1.x > 0", sort=["-id"]
    )
    engine = Engine(tables)
    merged = (engine.count(query), engine.page(query, limit=30).to_pylist())
    assert all(merged_calls) and seen == ["int32/int32" if narrow else "int64/int64"]
    ids = [row["id"] for row in merged[1]]
    assert ids == sorted(ids, reverse=True) and min(ids) >= offset + 100
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 10**18)
    plain = Engine(tables)
    assert merged == (plain.count(query), plain.page(query, limit=30).to_pylist())
