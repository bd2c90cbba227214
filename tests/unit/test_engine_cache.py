"""Engine answer cache: kept answers are reused, and never returned for changed data or queries."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.model import Query


def scores() -> pa.Table:
    return pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "label": ["cat", "dog", "cat", "dog", "cat", None],
            "score": [0.1, 0.4, 0.35, 0.8, 0.95, None],
        }
    )


class Counting:
    """Counts the statements an engine runs (to see whether an answer was recomputed)."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        runner = engine._runner
        fetch, arrow = runner.fetch, runner.arrow

        def counted_fetch(*args: object) -> object:
            self.n += 1
            return fetch(*args)

        def counted_arrow(*args: object) -> object:
            self.n += 1
            return arrow(*args)

        monkeypatch.setattr(runner, "fetch", counted_fetch)
        monkeypatch.setattr(runner, "arrow", counted_arrow)


def test_same_histogram_is_answered_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine({"t": scores()})
    calls = Counting(engine, monkeypatch)
    query = Query(table="t", filter="score > 0.2")
    first = engine.histogram(query, "score", bins=3)
    ran = calls.n
    second = engine.histogram(query, "score", bins=3)
    assert calls.n == ran  # nothing ran again
    expected, edges = np.histogram([0.4, 0.35, 0.8, 0.95], bins=3)
    assert second.counts.tolist() == first.counts.tolist() == expected.tolist()
    assert np.array_equal(second.edges, edges)


def test_a_cached_answer_cannot_be_changed_by_the_caller() -> None:
    engine = Engine({"t": scores()})
    query = Query(table="t")
    hist = engine.histogram(query, "score", bins=2)
    hist.counts[:] = 99
    hist.edges[:] = -1
    again = engine.histogram(query, "score", bins=2)
    expected, edges = np.histogram([0.1, 0.4, 0.35, 0.8, 0.95], bins=2)
    assert again.counts.tolist() == expected.tolist()
    assert np.array_equal(again.edges, edges)
    counts = engine.value_counts(query, "label")
    counts.values.append("zebra")
    assert engine.value_counts(query, "label").values == ["cat", "dog"]


