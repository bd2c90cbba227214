"""The engine on a Dask cluster: the local engine's answers, value by value; a worker lost
mid-query; a scheduler lost; nothing written into the dataset's folder.

The cluster is the session's LocalCluster of 2 worker processes (``dask_client``);
the lost-scheduler test starts one of its own (1 worker) and closes it.
"""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panels_core.data.sources import open_table
from panels_core.query.cluster import ClusterError, local_cluster, open_cluster
from panels_core.query.cluster.answers import named_rows
from panels_core.query.cluster.client import each_of, in_batches
from panels_core.query.engine import Engine
from panels_core.query.model import CompareWith, JoinSpec, Query, SortKey
from panels_core.query.parse import parse_filter
from panels_core.query.selection import RowsBrush, Selection
from tests.unit.test_datasets import as_frame, open_dataset_layout, write_arrow_dataset

distributed = pytest.importorskip("distributed")

WAIT = "5 minutes"  # a bound, never a timing check
FILE_TASKS = 8  # the 40 files in batches: 4 tasks per worker thread, 2 threads


@pytest.fixture
def reference(tmp_path: Path) -> pd.DataFrame:
    return as_frame(write_arrow_dataset(tmp_path / "preds"))


@pytest.fixture
def tables(tmp_path: Path, reference: pd.DataFrame) -> dict[str, Any]:
    return open_dataset_layout(tmp_path, reference)


def by_score_descending(ref: pd.DataFrame) -> list[int]:
    """The ids in DuckDB's descending order of ``score``: NaN, numbers, null; ties by row."""
    rank = np.where(ref.score_null, 2, np.where(ref.score.isna(), 0, 1))
    order = pd.DataFrame({"rank": rank, "key": -ref.score.fillna(0.0)}, index=ref.index)
    return ref.id[order.sort_values(["rank", "key"], kind="stable").index].tolist()


def listing(folder: Path) -> dict[str, int]:
    """Every path below ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def nan_as_text(value: Any) -> Any:
    return "NaN" if value != value else value  # NaN is not itself


def same_page(a: Any, b: Any) -> None:
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())
    assert a.schema == b.schema


def same_histogram(got: Any, want: Any) -> None:
    """The same edges, counts (groups in the same order) and left-out tallies."""
    np.testing.assert_array_equal(got.edges, want.edges)
    np.testing.assert_array_equal(got.counts, want.counts)
    assert (got.groups, got.nulls, got.nonfinite, got.outside) == (
        want.groups,
        want.nulls,
        want.nonfinite,
        want.outside,
    )


def test_every_answer_equals_the_local_engines(tables, reference, tmp_path, dask_client) -> None:
    before = listing(tmp_path / "preds")
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    assert cluster.cluster_client is dask_client and local.cluster_client is None
    train = parse_filter('split == "train" and score > 0.2')
    for query in (
        Query(table="preds"),
        Query(table="preds", filter=train),
        Query(table="preds", offset=7, limit=300),
        Query(table="preds", filter=parse_filter("n >= 4"), offset=100),
    ):
        assert cluster.count(query) == local.count(query)
    sorts = (
        (SortKey(column="score"),),
        (SortKey(column="score", descending=True),),
        (SortKey(column="label", descending=True), SortKey(column="n")),
    )
    for sort in sorts[::2]:  # ties in every sort key, NaN and nulls among them
        query = Query(table="preds", sort=sort, filter=parse_filter("shard != 3"))
        for offset in (0, 49, 700, 1400):
            same_page(cluster.page(query, offset, 50), local.page(query, offset, 50))
    # the local engine's DuckDB drops NaN rows from a descending top-N over many files
    # (the files' statistics leave NaN out): this order is checked against pandas
    expected = by_score_descending(reference[reference["shard"] != 3])
    query = Query(table="preds", sort=sorts[1], filter=parse_filter("shard != 3"))
    for offset in (0, 49, 700):
        page = cluster.page(query, offset, 50, ["id"]).column("id").to_pylist()
        assert page == expected[offset : offset + 50]
    cut = Query(table="preds", sort=sorts[0], offset=10, limit=95)
    same_page(
        cluster.page(cut, 40, 100, ["id", "split"]), local.page(cut, 40, 100, ["id", "split"])
    )
    for kwargs in (
        {"bins": 12},
        {"bins": "auto"},
        {"width": 0.25},
        {"bins": 7, "range": (-1.0, 1.0)},
        {"bins": 12, "by": "label"},
    ):
        got, want = (
            cluster.histogram(Query(table="preds", filter=train), "score", **kwargs),
            (local.histogram(Query(table="preds", filter=train), "score", **kwargs)),
        )
        same_histogram(got, want)
    for group_by, bins in ((("label",), 10), (("split", "shard"), "auto"), (("n",), 6)):
        query = Query(table="preds", group_by=group_by, filter=parse_filter("shard != 5"))
        got, want = (
            cluster.histogram(query, "score", bins=bins),
            local.histogram(query, "score", bins=bins),
        )
        same_histogram(got, want)  # groups in the same order
    for column, top in (("label", 2), ("score", 6), (["split", "n"], 5), ("id", 3)):
        got, want = (
            cluster.value_counts(Query(table="preds"), column, top),
            (local.value_counts(Query(table="preds"), column, top)),
        )
        # NaN is one value, ranked as DuckDB ranks it (and -0.0 is 0.0)
        assert [nan_as_text(v) for v in got.values] == [nan_as_text(v) for v in want.values]
        assert (got.counts.tolist(), got.other, got.nulls) == (
            want.counts.tolist(),
            want.other,
            want.nulls,
        )
    for join in (JoinSpec(table="other", on="id"), JoinSpec(table="preds", on="label")):
        query = Query(table="preds", join=join)  # keys with nulls (matching nothing) too
        assert cluster.join_counts(query) == local.join_counts(query)
    for column in ("emb", "score", "label"):
        query = Query(table="preds", filter=train)
        np.testing.assert_array_equal(
            cluster.column_numpy(query, column), local.column_numpy(query, column)
        )
    assert listing(tmp_path / "preds") == before  # nothing written into the dataset's folder


def write_again(folder: Path) -> None:
    """A third dataset of 3 files: repeated and null ids; scores with ties, NaN, null, -0.0."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        ids = rng.integers(0, 600, 40) * 7 % 100_003
        score = np.round(rng.normal(size=40), 1)
        score[:3] = [np.nan, -0.0, 0.0]
        table = pa.table(
            {
                "id": pa.array(ids, mask=np.arange(40) % 13 == 0),
                "score": pa.array(score, mask=np.arange(40) % 11 == 5),
                "label": pa.array(rng.choice(["cat", "dog", "eel"], 40).tolist()),
            }
        )
        pq.write_table(table, folder / f"part-{i}.parquet")


