"""The embedded engine: a Query runs as DuckDB SQL over Arrow tables and Parquet files.

``Engine(tables)`` registers each table once: an in-memory Arrow table as a
zero-copy view, a Parquet-backed ``Table`` as a ``read_parquet`` scan (filters
and column choices push down into the file), a ``JoinedTable`` as a join of
its two sides. A query runs in this order: compare_with -> join -> filter ->
group_by -> sort (nulls last, ties in row order) -> offset/limit. Panels ask
for what they draw: ``page``, ``count``, ``histogram`` (binned in SQL),
``value_counts``, ``column_numpy``, ``grouped``, ``compared``; see
``docs/engine.md`` for the shapes they return.
"""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import builtins
import dataclasses
import itertools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from panels_core.data.infer import is_list_type
from panels_core.query.bins import MAX_BINS, bin_span, width_bins
from panels_core.query.check import check_filter
from panels_core.query.errors import QueryError, UnknownColumnError
from panels_core.query.expr import Binary, Call, Col, Lit
from panels_core.query.model import CompareWith, JoinSpec, Query
from panels_core.query.sql import Params, Scope, compile_expr, quote_ident
from panels_core.types import (
    AnyType,
    BooleanType,
    ComparedType,
    JoinedTableType,
    ListType,
    MixedTypesError,
    NumberType,
    OptionalType,
    StructType,
    TableType,
    strip_optional,
    unify,
)

__all__ = [
    "CACHE_SIZE",
    "FIRST_PAGE",
    "GROUP_SAMPLE",
    "MAX_AUTO_BINS",
    "MAX_BINS",
    "PAIR_MIN_ROWS",
    "Engine",
    "Histogram",
    "ValueCounts",
]

GROUP_SAMPLE = 100
"""``grouped()`` keeps at most this many values per group of a non-numeric column."""
MAX_AUTO_BINS = 200
"""``bins="auto"`` never gives more bins than this (nor fewer than 1)."""
CACHE_SIZE = 256
"""Answers (counts, histograms, value counts, grouped tables, column stats) the engine keeps."""
FIRST_PAGE = 50
"""``count()`` of a join or comparison also finds this many first rows for ``page()``."""
_CACHE_MAX_BYTES = 8 << 20  # a grouped table bigger than this is not kept
_QUANTILE_SAMPLE = 200_000
_PREFIX_START, _PREFIX_MAX = 1 << 16, 1 << 22  # grouped(): rows read to find the samples
_RESERVED = "__tp_"
_ROW = "__tp_row"
_FAR = 1 << 40  # right-only rows of a comparison sort after every left row
# a comparison of two large key-ordered Parquet files joins parts of about this many rows
_PART_ROWS = 1_000_000
_MAX_PARTS = 64
PAIR_MIN_ROWS = 100_000  # smaller comparisons keep DuckDB's hash join (fast enough, no gathering)
_PAIRINGS_KEPT = 2  # pairings of row positions kept (two arrays of the output's length)
_STREAM_BATCH = 1 << 20  # rows per batch when a column is streamed into its gathered order
_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)
# what DuckDB raises when a file's data does not read (besides a bare duckdb.Error)
_READ_ERRORS = (
    duckdb.IOException,
    duckdb.InvalidInputException,
    duckdb.InternalException,
    duckdb.SerializationException,
)


@dataclass(frozen=True, eq=False)
class Histogram:
    """Bins and counts computed by the engine.

    ``counts`` has shape (n,) or (groups, n) when ``groups`` is set (a ``by``
    column, a compared column: one row per source, a grouped column: one row
    per group). ``nulls`` / ``nonfinite`` count missing and NaN/inf values;
    ``outside`` counts finite values outside an explicit ``range``.
    """

    edges: np.ndarray
    counts: np.ndarray
    groups: list[str] | None = None
    nulls: int = 0
    nonfinite: int = 0
    outside: int = 0


@dataclass(frozen=True, eq=False)
class ValueCounts:
    """The ``top`` most frequent values (tuples for several columns), most frequent first.

    ``other`` counts rows with a value outside the top; ``nulls`` counts rows
    with a null (in any of the columns). For a compared column ``groups``
    names the sources and ``counts`` has one row per source (values ranked by
    their total over the sources; rows absent from a source are not counted).
    """

    values: list[Any]
    counts: np.ndarray
    other: int = 0
    nulls: int = 0
    groups: list[str] | None = None  # sources of a compared column: counts is (sources, top)


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
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


@dataclass
class _Rel:
    """A relation in the plan: SQL text plus what the next stage needs to know."""

    sql: str
    fields: dict[str, pa.Field]
    type: Any
    order: tuple[str, ...]
    natural: bool = True  # rows come out in row order without ORDER BY
    compared: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    plain: bool = True  # columns unchanged from one source (field metadata still true)
    keys: tuple[str, ...] = ()  # group keys (after group_by)
    pre: _Rel | None = None  # the filtered rows before grouping
    pre_keys: tuple[str, ...] = ()  # the key expressions over ``pre``
    joined: bool = False
    # the query's sort is already the order of ``order`` (a merged comparison sorted by
    # its key): ORDER BY then names just ``order``
    presorted: bool = False


class _Pick:
    """Rows chosen by position (a page's first pass), to read again with every column.

    ``positions`` are the relation's order tuples: ``(row,)`` for one table;
    ``(left row, right row)`` for a join; for a comparison ``(left row or
    _FAR + right row, right row)``.
    """

    def __init__(self, positions: list[tuple[Any, ...]], params: Params, compare: bool) -> None:
        self.positions = positions
        self.params = params
        self.compare = compare
        self._side: int | None = None

    def pairs(self) -> list[tuple[int | None, int | None]]:
        out = []
        for pos in self.positions:
            if len(pos) == 1:
                out.append((pos[0], None))
            elif self.compare:
                out.append((pos[0] if pos[0] < _FAR else None, pos[1]))
            else:
                out.append((pos[0], pos[1]))
        return out

    def rows(self, side: int) -> list[int]:
        """The row numbers of one side (this pick's side when it is a side's view)."""
        which = side if self._side is None else self._side
        return sorted({p[which] for p in self.pairs() if p[which] is not None})

    def side(self, side: int) -> _Pick:
        view = _Pick(self.positions, self.params, self.compare)
        view._side = side
        return view

    def join(self, a_sql: str, b_sql: str) -> str:
        """A FROM clause pairing exactly the picked rows of two relations."""
        left = self.params.add([p[0] for p in self.pairs()], "BIGINT[]")
        right = self.params.add([p[1] for p in self.pairs()], "BIGINT[]")
        return (
            f"FROM (SELECT unnest({left}) AS __tp_l, unnest({right}) AS __tp_r) AS __tp_pairs "
            f"LEFT JOIN ({a_sql}) AS __tp_a ON __tp_a.{quote_ident(_ROW)} = __tp_pairs.__tp_l "
            f"LEFT JOIN ({b_sql}) AS __tp_b ON __tp_b.{quote_ident(_ROW)} = __tp_pairs.__tp_r"
        )


_MISS = object()


class _Cache:
    """A small thread-safe LRU of answers keyed by (tables' stamp, call, arguments)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key, _MISS)
            if value is not _MISS:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _fresh(value: Any) -> Any:
    """A copy of a cached answer whose numpy arrays the caller may change freely."""
    if isinstance(value, Histogram):
        return dataclasses.replace(
            value,
            edges=value.edges.copy(),
            counts=value.counts.copy(),
            groups=None if value.groups is None else list(value.groups),
        )
    if isinstance(value, ValueCounts):
        return dataclasses.replace(
            value,
            values=list(value.values),
            counts=value.counts.copy(),
            groups=None if value.groups is None else list(value.groups),
        )
    return value  # ints and Arrow tables are immutable


def _file_stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return (-1, -1)
    return (info.st_mtime_ns, info.st_size)


def _query_key(query: Any, what: str) -> str:
    if not isinstance(query, Query):
        raise TypeError(f"Engine.{what} needs a Query, not {type(query).__name__}")
    return query.model_dump_json()


def _changed(table: Any, source: _Source) -> bool:
    """Whether a Table's rows or columns changed since it was registered as ``source``."""
    columns = getattr(table, "columns", None)
    if columns is not None and tuple(columns) != source.columns:
        return True
    return len(table) != source.length


def _check_columns(name: str, columns: Sequence[str]) -> None:
    for column in columns:
        if column.startswith(_RESERVED):
            raise QueryError(
                f"table `{name}`: column `{column}` starts with `{_RESERVED}`, which the engine "
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


def _optional(t: Any) -> Any:
    return t if isinstance(t, OptionalType | AnyType) else OptionalType(inner=t)


def _merge(a: Any, b: Any) -> Any:
    try:
        return unify(a, b)
    except MixedTypesError:
        return AnyType()


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _struct_type(fields: Mapping[str, pa.Field]) -> pa.DataType:
    return pa.struct([f.with_name(n) for n, f in fields.items()])


def _label(value: Any) -> str:
    return "null" if value is None else str(value)


# --------------------------------------------------------------------------- the engine


def _connect(threads: int, files: Sequence[str] = ()) -> Any:
    """An in-memory DuckDB connection, locked down, that reads only the Parquet ``files``.

    Defence in depth (no user text reaches SQL but bound values and checked
    names): no extension is installed or loaded on demand, no file but
    ``files`` can be read or written (``enable_external_access`` off, the files
    in ``allowed_paths``), and the configuration is locked, so no statement can
    undo any of it. Another file needs a new connection (``Engine._allow``).

    DuckDB's Parquet reader prefetches whole column chunks by default: on a
    local file that buys no speed and costs memory (a filtered, sorted page of a
    10M-row file took the process 236 MiB higher with it, 45 MiB without;
    ``benchmarks/bench_engine.py``). The switch is set GLOBAL, so the cursors
    of every call see it. DuckDB releases without the switch are left as they are.
    """
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": threads,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        },
    )
    known = {name for (name,) in con.execute("SELECT name FROM duckdb_settings()").fetchall()}
    if "disable_parquet_prefetching" in known:
        con.execute("SET GLOBAL disable_parquet_prefetching = true")
    con.execute("SET GLOBAL allowed_paths = $1", [sorted(files)])
    con.execute("SET GLOBAL enable_external_access = false")
    con.execute("SET GLOBAL lock_configuration = true")
    return con


def _parquet_files(tables: Sequence[Any]) -> list[str]:
    """The Parquet files behind ``tables`` (both sides of a joined table)."""
    from panels_core.data.table import JoinedTable

    parts = [p for t in tables for p in ((t.left, t.right) if isinstance(t, JoinedTable) else (t,))]
    paths = (getattr(p, "parquet_path", None) for p in parts)
    return [str(path) for path in paths if path is not None]


def _scan(con: Any, path: str | os.PathLike[str], names: Sequence[str]) -> Any:
    """A lazy scan of a Parquet file on ``con``: its columns under the table's ``names``
    (by position: a file may repeat a name or leave one empty) and its row numbers as
    ``_ROW``. Renamed so, a column of the file called ``file_row_number`` does not hide
    DuckDB's row numbers."""
    columns = ", ".join(quote_ident(n) for n in names)
    sql = (
        f"SELECT *, file_row_number AS {quote_ident(_ROW)} "
        f"FROM read_parquet($path) AS __tp_file({columns})"
    )
    return con.sql(sql, params={"path": str(path)})


