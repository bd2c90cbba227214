"""A comparison's pairs on the cluster live on the workers' disks: Parquet files in each
worker's own local directory (a folder per comparison), removed when the comparison is
dropped, recomputed by Dask when their worker dies; never in the dataset's folder.

The cluster is a LocalCluster of 2 worker processes of this module's own, with
``local_cluster``'s memory limit: under the session's 2 GiB a worker may spill a pair to
Dask's own spill file (the pair carries its rows there and writes them again when loaded
back), and its files would come and go under the counts here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from panels_core.data.sources import open_table
from panels_core.query.cluster import local_cluster
from panels_core.query.cluster.client import WORKER_MEMORY
from panels_core.query.cluster.pairs import FOLDER, PAIRS_KEPT
from panels_core.query.engine import Engine
from panels_core.query.engine.connection import ROW
from panels_core.query.model import CompareWith, Query, SortKey
from panels_core.query.parse import parse_filter
from tests.unit.test_cluster import listing, same_page, write_again
from tests.unit.test_datasets import as_frame, open_dataset_layout, write_arrow_dataset

distributed = pytest.importorskip("distributed")

BOUND = 300.0  # seconds: a bound on waiting for the workers, never a timing check


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    cluster = local_cluster(2)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Any]:
    tables = open_dataset_layout(tmp_path, as_frame(write_arrow_dataset(tmp_path / "preds")))
    write_again(tmp_path / "again")
    return {**tables, "again": open_table(tmp_path / "again")}


def pair_files(dask_worker: Any) -> dict[str, tuple[int, list[str]]]:
    """This worker's pair files (run on each worker): path -> (rows, columns)."""
    root = Path(dask_worker.local_directory) / FOLDER
    found = {}
    for path in sorted(root.rglob("*.parquet")):
        meta = pq.read_metadata(path)
        found[str(path)] = (meta.num_rows, meta.schema.to_arrow_schema().names)
    return found


def folders(client: Any) -> set[str]:
    """The comparisons' folders on every worker."""
    return {Path(p).parent.name for files in client.run(pair_files).values() for p in files}


def eventually(check: Any) -> None:
    """Until ``check()`` is true (the workers forget released pairs on their own time)."""
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, "not within the bound"
        time.sleep(0.2)


def test_the_pairs_are_files_on_the_workers_removed_when_dropped(
    tables, tmp_path, dask_client
) -> None:
    before = listing(tmp_path / "preds")
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    start = folders(dask_client)
    first = Query(table="preds", compare_with=CompareWith(table="other", on="id"))
    assert cluster.count(first) == local.count(first)
    found = dask_client.run(pair_files)
    new = {
        p: v
        for files in found.values()
        for p, v in files.items()
        if Path(p).parent.name not in start
    }
    # 40 pairs, a file per side, in the workers' own local directories
    assert len(new) == 80
    assert len({Path(p).parent.name for p in new}) == 1
    locals_ = dask_client.run(lambda dask_worker: dask_worker.local_directory)
    for address, files in found.items():
        assert all(p.startswith(locals_[address]) for p in files)
    assert sum(rows for rows, _ in new.values()) == len(tables["preds"]) + len(tables["other"])
    assert all(names[-1] == ROW for _, names in new.values())  # each row keeps its number
    (kept,) = {Path(p).parent.name for p in new}
    # the pairs answer the comparison's next queries
    by_score = first.model_copy(update={"sort": (SortKey(column="1.score", descending=True),)})
    same_page(cluster.page(by_score, 45, 50), local.page(by_score, 45, 50))
    assert folders(dask_client) - start == {kept}
    for spec in (CompareWith(table="again", on="id"), CompareWith(table="other")):  # evict it
        query = Query(table="preds", compare_with=spec)
        assert cluster.count(query) == local.count(query)
    assert PAIRS_KEPT == 2
    eventually(lambda: kept not in folders(dask_client))
    assert len(folders(dask_client) - start) == 2
    assert listing(tmp_path / "preds") == before  # nothing written into the dataset's folder


def test_a_worker_dead_after_the_shuffle_has_its_pairs_recomputed(
    tables, tmp_path, dask_client
) -> None:
    before = listing(tmp_path / "preds")
    local, cluster = Engine(tables), Engine(tables, cluster=dask_client)
    query = Query(
        table="preds",
        compare_with=CompareWith(table="again", on="id"),
        filter=parse_filter("0.present"),
        sort=(SortKey(column="0.score"),),
    )
    assert cluster.count(query) == local.count(query)
    holding = [a for a, files in dask_client.run(pair_files).items() if files]
    victim = holding[0]
    dask_client.run(os._exit, 1, workers=[victim], on_error="ignore")  # its files go with it
    eventually(lambda: victim not in dask_client.nthreads())
    dask_client.wait_for_workers(2, timeout=BOUND)
    assert cluster.count(query) == local.count(query)  # its pairs made again by Dask
    same_page(cluster.page(query, 30, 60), local.page(query, 30, 60))
    assert listing(tmp_path / "preds") == before


def test_a_local_clusters_workers_spill_above_a_bounded_memory_limit(dask_client) -> None:
    from distributed.system import MEMORY_LIMIT

    limits = dask_client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
    assert list(limits.values()) == [min(WORKER_MEMORY, MEMORY_LIMIT // 2)] * 2


def test_a_workers_pair_folder_is_readable_as_a_whole_and_nothing_beside_it(tmp_path) -> None:
    import duckdb
    import pyarrow as pa

    from panels_core.query.engine.connection import connect

    inside, beside = tmp_path / "pairs" / "one", tmp_path / "secret"
    inside.mkdir(parents=True)
    beside.mkdir()
    for folder in (inside, beside):
        pq.write_table(pa.table({"a": [1, 2]}), folder / "rows.parquet")
    con = connect(1, [f"{tmp_path / 'pairs'}/"])
    read = "SELECT sum(a) FROM read_parquet($1)"
    assert con.execute(read, [str(inside / "rows.parquet")]).fetchone() == (3,)
    for path in (beside / "rows.parquet", inside / ".." / ".." / "secret" / "rows.parquet"):
        with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
            con.execute(read, [str(path)])
