"""What one Dask task does on a worker: the engine's own SQL over one Parquet file.

A ``Shard`` names one file of a dataset (or a single Parquet file) and the
table's column types. On the worker it becomes the engine's collaborators
(``Parts``) over that file alone, its rows numbered as in the whole table, so
the planner compiles the query exactly as the local engine does; each task
returns a partial answer the client combines (``combine``).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from panels_core.data.dataset import open_dataset
from panels_core.data.table import Table
from panels_core.query.engine.binning import QUANTILE_SAMPLE
from panels_core.query.engine.cache import LRU
from panels_core.query.engine.paging import restore_metadata
from panels_core.query.engine.parts import Parts
from panels_core.query.engine.relation import FIRST, group_by, resolve, select_rows
from panels_core.query.engine.sources import Source
from panels_core.query.model import Query
from panels_core.query.sql import quote_ident
from panels_core.types import TableType

__all__ = [
    "KEY",
    "ORDER",
    "PARTS_KEPT",
    "SELECTED",
    "TASKS",
    "Shard",
    "TypedTable",
    "bins_part",
    "bounds_part",
    "column_part",
    "count_part",
    "files_of",
    "groups_part",
    "holding",
    "one_file",
    "page_part",
    "rows_per_span",
    "values_part",
]

KEY = "__tp_k"
"""A page's sort key columns are named ``__tp_k0``, ``__tp_k1``, ... in a task's rows."""
SELECTED = "__tp_selected"
"""A page's column saying which rows the selection holds (``selected_first``)."""
ORDER = "__tp_o"
"""A page's row order columns are named ``__tp_o0``, ... in a task's rows (``Rel.order``)."""
TASKS = 8
"""A dataset of fewer files splits each file by its row groups, toward this many tasks
(a few large files still spread over the workers)."""
PARTS_KEPT = 64
"""A worker keeps the engines of this many files open (a file's next query skips opening
it); each holds a DuckDB database of about 10 MiB."""

_parts: OrderedDict[tuple[Any, ...], Parts] = OrderedDict()
_lock = threading.Lock()


class TypedTable(Table):
    """A file's table typed as the engine's process typed the whole table (``known``):
    no sample is read to infer it again."""

    known: TableType

    @property
    def type(self) -> TableType:
        return self.known


@dataclass(frozen=True)
class Shard:
    """One file a task reads: a one-file dataset (``ParquetDataset.shard``) or a Parquet
    file, registered under the table's name with the table's column types."""

    table: str
    type: TableType
    dataset: Any = None
    path: Path | None = None
    rows: int = 0
    total: int = 0  # the whole table's rows (a shard's share of a sample)

    @property
    def file(self) -> Path:
        return self.path if self.path is not None else self.dataset.files[0]

    @property
    def first(self) -> int:
        """The table's number of this shard's first row."""
        if self.dataset is None:
            return 0
        span = self.dataset.span
        return self.dataset.first_row + (span[0] if span is not None else 0)

    def parts(self) -> Parts:
        """This file's engine on this worker (kept: the next query over it reuses it)."""
        stat = self.file.stat()
        first, span = (
            (0, None) if self.dataset is None else (self.dataset.first_row, self.dataset.span)
        )
        key = (self.table, str(self.file), stat.st_mtime_ns, stat.st_size, first, span)
        key += (self.type.model_dump_json(),)
        with _lock:
            kept = _parts.get(key)
            if kept is not None:
                _parts.move_to_end(key)
                return kept
        dtypes = dict(self.type.columns)
        if self.dataset is not None:
            table = TypedTable.from_parquet_dataset(self.dataset, dtypes=dtypes)
        else:
            table = TypedTable.from_parquet(self.file, dtypes=dtypes)
        table.known = self.type
        parts = Parts({self.table: table}, threads=1, cache=LRU(16), whole_file=True)
        with _lock:
            _parts[key] = parts
            while len(_parts) > PARTS_KEPT:
                _, old = _parts.popitem(last=False)
                old.catalog.close()
        return parts