def same_answers(
    local: Engine, cluster: Engine, query: Query, column: str, names: tuple[str, str] = ("0", "1")
) -> None:
    """count, every page sorted by ``column`` of each side (ties) and by default,
    histogram and value counts of ``column`` (a compared one: a row per source; of a
    join, its right side's), and a comparison's every row."""
    assert cluster.count(query) == local.count(query)
    if query.compare_with is not None:
        same_page(cluster.compared(query), local.compared(query))
    else:
        column = f"{names[1]}.{column}"
    first, second = (SortKey(column=f"{n}.{column.split('.')[-1]}") for n in names)
    for sort in ((), (second.model_copy(update={"descending": True}),), (first,)):
        sorted_query = query.model_copy(update={"sort": sort})
        for offset in (0, 45, 130):
            same_page(cluster.page(sorted_query, offset, 50), local.page(sorted_query, offset, 50))
    for kwargs in ({"bins": 9}, {"bins": "auto"}):
        got, want = (e.histogram(query, column, **kwargs) for e in (cluster, local))
        same_histogram(got, want)
    got, want = (e.value_counts(query, column, 6) for e in (cluster, local))
    assert [nan_as_text(v) for v in got.values] == [nan_as_text(v) for v in want.values]
    assert (got.counts.tolist(), got.other, got.nulls, got.groups) == (
        want.counts.tolist(),
        want.other,
        want.nulls,
        want.groups,
    )


def test_a_comparison_on_the_cluster_equals_the_local_one(tables, tmp_path, dask_client) -> None:
    write_again(tmp_path / "again")
    tables = {**tables, "again": open_table(tmp_path / "again")}
    before = listing(tmp_path / "preds")
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    on_id = CompareWith(table="other", on="id")
    again = CompareWith(table="again", on="id")  # repeated keys: every pair of rows
    by_score = CompareWith(table="again", on=("score", "score"))  # NaN, null, -0.0 keys
    for spec, filter in (
        (on_id, None),
        (on_id, "1.present and 0.score < 1.score"),
        (again, None),
        (again, "0.present"),
        (by_score, '0.label == "cat"'),
        (CompareWith(table="other"), None),  # by row position
    ):
        query = Query(table="preds", compare_with=spec)
        if filter is not None:
            query = query.model_copy(update={"filter": parse_filter(filter)})
        with distributed.get_task_stream(client=dask_client) as stream:
            same_answers(local, cluster, query, "score" if spec.on != ("score", "score") else "id")
        ran = [task["key"] for task in stream.data]
        # one count task per pair: the 40 files' rows of both tables in 40 key partitions
        assert sum("count_part" in str(key) for key in ran) == 40
    pairs = cluster.page(Query(table="preds", compare_with=again), 0, 10_000)
    assert pairs.num_rows == local.count(Query(table="preds", compare_with=again)) > 1_000
    assert listing(tmp_path / "preds") == before


