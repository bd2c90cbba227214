"""What one Dask task does on a worker: the engine's own SQL over one Parquet file.

A ``Shard`` names one file of a dataset (or a single Parquet file) and the
table's column types. On the worker it becomes the engine's collaborators
(``Parts``) over that file alone, its rows numbered as in the whole table, so
the planner compiles the query exactly as the local engine does; each task
returns a partial answer the client combines (``combine``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.query.engine.binning import QUANTILE_SAMPLE
from panels_core.query.engine.cache import LRU
from panels_core.query.engine.connection import ROW
from panels_core.query.engine.paging import restore_metadata
from panels_core.query.engine.parts import Parts
from panels_core.query.engine.relation import resolve, select_rows
from panels_core.query.model import Query
from panels_core.query.sql import quote_ident

__all__ = [
    "KEY",
    "PARTS_KEPT",
    "Shard",
    "bins_part",
    "bounds_part",
    "column_part",
    "count_part",
    "page_part",
    "values_part",
]

KEY = "__tp_k"
"""A page's sort key columns are named ``__tp_k0``, ``__tp_k1``, ... in a task's rows."""
PARTS_KEPT = 64
"""A worker keeps the engines of this many files open (a file's next query skips opening
it); each holds a DuckDB database of about 10 MiB."""

_parts: OrderedDict[tuple[Any, ...], Parts] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Shard:
    """One file a task reads: a one-file dataset (``ParquetDataset.shard``) or a Parquet
    file, registered under the table's name with the table's column types."""

    table: str
    dtypes: dict[str, Any]
    dataset: Any = None
    path: Path | None = None
    rows: int = 0
    total: int = 0  # the whole table's rows (a shard's share of a sample)

    @property
    def file(self) -> Path:
        return self.path if self.path is not None else self.dataset.files[0]

    def parts(self) -> Parts:
        """This file's engine on this worker (kept: the next query over it reuses it)."""
        stat = self.file.stat()
        first = 0 if self.dataset is None else self.dataset.first_row
        key = (self.table, str(self.file), stat.st_mtime_ns, stat.st_size, first, repr(self.dtypes))
        with _lock:
            kept = _parts.get(key)
            if kept is not None:
                _parts.move_to_end(key)
                return kept
        from panels_core.data.table import Table

        if self.dataset is not None:
            table = Table.from_parquet_dataset(self.dataset, dtypes=self.dtypes)
        else:
            table = Table.from_parquet(self.file, dtypes=self.dtypes)
        parts = Parts({self.table: table}, threads=1, cache=LRU(16), whole_file=True)
        with _lock:
            _parts[key] = parts
            while len(_parts) > PARTS_KEPT:
                _, old = _parts.popitem(last=False)
                old.catalog.close()
        return parts


def uncut(query: Query) -> Query:
    """The query without its offset/limit (a cut applies to the whole table's rows)."""
    return query.model_copy(update={"offset": 0, "limit": None})


def count_part(shard: Shard, query: Query) -> int:
    """The file's rows that pass the query's filter."""
    return shard.parts().answers.count(uncut(query))


def page_part(shard: Shard, query: Query, stop: int, columns: list[str] | None) -> pa.Table:
    """The file's first ``stop`` rows in the query's order: the asked columns, the sort
    keys (``KEY0``, ...) and the row numbers (``ROW``), for the client to merge."""
    parts = shard.parts()
    with parts.planner.session(uncut(query), "page", needs=()) as (cur, params, rel):
        names = list(rel.fields) if columns is None else list(columns)
        select = [f"{resolve(rel, n, params, 'page column')[0]} AS {quote_ident(n)}" for n in names]
        for i, key in enumerate(query.sort):
            sql, _ = resolve(rel, key.column, params, "sort column")
            select.append(f"{sql} AS {KEY}{i}")
        select.append(f"{quote_ident(ROW)} AS {quote_ident(ROW)}")
        sql = select_rows(rel, uncut(query), params, ", ".join(select), 0, stop, ordered=True)
        table = parts.runner.arrow(cur, sql, params, "page")
        return restore_metadata(table, rel.fields) if rel.plain else table


def column_part(shard: Shard, query: Query, column: str) -> np.ndarray:
    """The file's values of ``column`` in row order, as ``Engine.column_numpy`` gives them."""
    return shard.parts().answers.column_numpy(query, column)


def values_part(shard: Shard, query: Query, names: list[str]) -> tuple[list[Any], list[int], int]:
    """Every value (tuple) of the ``names`` columns in the file with its count, and the
    rows with a null."""
    counts = shard.parts().answers.value_counts(query, names, top=2**62)
    return counts.values, counts.counts.tolist(), counts.nulls


def bounds_part(
    shard: Shard, query: Query, column: str, auto: bool
) -> tuple[float | None, float | None, int, np.ndarray | None]:
    """The finite min and max of ``column`` in the file (from the footer's statistics when
    DuckDB can), and for auto bins its finite count and a sample of its values (the file's
    share of the engine's quartile sample: all of them when the table is that small)."""
    parts = shard.parts()
    with parts.planner.session(query, "histogram", group=False, needs=(column,)) as (
        cur,
        params,
        pre,
    ):
        series = parts.histograms.series(pre, column, params)
        rows = select_rows(pre, query, params)
        ((lo, hi),) = parts.binner.bounds(cur, params, rows, series)
        if not auto:
            return lo, hi, 0, None
        ((_, _, finite),) = parts.binner.counts(cur, params, rows, series)
        size = max(1, math.ceil(QUANTILE_SAMPLE * shard.rows / max(shard.total, 1)))
        sample = parts.binner.sample(cur, params, rows, series, [column], size)[column]
        return lo, hi, finite, sample


def bins_part(
    shard: Shard,
    query: Query,
    column: str,
    span: tuple[float, float],
    bins: int,
    width: float | None,
    by: str | None,
) -> tuple[dict[tuple[Any, ...], np.ndarray], tuple[int, int, int], list[tuple[Any, ...]]]:
    """The file's counts of ``column`` in the bins the client chose (``bins`` or ``width``
    over ``span``: the same edges everywhere), per value of ``by`` or, in a grouped query,
    per group; its (nulls, nonfinite, finite) values; and its groups by their first row."""
    parts = shard.parts()
    needs = (column,) if by is None else (column, by)
    with parts.planner.session(query, "histogram", group=False, needs=needs) as (
        cur,
        params,
        pre,
    ):
        series = parts.histograms.series(pre, column, params)
        if query.group_by:
            keys = [resolve(pre, k, params, "group_by column")[0] for k in query.group_by]
            rows, order = pre.sql, quote_ident(pre.order[0])
        else:
            keys = [] if by is None else [resolve(pre, by, params, "histogram `by` column")[0]]
            rows, order = select_rows(pre, query, params), None
        binned = parts.binner.bin(cur, params, rows, keys, series, bins, span, width, order)
        return binned.counts[0], binned.stats[0], binned.first


def key_part(shard: Shard, key: str) -> Any:
    """The file's values of the join key ``key`` that are not null, as a pandas frame with
    one column ``k`` (a category's values as text)."""
    parts = shard.parts()
    column = parts.answers.page(Query(table=shard.table), 0, shard.rows, [key]).column(0)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pa.table({"k": column.drop_null()}).to_pandas()