def rows_per_span(
    rows: np.ndarray, firsts: Sequence[int], sizes: Sequence[int]
) -> list[tuple[int, np.ndarray]]:
    """For each span of rows (its first row number and size) holding some of the sorted row
    numbers ``rows``: the span's index and those rows."""
    starts = np.asarray(firsts, dtype=np.int64)
    lows = np.searchsorted(rows, starts)
    highs = np.searchsorted(rows, starts + np.asarray(sizes, dtype=np.int64))
    return [(at, rows[low:high]) for at, (low, high) in enumerate(zip(lows, highs)) if high > low]


def holding(shards: list[Shard], rows: np.ndarray) -> list[Shard]:
    """The shards holding some of the sorted row numbers ``rows`` (the first shard when
    none does: its answer is then empty, in the answer's shape)."""
    found = rows_per_span(rows, [s.first for s in shards], [s.rows for s in shards])
    return [shards[at] for at, _ in found] or shards[:1]


def uncut(query: Query) -> Query:
    """The query without its offset/limit (a cut applies to the whole table's rows)."""
    return query.model_copy(update={"offset": 0, "limit": None})


def count_part(shard: Shard, query: Query) -> int:
    """The file's rows that pass the query's filter."""
    return shard.parts().answers.count(uncut(query))


def page_part(shard: Shard, query: Query, stop: int, columns: list[str] | None) -> pa.Table:
    """The file's first ``stop`` rows in the query's order: the asked columns, the sort
    keys (``KEY0``, ...), the row order (``ORDER0``, ...: the row number, or a
    comparison's row of each source) and with ``selected_first`` whether the selection
    holds the row (``SELECTED``), for the client to merge."""
    parts = shard.parts()
    with parts.planner.session(uncut(query), "page", needs=()) as (cur, params, rel):
        names = list(rel.fields) if columns is None else list(columns)
        select = [f"{resolve(rel, n, params, 'page column')[0]} AS {quote_ident(n)}" for n in names]
        for i, key in enumerate(query.sort):
            sql, _ = resolve(rel, key.column, params, "sort column")
            select.append(f"{sql} AS {KEY}{i}")
        select += [f"{quote_ident(o)} AS {ORDER}{i}" for i, o in enumerate(rel.order)]
        if rel.first:  # the selected rows come first
            select.append(f"{quote_ident(FIRST)} AS {SELECTED}")
        sql = select_rows(rel, uncut(query), params, ", ".join(select), 0, stop, ordered=True)
        table = parts.runner.arrow(cur, sql, params, "page")
        return restore_metadata(table, rel.fields) if rel.plain else table


def column_part(shard: Shard, query: Query, column: str) -> np.ndarray:
    """The file's values of ``column`` in row order, as ``Engine.column_numpy`` gives them."""
    return shard.parts().answers.column_numpy(query, column)


def values_part(
    shard: Shard, query: Query, names: list[str]
) -> tuple[list[Any], np.ndarray, int, list[str] | None]:
    """Every value (tuple) of the ``names`` columns in the file with its count (a row of
    counts per source of a compared column), the rows with a null, and the sources."""
    counts = shard.parts().answers.value_counts(query, names, top=2**62)
    return counts.values, counts.counts, counts.nulls, counts.groups