def test_the_rows_of_a_join_on_the_cluster_equal_the_local_ones(
    tables, tmp_path, dask_client
) -> None:
    write_again(tmp_path / "again")
    tables = {**tables, "again": open_table(tmp_path / "again")}
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    for join, filter in (
        (JoinSpec(table="other", on="id"), None),
        (JoinSpec(table="other", on="id", how="left"), "other.score > 0.5"),
        (JoinSpec(table="other", on="id", how="outer"), None),
        (JoinSpec(table="again", on="id", how="outer"), None),  # repeated and null keys
        (JoinSpec(table="again", on="label"), 'preds.split == "train"'),  # text keys
    ):
        query = Query(table="preds", join=join)
        if filter is not None:
            query = query.model_copy(update={"filter": parse_filter(filter)})
        with distributed.get_task_stream(client=dask_client) as stream:
            same_answers(local, cluster, query, "score", ("preds", join.table))
        assert sum("count_part" in str(task["key"]) for task in stream.data) == 40


@pytest.mark.parametrize("opened", ["folder", "file"])
def test_one_file_of_row_groups_runs_in_several_tasks(opened, tmp_path, dask_client) -> None:
    """A one-file dataset, or the Parquet file itself, runs in pieces of its row groups."""
    folder = tmp_path / "one"
    folder.mkdir()
    rng = np.random.default_rng(3)
    score = np.round(rng.normal(size=1_000), 1)
    score[::17] = np.nan
    rows = pa.table(
        {
            "id": np.arange(1_000),
            "score": pa.array(score, mask=np.arange(1_000) % 23 == 0),
            "label": rng.choice(["cat", "dog", "eel"], 1_000).tolist(),
        }
    )
    pq.write_table(rows, folder / "part-0.parquet", row_group_size=100)  # 10 row groups
    dataset = open_table(folder).parquet_dataset
    spans = dataset.spans(0, 8)
    assert len(spans) == 8 and spans[0][0] == 0 and spans[-1][1] == 1_000
    assert all(a[1] == b[0] and a[1] % 100 == 0 for a, b in itertools.pairwise(spans))
    tables = {"one": open_table(folder if opened == "folder" else folder / "part-0.parquet")}
    assert (tables["one"].parquet_dataset is None) == (opened == "file")
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    query = Query(table="one", filter=parse_filter("score > -0.5"))
    with distributed.get_task_stream(client=dask_client) as stream:
        assert cluster.count(query) == local.count(query)
    assert sum("count_part" in str(task["key"]) for task in stream.data) == 8
    by_score = query.model_copy(update={"sort": (SortKey(column="score", descending=True),)})
    for sorted_query in (query, by_score, Query(table="one", sort=(SortKey(column="label"),))):
        for offset in (0, 90, 420):  # across the pieces' bounds; ties by row number
            same_page(cluster.page(sorted_query, offset, 60), local.page(sorted_query, offset, 60))
    chosen = Selection(brushes=(("table", RowsBrush(rows=(999, 3, 500, 120))),))
    first = Query(table="one", sort=by_score.sort, selection=chosen, selected_first=True)
    page = cluster.page(first, 0, 6)
    same_page(page, local.page(first, 0, 6))
    assert sorted(page.column("id").to_pylist()[:4]) == [3, 120, 500, 999]  # selected first
    got, want = (e.histogram(query, "score", bins=9) for e in (cluster, local))
    np.testing.assert_array_equal(got.counts, want.counts)
    got, want = (e.value_counts(Query(table="one"), "label") for e in (cluster, local))
    assert (got.values, got.counts.tolist()) == (want.values, want.counts.tolist())
    np.testing.assert_array_equal(  # in row order: the rows keep their numbers
        cluster.column_numpy(query, "id"), local.column_numpy(query, "id")
    )


