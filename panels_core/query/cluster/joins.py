"""A join's match counts on the cluster: the two tables' keys merged by a Dask dataframe.

Each file's keys are read by one task (``tasks.key_part``); Dask's own merge
pairs them (its shuffle, across the workers). Null keys match nothing, as in
SQL; NaN matches NaN, as in DuckDB.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from panels_core.query.cluster import tasks
from panels_core.query.cluster.client import Tasks

__all__ = ["join_counts"]


def join_counts(
    runner: Tasks,
    left: tuple[list[tasks.Shard], str, pa.DataType, int],
    right: tuple[list[tasks.Shard], str, pa.DataType, int],
) -> tuple[int, int, int]:
    """(matched rows, left-only rows, right-only rows) of two tables joined on their keys;
    each side is (its files, its key, the key's type, its rows)."""
    import dask.dataframe as dd

    frames = [
        dd.from_map(tasks.key_part, shards, key=key, meta=_meta(kind), enforce_metadata=False)
        for shards, key, kind, _ in (left, right)
    ]
    merged = frames[0].merge(frames[1], on="k", how="outer", indicator=True)
    counts, *present = runner.compute(
        [merged["_merge"].value_counts(), *(frame.map_partitions(len).sum() for frame in frames)]
    )
    both = int(counts.get("both", 0))
    left_nulls, right_nulls = (side[3] - int(n) for side, n in zip((left, right), present))
    return (
        both,
        int(counts.get("left_only", 0)) + left_nulls,
        int(counts.get("right_only", 0)) + right_nulls,
    )


def _meta(kind: pa.DataType) -> Any:
    """An empty frame shaped as ``tasks.key_part``'s."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.table({"k": pa.array([], kind)}).to_pandas()