class Engine:
    """Runs Queries over named tables with DuckDB; safe to call from many threads."""

    def __init__(
        self,
        tables: Mapping[str, Any] | None = None,
        threads: int = 2,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._threads = threads
        self._files = set(_parquet_files(list((tables or {}).values())))
        self._con = _connect(threads, sorted(self._files))
        self._sources: dict[str, _Source] = {}
        self._hidden: dict[str, _Source] = {}
        self._lock = threading.RLock()
        self._views = itertools.count(1)
        self._cache = _Cache(cache_size)
        self._pairings = _Cache(_PAIRINGS_KEPT)
        self._local = threading.local()  # the tables' stamp seen by this thread's call
        for name, table in (tables or {}).items():
            self.add_table(name, table)

    # ------------------------------------------------------------- registration

    def add_table(self, name: str, table: Any) -> None:
        """Register (or replace) ``table`` under ``name``."""
        from panels_core.data.table import JoinedTable

        table = _as_table(table)
        with self._lock:
            previous = self._sources.get(name)
            if previous is not None:
                self._drop(previous)
            if isinstance(table, JoinedTable):
                left = self._register(f"{name}.{table.left_name}", table.left)
                right = self._register(f"{name}.{table.right_name}", table.right)
                self._hidden[left.view], self._hidden[right.view] = left, right
                fields = {
                    table.left_name: pa.field(table.left_name, _struct_type(left.fields)),
                    table.right_name: pa.field(table.right_name, _struct_type(right.fields)),
                }
                self._sources[name] = _Source(
                    name,
                    table,
                    self._new_view(),
                    fields,
                    table.type,
                    sides=(left.view, right.view),
                    how=getattr(table, "how", "inner"),
                )
            else:
                self._sources[name] = self._register(name, table)

    def _drop(self, source: _Source) -> None:
        """Forget a replaced table: its hidden sides and its Parquet view."""
        for view in source.sides or ():
            self._drop(self._hidden.pop(view))
        if source.parquet:
            self._con.execute(f"DROP VIEW IF EXISTS {quote_ident(source.view)}")

    def close(self) -> None:
        """Close the DuckDB database; the engine cannot answer queries afterwards."""
        with self._lock:
            self._con.close()
            self._cache.clear()
            self._pairings.clear()

    def clear_cache(self) -> None:
        """Forget every kept answer (the next calls compute from the data again)."""
        self._cache.clear()
        self._pairings.clear()

    def _stamp(self) -> tuple[Any, ...]:
        """What the kept answers depend on: every registration and every Parquet file's state.

        A replaced or grown table gets new view names, and a rewritten file a new
        modification time or size, so a kept answer is never found for changed data.
        """
        return tuple(
            (s.view, _file_stamp(s.path)) for s in (*self._sources.values(), *self._hidden.values())
        )

    def _cached(self, key: tuple[Any, ...], compute: Any) -> Any:
        """``compute()``, or the answer kept for ``key`` under the current tables."""
        with self._lock:
            self._refresh()
            stamp = self._stamp()
        value = self._cache.get((stamp, *key))
        if value is _MISS:
            value = compute()
            keep = not isinstance(value, pa.Table) or value.nbytes <= _CACHE_MAX_BYTES
            if keep:
                self._cache.put((self._local.stamp, *key), value)
        return _fresh(value)

    def _new_view(self) -> str:
        return f"{_RESERVED}t{next(self._views)}"

    def _register(self, name: str, table: Any) -> _Source:
        view = self._new_view()
        schema = table.schema
        _check_columns(name, schema.names)
        fields = {f.name: f for f in schema}
        source = _Source(
            name, table, view, fields, table.type, length=len(table), columns=tuple(schema.names)
        )
        path = getattr(table, "parquet_path", None)
        if path is not None:
            self._allow(str(path))
            try:
                _scan(self._con, path, schema.names).create_view(view, replace=True)
            except duckdb.Error as exc:
                raise QueryError(
                    f"table `{name}`: cannot scan `{path}`: {_first_line(exc)}"
                ) from exc
            source.parquet = True
            source.path = Path(path)
        else:
            arrow = table.to_arrow()
            source.arrow = arrow.append_column(
                _ROW, pa.array(np.arange(arrow.num_rows, dtype=np.int64))
            )
        return source

    def _allow(self, path: str) -> None:
        """Let the connection read ``path``: a new connection (the old one is locked)
        that also reads it, with the Parquet views of the tables registered so far.

        Calls running on the old connection finish there; it closes when they do."""
        if path in self._files:
            return
        con = _connect(self._threads, sorted({*self._files, path}))
        for source in (*self._sources.values(), *self._hidden.values()):
            if source.parquet:
                # a file that became unreadable fails its own queries, not this table's
                with suppress(duckdb.Error):
                    _scan(con, source.path, source.columns).create_view(source.view, replace=True)
        self._con, self._files = con, {*self._files, path}

    def table_names(self) -> list[str]:
        """The names of the registered tables."""
        return list(self._sources)

    def table(self, name: str) -> Any:
        """The object registered under ``name`` (a Table, JoinedTable, or Arrow/pandas table)."""
        return self._source(name).table

    def _source(self, name: str) -> _Source:
        if name not in self._sources:
            raise _unknown_table(name, list(self._sources))
        return self._sources[name]

    def _refresh(self) -> None:
        """Register again any Table that changed (``add_data``, ``add_col``) since it was registered."""
        for name, source in list(self._sources.items()):
            pairs = (
                [(source.table, source)]
                if source.sides is None
                else [
                    (source.table.left, self._hidden[source.sides[0]]),
                    (source.table.right, self._hidden[source.sides[1]]),
                ]
            )
            if any(_changed(t, s) for t, s in pairs):
                self.add_table(name, source.table)

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own per call, with every in-memory table registered on it."""
        with self._lock:
            self._refresh()
            cur = self._con.cursor()
            arrows = [(s.view, s.arrow) for s in (*self._sources.values(), *self._hidden.values())]
            self._local.stamp = self._stamp()
        outer_lazy = getattr(self._local, "lazy", None)
        self._local.lazy = {}  # views this cursor builds on first use: quoted name -> builder
        try:
            for view, arrow in arrows:
                if arrow is not None:
                    cur.register(view, arrow)
            yield cur
        finally:
            cur.close()
            self._local.lazy = outer_lazy
            if getattr(self._local, "gathered", False):
                # a merged comparison gathered columns from Arrow's pool, which keeps
                # freed memory for reuse: hand it back, so the next call (of any kind)
                # does not stack its own peak on top (measured: 995 -> ~800 MiB peak)
                self._local.gathered = False
                pa.default_memory_pool().release_unused()

    def _ready(self, cur: Any, sql: str) -> None:
        """Build the lazy views ``sql`` reads (e.g. a comparison's gathered columns)."""
        lazy = self._local.lazy
        for name in [n for n in lazy if n in sql]:
            lazy.pop(name)(cur)

    # ------------------------------------------------------------- plan building

    def _base(self, source: _Source, pick: _Pick | None = None) -> _Rel:
        """A registered table as a relation; ``pick`` keeps only some rows (a page)."""
        cols = ", ".join(quote_ident(c) for c in source.fields)
        if source.sides is not None:
            left, right = (self._hidden[v] for v in source.sides)
            table = source.table
            sides = (None, None) if pick is None else (pick.side(0), pick.side(1))
            return self._join_rels(
                self._base(left, sides[0]),
                self._base(right, sides[1]),
                table.left_key,
                table.right_key,
                source.how,
                (table.left_name, table.right_name),
                source.type,
                pick,
            )
        row = quote_ident(_ROW)
        sql = f"SELECT {cols}, {row} FROM {quote_ident(source.view)}"
        if pick is not None:
            rows = pick.rows(0)
            sql += f" WHERE list_contains({pick.params.add(rows, 'BIGINT[]')}, {row})"
            if rows:  # lets a Parquet scan skip the row groups outside the picked rows
                low, high = pick.params.add(rows[0], "BIGINT"), pick.params.add(rows[-1], "BIGINT")
                sql += f" AND {row} BETWEEN {low} AND {high}"
        return _Rel(sql, dict(source.fields), source.type, (_ROW,))

    def _join_rels(
        self,
        a: _Rel,
        b: _Rel,
        left_key: str,
        right_key: str,
        how: str,
        names: tuple[str, str],
        joined_type: Any,
        pick: _Pick | None = None,
    ) -> _Rel:
        for rel, key, side in ((a, left_key, names[0]), (b, right_key, names[1])):
            if key not in rel.fields:
                raise _unknown(key, rel.fields, f"join key of `{side}`")
        sql_how = {"inner": "INNER", "left": "LEFT", "outer": "FULL OUTER"}[how]
        parts = []
        for alias, rel, name in (("__tp_a", a, names[0]), ("__tp_b", b, names[1])):
            packed = ", ".join(f"{quote_ident(c)} := {alias}.{quote_ident(c)}" for c in rel.fields)
            parts.append(
                f"CASE WHEN {alias}.{quote_ident(_ROW)} IS NULL THEN NULL "
                f"ELSE struct_pack({packed}) END AS {quote_ident(name)}"
            )
        sql = (
            f"SELECT {', '.join(parts)}, __tp_a.{quote_ident(_ROW)} AS __tp_row0, "
            f"__tp_b.{quote_ident(_ROW)} AS __tp_row1 "
            + (
                pick.join(a.sql, b.sql)
                if pick is not None
                else f"FROM ({a.sql}) AS __tp_a {sql_how} JOIN ({b.sql}) AS __tp_b "
                f"ON __tp_a.{quote_ident(left_key)} = __tp_b.{quote_ident(right_key)}"
            )
        )
        fields = {
            names[0]: pa.field(names[0], _struct_type(a.fields)),
            names[1]: pa.field(names[1], _struct_type(b.fields)),
        }
        return _Rel(
            sql,
            fields,
            joined_type,
            ("__tp_row0", "__tp_row1"),
            natural=False,
            plain=False,
            joined=True,
        )

    def _compare(
        self,
        a: _Rel,
        b: _Rel,
        spec: CompareWith,
        required: frozenset[int] = frozenset(),
        pick: _Pick | None = None,
        splits: list[int] | None = None,
        params: Params | None = None,
        glued: str | None = None,
    ) -> _Rel:
        """Full outer join of two tables; ``required`` sources (the filter demands
        ``N.present``) turn it into a left, right or inner join, which is faster.

        ``glued``: a view already holding both sides paired row by row, as
        columns named ``__tp_a.<column>`` and ``__tp_b.<column>`` (see
        ``_paired``); no join.

        With ``splits`` (integer key values, ascending) the join runs as one join
        per key range (and one for null keys), glued by UNION ALL: each range
        reads only its own row groups and its hash table is a fraction of the
        whole, so peak memory drops; the rows are the same.
        """
        names = tuple(spec.names)

        def ref(alias: str, column: str) -> str:
            """A side's column: ``alias.column``, or the glued view's flat column of that name."""
            if glued is not None:
                return quote_ident(f"{alias}.{column}")
            return f"{alias}.{quote_ident(column)}"

        if len(set(names)) != len(names):
            raise QueryError(f"compare_with: the two sources need different names, got {names}")
        if isinstance(spec.on, str):
            left_key = right_key = spec.on
        elif spec.on is None:
            left_key = right_key = None
        else:
            left_key, right_key = spec.on
        for rel, key, which in ((a, left_key, "this table"), (b, right_key, f"`{spec.table}`")):
            if key is not None and key not in rel.fields:
                raise _unknown(key, rel.fields, f"compare_with key in {which}")
            if "present" in rel.fields:
                raise QueryError(
                    f"compare_with: {which} has a column named `present`, the name of the "
                    "flag saying which source holds each row; rename that column"
                )
        ta, tb = a.type.columns, b.type.columns
        select, fields, types, compared = [], {}, {}, set()
        if left_key is not None:
            select.append(
                f"coalesce({ref('__tp_a', left_key)}, {ref('__tp_b', right_key)}) "
                f"AS {quote_ident(left_key)}"
            )
            fields[left_key] = a.fields[left_key]
            types[left_key] = ta[left_key]
        for col, f in a.fields.items():
            if col == left_key:
                continue
            if col in b.fields and col != right_key:
                packed = ", ".join(
                    f"{quote_ident(n)} := {ref(alias, col)}"
                    for n, alias in zip(names, ("__tp_a", "__tp_b"))
                )
                select.append(f"struct_pack({packed}) AS {quote_ident(col)}")
                fields[col] = pa.field(
                    col, pa.struct([f.with_name(names[0]), b.fields[col].with_name(names[1])])
                )
                types[col] = ComparedType(item=_merge(ta[col], tb[col]), sources=names)
                compared.add(col)
            else:
                select.append(f"{ref('__tp_a', col)} AS {quote_ident(col)}")
                fields[col], types[col] = f, _optional(ta[col])
        for col, f in b.fields.items():
            if col not in fields and col != right_key:
                select.append(f"{ref('__tp_b', col)} AS {quote_ident(col)}")
                fields[col], types[col] = f, _optional(tb[col])
        present = ", ".join(
            f"{quote_ident(n)} := ({ref(alias, _ROW)} IS NOT NULL)"
            for n, alias in zip(names, ("__tp_a", "__tp_b"))
        )
        select.append(f"struct_pack({present}) AS present")
        fields["present"] = pa.field("present", pa.struct([pa.field(n, pa.bool_()) for n in names]))
        types["present"] = ComparedType(item=BooleanType(), sources=names)
        compared.add("present")
        row_a, row_b = ref("__tp_a", _ROW), ref("__tp_b", _ROW)
        select.append(f"coalesce({row_a}, {_FAR} + {row_b}) AS __tp_row0")
        select.append(f"{row_b} AS __tp_row1")
        if left_key is None:
            on = f"{row_a} = {row_b}"
        else:
            on = f"__tp_a.{quote_ident(left_key)} = __tp_b.{quote_ident(right_key)}"
        how = {
            frozenset(): "FULL OUTER",
            frozenset({0}): "LEFT",
            frozenset({1}): "RIGHT",
        }.get(required, "INNER")
        if pick is not None:
            sql = f"SELECT {', '.join(select)} {pick.join(a.sql, b.sql)}"
        elif glued is not None:
            sql = f"SELECT {', '.join(select)} FROM {quote_ident(glued)}"
        elif splits and params is not None and left_key is not None and right_key is not None:
            bounds = [None, *(params.add(int(v), "BIGINT") for v in splits), None]
            parts = []
            for lo, hi in [*itertools.pairwise(bounds), (None, None)]:
                # the last part (no bounds) holds the rows whose key is null
                side_a = _key_range(a.sql, quote_ident(left_key), lo, hi)
                side_b = _key_range(b.sql, quote_ident(right_key), lo, hi)
                parts.append(
                    f"SELECT {', '.join(select)} FROM ({side_a}) AS __tp_a "
                    f"{how} JOIN ({side_b}) AS __tp_b ON {on}"
                )
            sql = "SELECT * FROM (" + " UNION ALL ".join(parts) + ") AS __tp_parts"
        else:
            sql = (
                f"SELECT {', '.join(select)} "
                f"FROM ({a.sql}) AS __tp_a {how} JOIN ({b.sql}) AS __tp_b ON {on}"
            )
        return _Rel(
            sql,
            fields,
            TableType(columns=types),
            ("__tp_row0", "__tp_row1"),
            natural=False,
            compared=frozenset(compared),
            sources=names,
            plain=False,
        )

    def _paired(
        self,
        cur: Any,
        a: _Source,
        b: _Source,
        spec: CompareWith,
        required: frozenset[int],
        heads: set[str],
    ) -> tuple[_Rel, _Rel, CompareWith, str] | None:
        """The ``heads`` columns of both tables, gathered row by row in pair order:
        the two sides (their fields), the comparison to glue them with, and the
        view holding them (columns named ``__tp_a.<column>``, ``__tp_b.<column>``).

        When both tables hold the compare key as an integer column without
        nulls, sorted ascending (or the comparison is by row position), one
        merge pass pairs their rows (``pairing.pair_sorted``): no hash table.
        The columns a query reads are taken in that order into one Arrow table,
        registered on ``cur`` when a statement first reads it. None: not
        possible, or small enough for DuckDB's hash join.
        """
        if a.length + b.length < PAIR_MIN_ROWS:
            return None
        keys = (spec.on, spec.on) if isinstance(spec.on, str) else spec.on
        keep = (1 not in required, 0 not in required)  # rows without a partner, per side
        if keys is not None:
            for source, key in ((a, keys[0]), (b, keys[1])):
                if not pa.types.is_integer(source.fields[key].type):
                    return None
                if source.parquet and self._row_groups(source, key) is None:
                    return None  # the file's statistics already say it is not sorted
        cache_key = (self._local.stamp, a.view, b.view, keys, keep)
        pairs = self._pairings.get(cache_key)
        # the key is carried only when the query reads it (otherwise the sides are glued by
        # position alone), and from one side only when the other has no partnerless rows:
        # the comparison's key is coalesce(key of 0, key of 1)
        with_key = keys is not None and keys[0] in heads
        spare = 1 if not keep[1] else 0 if not keep[0] else None  # that side's key is not needed
        shown = [
            [
                c
                for c in source.fields
                if (c == keys[i] and with_key and i != spare) or (c != keys[i] and c in heads)
            ]
            if keys is not None
            else [c for c in source.fields if c in heads]
            for i, source in enumerate((a, b))
        ]
        taken: dict[int, pa.Array] = {}  # a side's key column, already in pair order
        if pairs is _MISS:
            from panels_core.query.pairing import pair_positions, pair_sorted

            if keys is None:
                pairs = pair_positions(a.length, b.length, *keep)
            else:
                # keys that all fit int32 are read and merged at half the bytes
                narrow = self._fits_int32(a, keys[0]) and self._fits_int32(b, keys[1])
                key_a = self._read_key(cur, a, keys[0], narrow)
                key_b = None if key_a is None else self._read_key(cur, b, keys[1], narrow)
                if key_a is None or key_b is None:
                    return None
                pairs = pair_sorted(key_a, key_b, *keep)
                if pairs is None:
                    return None
                if with_key:  # the key the query reads, taken now: the read keys are freed
                    i = 0 if spare != 0 else 1
                    source = (a, b)[i]
                    taken[i] = self._take_key(
                        (key_a, key_b)[i], source.fields[keys[i]].type, pairs[i], keep[1 - i]
                    )
                del key_a, key_b
            from panels_core.query.pairing import monotone

            # whether each side's positions ascend (then its number columns can stream)
            ascending = (monotone(pairs[0]), monotone(pairs[1]))
            self._pairings.put(cache_key, (pairs, ascending))
        else:
            pairs, ascending = pairs
        view = self._new_view()
        sides = []
        for i, (source, columns) in enumerate(zip((a, b), shown)):
            fields = {c: source.fields[c] for c in columns}
            if keys is not None and with_key and i == spare:
                fields[keys[i]] = source.fields[keys[i]]  # an all-null child (see gather)
            sides.append(_Rel("", fields, source.type, (_ROW,)))

        def gather(cur: Any) -> None:
            from panels_core.query.pairing import index_array

            flat: dict[str, pa.Array] = {}
            # a side has no-partner (-1) slots only where the other side keeps its rows
            for i, (alias, source, side, columns, rows, partnerless) in enumerate(
                zip(("__tp_a", "__tp_b"), (a, b), sides, shown, pairs, reversed(keep))
            ):
                index = index_array(rows, partnerless)
                streamable = source.parquet and ascending[i]
                children = {
                    c: taken.pop(i)
                    if i in taken and c == keys[i]  # type: ignore[index]
                    else self._gather(cur, source, c, rows, index, streamable)
                    for c in columns
                }
                children |= {c: pa.nulls(len(rows)) for c in side.fields if c not in children}
                children[_ROW] = index
                flat |= {f"{alias}.{c}": values for c, values in children.items()}
            cur.register(view, pa.table(flat))
            self._local.gathered = True

        self._local.lazy[quote_ident(view)] = gather  # built when a statement reads it
        glue = spec if with_key else spec.model_copy(update={"on": None})
        return sides[0], sides[1], glue, view

    @staticmethod
    def _take_key(
        values: np.ndarray, kind: pa.DataType, rows: np.ndarray, partnerless: bool
    ) -> pa.Array:
        """A key column read as int64 for the pairing, at positions ``rows``, in its own type."""
        from panels_core.query.pairing import index_array, take

        taken = take(pa.array(values), rows, index_array(rows, partnerless))
        return taken if taken.type == kind else taken.cast(kind)

    def _read_column(self, cur: Any, source: _Source, column: str) -> pa.ChunkedArray:
        """A whole column in row order (of a Parquet file, just that column)."""
        if not source.parquet:
            return source.arrow.column(column)  # type: ignore[union-attr]
        sql = f"SELECT {quote_ident(column)} FROM {quote_ident(source.view)}"
        return self._arrow(cur, sql, Params(), "compare", batch=max(source.length, 1)).column(0)

    def _fits_int32(self, source: _Source, key: str) -> bool:
        """Whether every value of an integer key column fits int32: by its type, a Parquet
        file's statistics, or one min/max pass over an Arrow column."""
        kind = source.fields[key].type
        if kind.bit_width < 32 or kind == pa.int32():
            return True
        if source.parquet:
            groups = self._row_groups(source, key)  # ascending: the first low, the last high
            return groups is not None and (
                not groups or (_INT32[0] <= groups[0][0] and groups[-1][1] <= _INT32[1])
            )
        bounds = pc.min_max(source.arrow.column(key))  # type: ignore[union-attr]
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        return low is None or (_INT32[0] <= low and high <= _INT32[1])

    def _read_key(
        self, cur: Any, source: _Source, key: str, narrow: bool = False
    ) -> np.ndarray | None:
        """An integer key column as int64 numpy (int32 when ``narrow``); None when it has
        nulls or does not fit."""
        from panels_core.query.pairing import collect_keys, one_chunk

        kind = pa.int32() if narrow else pa.int64()
        if source.parquet:
            sql_type = "INTEGER" if narrow else "BIGINT"
            sql = (
                f"SELECT TRY_CAST({quote_ident(key)} AS {sql_type}) FROM {quote_ident(source.view)}"
            )
            batches = cur.sql(sql).to_arrow_reader(_STREAM_BATCH)
            return collect_keys(batches, source.length, kind.to_pandas_dtype())
        column = source.arrow.column(key)  # type: ignore[union-attr]
        if column.null_count:
            return None
        try:
            column = column.cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # e.g. uint64 past the int64 range
        return one_chunk(column).to_numpy()

    def _gather(
        self,
        cur: Any,
        source: _Source,
        column: str,
        rows: np.ndarray,
        index: pa.Array,
        streamable: bool,
    ) -> pa.Array:
        """One column of a table at row positions ``rows`` (``index``: the same as Arrow).

        A number column of a Parquet file is streamed batch by batch when the
        positions ascend (``pairing.gather_stream``), so the whole column is
        never in memory next to its gathered copy; anything else is read whole
        and taken.
        """
        from panels_core.query.pairing import gather_stream, take

        kind = source.fields[column].type
        if streamable and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            sql = f"SELECT {quote_ident(column)} FROM {quote_ident(source.view)}"
            batches = cur.sql(sql).to_arrow_reader(_STREAM_BATCH)
            return gather_stream(batches, rows, kind)
        values = self._read_column(cur, source, column)
        if values.type != kind:
            values = values.cast(kind)
        return take(values, rows, index)

    def _splits(self, a: _Source, b: _Source, spec: CompareWith) -> list[int] | None:
        """Key values splitting a comparison of two large Parquet files into parts.

        Only when both files keep an integer key in row groups of ascending key
        ranges (their statistics say so): then each part's range filter reads a
        few row groups of each file. Parts start at row-group starts of this
        table and hold at least ``_PART_ROWS`` of its rows. None: one join.
        """
        if not (a.parquet and b.parquet) or spec.on is None:
            return None
        left_key, right_key = (spec.on, spec.on) if isinstance(spec.on, str) else spec.on
        for source, key in ((a, left_key), (b, right_key)):
            field = source.fields.get(key)
            if field is None or not pa.types.is_integer(field.type):
                return None
        if a.length + b.length < 2 * _PART_ROWS:
            return None
        groups = self._row_groups(a, left_key)
        if groups is None or self._row_groups(b, right_key) is None:
            return None
        splits, rows = [], 0
        for low, _, n in groups:
            if rows >= _PART_ROWS and (not splits or low > splits[-1]):
                splits.append(low)
                rows = 0
            rows += n
        if len(splits) + 1 > _MAX_PARTS:
            step = math.ceil(len(splits) / (_MAX_PARTS - 1))
            splits = splits[step - 1 :: step]
        return splits or None

    def _row_groups(self, source: _Source, key: str) -> list[tuple[int, int, int]] | None:
        """(min, max, rows) of ``key`` per row group of a Parquet source, when the row
        groups' key ranges ascend (touching at most at one value); None when they do
        not or statistics are missing. Kept until ``clear_cache``."""
        cache_key = ("row_groups", str(source.path), _file_stamp(source.path), key)
        kept = self._cache.get(cache_key)
        if kept is not _MISS:
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
                    and _INT64[0] <= low <= high <= _INT64[1]
                    and (not out or low >= out[-1][1])
                ):
                    out = None
                    break
                out.append((low, high, group.num_rows))
        self._cache.put(cache_key, out)
        return out

    def _scope(self, rel: _Rel) -> Scope:
        return Scope(fields=dict(rel.fields), compared=rel.compared, sources=rel.sources)

    def _filter(self, rel: _Rel, expr: Any, params: Params, cur: Any) -> _Rel:
        self._check(rel, expr)
        self._check_patterns(expr, cur)
        compiled = compile_expr(expr, self._scope(rel), params)
        sql = f"SELECT * FROM ({rel.sql}) AS __tp_f WHERE {compiled.sql}"
        return _Rel(**{**rel.__dict__, "sql": sql})

    def _check(self, rel: _Rel, expr: Any) -> None:
        """Type-check the filter (did-you-mean, type errors)."""
        table_type = rel.type
        if isinstance(table_type, JoinedTableType):
            table_type = TableType(
                columns={
                    table_type.left_name: StructType(fields=dict(table_type.left.columns)),
                    table_type.right_name: StructType(fields=dict(table_type.right.columns)),
                }
            )
        schema = pa.schema(list(rel.fields.values()))
        check_filter(expr, table_type, schema)

    def _check_patterns(self, expr: Any, cur: Any) -> None:
        """Reject an invalid regular expression in ``matches`` before the query runs."""
        for node in _walk(expr):
            if isinstance(node, Call) and node.fn == "matches" and len(node.args) == 2:
                pattern = node.args[1]
                if isinstance(pattern, Lit) and isinstance(pattern.value, str):
                    try:
                        cur.execute(
                            "SELECT regexp_matches('', $p)", {"p": pattern.value}
                        ).fetchall()
                    except duckdb.Error as exc:
                        reason = _first_line(exc).split(":", 1)[-1].strip()
                        raise QueryError(
                            f"matches(): invalid regular expression {pattern.value!r}: {reason}; "
                            "fix the pattern (RE2 syntax, no look-around or back-references)"
                        ) from None

    def _resolve(self, rel: _Rel, name: str, params: Params, what: str) -> tuple[str, pa.DataType]:
        """SQL and Arrow type of a column name, or a dotted path (``0.score``, ``left.id``)."""
        if name in rel.fields:
            return quote_ident(name), rel.fields[name].type
        parts = name.split(".")
        source = None
        if len(parts) > 1 and parts[0].isdigit() and rel.compared:
            source, parts = int(parts[0]), parts[1:]
        if parts[0] not in rel.fields:
            raise _unknown(name, rel.fields, what)
        compiled = compile_expr(Col(path=tuple(parts), source=source), self._scope(rel), params)
        return compiled.sql, compiled.type

    def _group(
        self,
        rel: _Rel,
        keys: Sequence[str],
        params: Params,
        sample: int | None,
        only: Sequence[str] | None = None,
    ) -> _Rel:
        """One row per group: keys, ``count``, and each other column as a list.

        With ``sample`` set, non-numeric lists keep their first ``sample`` values;
        with ``only`` set, just those other columns are aggregated (cheaper).
        """
        if rel.joined:
            raise QueryError(
                "group_by on a joined table is not supported; group one of the tables instead"
            )
        key_sql, fields, types = [], {}, {}
        for key in keys:
            sql, arrow_type = self._resolve(rel, key, params, "group_by column")
            key_sql.append(sql)
            fields[key] = pa.field(key, arrow_type)
            types[key] = self._type_of(rel, key)
        if "count" in rel.fields and "count" not in keys:
            raise QueryError(
                "group_by: the table has a column named `count`, the name of the group size "
                "column; rename that column or group by it"
            )
        order = _order_expr(rel.order)
        select = [f"{s} AS {quote_ident(k)}" for s, k in zip(key_sql, keys)]
        select.append('count(*) AS "count"')
        fields["count"] = pa.field("count", pa.int64())
        types["count"] = NumberType(integer=True)
        for col, f in rel.fields.items():
            if col in keys or (only is not None and col not in only):
                continue
            if col in rel.compared:
                parts = []
                for source in rel.sources:
                    value = f"{quote_ident(col)}.{quote_ident(source)}"
                    parts.append(f"{quote_ident(source)} := {_list_agg(value, order, sample)}")
                select.append(f"struct_pack({', '.join(parts)}) AS {quote_ident(col)}")
                fields[col] = pa.field(
                    col,
                    pa.struct([pa.field(s, pa.list_(f.type.field(s).type)) for s in rel.sources]),
                )
                item = rel.type.columns[col]
                types[col] = ComparedType(item=ListType(item=item.item), sources=item.sources)
            else:
                select.append(f"{_list_agg(quote_ident(col), order, sample)} AS {quote_ident(col)}")
                fields[col] = pa.field(col, pa.list_(f.type))
                types[col] = ListType(item=rel.type.columns[col])
        select += [f"min({quote_ident(o)}) AS {quote_ident(o)}" for o in rel.order]
        sql = f"SELECT {', '.join(select)} FROM ({rel.sql}) AS __tp_g GROUP BY {', '.join(key_sql)}"
        return _Rel(
            sql,
            fields,
            TableType(columns=types),
            rel.order,
            natural=False,
            compared=rel.compared - set(keys),
            sources=rel.sources,
            plain=False,
            keys=tuple(keys),
            pre=rel,
            pre_keys=tuple(key_sql),
        )

    def _type_of(self, rel: _Rel, name: str) -> Any:
        """The DataType of a column or dotted path (AnyType when the type model has no answer)."""
        if isinstance(rel.type, TableType) and name in rel.type.columns:
            return rel.type.columns[name]
        parts = name.split(".")
        t: Any = rel.type
        if parts[0].isdigit() and rel.compared:
            parts = parts[1:]
            column = rel.type.columns.get(parts[0])
            t = TableType(
                columns={parts[0]: column.item if isinstance(column, ComparedType) else column}
            )
        nullable = False
        for part in parts:
            nullable = nullable or isinstance(t, OptionalType)
            t = strip_optional(t)
            if isinstance(t, TableType | StructType):
                t = (t.columns if isinstance(t, TableType) else t.fields).get(part, AnyType())
            else:
                return AnyType()
        return _optional(t) if nullable else t

    def _plan(
        self,
        query: Query,
        params: Params,
        cur: Any,
        sample: int | None = None,
        group: bool = True,
        pick: _Pick | None = None,
        needs: Sequence[str] | None = None,
    ) -> _Rel:
        """The relation of ``query`` before sort and offset/limit.

        With ``pick`` (rows chosen by a first pass) the tables are read at
        those row positions only, and the filter is not applied again.
        ``needs``: the only columns the caller reads besides the query's own
        (filter, sort, group keys); then a comparison of two tables sorted by
        an integer key may pair rows by a merge (``_paired``) and carry just
        those columns. None: every column stays readable.
        """
        source = self._source(query.table)
        two = query.compare_with is not None or query.join is not None
        rel = self._base(source, pick if not two or pick is None else pick.side(0))
        if query.compare_with is not None:
            if source.sides is not None or query.join is not None:
                raise QueryError(
                    "compare_with cannot be combined with a join; compare plain tables"
                )
            other = self._source(query.compare_with.table)
            if other.sides is not None:
                raise QueryError(
                    f"compare_with: `{other.name}` is a joined table; compare plain tables"
                )
            spec = query.compare_with
            required = _required_sources(query.filter, spec.names)
            other_rel = self._base(other, None if pick is None else pick.side(1))
            grouping = bool(query.group_by) and group
            whole = self._compare(rel, other_rel, spec, required, pick)  # checks, fields, types
            paired = None
            by_key = _sorted_by_key(query, spec, required)
            if pick is None and needs is not None and not grouping:
                heads = _heads(query, whole.fields, needs, sort=not by_key)
                paired = self._paired(cur, source, other, spec, required, heads)
            if paired is not None:
                a_side, b_side, glue, view = paired
                glued = self._compare(a_side, b_side, glue, required, glued=view)
                rel = dataclasses.replace(whole, sql=glued.sql, presorted=by_key)
            elif pick is not None:
                rel = whole
            else:
                splits = self._splits(source, other, spec)
                rel = self._compare(rel, other_rel, spec, required, None, splits, params)
        if query.join is not None:
            rel = self._join_spec(query, source, rel, pick)
        if query.filter is not None and pick is None:
            rel = self._filter(rel, query.filter, params, cur)
        if query.group_by and group:
            rel = self._group(rel, query.group_by, params, sample)
        if group or not query.group_by:
            for key in query.sort:  # checked here, even by calls that need no order
                self._resolve(rel, key.column, Params(), "sort column")
        return rel

    def _join_spec(
        self, query: Query, source: _Source, rel: _Rel, pick: _Pick | None = None
    ) -> _Rel:
        spec: JoinSpec = query.join  # type: ignore[assignment]
        if source.sides is not None:
            raise QueryError(f"`{source.name}` is already a joined table; join plain tables")
        other = self._source(spec.table)
        if other.sides is not None:
            raise QueryError(f"join: `{other.name}` is a joined table; join plain tables")
        left_key, right_key = (spec.on, spec.on) if isinstance(spec.on, str) else spec.on
        names = spec.names or (query.table, spec.table)
        if names[0] == names[1]:
            names = ("left", "right")
        for src, key in ((source, left_key), (other, right_key)):
            if key not in src.fields:
                raise _unknown(key, src.fields, f"join key of `{src.name}`")
        joined_type = JoinedTableType(
            left=source.type,
            right=other.type,
            left_key=left_key,
            right_key=right_key,
            left_name=names[0],
            right_name=names[1],
        )
        return self._join_rels(
            rel,
            self._base(other, None if pick is None else pick.side(1)),
            left_key,
            right_key,
            spec.how,
            names,
            joined_type,
            pick,
        )

    def _order_by(self, rel: _Rel, query: Query, params: Params) -> str:
        terms = []
        for key in () if rel.presorted else query.sort:
            sql, _ = self._resolve(rel, key.column, params, "sort column")
            terms.append(f"{sql} {'DESC' if key.descending else 'ASC'} NULLS LAST")
        terms += [f"{quote_ident(o)} ASC NULLS LAST" for o in rel.order]
        return ", ".join(terms)

    def _rows(
        self,
        rel: _Rel,
        query: Query,
        params: Params,
        select: str = "*",
        offset: int = 0,
        limit: int | None = None,
        ordered: bool = False,
    ) -> str:
        """``SELECT select`` over the query's rows: sorted, then offset/limit (query's + extra)."""
        start = query.offset + offset
        if query.limit is not None:
            stop = query.offset + query.limit
            limit = stop - start if limit is None else min(limit, stop - start)
            limit = max(limit, 0)
        need_order = ordered or start > 0 or limit is not None
        sql = f"SELECT {select} FROM ({rel.sql}) AS __tp_q"
        if need_order and ((query.sort and not rel.presorted) or not rel.natural):
            sql += f" ORDER BY {self._order_by(rel, query, params)}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if start:
            sql += f" OFFSET {int(start)}"
        return sql

    # ------------------------------------------------------------- execution helpers

    def _fetch(self, cur: Any, sql: str, params: Params, what: str) -> list[tuple[Any, ...]]:
        try:
            self._ready(cur, sql)
            return cur.execute(sql, params.bind(sql)).fetchall()
        except duckdb.Error as exc:
            raise self._error(exc, what) from None

    def _arrow(
        self, cur: Any, sql: str, params: Params, what: str, batch: int = 1_000_000
    ) -> pa.Table:
        try:
            self._ready(cur, sql)
            bound = params.bind(sql)
            return cur.sql(sql, params=bound or None).to_arrow_table(batch)
        except duckdb.Error as exc:
            raise self._error(exc, what) from None

    @contextmanager
    def _session(self, query: Query, what: str, **plan: Any) -> Iterator[tuple[Any, Params, _Rel]]:
        if not isinstance(query, Query):
            raise TypeError(f"Engine.{what} needs a Query, not {type(query).__name__}")
        with self._cursor() as cur:
            params = Params()
            try:
                rel = self._plan(query, params, cur, **plan)
            except duckdb.Error as exc:
                raise self._error(exc, what) from None
            yield cur, params, rel

    def _error(self, exc: duckdb.Error, what: str) -> QueryError:
        """The QueryError for a statement that failed: a damaged Parquet file named (the
        file, and the column and row group when pyarrow finds them), else ``_wrap``.

        Only a read error is looked into: the file its message names, or, when it names
        none (a bare page-header error), every Parquet file of the engine."""
        if not (isinstance(exc, _READ_ERRORS) or type(exc) is duckdb.Error):
            return _wrap(exc, what)
        from panels_core.data.damage import damage_message, find_damage

        sources = (*self._sources.values(), *self._hidden.values())
        paths = [s.path for s in sources if s.path is not None]
        named = [p for p in paths if str(p) in str(exc)]
        suspects = named or ([] if isinstance(exc, duckdb.InvalidInputException) else paths)
        for path in suspects:
            if path in named or find_damage(path):
                return QueryError(f"{what}: {damage_message(path, exc)}")
        return _wrap(exc, what)

    # ------------------------------------------------------------- public calls

    def result_type(self, query: Query) -> TableType | JoinedTableType:
        """The type of the query's rows: compared[T] after comparing, list[T] after grouping."""
        with self._session(query, "result_type") as (_, _, rel):
            return rel.type

    def count(self, query: Query) -> int:
        """Rows (or groups) the query gives, after offset/limit (kept: see ``clear_cache``)."""
        return self._cached(("count", _query_key(query, "count")), lambda: self._count(query))

    def _count(self, query: Query) -> int:
        with self._session(query, "count", needs=()) as (cur, params, rel):
            if not rel.natural and not query.group_by:
                # a join or comparison: the join is the cost, so the same pass also finds
                # the first page's rows (a table card asks for both)
                _, n, _ = self._positions(cur, params, rel, query, 0, FIRST_PAGE)
                if n is not None:
                    return n
            sql = self._rows(rel, query, params, select="1")
            ((n,),) = self._fetch(cur, f"SELECT count(*) FROM ({sql}) AS __tp_c", params, "count")
            return int(n)

    def page(
        self, query: Query, offset: int = 0, limit: int = 50, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Rows ``offset .. offset+limit`` of the query's rows (within its own offset/limit)."""
        if offset < 0 or limit < 0:
            raise QueryError(f"page(): offset and limit must be >= 0, got {offset} and {limit}")
        with self._session(query, "page", needs=()) as (cur, params, rel):
            names = list(rel.fields) if columns is None else list(columns)
            if not names:
                raise QueryError("page(): columns=[] selects nothing; name at least one column")
            select = []
            for name in names:
                sql, _ = self._resolve(rel, name, params, "page column")
                select.append(f"{sql} AS {quote_ident(name)}")
            if query.group_by or (rel.natural and not query.sort):
                sql = self._rows(rel, query, params, ", ".join(select), offset, limit, ordered=True)
                result = self._arrow(cur, sql, params, "page")
            else:
                result = self._page_by_position(cur, params, rel, query, names, offset, limit)
            if rel.plain:
                result = _restore_metadata(result, rel.fields)
            return result

    def _positions(
        self,
        cur: Any,
        params: Params,
        rel: _Rel,
        query: Query,
        offset: int,
        limit: int,
        carry: Sequence[str] = (),
    ) -> tuple[list[tuple[Any, ...]], int | None, pa.Table | None]:
        """The order tuples of a sorted page's rows, the query's count when known, and
        the ``carry`` columns of those rows when this pass read them.

        One top-N pass (``ORDER BY .. LIMIT``); over a join or comparison it also
        counts every row with a window, and both answers are kept, so a page
        after a count (or a count after a page) does not run the join again.
        The count is None over one table (its count is a cheap scan of its own)
        and when the page is empty past the first row (the total is unknown).
        Over one table the pass also returns ``carry`` (columns the filter or sort
        reads anyway), so the page's second pass need not read them again.
        """
        qkey = _query_key(query, "page")
        stamp = self._local.stamp
        kept = self._cache.get((stamp, "positions", qkey, offset, limit))
        if kept is not _MISS:
            return kept, None, None
        order = ", ".join(quote_ident(o) for o in rel.order)
        if rel.natural:
            carried = [f"{quote_ident(c)} AS __tp_c{i}" for i, c in enumerate(carry)]
            select = ", ".join([order, *carried])
            first = self._rows(rel, query, params, select, offset, limit, ordered=True)
            head = self._arrow(cur, first, params, "page")
            positions = list(
                zip(*(head.column(i).to_pylist() for i in builtins.range(len(rel.order))))
            )
            self._cache.put((stamp, "positions", qkey, offset, limit), positions)
            if not carry:
                return positions, None, None
            head = pa.Table.from_arrays(
                [head.column(f"__tp_c{i}") for i in builtins.range(len(carry))], names=list(carry)
            )
            return positions, None, head
        select = f"{order}, count(*) OVER () AS __tp_n"
        first = self._rows(rel, query, params, select, offset, limit, ordered=True)
        rows = self._fetch(cur, first, params, "page")
        positions = [tuple(r[:-1]) for r in rows]
        self._cache.put((stamp, "positions", qkey, offset, limit), positions)
        total = int(rows[0][-1]) if rows else (0 if query.offset + offset == 0 else None)
        if total is None:
            return positions, None
        n = max(total - query.offset, 0)
        if query.limit is not None:
            n = min(n, query.limit)
        self._cache.put((stamp, "count", qkey), n)
        return positions, n, None

    def _page_by_position(
        self,
        cur: Any,
        params: Params,
        rel: _Rel,
        query: Query,
        names: list[str],
        offset: int,
        limit: int,
    ) -> pa.Table:
        """A sorted page in two passes: the rows' positions first (reading only the
        filter and sort columns, and keeping those of them the page shows), then
        the other asked columns at those positions."""
        carry = _read_by(query, rel.fields, names) if rel.natural else []
        positions, _, head = self._positions(cur, params, rel, query, offset, limit, carry)
        rest = list(dict.fromkeys(n for n in names if head is None or n not in carry))
        table = None
        if rest:
            second = Params()
            picked = query.model_copy(update={"filter": None, "sort": ()})
            pick = _Pick(positions, second, compare=query.compare_with is not None)
            rel2 = self._plan(picked, second, cur, pick=pick)
            select = [
                f"{self._resolve(rel2, n, second, 'page column')[0]} AS {quote_ident(n)}"
                for n in rest
            ]
            select += [f"{quote_ident(o)} AS __tp_o{i}" for i, o in enumerate(rel.order)]
            sql = f"SELECT {', '.join(select)} FROM ({rel2.sql}) AS __tp_q"
            table = self._arrow(cur, sql, second, "page")
            order_columns = (table.column(f"__tp_o{i}") for i in builtins.range(len(rel.order)))
            where = {key: i for i, key in enumerate(zip(*(c.to_pylist() for c in order_columns)))}
            take = pa.array([where[p] for p in positions], type=pa.int64())
            table = table.select(rest).take(take)
        if head is None:
            return table.select(names)  # type: ignore[union-attr]
        columns = [
            head.column(n) if n in carry else table.column(n)  # type: ignore[union-attr]
            for n in names
        ]
        return pa.Table.from_arrays(columns, names=names)

    def compared(self, query: Query) -> pa.Table:
        """Every row of a comparison: keys, compared[T] structs and the ``present`` flags."""
        if query.compare_with is None:
            raise QueryError("compared(): the query has no compare_with; set compare_with=...")
        with self._session(query, "compared") as (cur, params, rel):
            select = ", ".join(quote_ident(c) for c in rel.fields)
            return self._arrow(
                cur, self._rows(rel, query, params, select, ordered=True), params, "compared"
            )

    def join_counts(self, query: Query) -> tuple[int, int, int]:
        """(matched rows, left-only rows, right-only rows) of the query's join, before filters."""
        source = self._source(query.table)
        if source.sides is not None:
            left, right = (self._hidden[v] for v in source.sides)
            lk, rk = source.table.left_key, source.table.right_key
        elif query.join is not None:
            left, right = source, self._source(query.join.table)
            lk, rk = (
                (query.join.on, query.join.on) if isinstance(query.join.on, str) else query.join.on
            )
        else:
            raise QueryError(
                "join_counts(): the query joins nothing; set join=... or use a JoinedTable"
            )
        with self._cursor() as cur:
            a, b = self._base(left), self._base(right)
            sql = (
                f"SELECT count(*) FILTER (WHERE __tp_a.{quote_ident(_ROW)} IS NOT NULL "
                f"AND __tp_b.{quote_ident(_ROW)} IS NOT NULL), "
                f"count(*) FILTER (WHERE __tp_b.{quote_ident(_ROW)} IS NULL), "
                f"count(*) FILTER (WHERE __tp_a.{quote_ident(_ROW)} IS NULL) "
                f"FROM ({a.sql}) AS __tp_a FULL OUTER JOIN ({b.sql}) AS __tp_b "
                f"ON __tp_a.{quote_ident(lk)} = __tp_b.{quote_ident(rk)}"
            )
            ((both, left_only, right_only),) = self._fetch(cur, sql, Params(), "join_counts")
            return int(both), int(left_only), int(right_only)

    def value_counts(self, query: Query, column: str | Sequence[str], top: int = 20) -> ValueCounts:
        """The ``top`` most frequent values of a column (tuples for several columns)."""
        names = [column] if isinstance(column, str) else list(column)
        if not names:
            raise QueryError("value_counts(): name at least one column")
        key = ("value_counts", _query_key(query, "value_counts"), tuple(names), top)
        return self._cached(key, lambda: self._value_counts(query, names, top))

    def _value_counts(self, query: Query, names: list[str], top: int) -> ValueCounts:
        with self._session(query, "value_counts", needs=names) as (cur, params, rel):
            if len(names) == 1 and names[0] in rel.compared:
                return self._compared_counts(cur, params, rel, query, names[0], top)
            exprs = [self._resolve(rel, n, params, "value_counts column")[0] for n in names]
            select = ", ".join(f"{e} AS __tp_v{i}" for i, e in enumerate(exprs))
            rows = self._rows(rel, query, params, select)
            cols = [f"__tp_v{i}" for i in range(len(exprs))]
            any_null = " OR ".join(f"{c} IS NULL" for c in cols)
            sql = (
                f"WITH __tp_r AS ({rows}) "
                f"SELECT {', '.join(cols)}, count(*) AS __tp_n, "
                f"(SELECT count(*) FROM __tp_r), (SELECT count(*) FROM __tp_r WHERE {any_null}) "
                f"FROM __tp_r WHERE NOT ({any_null}) GROUP BY ALL "
                f"ORDER BY __tp_n DESC, {', '.join(cols)} LIMIT {int(top)}"
            )
            result = self._fetch(cur, sql, params, "value_counts")
            if not result:
                sql = f"SELECT count(*), count(*) FILTER (WHERE {any_null}) FROM ({rows}) AS __tp_r"
                ((total, nulls),) = self._fetch(cur, sql, params, "value_counts")
            else:
                total, nulls = result[0][-2], result[0][-1]
            k = len(cols)
            values = [r[0] if k == 1 else tuple(r[:k]) for r in result]
            counts = np.array([r[k] for r in result], dtype=np.int64)
            return ValueCounts(values, counts, int(total - nulls - counts.sum()), int(nulls))

    def _compared_counts(
        self, cur: Any, params: Params, rel: _Rel, query: Query, column: str, top: int
    ) -> ValueCounts:
        """Value counts of a compared column, one row of counts per source."""
        rows = self._rows(rel, query, params)
        parts = [
            f"SELECT {i} AS s, {quote_ident(column)}.{quote_ident(source)} AS v "
            f"FROM ({rows}) AS __tp_u{i} WHERE present.{quote_ident(source)}"
            for i, source in enumerate(rel.sources)
        ]
        values_sql = " UNION ALL ".join(parts)
        sql = (
            f"WITH __tp_r AS ({values_sql}), __tp_t AS (SELECT v, count(*) AS n FROM __tp_r "
            f"WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {int(top)}) "
            "SELECT __tp_t.v, __tp_t.n, __tp_r.s, count(*) FROM __tp_r JOIN __tp_t "
            "ON __tp_r.v = __tp_t.v GROUP BY ALL ORDER BY __tp_t.n DESC, __tp_t.v"
        )
        result = self._fetch(cur, sql, params, "value_counts")
        totals = self._fetch(
            cur,
            f"SELECT count(*), count(*) FILTER (WHERE v IS NULL) FROM ({values_sql}) AS __tp_a",
            params,
            "value_counts",
        )
        values = list(dict.fromkeys(r[0] for r in result))
        position = {v: i for i, v in enumerate(values)}
        counts = np.zeros((len(rel.sources), len(values)), dtype=np.int64)
        for value, _, source, count in result:
            counts[source, position[value]] = count
        total, nulls = totals[0]
        return ValueCounts(
            values, counts, int(total - nulls - counts.sum()), int(nulls), list(rel.sources)
        )

    def column_numpy(self, query: Query, column: str) -> np.ndarray:
        """A column as numpy: numbers -> float64 (null -> nan); embeddings -> (n, dim) float32.

        Strings, categories, booleans and timestamps come back as numpy object or
        datetime arrays; image columns are refused (they are never decoded here).
        """
        with self._session(query, "column_numpy", needs=(column,)) as (cur, params, rel):
            sql, arrow_type = self._resolve(rel, column, params, "column")
            if is_list_type(arrow_type):
                return self._embedding(cur, rel, query, params, sql, arrow_type, column)
            if pa.types.is_struct(arrow_type) or pa.types.is_map(arrow_type):
                raise QueryError(
                    f"column_numpy(): `{column}` holds records ({arrow_type}); ask for one of its "
                    "fields (e.g. `column.field`) or use page()"
                )
            if _is_numeric(arrow_type):
                sql = f"CAST({sql} AS DOUBLE)"
            rows = self._rows(rel, query, params, f"{sql} AS v", ordered=True)
            values = self._arrow(cur, rows, params, "column_numpy").column(0)
            if _is_numeric(arrow_type):
                return (
                    values.to_numpy().astype(np.float64, copy=False)
                    if values.null_count == 0
                    else values.to_numpy(zero_copy_only=False)
                )
            return values.to_numpy(zero_copy_only=False)

    def _embedding(
        self,
        cur: Any,
        rel: _Rel,
        query: Query,
        params: Params,
        sql: str,
        arrow_type: pa.DataType,
        column: str,
    ) -> np.ndarray:
        if not _is_numeric(arrow_type.value_type):
            raise QueryError(
                f"column_numpy(): `{column}` is a list of {arrow_type.value_type}, not of numbers"
            )
        if pa.types.is_fixed_size_list(arrow_type):
            dim = arrow_type.list_size
        else:
            rows = self._rows(rel, query, params, f"len({sql}) AS n")
            stats = f"SELECT min(n), max(n) FROM ({rows}) AS __tp_l"
            ((lo, hi),) = self._fetch(cur, stats, params, "column_numpy")
            if lo != hi:
                raise QueryError(
                    f"column_numpy(): `{column}` is ragged: its lists have {lo} to {hi} items; "
                    "an embedding needs one length per row (pad or filter the rows)"
                )
            dim = int(lo or 0)
        rows = self._rows(rel, query, params, f"CAST({sql} AS FLOAT[{dim}]) AS v", ordered=True)
        values = self._arrow(cur, rows, params, "column_numpy").column(0).combine_chunks()
        n = len(values)
        if n == 0 or dim == 0:
            return np.zeros((n, dim), dtype=np.float32)
        flat = values.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        flat = flat[values.offset * dim : (values.offset + n) * dim]
        matrix = flat.reshape(n, dim)
        if values.null_count:
            matrix = matrix.copy()
            matrix[values.is_null().to_numpy(zero_copy_only=False)] = np.nan
        return matrix

    # ------------------------------------------------------------- histograms

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
        _check_bins(bins, range, width)
        span = None if range is None else (float(range[0]), float(range[1]))
        key = ("histogram", _query_key(query, "histogram"), column, bins, span, width, by)
        return self._cached(key, lambda: self._histogram(query, column, bins, range, width, by))

    def _histogram(
        self,
        query: Query,
        column: str,
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
        by: str | None,
    ) -> Histogram:
        with self._session(
            query, "histogram", group=False, needs=(column,) if by is None else (column, by)
        ) as (cur, params, pre):
            if query.group_by:
                if by is not None:
                    raise QueryError("histogram(): `by` cannot be combined with a grouped query")
                return self._grouped_histograms(
                    cur, query, params, pre, [column], bins, range, width
                )[0]
            series = self._series(pre, column, params)
            keys: list[str] = []
            if by is not None:
                if len(series) > 1:
                    raise QueryError("histogram(): `by` cannot be combined with a compared column")
                keys = [self._resolve(pre, by, params, "histogram `by` column")[0]]
            rows = self._rows(pre, query, params)
            binned = self._bin(cur, params, rows, keys, series, bins, range, width)
            edges, stats = binned.edges[column], binned.stats
            if by is not None:
                groups = sorted(binned.counts[0], key=_null_last)
                counts = np.array([binned.counts[0][g] for g in groups], dtype=np.int64).reshape(
                    len(groups), len(edges) - 1
                )
                labels = [_label(g[0]) for g in groups]
            elif len(series) > 1:
                counts = np.stack(
                    [
                        binned.counts[i].get((), binned.zeros(column))
                        for i in builtins.range(len(series))
                    ]
                )
                labels = [pre.sources[s.source] for s in series]
            else:
                counts, labels = binned.counts[0].get((), binned.zeros(column)), None
            return Histogram(
                edges=edges,
                counts=counts,
                groups=labels,
                nulls=sum(s[0] for s in stats),
                nonfinite=sum(s[1] for s in stats),
                outside=sum(s[2] for s in stats) - int(counts.sum()),
            )

    def _series(self, rel: _Rel, column: str, params: Params) -> list[_Series]:
        """The numeric value(s) of a column: one per source when it is compared."""
        if column in rel.compared:
            out = []
            for i, source in enumerate(rel.sources):
                _require_number(rel.fields[column].type.field(source).type, column)
                x = f"{quote_ident(column)}.{quote_ident(source)}"
                out.append(
                    _Series(column, i, f"CAST({x} AS DOUBLE)", f"present.{quote_ident(source)}", x)
                )
            return out
        sql, arrow_type = self._resolve(rel, column, params, "histogram column")
        _require_number(arrow_type, column)
        return [_Series(column, None, f"CAST({sql} AS DOUBLE)", None, sql)]

    def _grouped_histograms(
        self,
        cur: Any,
        query: Query,
        params: Params,
        pre: _Rel,
        columns: Sequence[str],
        bins: int | Literal["auto"],
        range: tuple[float, float] | None = None,
        width: float | None = None,
        index: list[tuple[Any, ...]] | None = None,
    ) -> list[Histogram]:
        """Per-group histograms of grouped columns, groups in the query's order.

        Edges are shared by every group (and source) of a column and computed
        over all the filtered rows; counts are kept for the groups the query's
        offset/limit keeps.
        """
        series: list[_Series] = []
        for column in columns:
            if column in query.group_by:
                raise QueryError(
                    f"histogram(): `{column}` is a group key (one value per group); histogram a "
                    "grouped column instead, or drop group_by"
                )
            if column not in pre.fields:
                raise _unknown(column, pre.fields, "histogram column")
            series += self._series(pre, column, params)
        keys = [self._resolve(pre, k, params, "group_by column")[0] for k in query.group_by]
        # groups in order of first appearance, all of them: the binning pass finds them
        # (every row is in the first series' aggregate), no scan of their own
        first_seen = (
            index is None
            and not query.sort
            and query.offset == 0
            and query.limit is None
            and len(pre.order) == 1
        )
        if index is None and not first_seen:
            index = self._group_keys(cur, query, params, pre)[0]
        order = quote_ident(pre.order[0]) if first_seen else None
        binned = self._bin(cur, params, pre.sql, keys, series, bins, range, width, order)
        if index is None:
            index = binned.first
        position = {_hashable(k): i for i, k in enumerate(index)}
        labels = [", ".join(_label(v) for v in key) for key in index]
        out = []
        for column in columns:
            parts = [(i, s) for i, s in enumerate(series) if s.column == column]
            n = len(binned.edges[column]) - 1
            counts = np.zeros((len(index), len(parts), n), dtype=np.int64)
            for j, (i, _) in enumerate(parts):
                for key, row in binned.counts[i].items():
                    if key in position:
                        counts[position[key], j] = row
            stats = [binned.stats[i] for i, _ in parts]
            names = labels
            if len(parts) > 1:
                names = [f"{label} / {pre.sources[s.source]}" for label in labels for _, s in parts]
            out.append(
                Histogram(
                    edges=binned.edges[column],
                    counts=counts.reshape(len(index) * len(parts), n),
                    groups=names,
                    nulls=sum(s[0] for s in stats),
                    nonfinite=sum(s[1] for s in stats),
                    outside=sum(s[2] for s in stats) - int(counts.sum()),
                )
            )
        return out

    def _group_keys(
        self, cur: Any, query: Query, params: Params, pre: _Rel
    ) -> tuple[list[tuple[Any, ...]], list[int]]:
        """The key tuples and sizes of the query's groups, in output order."""
        sorted_on = [k.column.split(".")[0] for k in query.sort]
        grouped = self._group(pre, query.group_by, params, sample=1, only=sorted_on)
        select = ", ".join(quote_ident(k) for k in (*grouped.keys, "count"))
        rows = self._fetch(
            cur, self._rows(grouped, query, params, select, ordered=True), params, "grouped"
        )
        return [tuple(r[:-1]) for r in rows], [int(r[-1]) for r in rows]

    def _bin(
        self,
        cur: Any,
        params: Params,
        rows: str,
        keys: Sequence[str],
        series: Sequence[_Series],
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
        order: str | None = None,
    ) -> _Binned:
        """Bin every series of ``rows`` in two scans: stats, then counts per key and bin.

        With ``order`` (a row-order column of ``rows``) and ``keys``, ``first`` maps
        each key tuple to the first row holding it.

        Edges follow numpy.histogram (``linspace`` over the finite min..max, or
        ``range``); each value's bin is estimated then corrected against the
        edges exactly as numpy does, so counts match ``numpy.histogram``.
        """
        # the bounds, counts and quartiles of the same rows and columns are kept: a card
        # drawn again with other bins (or a range) skips those scans
        rows_key = (self._local.stamp, rows, repr(params.bind(rows)))
        series_key = tuple((s.x, s.cond, s.raw) for s in series)
        bounds: Any = [(None, None)] * len(series)
        if range is None:
            bounds = self._cache.get(("bounds", *rows_key, series_key))
            if bounds is _MISS:
                bounds = self._bounds(cur, params, rows, series)
                self._cache.put(("bounds", *rows_key, series_key), bounds)
        counted = self._cache.get(("counts", *rows_key, series_key))
        if counted is _MISS and ((bins == "auto" and width is None) or any(s.cond for s in series)):
            # the finite count sets the auto bin count; a compared source's nulls are
            # its present rows without a value (absent rows have none either)
            counted = self._counts(cur, params, rows, series)
            self._cache.put(("counts", *rows_key, series_key), counted)
        edges: dict[str, np.ndarray] = {}
        columns = list(dict.fromkeys(s.column for s in series))
        auto = [c for c in columns if bins == "auto" and width is None]
        quartiles: dict[str, tuple[float, float]] = {}
        if auto:
            quartiles = self._cache.get(("quartiles", *rows_key, series_key, tuple(auto)))
            if quartiles is _MISS:
                quartiles = self._sample_quartiles(cur, params, rows, series, auto)
                self._cache.put(("quartiles", *rows_key, series_key, tuple(auto)), quartiles)
        for column in columns:
            mine = [i for i, s in enumerate(series) if s.column == column]
            lows = [bounds[i][0] for i in mine if bounds[i][0] is not None]
            highs = [bounds[i][1] for i in mine if bounds[i][1] is not None]
            n_finite = 0 if counted is _MISS else sum(counted[i][2] for i in mine)
            if range is not None:
                lo, hi = float(range[0]), float(range[1])
            elif lows:
                lo, hi = float(min(lows)), float(max(highs))
            else:
                lo, hi = 0.0, 1.0
            if lo == hi:
                lo, hi = lo - 0.5, hi + 0.5
            what = "the range" if range is not None else f"the range of `{column}`"
            bin_span(lo, hi, what)
            if width is not None:
                n = width_bins(lo, hi, width, what)
                edges[column] = np.arange(n + 1, dtype=np.float64) * width + lo
            else:
                n = (
                    bins
                    if isinstance(bins, int)
                    else _auto_count(quartiles.get(column), lo, hi, n_finite)
                )
                edges[column] = np.linspace(lo, hi, n + 1)
        key_names = [f"__tp_k{i}" for i in builtins.range(len(keys))]
        keyed = [f"{k} AS {name}" for k, name in zip(keys, key_names)]
        estimates, branches = [], []
        for i, s in enumerate(series):
            e = edges[s.column]
            n = len(e) - 1
            p_lo = params.add(float(e[0]))
            p_denom, p_n = params.add(float(e[-1] - e[0])), params.add(n)
            x = s.x if s.cond is None else f"CASE WHEN {s.cond} THEN {s.x} END"
            seen = order is not None and i == 0  # every row is in the first series' pass
            inner, outer = [*keyed, f"{x} AS x"], [*key_names, "x"]
            if seen:
                inner, outer = [*inner, f"{order} AS __tp_o"], [*outer, "__tp_o"]
            # the bin estimate as a DOUBLE, in numpy's order of operations: null stays null,
            # NaN and inf stay non-finite, x < lo gives < 0, x == hi gives n, x > hi >= n
            estimate = (
                f"SELECT {', '.join(outer)}, floor((x - {p_lo}) / {p_denom} * {p_n}) AS i "
                f"FROM (SELECT {', '.join(inner)} FROM ({rows}) AS __tp_r) AS __tp_x"
            )
            estimates.append(estimate)
            group = ", ".join([*key_names, "i"])
            first = ", min(__tp_o)" if seen else (", NULL" if order is not None else "")
            branches.append(
                f"SELECT {i} AS s, {group}, count(*) AS c, min(x), max(x){first} "
                f"FROM ({estimate}) AS __tp_e GROUP BY {group}"
            )
        # one aggregate per series: cheaper than GROUPING SETS over the same rows
        result = self._fetch(cur, " UNION ALL ".join(branches), params, "histogram")
        k = len(keys)
        counts: list[dict[tuple[Any, ...], np.ndarray]] = [{} for _ in series]

        def add(i: int, key: tuple[Any, ...], b: int | None, c: int) -> None:
            target = counts[i].get(key)
            if target is None:
                target = counts[i][key] = np.zeros(len(edges[series[i].column]) - 1, np.int64)
            if b is not None:
                target[int(b)] += int(c)

        # numpy corrects each estimate against the edges; only estimated bins whose min
        # or max crosses an edge need it, and those are counted again exactly below
        # (a bin estimate is counted again for every key when it is suspect for one)
        suspect: dict[int, set[float]] = {}
        targets = []
        for row in result:
            i, b = row[0], row[k + 1]
            target = _place(b, row[k + 3], row[k + 4], edges[series[i].column])
            if target == _SUSPECT:
                suspect.setdefault(i, set()).add(float(b))
            targets.append(target)
        for row, target in zip(result, targets):
            i, b = row[0], row[k + 1]
            fixed = target == _SUSPECT or (b is not None and b in suspect.get(i, ()))
            add(i, _hashable(tuple(row[1 : k + 1])), None if fixed else target, row[k + 2])
        for i, bins_to_fix in suspect.items():
            e = edges[series[i].column]
            p_edges, p_last = params.add([float(v) for v in e]), params.add(len(e) - 2)
            p_top, p_fix = params.add(float(e[-1])), params.add(sorted(bins_to_fix), "DOUBLE[]")
            b0 = f"least(TRY_CAST(i AS BIGINT), {p_last})"
            exact = (
                f"{b0} - CAST(x < {p_edges}[{b0} + 1] AS INTEGER) "
                f"+ CAST({b0} < {p_last} AND x >= {p_edges}[{b0} + 2] AS INTEGER) AS b"
            )
            sql = (
                f"SELECT {', '.join([*key_names, exact])}, count(*) FROM ({estimates[i]}) AS __tp_e "
                f"WHERE list_contains({p_fix}, i) AND x <= {p_top} GROUP BY ALL"
            )
            for row in self._fetch(cur, sql, params, "histogram"):
                add(i, _hashable(tuple(row[:k])), row[k], row[k + 1])
        if counted is _MISS:
            # the binning pass saw every value: nulls have no bin, NaN and inf a
            # non-finite one (unless a huge finite value overflowed there too)
            counted = _counts_from_bins(result, k, len(series))
            if counted is None:
                counted = self._counts(cur, params, rows, series)
            self._cache.put(("counts", *rows_key, series_key), counted)
        stats = list(counted)
        first_rows: dict[tuple[Any, ...], Any] = {}
        if order is not None:
            for row in result:
                if row[0] == 0:
                    key = tuple(row[1 : k + 1])
                    seen_at = first_rows.get(_hashable(key))
                    if seen_at is None or row[k + 5] < seen_at[0]:
                        first_rows[_hashable(key)] = (row[k + 5], key)
        first = [key for _, key in sorted(first_rows.values(), key=lambda pair: pair[0])]
        return _Binned(edges, counts, stats, first)

    def _bounds(
        self, cur: Any, params: Params, rows: str, series: Sequence[_Series]
    ) -> list[tuple[float | None, float | None]]:
        """(finite min, finite max) of each series (None, None when it has no finite value).

        Plain min/max first: over a Parquet file they come from its statistics,
        without a scan. Only a series whose min or max is NaN or infinite is
        scanned again with finite-only filters (file statistics leave NaN out,
        so they never say whether NaN is there; the counts do that).
        """
        select = []
        for s in series:
            where = f" FILTER (WHERE {s.cond})" if s.cond else ""
            raw = s.raw or s.x
            select += [f"CAST(min({raw}){where} AS DOUBLE)", f"CAST(max({raw}){where} AS DOUBLE)"]
        ((*flat,),) = self._fetch(
            cur, f"SELECT {', '.join(select)} FROM ({rows}) AS __tp_v", params, "histogram"
        )
        out: list[tuple[float | None, float | None]] = []
        for i, s in enumerate(series):
            lo, hi = flat[2 * i], flat[2 * i + 1]
            if lo is not None and not (math.isfinite(lo) and math.isfinite(hi)):
                cond = f"({s.cond}) AND " if s.cond else ""
                fin = f"isfinite({s.x})"
                sql = (
                    f"SELECT min({s.x}) FILTER (WHERE {cond}{fin}), "
                    f"max({s.x}) FILTER (WHERE {cond}{fin}) FROM ({rows}) AS __tp_v"
                )
                ((lo, hi),) = self._fetch(cur, sql, params, "histogram")
            out.append((lo, hi))
        return out

    def _counts(
        self, cur: Any, params: Params, rows: str, series: Sequence[_Series]
    ) -> list[tuple[int, int, int]]:
        """(nulls, nonfinite, finite) values of each series, in one scan."""
        select = []
        for s in series:
            cond = f"({s.cond}) AND " if s.cond else ""
            where = f" FILTER (WHERE {s.cond})" if s.cond else ""
            select += [
                f"count(*){where}",
                f"count({s.raw or s.x}){where}",
                f"count(*) FILTER (WHERE {cond}isfinite({s.x}))",
            ]
        ((*flat,),) = self._fetch(
            cur, f"SELECT {', '.join(select)} FROM ({rows}) AS __tp_v", params, "histogram"
        )
        out = []
        for i in builtins.range(len(series)):
            total, present, finite = (int(v) for v in flat[3 * i : 3 * i + 3])
            out.append((total - present, present - finite, finite))
        return out

    def _sample_quartiles(
        self, cur: Any, params: Params, rows: str, series: Sequence[_Series], columns: list[str]
    ) -> dict[str, tuple[float, float]]:
        """Quartiles of each column from one reservoir sample of the rows (exact when small)."""
        chosen = [s for s in series if s.column in columns]
        select = ", ".join(
            f"CASE WHEN {s.cond} THEN {s.x} END AS __tp_q{i}" if s.cond else f"{s.x} AS __tp_q{i}"
            for i, s in enumerate(chosen)
        )
        sql = (
            f"SELECT {select} FROM ({rows}) AS __tp_s "
            f"USING SAMPLE reservoir({_QUANTILE_SAMPLE} ROWS) REPEATABLE (7)"
        )
        sample = self._arrow(cur, sql, params, "histogram")
        out = {}
        for column in columns:
            parts = [
                sample.column(i).to_numpy(zero_copy_only=False).astype(np.float64)
                for i, s in enumerate(chosen)
                if s.column == column
            ]
            values = np.concatenate(parts) if parts else np.array([])
            values = values[np.isfinite(values)]
            if len(values):
                q1, q3 = np.quantile(values, [0.25, 0.75])
                out[column] = (float(q1), float(q3))
        return out

    # ------------------------------------------------------------- grouped

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
        _check_bins(bins, None, None)
        key = ("grouped", _query_key(query, "grouped"), bins, sample)
        return self._cached(key, lambda: self._grouped(query, bins, sample))

    def _grouped(self, query: Query, bins: int | Literal["auto"], sample: int) -> pa.Table:
        with self._session(query, "grouped", group=False) as (cur, params, pre):
            grouped = self._group(pre, query.group_by, params, sample=sample)
            index, sizes = self._group_keys(cur, query, params, pre)
            numeric = []
            if sizes and max(sizes) > sample:
                numeric = [
                    c
                    for c, f in pre.fields.items()
                    if c not in query.group_by
                    and c != "present"
                    and _numeric_value(f.type, c in pre.compared)
                ]
            # a sample of ``sample`` values is the whole list when no group is bigger
            kept = [c for c in grouped.fields if c not in numeric]
            table = None
            if pre.natural:
                table = self._prefix_samples(cur, params, pre, grouped, kept, sample, index, sizes)
            if table is None:
                select = ", ".join(quote_ident(c) for c in kept)
                rows = self._rows(grouped, query, params, select, ordered=True)
                table = self._arrow(cur, rows, params, "grouped")
            if not numeric:
                return table
            hists = self._grouped_histograms(cur, query, params, pre, numeric, bins, index=index)
            columns = {c: table.column(c) for c in kept}
            for column, hist in zip(numeric, hists):
                columns[column] = _hist_struct(
                    hist, pre.sources if column in pre.compared else None
                )
            return pa.table({c: columns[c] for c in grouped.fields})

    def _prefix_samples(
        self,
        cur: Any,
        params: Params,
        pre: _Rel,
        grouped: _Rel,
        kept: Sequence[str],
        sample: int,
        index: list[tuple[Any, ...]],
        sizes: list[int],
    ) -> pa.Table | None:
        """The grouped table read from the first rows only, when they hold every sample.

        A group's first ``sample`` rows are all in a prefix of the rows once the
        prefix holds ``sample`` of its rows (or all of them). The prefix grows
        8-fold until that holds for every group; None when it never does
        before ``_PREFIX_MAX`` rows (the caller then aggregates every row).
        """
        keys = grouped.keys
        columns = [c for c in kept if c not in keys and c != "count"]
        order = _order_expr(pre.order)
        aggs = [f"{_list_agg(quote_ident(c), order, sample)} AS {quote_ident(c)}" for c in columns]
        select = [f"{k} AS __tp_k{i}" for i, k in enumerate(grouped.pre_keys)]
        need = {_hashable(k): min(sample, n) for k, n in zip(index, sizes)}
        prefix = _PREFIX_START
        while prefix <= _PREFIX_MAX:
            sql = (
                f"SELECT {', '.join([*select, 'count(*) AS __tp_n', *aggs])} "
                f"FROM (SELECT * FROM ({pre.sql}) AS __tp_p LIMIT {prefix}) AS __tp_l "
                f"GROUP BY {', '.join(grouped.pre_keys)}"
            )
            result = self._arrow(cur, sql, params, "grouped")
            got = {
                _hashable(tuple(row[f"__tp_k{i}"] for i in builtins.range(len(keys)))): row
                for row in result.to_pylist()
            }
            if all(key in got and got[key]["__tp_n"] >= n for key, n in need.items()):
                data: dict[str, list[Any]] = {c: [] for c in kept}
                for key, size in zip(index, sizes):
                    row = got[_hashable(key)]
                    for i, k in enumerate(keys):
                        data[k].append(key[i])
                    data["count"].append(size)
                    for c in columns:
                        data[c].append(row[c])
                return pa.table({c: pa.array(data[c], type=grouped.fields[c].type) for c in kept})
            prefix *= 8
        return None


@dataclass
class _Series:
    """One numeric value to bin: a column, or one source of a compared column."""

    column: str
    source: int | None
    x: str  # SQL giving a DOUBLE
    cond: str | None  # SQL: the rows where this source is present
    raw: str = ""  # SQL of the value as stored (min/max of it may come from file statistics)


@dataclass
class _Binned:
    """What ``Engine._bin`` computed: edges per column; counts per series and key."""

    edges: dict[str, np.ndarray]
    counts: list[dict[tuple[Any, ...], np.ndarray]]
    stats: list[tuple[int, int, int]]  # (nulls, nonfinite, finite) per series
    first: list[tuple[Any, ...]]  # keys by their first row (when asked for)

    def zeros(self, column: str) -> np.ndarray:
        return np.zeros(len(self.edges[column]) - 1, dtype=np.int64)


_SUSPECT = -1


def _counts_from_bins(
    result: Sequence[tuple[Any, ...]], k: int, n_series: int
) -> list[tuple[int, int, int]] | None:
    """(nulls, nonfinite, finite) of each series from its binning rows (series index,
    ``k`` keys, estimated bin, count, min, max); None when a non-finite estimate also
    holds finite values (they overflowed), which only a count of its own can split."""
    out = [[0, 0, 0] for _ in builtins.range(n_series)]
    for row in result:
        i, b, c, lo_x, hi_x = row[0], row[k + 1], int(row[k + 2]), row[k + 3], row[k + 4]
        if b is None:
            out[i][0] += c
        elif math.isfinite(b):
            out[i][2] += c
        elif math.isfinite(lo_x) or math.isfinite(hi_x):
            return None
        else:
            out[i][1] += c
    return [(a, b, c) for a, b, c in out]


def _place(b: float | None, lo_x: float, hi_x: float, e: np.ndarray) -> int | None:
    """The bin of the values whose estimated bin is ``b`` (their min and max given).

    None: null, NaN/inf, or outside ``e[0] .. e[-1]``; ``_SUSPECT`` when some
    of them belong to another bin (or outside) and must be counted again.
    """
    n = len(e) - 1
    if b is None or not math.isfinite(b) or b < 0 or b > n:
        return None
    b = int(b)
    if b == n:  # e[-1] itself (the last bin holds it), values rounding onto it, or above it
        if lo_x > e[n]:
            return None
        return n - 1 if lo_x >= e[n - 1] and hi_x <= e[n] else _SUSPECT
    if lo_x < e[b] or (b < n - 1 and hi_x >= e[b + 1]):
        return _SUSPECT
    return b


def _check_bins(bins: Any, range: tuple[float, float] | None, width: float | None) -> None:
    if bins != "auto" and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 1):
        raise QueryError(f"histogram(): bins must be a positive integer or 'auto', got {bins!r}")
    if bins != "auto" and bins > MAX_BINS:
        raise QueryError(f"histogram(): {bins:,} bins asked for; the most is {MAX_BINS:,}")
    if width is not None and not (width > 0 and math.isfinite(width)):
        raise QueryError(f"histogram(): width must be a finite number > 0, got {width!r}")
    if range is not None:
        lo, hi = float(range[0]), float(range[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise QueryError(f"histogram(): range must be two finite numbers lo <= hi, got {range}")
        bin_span(lo, hi)
        if width is not None:
            width_bins(lo, hi, width)


def _auto_count(quartiles: tuple[float, float] | None, lo: float, hi: float, n: int) -> int:
    """Freedman-Diaconis (bin width 2 IQR / n^(1/3)), else sqrt(n); clamped to [1, 200]."""
    if n <= 1:
        return 1
    iqr = quartiles[1] - quartiles[0] if quartiles else 0.0
    if iqr > 0:
        count = math.ceil((hi - lo) / (2.0 * iqr / n ** (1 / 3)))
    else:
        count = math.ceil(math.sqrt(n))
    return int(min(max(count, 1), MAX_AUTO_BINS))


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    return value


def _null_last(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v) for v in key)


def _hist_struct(hist: Histogram, sources: tuple[str, ...] | None) -> pa.Array:
    counts = hist.counts if hist.counts.ndim == 2 else hist.counts[None, :]
    edges = hist.edges.tolist()
    if sources is None:
        return _hist_array(counts, edges)
    n_src = len(sources)
    per_source = [_hist_array(counts[i::n_src], edges) for i in range(n_src)]
    return pa.StructArray.from_arrays(per_source, names=list(sources))


def _hist_array(counts: np.ndarray, edges: list[float]) -> pa.Array:
    n = counts.shape[0]
    return pa.StructArray.from_arrays(
        [
            pa.array([edges] * n, type=pa.list_(pa.float64())),
            pa.array(counts.tolist(), type=pa.list_(pa.int64())),
        ],
        names=["edges", "counts"],
    )


def _numeric_value(t: pa.DataType, compared: bool) -> bool:
    if compared:
        return all(_is_numeric(t.field(i).type) for i in range(t.num_fields))
    return _is_numeric(t)


def _list_agg(value: str, order: str, sample: int | None) -> str:
    """A list aggregate of ``value`` in row order; the first ``sample`` values when set."""
    if sample is None:
        return f"list({value} ORDER BY {order})"
    # min_by skips null arguments; wrapping the value in a struct keeps nulls in the sample
    return (
        f"list_transform(min_by({{'v': {value}}}, {order}, {int(sample)}), lambda __tp_s: __tp_s.v)"
    )


def _order_expr(order: Sequence[str]) -> str:
    if len(order) == 1:
        return quote_ident(order[0])
    return "struct_pack(" + ", ".join(quote_ident(o) for o in order) + ")"


def _require_number(t: pa.DataType, column: str) -> None:
    if not (_is_numeric(t) or pa.types.is_boolean(t)):
        raise QueryError(
            f"histogram(): `{column}` holds {t}, not numbers; use value_counts() for "
            "categories and strings"
        )


def _required_sources(expr: Any, names: Sequence[str]) -> frozenset[int]:
    """Sources whose ``present`` flag is a top-level conjunct of the filter."""
    if expr is None:
        return frozenset()
    if isinstance(expr, Binary) and expr.op == "and":
        return _required_sources(expr.left, names) | _required_sources(expr.right, names)
    if isinstance(expr, Col) and expr.path[0] == "present":
        if expr.source is not None and len(expr.path) == 1:
            return frozenset({expr.source})
        if expr.source is None and len(expr.path) == 2 and expr.path[1] in names:
            return frozenset({list(names).index(expr.path[1])})
    return frozenset()


def _sorted_by_key(query: Query, spec: CompareWith, required: frozenset[int]) -> bool:
    """Whether a merged comparison's pair order already is the query's sort.

    The merge gives its pairs in key order, ties in (row of 0, row of 1) order:
    exactly ``ORDER BY key, row of 0, row of 1`` when every row has a row of
    source 0 (the filter requires it: no row of 1 alone to slot in) and the
    sort is the key ascending. Then the key need not be gathered nor sorted.
    """
    if spec.on is None or len(query.sort) != 1 or 0 not in required:
        return False
    key = spec.on if isinstance(spec.on, str) else spec.on[0]
    return query.sort[0].column == key and not query.sort[0].descending


def _heads(
    query: Query, fields: Mapping[str, Any], needs: Sequence[str], sort: bool = True
) -> set[str]:
    """The top-level columns a query (filter, ``sort`` unless False, group keys) and
    ``needs`` read."""
    heads = set()
    sorted_by = [key.column for key in query.sort] if sort else []
    for name in [*sorted_by, *query.group_by, *needs]:
        if name in fields:
            heads.add(name)
            continue
        parts = name.split(".")
        if len(parts) > 1 and parts[0].isdigit():
            parts = parts[1:]
        heads.add(parts[0])
    if query.filter is not None:
        heads |= {node.path[0] for node in _walk(query.filter) if isinstance(node, Col)}
    return heads


def _key_range(rel_sql: str, key: str, lo: str | None, hi: str | None) -> str:
    """The rows of ``rel_sql`` whose key is in [lo, hi) (no bound: open); null keys
    when neither bound is set."""
    if lo is None and hi is None:
        where = f"{key} IS NULL"
    elif lo is None:
        where = f"{key} < {hi}"
    elif hi is None:
        where = f"{key} >= {lo}"
    else:
        where = f"{key} >= {lo} AND {key} < {hi}"
    return f"SELECT * FROM ({rel_sql}) AS __tp_s WHERE {where}"


def _read_by(query: Query, fields: Mapping[str, pa.Field], names: Sequence[str]) -> list[str]:
    """The asked columns the query's filter or sort reads whole (a top-level name)."""
    read = {key.column for key in query.sort}
    if query.filter is not None:
        read |= {
            node.path[0]
            for node in _walk(query.filter)
            if isinstance(node, Col) and node.source is None and len(node.path) == 1
        }
    return [n for n in dict.fromkeys(names) if n in read and n in fields]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for name in type(node).model_fields:
        value = getattr(node, name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if hasattr(child, "node"):
                yield from _walk(child)


def _restore_metadata(table: pa.Table, fields: Mapping[str, pa.Field]) -> pa.Table:
    """Put back the field metadata (image kind, classes) DuckDB does not carry."""
    schema = table.schema
    new = []
    changed = False
    for f in schema:
        source = fields.get(f.name)
        if source is not None and source.metadata and f.type == source.type:
            new.append(f.with_metadata(source.metadata))
            changed = True
        else:
            new.append(f)
    return table.cast(pa.schema(new, metadata=schema.metadata)) if changed else table


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _wrap(exc: duckdb.Error, what: str) -> QueryError:
    message = _first_line(exc)
    hint = "check the filter's columns and value types"
    if "Conversion Error" in message or "Could not convert" in message:
        hint = "a value has the wrong type for its column; compare numbers with numbers, text with text"
    elif "Out of Memory" in message:
        hint = "the query needs more memory than allowed; filter rows or select fewer columns"
    return QueryError(f"{what}: the query could not run ({message}); {hint}")


def _unknown(name: str, fields: Mapping[str, Any], what: str) -> QueryError:
    error = UnknownColumnError(name, list(fields))
    error.args = (f"{what}: {error.args[0]}",)
    return error


def _unknown_table(name: str, names: list[str]) -> QueryError:
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    hint = (
        f"did you mean `{close[0]}`?"
        if close
        else "the tables are " + ", ".join(f"`{n}`" for n in names)
    )
    return QueryError(f"unknown table `{name}`; {hint}")