def test_a_count_without_a_filter_runs_no_task(tables, reference, dask_client) -> None:
    """The files' footers hold their rows: the count asks the workers nothing."""
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    for query in (Query(table="preds"), Query(table="preds", offset=7, limit=300)):
        with distributed.get_task_stream(client=dask_client) as stream:
            got = cluster.count(query)
        assert got == local.count(query) == (300 if query.limit else len(reference))
        assert stream.data == []
    with distributed.get_task_stream(client=dask_client) as stream:  # a filter needs the rows
        filtered = Query(table="preds", filter=parse_filter("n >= 4"))
        assert cluster.count(filtered) == local.count(filtered)
    assert sum("count_part" in str(task["key"]) for task in stream.data) == FILE_TASKS


def test_grouped_tables_on_the_cluster_equal_the_local_ones(tables, dask_client) -> None:
    """Groups by first row (or sorted on keys or sizes, ties by first row), cut to a page
    of groups; sizes; first values of each list; per-group histograms of big groups."""
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    train = parse_filter('split == "train"')
    by_size = (SortKey(column="count", descending=True),)
    for query, bins, sample in (
        (Query(table="preds", group_by=("label",)), 6, 100),  # histograms: groups > 100
        (Query(table="preds", group_by=("label",), filter=train), "auto", 5_000),  # lists
        (Query(table="preds", group_by=("split", "shard"), sort=by_size), 8, 100),
        (Query(table="preds", group_by=("n",), sort=(SortKey(column="n"),)), 4, 3),
        (Query(table="preds", group_by=("score",), offset=5, limit=20), 5, 2),  # NaN, null
        (Query(table="preds", group_by=("split", "label"), offset=2, limit=3), "auto", 50),
    ):
        with distributed.get_task_stream(client=dask_client) as stream:
            got = cluster.grouped(query, bins=bins, sample=sample)
        assert sum("groups_part" in str(task["key"]) for task in stream.data) == FILE_TASKS
        same_page(got, local.grouped(query, bins=bins, sample=sample))
        assert got.num_rows == (query.limit or got.num_rows) > 0
    numeric = cluster.grouped(Query(table="preds", group_by=("label",)), bins=6)
    assert set(numeric.column("score").type.names) == {"edges", "counts"}  # a histogram each


def test_a_query_mistake_is_told_as_the_local_engine_tells_it(tables, dask_client) -> None:
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    query = Query(table="preds", filter=parse_filter("scor > 1"))
    with pytest.raises(Exception) as here:
        local.count(query)
    with pytest.raises(type(here.value)) as there:
        cluster.count(query)
    assert str(there.value) == str(here.value)


class KillOnce(distributed.WorkerPlugin):
    """Ends the worker process that starts the first task of a page (once: a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "executing" and "page_part" in str(key):
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os._exit(1)


def test_a_worker_lost_mid_query_is_replaced_and_the_answer_is_whole(
    tables, tmp_path, dask_client
) -> None:
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    query = Query(table="preds", sort=(SortKey(column="score", descending=True),))
    marker = tmp_path / "killed"
    dask_client.register_plugin(KillOnce(str(marker)), name="kill-once")
    try:
        page = cluster.page(query, 300, 80)
    finally:
        dask_client.unregister_worker_plugin("kill-once")
        dask_client.wait_for_workers(2, timeout=WAIT)
    assert marker.exists()  # a worker did die while the query ran
    same_page(page, local.page(query, 300, 80))


def test_a_lost_scheduler_is_a_clear_error_and_the_tables_stay(tables) -> None:
    cluster = local_cluster(1)
    client = distributed.Client(cluster)
    address = cluster.scheduler_address
    engine = Engine(tables, cluster=client)
    assert engine.count(Query(table="preds")) == len(tables["preds"])
    client.close()
    cluster.close()
    with pytest.raises(ClusterError) as lost:
        engine.histogram(Query(table="preds"), "score", bins=5)
    assert str(lost.value) == (
        f"the Dask cluster at {address} is not answering: the connection is closed; the "
        "tables are still there — restart the cluster or serve without --cluster"
    )
    compared = Query(table="preds", compare_with={"table": "other", "on": "id"})
    with pytest.raises(ClusterError, match="is not answering: the connection is closed"):
        engine.count(compared)  # a comparison runs on the cluster too
    with pytest.raises(ClusterError, match="is not answering: the connection is closed"):
        engine.grouped(Query(table="preds", group_by=("label",)))  # groups run there too
    # what needs no cluster is still answered: the footers' count, a sort on a list
    assert engine.count(Query(table="preds")) == len(tables["preds"])
    by_list = Query(table="preds", group_by=("label",), sort=(SortKey(column="id"),))
    assert engine.grouped(by_list).equals(Engine(tables).grouped(by_list))


class HoldTasks(distributed.WorkerPlugin):
    """Holds the worker that starts a task until its process ends (writing a marker first)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "executing":
            Path(self.marker).touch()
            time.sleep(600)


