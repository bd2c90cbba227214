"""The merge's stream: row positions counted as the rows stream (no row-number column
read), each table read one batch ahead on a thread, and one merge pass with room for
every pair. Checked value by value against a whole merge and against pandas' merge.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import panels_core.query.engine.merge as merge_module
import panels_core.query.engine.pairing as pairing
from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.engine.compare import beyond_required
from panels_core.query.engine.merge import Merger, read_ahead
from panels_core.query.model import Query


def test_a_key_repeated_on_both_sides_gets_every_pair() -> None:
    """More pairs than rows (4 x 3 of key 5): the merge reruns with room for all of them."""
    a = np.array([1, 5, 5, 5, 5, 7], np.int64)
    b = np.array([0, 5, 5, 5, 8], np.int64)
    pairs = pairing.pair_sorted(a, b, True, True)
    assert pairs is not None
    expected = [(-1, 0), (0, -1)]
    expected += [(i, j) for i in range(1, 5) for j in range(1, 4)]
    expected += [(5, -1), (-1, 4)]
    assert list(zip(pairs[0].tolist(), pairs[1].tolist())) == expected


@pytest.mark.parametrize(("left_batch", "right_batch"), [(1, 1), (3, 5), (7, 2), (100, 100)])
@pytest.mark.parametrize("keep", list(itertools.product([False, True], repeat=2)))
def test_numbered_batches_give_each_rows_position_and_values(
    left_batch: int, right_batch: int, keep: tuple[bool, bool]
) -> None:
    """Each side's picked column, then its row's position in its table (null without a
    partner there): the positions of one merge of the whole key columns, in its order."""
    rng = np.random.default_rng(7)
    schema = pa.schema(
        [("0.v", pa.float64()), ("0.row", pa.int64()), ("1.v", pa.float64()), ("1.row", pa.int64())]
    )
    for _ in range(30):
        a = np.sort(rng.integers(-5, 25, rng.integers(0, 40)))  # duplicates and gaps
        b = np.sort(rng.integers(0, 30, rng.integers(0, 40)))
        values = (rng.normal(size=a.size), rng.normal(size=b.size))
        sides = [
            pa.table({"k": pa.array(k, pa.int64()), "v": v}).to_batches(max_chunksize=size)
            for k, v, size in zip((a, b), values, (left_batch, right_batch))
        ]
        side_schema = pa.schema([("k", pa.int64()), ("v", pa.float64())])
        out = pairing.merged_batches(
            (iter(sides[0]), iter(sides[1])), (side_schema,) * 2, keep, schema, ([1], [1]), True
        )
        got = [tuple(r.values()) for batch in out for r in batch.to_pylist()]
        whole = pairing.pair_sorted(a, b, *keep)
        assert whole is not None
        expected = [
            (
                None if i < 0 else values[0][i],
                None if i < 0 else i,
                None if j < 0 else values[1][j],
                None if j < 0 else j,
            )
            for i, j in zip(whole[0].tolist(), whole[1].tolist())
        ]
        assert got == expected


def test_read_ahead_keeps_the_order_and_reads_one_batch_ahead() -> None:
    pulled: list[int] = []
    readers: set[threading.Thread] = set()

    def source() -> Iterator[int]:
        for i in range(10):
            pulled.append(i)
            readers.add(threading.current_thread())
            yield i

    ahead = read_ahead(source())
    assert [next(ahead), next(ahead)] == [0, 1]
    ahead.close()  # the caller stops early: a read in flight ends, no further one starts
    assert pulled in ([0, 1], [0, 1, 2])
    assert readers and all(t.name.startswith("panels-merge-read") for t in readers)
    assert not any(t.is_alive() for t in readers)  # the reading thread has ended
    assert list(read_ahead(iter(range(5)))) == [0, 1, 2, 3, 4]


def test_read_ahead_passes_a_failed_read_on() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise OSError("the file went away")

    ahead = read_ahead(source())
    assert next(ahead) == 1
    with pytest.raises(OSError, match="went away"):
        next(ahead)


def _versions(rng: np.random.Generator) -> dict[str, pa.Table]:
    """Two versions: keys repeated on both sides and on one side only, NaN and null x."""
    tables = {}
    for name, low, high, n in (("a", 0, 400, 600), ("b", 150, 550, 500)):
        x = rng.normal(size=n)
        x[rng.random(n) < 0.05] = np.nan
        tables[name] = pa.table(
            {
                "id": pa.array(np.sort(rng.integers(low, high, n)), pa.int64()),
                "x": pa.array(x, mask=rng.random(n) < 0.05),
            }
        )
    return tables


COUNTS = {  # filter -> the pandas merge's rows it keeps
    "0.present and not 1.present": lambda m: m["side"] == "left_only",
    "1.present and not 0.present": lambda m: m["side"] == "right_only",
    "0.present and 1.present": lambda m: m["side"] == "both",
    "0.present and 1.present and abs(0.x - 1.x) > 0.5": lambda m: (
        (m["side"] == "both") & ((m["x_0"] - m["x_1"]).abs() > 0.5)
    ),
    "0.x > 1.x": lambda m: m["x_0"] > m["x_1"],
}


@pytest.mark.parametrize("parquet", [False, True])
def test_merged_counts_and_first_pages_equal_pandas_merge(
    monkeypatch: pytest.MonkeyPatch, tmp_path, parquet: bool
) -> None:
    """Counts (only in one side, in both, changed) and first pages in key order of a
    streamed merge, cut in batches of 7 rows, against pandas' outer merge row by row."""
    merged: list[bool] = []
    paired = Merger.paired

    def spy(self: Merger, *args: object, **kwargs: object) -> object:
        result = paired(self, *args, **kwargs)
        merged.append(result is not None)
        return result

    monkeypatch.setattr(Merger, "paired", spy)
    monkeypatch.setattr(merge_module, "PAIR_MIN_ROWS", 0)
    monkeypatch.setattr(merge_module, "STREAM_BATCH", 7)
    tables = _versions(np.random.default_rng(2))
    if parquet:
        for name, table in tables.items():
            pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=64)
        engine = Engine({n: Table.from_parquet(tmp_path / f"{n}.parquet") for n in "ab"})
    else:
        engine = Engine(tables)
    frames = [
        pd.DataFrame({"id": t["id"].to_numpy(), "x": t["x"].to_pandas(), "row": range(len(t))})
        for t in (tables["a"], tables["b"])
    ]
    both = frames[0].merge(frames[1], on="id", how="outer", suffixes=("_0", "_1"), indicator="side")
    both = both.sort_values(["id", "row_0", "row_1"], na_position="last")
    for text, keeps in COUNTS.items():
        kept = both[keeps(both)]
        query = Query(table="a", compare_with={"table": "b", "on": "id"}, filter=text, sort=["id"])
        assert engine.count(query) == len(kept), text
        page = engine.page(query, limit=25).to_pylist()
        assert [r["id"] for r in page] == kept["id"].head(25).tolist(), text
        x0 = [r["x"]["0"] for r in page]
        assert np.array_equal(
            np.array(x0, dtype=float), kept["x_0"].head(25).to_numpy(float), equal_nan=True
        ), text
    assert merged and all(merged)


@pytest.mark.parametrize(
    ("text", "left"),
    [
        ("0.present and 1.present and abs(0.x - 1.x) > 0.1", "abs(0.x - 1.x) > 0.1"),
        ("1.present and 0.x > 1 and 0.present", "0.x > 1"),
        ("0.present and 1.present", None),
        ("0.present or 1.x > 2", "0.present or 1.x > 2"),  # not a conjunct: kept
        ("not 1.present and 0.present", "not 1.present"),
    ],
)
def test_the_present_conjuncts_the_join_keeps_are_not_filtered_again(
    text: str, left: str | None
) -> None:
    expr = beyond_required(Query(table="a", filter=text).filter, ("0", "1"))
    assert (None if expr is None else expr.to_text()) == left
