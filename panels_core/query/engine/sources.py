"""The registered tables: each one a view on the engine's DuckDB connection.

``Catalog`` registers (and replaces) tables: an in-memory Arrow table as a
zero-copy view on each call's cursor, a Parquet-backed ``Table`` as a
``read_parquet`` scan, a ``JoinedTable`` as its two sides. It notices a Table
that changed, hands out one cursor per call, and knows what a kept answer
depends on (``stamp``).
"""

from __future__ import annotations

import builtins
import itertools
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from panels_core.query.engine.cache import LRU, MISS, file_stamp
from panels_core.query.engine.connection import (
    RESERVED,
    ROW,
    parquet_files,
    scan,
    scan_dataset,
    shared,
)
from panels_core.query.engine.failures import first_line, unknown_table
from panels_core.query.engine.points import Points
from panels_core.query.errors import QueryError
from panels_core.query.sql import quote_ident

__all__ = ["INT64", "Catalog", "Source", "struct_type"]

INT64 = (-(1 << 63), (1 << 63) - 1)
"""The range of a signed 64-bit integer."""
_VIEWS = itertools.count(1)  # view names, unique in the process: engines share a connection


@dataclass
class Source:
    """One registered table."""

    name: str
    table: Any
    view: str
    fields: dict[str, pa.Field]
    type: Any
    arrow: pa.Table | None = None  # registered on each cursor (zero copy)
    parquet: bool = False
    sides: tuple[str, str] | None = None  # hidden sources of a JoinedTable
    how: str = "inner"
    length: int = 0
    columns: tuple[str, ...] = ()
    path: Path | None = None  # the Parquet file of a Parquet-backed table
    dataset: Any = None  # the ParquetDataset of a table over many Parquet files
    # rows numbered as in a bigger table (``add_numbered``, ``add_numbered_file``)
    numbered: bool = False

    @property
    def files(self) -> tuple[Path, ...]:
        """The Parquet files this source scans (none for in-memory rows)."""
        if self.dataset is not None:
            return tuple(self.dataset.files)
        return (self.path,) if self.path is not None else ()

    def scan(self, con: Any) -> Any:
        """This Parquet source's lazy scan on ``con``."""
        if self.dataset is not None:
            return scan_dataset(con, self.dataset)
        return scan(con, self.path, self.columns, self.numbered)