def test_other_bins_reuse_the_stats_but_count_again(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine({"t": scores()})
    query = Query(table="t")
    engine.histogram(query, "score", bins=2)
    calls = Counting(engine, monkeypatch)
    hist = engine.histogram(query, "score", bins=4)
    expected, _ = np.histogram([0.1, 0.4, 0.35, 0.8, 0.95], bins=4)
    assert hist.counts.tolist() == expected.tolist()
    assert calls.n == 1  # the binning only: min/max/counts came from the kept stats


def test_a_changed_filter_is_not_answered_from_the_cache() -> None:
    engine = Engine({"t": scores()})
    assert engine.count(Query(table="t", filter="score > 0.3")) == 4
    assert engine.count(Query(table="t", filter="score > 0.5")) == 2
    low = engine.histogram(Query(table="t", filter="score < 0.5"), "score", bins=2)
    high = engine.histogram(Query(table="t", filter="score >= 0.5"), "score", bins=2)
    assert low.counts.sum() == 3 and high.counts.sum() == 2
    assert high.edges[0] == 0.8


def test_add_data_invalidates_kept_answers() -> None:
    table = Table.from_arrow(scores())
    engine = Engine({"t": table})
    query = Query(table="t")
    assert engine.count(query) == 6
    before = engine.histogram(query, "score", bins=2)
    assert engine.value_counts(query, "label").counts.tolist() == [3, 2]
    table.add_data(7, "dog", 2.0)
    table.add_data(8, "dog", 0.2)
    assert engine.count(query) == 8
    after = engine.histogram(query, "score", bins=2)
    assert after.edges[-1] == 2.0 and before.edges[-1] == 0.95
    assert (
        after.counts.tolist() == np.histogram([0.1, 0.4, 0.35, 0.8, 0.95, 2.0, 0.2], 2)[0].tolist()
    )
    assert engine.value_counts(query, "label").counts.tolist() == [4, 3]


def test_add_col_is_seen_by_the_engine() -> None:
    table = Table.from_arrow(scores())
    engine = Engine({"t": table})
    assert "weight" not in engine.result_type(Query(table="t")).columns
    table.add_col("weight", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    hist = engine.histogram(Query(table="t"), "weight", bins=5)
    assert hist.counts.tolist() == np.histogram([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 5)[0].tolist()


def test_replacing_a_table_invalidates_kept_answers() -> None:
    engine = Engine({"t": scores()})
    query = Query(table="t", group_by=["label"])
    assert engine.count(query) == 3
    first = engine.grouped(query)
    engine.add_table("t", scores().slice(0, 2))
    assert engine.count(query) == 2
    second = engine.grouped(query)
    assert first.column("count").to_pylist() == [3, 2, 1]
    assert second.column("count").to_pylist() == [1, 1]


def test_a_rewritten_parquet_file_is_read_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.parquet"
    pq.write_table(scores(), path)
    engine = Engine({"t": Table.from_parquet(path)})
    query = Query(table="t", filter="score > 0.3")
    assert engine.count(query) == 4
    assert engine.histogram(query, "score", bins=2).counts.sum() == 4
    stat = os.stat(path)
    pq.write_table(scores().slice(0, 3), path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert engine.count(query) == 2
    assert engine.histogram(query, "score", bins=2).counts.sum() == 2


def test_clear_cache_and_a_disabled_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine({"t": scores()})
    query = Query(table="t")
    engine.count(query)
    calls = Counting(engine, monkeypatch)
    engine.count(query)
    assert calls.n == 0
    engine.clear_cache()
    assert engine.count(query) == 6
    assert calls.n == 1
    plain = Engine({"t": scores()}, cache_size=0)
    plain_calls = Counting(plain, monkeypatch)
    assert plain.count(query) == plain.count(query) == 6
    assert plain_calls.n == 2


def test_the_cache_keeps_at_most_its_size() -> None:
    engine = Engine({"t": scores()}, cache_size=3)
    for threshold in range(10):
        engine.count(Query(table="t", filter=f"id > {threshold}"))
    assert len(engine._cache) == 3
    assert engine.count(Query(table="t", filter="id > 0")) == 6


def test_a_comparison_count_finds_the_first_page_too(monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = scores()
    v2 = pa.table(
        {"id": [2, 3, 4, 7], "label": ["dog", "cat", "cat", "cat"], "score": [0.5, 0.35, 0.1, 0.3]}
    )
    query = Query(
        table="v1",
        compare_with={"table": "v2", "on": "id"},
        filter="0.present and 1.present",
        sort=["-1.score"],
    )
    plain = Engine({"v1": v1, "v2": v2}, cache_size=0)
    engine = Engine({"v1": v1, "v2": v2})
    assert engine.count(query) == plain.count(query) == 3
    calls = Counting(engine, monkeypatch)
    page = engine.page(query, limit=50)
    assert calls.n == 1  # the rows' values only: their positions came with the count
    assert page.to_pylist() == plain.page(query, limit=50).to_pylist()
    assert page.column("id").to_pylist() == [2, 3, 4]
    # a page first, then the count: the count comes with the page
    other = Query(
        table="v1",
        compare_with={"table": "v2", "on": "id"},
        filter="0.present and 1.present",
        sort=["id"],
    )
    assert engine.page(other, limit=2).column("id").to_pylist() == [2, 3]
    before = calls.n
    assert engine.count(Query(**{**other.model_dump(), "limit": 2})) == 2
    assert engine.count(other) == 3
    assert calls.n == before + 1  # the limited query is another query: counted once


def test_kept_page_positions_follow_the_data() -> None:
    left = Table.from_arrow(scores())
    engine = Engine({"v1": left, "v2": scores().slice(0, 4)})
    query = Query(table="v1", compare_with={"table": "v2", "on": "id"}, sort=["-0.score"])
    assert engine.count(query) == 6
    assert engine.page(query, limit=2).column("id").to_pylist() == [5, 4]
    left.add_data(9, "cat", 5.0)
    assert engine.count(query) == 7
    assert engine.page(query, limit=2).column("id").to_pylist() == [9, 5]


def test_grouped_histogram_groups_come_in_order_of_first_appearance() -> None:
    # the groups are found by the binning pass itself when the query has no sort/offset/limit
    table = pa.table(
        {
            "label": ["dog", None, "cat", "dog", "bird", "cat", None],
            "score": [1.0, 2.0, None, 3.0, float("nan"), 4.0, 5.0],
        }
    )
    engine = Engine({"t": table}, cache_size=0)
    hist = engine.histogram(Query(table="t", group_by=["label"]), "score", bins=2)
    assert hist.groups == ["dog", "null", "cat", "bird"]
    assert hist.counts.tolist() == [[1, 1], [1, 1], [0, 1], [0, 0]]  # edges 1, 3, 5
    assert (hist.nulls, hist.nonfinite) == (1, 1)
    limited = engine.histogram(Query(table="t", group_by=["label"], limit=2), "score", bins=2)
    assert limited.groups == ["dog", "null"]
    assert limited.counts.tolist() == [[1, 1], [1, 1]]