def test_a_scheduler_lost_mid_query_ends_the_query_with_the_error(tables, tmp_path) -> None:
    cluster = local_cluster(1)
    client = distributed.Client(cluster)
    address = cluster.scheduler_address
    engine = Engine(tables, cluster=client)
    marker = tmp_path / "running"
    client.register_plugin(HoldTasks(str(marker)), name="hold")
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(engine.count, Query(table="preds", filter=parse_filter("n >= 0")))
        deadline = time.monotonic() + 300  # a bound: the task starts within minutes
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists()
        cluster.close()  # the scheduler goes while the query waits for its tasks
        with pytest.raises(ClusterError) as lost:
            answer.result(timeout=300)
    # which one Dask tells first depends on the moment: either is one clear line
    assert str(lost.value) in {
        f"the Dask cluster at {address} is not answering: {reason}; the tables are still "
        "there — restart the cluster or serve without --cluster"
        for reason in (
            "the connection is connecting",
            "the connection is closed",
            "the query's tasks were cancelled (the scheduler, or the way to it, is gone)",
        )
    }
    client.close()


def test_a_cluster_that_cannot_be_opened_says_what_to_give() -> None:
    with pytest.raises(ValueError) as bad:
        open_cluster("sched:8786")
    assert str(bad.value) == (
        "--cluster 'sched:8786': give a scheduler address such as tcp://host:8786, "
        "or local:N to start N worker processes here"
    )
    with pytest.raises(ValueError, match="a local cluster needs at least 1 worker"):
        open_cluster("local:0")


def test_a_local_cluster_opens_no_port_to_the_network(recwarn) -> None:
    """The scheduler's HTTP routes listen on loopback on a free port: never 8787 on every
    interface, and no "Port 8787 is already in use" when another cluster holds it."""
    with local_cluster(1, processes=False) as first, local_cluster(1, processes=False) as second:
        servers = [cluster.scheduler.services["dashboard"] for cluster in (first, second)]
        assert [server.address for server in servers] == ["127.0.0.1", "127.0.0.1"]
        assert len({server.port for server in servers}) == 2
    assert not [w for w in recwarn if "already in use" in str(w.message)]


def test_an_engine_on_a_client_that_is_not_the_default_answers(tables) -> None:
    """A client made with ``set_as_default=False`` (a library embedding the engine next to
    its own Dask client) is the one the engine waits on."""
    cluster = local_cluster(1, processes=False)
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        engine = Engine(tables, cluster=client)
        assert engine.count(Query(table="preds")) == len(tables["preds"])


def test_files_go_in_batches_in_their_order() -> None:
    """Consecutive, near-equal batches, never more than asked, every file once, in order;
    a batch's answers come back in its files' order."""
    for files, tasks in ((40, 8), (41, 8), (7, 8), (1, 8), (100, 3), (0, 4)):
        batches = in_batches(list(range(files)), tasks)
        assert [f for batch in batches for f in batch] == list(range(files))
        assert len(batches) <= tasks
        assert max(map(len, batches), default=0) - min(map(len, batches), default=0) <= (
            -(-files // tasks)
        )
    assert in_batches(list(range(41)), 8)[0] == [0, 1, 2, 3, 4, 5]
    assert each_of([3, 1, 2], lambda f, step: f * step, step=10) == [30, 10, 20]


def test_a_filter_naming_rows_asks_only_the_files_holding_them(tables, dask_client) -> None:
    """A hover's or a click's ``row_number() == N`` (or ``in``) goes to the file holding the
    row alone; the answer is the local engine's, also for a row past the table's end."""
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    length = local.count(Query(table="preds"))
    offsets = tables["preds"].parquet_dataset.offsets
    for text, files in (
        (f"row_number() == {offsets[7] + 3}", 1),
        (f"row_number() in ({offsets[2]}, {offsets[2] + 1}) and score > -10", 1),
        (f"row_number() in (0, {length - 1})", 2),
        (f"row_number() == {length + 5}", 1),  # no such row: an empty answer
    ):
        query = Query(table="preds", filter=parse_filter(text))
        with distributed.get_task_stream(client=dask_client) as stream:
            same_page(cluster.page(query, 0, 10), local.page(query, 0, 10))
            assert cluster.count(query) == local.count(query)
        # a task per file asked (fewer than 8 files: a batch each)
        assert sum("page_part" in str(task["key"]) for task in stream.data) == files
        assert sum("count_part" in str(task["key"]) for task in stream.data) == files
    assert named_rows(parse_filter("row_number() != 3 or score > 1")) is None