class Catalog:
    """The registered tables of one engine, its DuckDB connection and each call's cursor."""

    def __init__(
        self, tables: Mapping[str, Any], threads: int, cache: LRU, whole_file: bool = False
    ) -> None:
        self.threads = threads
        self.whole_file = whole_file  # see ``connect``
        # the process's connection (``shared``), which reads these files and maybe others
        self.con, self.files = shared(threads, parquet_files(list(tables.values())), whole_file)
        self.sources: dict[str, Source] = {}
        self.hidden: dict[str, Source] = {}  # the sides of joined tables, by view name
        self.lock = threading.RLock()
        self.cache = cache  # the Parquet files' row-group key ranges are kept here
        # this thread's call: the tables' stamp it saw, the views its cursor builds lazily
        self.call = threading.local()
        self.closed = False
        # the Parquet views this catalog made on its connection, dropped when it closes or
        # is collected (the connection outlives it)
        self.views: dict[str, Any] = {}
        self._drop = weakref.finalize(self, _drop_views, self.views)
        self._drop.atexit = False
        self.points = Points()  # projections' points, for in_selection()
        for name, table in tables.items():
            self.add_table(name, table)

    def add_table(self, name: str, table: Any) -> None:
        """Register (or replace) ``table`` under ``name``."""
        from panels_core.data.table import JoinedTable

        table = _as_table(table)
        with self.lock:
            previous = self.sources.get(name)
            if previous is not None:
                self.drop(previous)
            if isinstance(table, JoinedTable):
                left = self.register(f"{name}.{table.left_name}", table.left)
                right = self.register(f"{name}.{table.right_name}", table.right)
                self.hidden[left.view], self.hidden[right.view] = left, right
                fields = {
                    table.left_name: pa.field(table.left_name, struct_type(left.fields)),
                    table.right_name: pa.field(table.right_name, struct_type(right.fields)),
                }
                self.sources[name] = Source(
                    name,
                    table,
                    self.new_view(),
                    fields,
                    table.type,
                    sides=(left.view, right.view),
                    how=getattr(table, "how", "inner"),
                )
            else:
                self.sources[name] = self.register(name, table)

    def add_numbered(self, name: str, table: Any, rows: pa.Array) -> None:
        """Register in-memory rows of a bigger table under ``name``, each keeping its row
        number there (``rows``, int64): a cluster's part of a table, paged and compared as
        the whole table's rows would be."""
        self.add_table(name, table)
        source = self.sources[name]
        arrow = source.arrow  # type: ignore[union-attr]
        source.arrow = arrow.set_column(arrow.schema.get_field_index(ROW), ROW, rows)
        source.numbered = True

    def add_numbered_file(self, name: str, path: Path, kind: Any, folder: str) -> None:
        """Register a Parquet file of rows of a bigger table under ``name``: the bigger
        table's columns (its type is ``kind``) and, last, ``ROW``, each row's number there
        (a cluster's part of a comparison, kept on a worker's disk). ``folder`` (ending in
        ``/``), which holds the file, is allowed as a whole: the files written there later
        are read on the same connection."""
        from panels_core.data.table import Table

        table = Table.from_parquet(path)
        fields = {f.name: f for f in table.schema if f.name != ROW}
        _check_columns(name, list(fields))
        with self.lock:
            self.allow(folder)
            source = Source(name, table, self.new_view(), fields, kind, length=len(table))
            source.columns, source.path = tuple(table.columns), path
            source.parquet = source.numbered = True
            try:
                _create_view(self.con, source, source.view)
            except duckdb.Error as exc:
                raise QueryError(
                    f"table `{name}`: cannot scan `{path}`: {first_line(exc)}"
                ) from exc
            self.views[source.view] = self.con
            self.sources[name] = source

    def drop(self, source: Source) -> None:
        """Forget a replaced table: its hidden sides and its Parquet view."""
        for view in source.sides or ():
            self.drop(self.hidden.pop(view))
        if source.parquet:
            _drop_views({source.view: self.views.pop(source.view, self.con)})

    def close(self) -> None:
        """Drop this catalog's views from the process's connection; no call runs after."""
        with self.lock:
            self.closed = True
            self._drop()

    def every_source(self) -> tuple[Source, ...]:
        """The registered tables and the sides of joined tables."""
        return (*self.sources.values(), *self.hidden.values())

    def stamp(self) -> tuple[Any, ...]:
        """What the kept answers depend on: every registration and every Parquet file's state.

        A replaced or grown table gets new view names, and a rewritten file a new
        modification time or size, so a kept answer is never found for changed data;
        replaced projection points (``in_selection``) change it too.
        """
        tables = tuple((s.view, *(file_stamp(f) for f in s.files)) for s in self.every_source())
        return (*tables, self.points.stamp())

    def new_view(self) -> str:
        """A view name never used before on this engine."""
        return f"{RESERVED}t{next(_VIEWS)}"

    def register(self, name: str, table: Any) -> Source:
        """A plain table as a Source: its Parquet scan as a view, or its Arrow rows."""
        view = self.new_view()
        schema = table.schema
        _check_columns(name, schema.names)
        fields = {f.name: f for f in schema}
        source = Source(
            name, table, view, fields, table.type, length=len(table), columns=tuple(schema.names)
        )
        path = getattr(table, "parquet_path", None)
        source.dataset = getattr(table, "parquet_dataset", None)
        if path is not None or source.dataset is not None:
            source.path = Path(path) if path is not None else None
            self.allow(*(str(f) for f in source.files))
            try:
                _create_view(self.con, source, view)
                self.views[view] = self.con
            except duckdb.Error as exc:
                where = path if path is not None else source.dataset.root
                raise QueryError(
                    f"table `{name}`: cannot scan `{where}`: {first_line(exc)}"
                ) from exc
            source.parquet = True
        else:
            arrow = table.to_arrow()
            source.arrow = arrow.append_column(
                ROW, pa.array(np.arange(arrow.num_rows, dtype=np.int64))
            )
        return source

    def allow(self, *paths: str) -> None:
        """Let the connection read ``paths``: the process's connection that also reads
        them (``shared``: a new one when no engine asked for them before, as the old one
        is locked), with the Parquet views of the tables registered so far.

        Calls running on the old connection finish there; it closes when they do."""
        if self.files.issuperset(paths):
            return
        con, files = shared(self.threads, {*self.files, *paths}, self.whole_file)
        for source in self.every_source():
            if source.parquet:
                # a file that became unreadable fails its own queries, not this table's
                with suppress(duckdb.Error):
                    _create_view(con, source, source.view)
                    self.views[source.view] = con
        self.con, self.files = con, files

    def table_names(self) -> list[str]:
        """The names of the registered tables."""
        return list(self.sources)

    def table(self, name: str) -> Any:
        """The object registered under ``name`` (a Table, JoinedTable, or Arrow/pandas table)."""
        return self.source(name).table

    def source(self, name: str) -> Source:
        """The Source registered under ``name`` (a QueryError naming the close ones if none)."""
        if name not in self.sources:
            raise unknown_table(name, list(self.sources))
        return self.sources[name]

    def refresh(self) -> None:
        """Register again any Table that changed (``add_data``, ``add_col``) since it was registered."""
        for name, source in list(self.sources.items()):
            pairs = (
                [(source.table, source)]
                if source.sides is None
                else [
                    (source.table.left, self.hidden[source.sides[0]]),
                    (source.table.right, self.hidden[source.sides[1]]),
                ]
            )
            if any(_changed(t, s) for t, s in pairs):
                self.add_table(name, source.table)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own per call, with every in-memory table registered on it."""
        with self.lock:
            if self.closed:
                raise QueryError("the engine is closed; make a new Engine to query its tables")
            self.refresh()
            cur = self.con.cursor()
            arrows = [(s.view, s.arrow) for s in self.every_source()]
            self.call.stamp = self.stamp()
        outer_lazy = getattr(self.call, "lazy", None)
        self.call.lazy = {}  # views registered afresh for each statement reading them: name -> builder
        try:
            for view, arrow in arrows:
                if arrow is not None:
                    cur.register(view, arrow)
            yield cur
        finally:
            cur.close()
            self.call.lazy = outer_lazy
            if getattr(self.call, "gathered", False):
                # a merged comparison streamed batches from Arrow's pool, which keeps
                # freed memory for reuse: hand it back, so the next call (of any kind)
                # does not stack its own peak on top
                self.call.gathered = False
                pa.default_memory_pool().release_unused()

    def key_ranges(self, source: Source, key: str) -> list[tuple[int, int, int]] | None:
        """(min, max, rows) of ``key`` per row group of a Parquet source, when the row
        groups' key ranges ascend (touching at most at one value); None when they do
        not or statistics are missing (and for a dataset: many files). Kept until
        ``clear_cache``."""
        if source.path is None:
            return None
        cache_key = ("row_groups", str(source.path), file_stamp(source.path), key)
        kept = self.cache.get(cache_key)
        if kept is not MISS:
            return kept
        import pyarrow.parquet as pq

        out: list[tuple[int, int, int]] | None = []
        try:
            meta = pq.ParquetFile(str(source.path)).metadata
        except (OSError, pa.ArrowException):
            meta = None
        if meta is None:
            out = None
        else:
            for i in builtins.range(meta.num_row_groups):
                group = meta.row_group(i)
                column = next(
                    (
                        group.column(j)
                        for j in builtins.range(group.num_columns)
                        if group.column(j).path_in_schema == key
                    ),
                    None,
                )
                stats = None if column is None else column.statistics
                if group.num_rows == 0:
                    continue
                if stats is None or not stats.has_min_max:
                    out = None
                    break
                low, high = stats.min, stats.max
                if not (
                    isinstance(low, int)
                    and isinstance(high, int)
                    and INT64[0] <= low <= high <= INT64[1]
                    and (not out or low >= out[-1][1])
                ):
                    out = None
                    break
                out.append((low, high, group.num_rows))
        self.cache.put(cache_key, out)
        return out


def _create_view(con: Any, source: Source, view: str) -> None:
    """``source``'s scan as ``view`` of the database, made on a cursor of its own: other
    engines use the process's connection from other threads at the same time."""
    cur = con.cursor()
    try:
        source.scan(cur).create_view(view, replace=True)
    finally:
        cur.close()