def bounds_part(
    shard: Shard, query: Query, column: str, auto: bool
) -> tuple[float | None, float | None, int, np.ndarray | None]:
    """The finite min and max of ``column`` in the file (from the footer's statistics when
    DuckDB can; over every source of a compared column), and for auto bins its finite
    count and a sample of its values (the file's share of the engine's quartile sample:
    all of them when the table is that small)."""
    parts = shard.parts()
    with parts.planner.session(query, "histogram", group=False, needs=(column,)) as (
        cur,
        params,
        pre,
    ):
        series = parts.histograms.series(pre, column, params)
        rows = select_rows(pre, query, params)
        bounds = parts.binner.bounds(cur, params, rows, series)
        lows = [lo for lo, _ in bounds if lo is not None]
        highs = [hi for _, hi in bounds if hi is not None]
        lo, hi = (min(lows), max(highs)) if lows else (None, None)
        if not auto:
            return lo, hi, 0, None
        finite = sum(c[2] for c in parts.binner.counts(cur, params, rows, series))
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
) -> tuple[list[dict[tuple[Any, ...], np.ndarray]], list[tuple[int, int, int]], list[Any]]:
    """The file's counts of ``column`` in the bins the client chose (``bins`` or ``width``
    over ``span``: the same edges everywhere), per value of ``by`` or, in a grouped query,
    per group; its (nulls, nonfinite, finite) values; and its groups by their first row.
    The counts and values are listed per series: one, or one per source of a compared
    column."""
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
        return binned.counts, binned.stats, binned.first


def groups_part(shard: Shard, query: Query, sample: int) -> pa.Table:
    """The file's groups of the (unsorted, uncut) grouped query, by their first row: the
    keys, ``count``, and each other column's first ``sample`` values in row order."""
    parts = shard.parts()
    with parts.planner.session(query, "grouped", group=False) as (cur, params, pre):
        grouped = group_by(pre, query.group_by, params, sample=sample)
        columns = list(grouped.fields)
        if pre.natural:  # the lists from the file's first rows when they hold them
            index, sizes = parts.histograms.group_keys(cur, query, params, pre)
            table = parts.aggregates.prefix_samples(
                cur, params, pre, grouped, columns, sample, index, sizes
            )
            if table is not None:
                return table
        select = ", ".join(quote_ident(c) for c in columns)
        sql = select_rows(grouped, query, params, select, ordered=True)
        return parts.runner.arrow(cur, sql, params, "grouped")


def key_part(shard: Shard, key: str) -> Any:
    """The file's values of the join key ``key`` that are not null, as a pandas frame with
    one column ``k`` (a category's values as text)."""
    parts = shard.parts()
    column = parts.answers.page(Query(table=shard.table), 0, shard.rows, [key]).column(0)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pa.table({"k": column.drop_null()}).to_pandas()


def files_of(source: Source) -> list[Shard] | None:
    """One task's file each of a Parquet table (a dataset's files, or its one file; a
    dataset of fewer than ``TASKS`` files in pieces of each file's row groups); None for
    a table that is not read from Parquet files (or a joined table)."""
    if source.sides is not None or not source.parquet:
        return None
    kind = source.type
    total = source.length
    dataset = source.dataset
    if dataset is None:
        stat = source.path.stat()
        dataset = one_file(str(source.path), stat.st_mtime_ns, stat.st_size, tuple(source.fields))
        if dataset is None:
            return [Shard(source.name, kind, path=source.path, rows=total, total=total)]
    files = len(dataset.files)
    if files >= TASKS:
        return [
            Shard(source.name, kind, dataset.shard(i), rows=rows, total=total)
            for i, rows in enumerate(dataset.rows)
        ]
    pieces = (
        dataset.piece(i, span)
        for i in range(files)
        for span in dataset.spans(i, -(-TASKS // files))
    )
    return [Shard(source.name, kind, p, rows=p.num_rows, total=total) for p in pieces]


@functools.lru_cache(maxsize=16)
def one_file(path: str, mtime: int, size: int, names: tuple[str, ...]) -> Any:
    """A Parquet file of several row groups as a one-file dataset (``ParquetDataset``), to
    split by its row groups as a dataset's files are; None when it has one row group, or
    columns a dataset names otherwise (a repeated or empty name). ``mtime`` and ``size``:
    a file changed since is read again."""
    if pq.read_metadata(path).num_row_groups < 2:
        return None
    dataset = open_dataset([path])
    return dataset if tuple(dataset.schema.names) == names else None
