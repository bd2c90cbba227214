"""The Engine: a Query runs as DuckDB SQL over Arrow tables and Parquet files.

``Engine(tables)`` registers each table once: an in-memory Arrow table as a
zero-copy view, a Parquet-backed ``Table`` as a ``read_parquet`` scan (filters
and column choices push down into the file), a ``JoinedTable`` as a join of
its two sides. A query runs in this order: compare_with -> join -> filter ->
group_by -> sort (nulls last, ties in row order) -> offset/limit. Panels ask
for what they draw: ``page``, ``count``, ``histogram`` (binned in SQL),
``value_counts``, ``column_numpy``, ``grouped``, ``compared``; see
``docs/engine.md`` for the shapes they return.

The Engine is a facade: each call checks its arguments, looks in the answer
cache and hands the work to the collaborator that does that job.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from panels_core.query.engine.aggregate import GROUP_SAMPLE
from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.engine.binning import check_bins
from panels_core.query.engine.cache import CACHE_SIZE, LRU, Answers, query_key
from panels_core.query.engine.merge import merge_may_run
from panels_core.query.engine.parts import Parts
from panels_core.query.errors import QueryError
from panels_core.query.model import Query
from panels_core.threads import start_background
from panels_core.types import JoinedTableType, TableType

__all__ = ["WARM_UP_ENV", "Engine"]

WARM_UP_ENV = "PANELS_WARM_UP"
"""Set to ``0`` and ``Engine.warm_up`` loads nothing early."""


class Engine:
    """Runs Queries over named tables with DuckDB; safe to call from many threads."""

    def __init__(
        self,
        tables: Mapping[str, Any] | None = None,
        threads: int = 2,
        cache_size: int = CACHE_SIZE,
        cluster: Any = None,
    ) -> None:
        self._cache = LRU(cache_size)
        parts = Parts(dict(tables or {}), threads, self._cache)
        self._catalog, self._runner, self._merger = parts.catalog, parts.runner, parts.merger
        self._planner = parts.planner
        self._answers = Answers(self._catalog, self._cache)
        self._rows: Any = parts.answers
        self.cluster_client = None
        """The ``distributed.Client`` answering this engine's queries (None: this process)."""
        if cluster is not None:
            from panels_core.query.cluster import ClusterAnswers

            self._rows = ClusterAnswers(cluster, parts)
            self.cluster_client = cluster

    # ------------------------------------------------------------- tables

    def add_table(self, name: str, table: Any) -> None:
        """Register (or replace) ``table`` under ``name``."""
        self._catalog.add_table(name, table)

    def table_names(self) -> list[str]:
        """The names of the registered tables."""
        return self._catalog.table_names()

    def table(self, name: str) -> Any:
        """The object registered under ``name`` (a Table, JoinedTable, or Arrow/pandas table)."""
        return self._catalog.table(name)

    def close(self) -> None:
        """Close the DuckDB database; the engine cannot answer queries afterwards."""
        with self._catalog.lock:
            self._catalog.close()
            self.clear_cache()

    def clear_cache(self) -> None:
        """Forget every kept answer (the next calls compute from the data again)."""
        self._cache.clear()
        self._merger.verdicts.clear()

    def warm_up(self) -> threading.Thread | None:
        """Load the comparison merge's kernels on a low-priority background thread, if a
        table is big enough for a comparison to use them (compiled once per machine,
        then loaded in each process: about a second, and 8-10 s the first time).

        The thread (named ``panels-merge-warm-up``), or None when nothing is loaded:
        the tables are small, or ``PANELS_WARM_UP=0``."""
        if os.environ.get(WARM_UP_ENV, "1") == "0":
            return None
        if not merge_may_run([self.table(name) for name in self.table_names()]):
            return None
        import panels_core.query.engine.pairing as pairing

        # the first large comparison compiles instead if this fails
        return start_background("panels-merge-warm-up", "merge", lambda: pairing.warm_up())

    # ------------------------------------------------------------- rows

    def result_type(self, query: Query) -> TableType | JoinedTableType:
        """The type of the query's rows: compared[T] after comparing, list[T] after grouping."""
        with self._planner.session(query, "result_type") as (_, _, rel):
            return rel.type

    def count(self, query: Query) -> int:
        """Rows (or groups) the query gives, after offset/limit (kept: see ``clear_cache``)."""
        return self._answers.get(
            ("count", query_key(query, "count")), lambda: self._rows.count(query)
        )

    def page(
        self, query: Query, offset: int = 0, limit: int = 50, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Rows ``offset .. offset+limit`` of the query's rows (within its own offset/limit)."""
        return self._rows.page(query, offset, limit, columns)

    def compared(self, query: Query) -> pa.Table:
        """Every row of a comparison: keys, compared[T] structs and the ``present`` flags."""
        return self._rows.compared(query)

    def join_counts(self, query: Query) -> tuple[int, int, int]:
        """(matched rows, left-only rows, right-only rows) of the query's join, before filters."""
        return self._rows.join_counts(query)

    def column_numpy(self, query: Query, column: str) -> np.ndarray:
        """A column as numpy: numbers -> float64 (null -> nan); embeddings -> (n, dim) float32.

        Strings, categories, booleans and timestamps come back as numpy object or
        datetime arrays; image columns are refused (they are never decoded here).
        """
        return self._rows.column_numpy(query, column)

    def row_numbers(self, query: Query) -> np.ndarray:
        """The table row numbers (int64) of the query's rows, in ``column_numpy``'s order."""
        return self._rows.row_numbers(query)

    def register_points(self, key: str, rows: Any, xy: Any) -> None:
        """Register a projection's points (row numbers, (n, 2) positions) under ``key``:
        ``in_selection(key, ...)`` in a filter is then the rows inside a polygon.
        Registering a key again replaces its points (kept answers over them are dropped)."""
        self._catalog.points.register(key, rows, xy)

    def register_point_frame(self, key: str, frame: Any) -> None:
        """Register points that stay on this engine's Dask cluster under ``key``: a Dask
        dataframe of ``row`` (the table's row number), ``x``, ``y``. ``in_selection(key, ...)``
        then finds the rows inside a polygon on the workers (only those rows come back).
        The same frame again changes nothing; another replaces it."""
        if self.cluster_client is None:
            raise QueryError(
                f"register_point_frame({key!r}): this engine has no Dask cluster; register "
                "points held here with register_points(key, rows, xy)"
            )
        from dask.base import tokenize

        from panels_core.query.cluster.points import FramePoints

        finder = FramePoints(frame, self.cluster_client)
        self._catalog.points.register_finder(key, finder, "frame:" + tokenize(frame))

    def has_points(self, key: str) -> bool:
        """Whether a projection has registered points under ``key`` (``register_points``)."""
        return self._catalog.points.has(key)

    # ------------------------------------------------------------- aggregates

    def value_counts(self, query: Query, column: str | Sequence[str], top: int = 20) -> ValueCounts:
        """The ``top`` most frequent values of a column (tuples for several columns)."""
        names = [column] if isinstance(column, str) else list(column)
        if not names:
            raise QueryError("value_counts(): name at least one column")
        key = ("value_counts", query_key(query, "value_counts"), tuple(names), top)
        return self._answers.get(key, lambda: self._rows.value_counts(query, names, top))

    def histogram(
        self,
        query: Query,
        column: str,
        bins: int | Literal["auto"] = "auto",
        range: tuple[float, float] | None = None,
        width: float | None = None,
        by: str | None = None,
    ) -> Histogram:
        """Bins and counts of a numeric column, computed in SQL (the column never leaves DuckDB).

        ``by`` a column gives one row of counts per value of it (shared edges,
        groups sorted, null last); a compared column gives one row per source;
        in a grouped query, one row per group (per group and source when the
        column is also compared), groups in the query's order.
        """
        check_bins(bins, range, width)
        span = None if range is None else (float(range[0]), float(range[1]))
        key = ("histogram", query_key(query, "histogram"), column, bins, span, width, by)
        return self._answers.get(
            key, lambda: self._rows.histogram(query, column, bins, range, width, by)
        )

    def grouped(
        self, query: Query, bins: int | Literal["auto"] = "auto", sample: int = GROUP_SAMPLE
    ) -> pa.Table:
        """One row per group: keys, ``count``, and each other column summarised.

        When the largest group holds more than ``sample`` rows, each numeric
        column becomes a per-group histogram struct ``{edges, counts}`` (edges
        shared by all groups of that column); otherwise numeric columns are full
        lists. Other columns hold their first ``sample`` values in row order
        (nulls included), the full size being in ``count``. A compared column
        holds one of these per source (a struct with one field per source).
        """
        if not query.group_by:
            raise QueryError("grouped(): the query has no group_by; set group_by=[...]")
        if sample < 1:
            raise QueryError(f"grouped(): sample must be >= 1, got {sample}")
        check_bins(bins, None, None)
        key = ("grouped", query_key(query, "grouped"), bins, sample)
        return self._answers.get(key, lambda: self._rows.grouped(query, bins, sample))