def _drop_views(views: dict[str, Any]) -> None:
    """Drop ``views`` (name -> the connection it is on), each on a cursor of its own."""
    for view, con in list(views.items()):
        with suppress(duckdb.Error):
            cur = con.cursor()
            cur.execute(f"DROP VIEW IF EXISTS {quote_ident(view)}")
            cur.close()
    views.clear()


def _changed(table: Any, source: Source) -> bool:
    """Whether a Table's rows or columns changed since it was registered as ``source``."""
    columns = getattr(table, "columns", None)
    if columns is not None and tuple(columns) != source.columns:
        return True
    return len(table) != source.length


def _check_columns(name: str, columns: Sequence[str]) -> None:
    for column in columns:
        if column.startswith(RESERVED):
            raise QueryError(
                f"table `{name}`: column `{column}` starts with `{RESERVED}`, which the engine "
                "reserves for its own columns; rename the column"
            )


def _as_table(value: Any) -> Any:
    """A Table (or JoinedTable) from a Table, JoinedTable, Arrow table or DataFrame."""
    from panels_core.data.table import JoinedTable, Table

    if isinstance(value, Table | JoinedTable):
        return value
    if isinstance(value, pa.Table | pa.RecordBatch):
        return Table.from_arrow(value)
    if hasattr(value, "columns") and hasattr(value, "dtypes"):
        return Table(dataframe=value)
    raise TypeError(
        f"an Engine table must be a Table, JoinedTable, pyarrow.Table or pandas DataFrame, "
        f"not {type(value).__name__}"
    )


def struct_type(fields: Mapping[str, pa.Field]) -> pa.DataType:
    """The Arrow struct of ``fields`` (named by their keys)."""
    return pa.struct([f.with_name(n) for n, f in fields.items()])
