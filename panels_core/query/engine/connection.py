"""The DuckDB connection: set up locked down, and the lazy scan of a Parquet file."""

# SQL here is built only from quote_ident() names, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from panels_core.query.sql import quote_ident

__all__ = [
    "FILE",
    "FILE_ROW",
    "RESERVED",
    "ROW",
    "connect",
    "parquet_files",
    "scan",
    "scan_dataset",
    "shared",
]

RESERVED = "__tp_"
"""Column names the engine keeps for itself start with this."""
ROW = "__tp_row"
"""The row-number column every registered table carries."""
FILE = "__tp_file"
"""The file each row of a dataset's view comes from: a filter on it skips the other files."""
FILE_ROW = "__tp_file_row"
"""A dataset row's number within its file: a filter on it skips the other row groups."""
VIRTUAL = ("file_index", "file_row_number")
"""DuckDB's columns a dataset's row numbers are made of (a file's own column would hide them)."""


def connect(threads: int, files: Sequence[str] = (), whole_file: bool = False) -> Any:
    """An in-memory DuckDB connection, locked down, that reads only the Parquet ``files``.

    Defence in depth (no user text reaches SQL but bound values and checked
    names): no extension is installed or loaded on demand, no file but
    ``files`` can be read or written (``enable_external_access`` off, the files
    in ``allowed_paths``; a name ending in ``/`` is a folder, in
    ``allowed_directories``: a cluster worker's own folder of comparison rows), and the
    configuration is locked, so no statement can undo any of it. Another file needs a
    new connection (``shared``).

    DuckDB's Parquet reader prefetches whole column chunks by default: on a
    local file that buys no speed and costs memory (a filtered, sorted page of a
    10M-row file took the process 236 MiB higher with it, 45 MiB without;
    ``benchmarks/bench_engine.py``). The switch is set GLOBAL, so the cursors
    of every call see it. DuckDB releases without the switch are left as they are.

    ``whole_file``: the connection reads one Parquet file at a time (a cluster's
    task). DuckDB then takes the file's statistics as the column's, and its
    statistics optimizer drops ``NOT isnan(x)`` when the file's min/max (which
    leave NaN out) are finite: ``x > 0.5 AND NOT isnan(x)`` counted NaN rows.
    That optimizer is off on such a connection.
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
    if whole_file:
        con.execute("SET GLOBAL disabled_optimizers = 'statistics_propagation'")
    folders = sorted(f for f in files if f.endswith("/"))
    con.execute("SET GLOBAL allowed_paths = $1", [sorted(set(files) - set(folders))])
    con.execute("SET GLOBAL allowed_directories = $1", [folders])
    con.execute("SET GLOBAL enable_external_access = false")
    con.execute("SET GLOBAL lock_configuration = true")
    return con


_SHARED: dict[tuple[int, bool], tuple[Any, frozenset[str]]] = {}
_SHARED_LOCK = threading.Lock()


def shared(
    threads: int, files: Iterable[str], whole_file: bool = False
) -> tuple[Any, frozenset[str]]:
    """The process's connection with ``threads`` threads that reads ``files``, and every
    file it may read: one locked-down connection (``connect``) kept per process and
    reused by every engine whose files it already allows.

    A file it does not allow needs a new one (its allowed paths are fixed when it is
    created and the configuration is locked): it allows the files of the one it
    replaces as well, so the engines that come after reuse it; engines on the old one
    keep it until they move. Every connection reads only files some table of this
    process registered (in ``panels serve``, the tables the server opened, which the
    page can read anyway). A new DuckDB database costs 20-30 ms and 17-31 MiB
    (``benchmarks/bench_engine.py``, open + type): an engine per table (``View``) or per
    workspace pays it once.
    """
    wanted = frozenset(files)
    key = (threads, whole_file)
    with _SHARED_LOCK:
        kept = _SHARED.get(key)
        if kept is not None and wanted <= kept[1]:
            return kept
        allowed = wanted | (kept[1] if kept is not None else frozenset())
        _SHARED[key] = (connect(threads, sorted(allowed), whole_file), allowed)
        return _SHARED[key]


def parquet_files(tables: Sequence[Any]) -> list[str]:
    """The Parquet files behind ``tables`` (both sides of a joined table, every file of a
    dataset)."""
    from panels_core.data.table import JoinedTable

    parts = [p for t in tables for p in ((t.left, t.right) if isinstance(t, JoinedTable) else (t,))]
    paths = [getattr(p, "parquet_path", None) for p in parts]
    datasets = (getattr(p, "parquet_dataset", None) for p in parts)
    paths += [f for d in datasets if d is not None for f in d.files]
    return [str(path) for path in paths if path is not None]


def scan(
    con: Any, path: str | os.PathLike[str], names: Sequence[str], numbered: bool = False
) -> Any:
    """A lazy scan of a Parquet file on ``con``: its columns under the table's ``names``
    (by position: a file may repeat a name or leave one empty) and its row numbers as
    ``ROW``. Renamed so, a column of the file called ``file_row_number`` does not hide
    DuckDB's row numbers. ``numbered``: the file's last column (the last of ``names``)
    is ``ROW``, each row's number in a bigger table (``Catalog.add_numbered_file``)."""
    columns = ", ".join(quote_ident(n) for n in names)
    row = "" if numbered else f", file_row_number AS {quote_ident(ROW)}"
    sql = f"SELECT *{row} FROM read_parquet($path) AS __tp_file({columns})"
    return con.sql(sql, params={"path": str(path)})


def scan_dataset(con: Any, dataset: Any) -> Any:
    """A lazy scan of a Parquet dataset (``panels_core.data.dataset.ParquetDataset``) on
    ``con``: DuckDB reads its files as one table (columns matched by name when the files'
    schemas differ; Hive partition columns with the dataset's types, so a filter on a
    partition skips files), each row's file as ``FILE`` (and its number there as
    ``FILE_ROW``) and its number in the dataset as
    ``ROW``: its file's offset (from the footers) plus its row number in the file, unique
    and stable however many files there are. The offset is looked up by the file's name:
    DuckDB's ``file_index`` counts only the files a partition filter left, which
    shifted the rows of every file after a skipped one."""
    import pyarrow as pa

    from panels_core.query.errors import QueryError

    for name in VIRTUAL:
        if name in dataset.file_columns:
            raise QueryError(
                f"dataset `{dataset.name}`: its column `{name}` hides DuckDB's row numbers, "
                "which the engine needs; rename the column in the files"
            )
    columns = _file_columns(con, dataset)
    for name in dataset.partitions:
        kind = dataset.schema.field(name).type
        sql_type = "BIGINT" if pa.types.is_integer(kind) else "DOUBLE"
        cast = (
            quote_ident(name)
            if pa.types.is_dictionary(kind)
            else f"CAST({quote_ident(name)} AS {sql_type})"
        )
        columns.append(f"{cast} AS {quote_ident(name)}")
    hive = "true" if dataset.partitions else "false"
    by_name = "false" if dataset.uniform else "true"  # by name costs the min/max statistics
    sql = (
        f"SELECT {', '.join(columns)}, "
        f"$offsets[list_position($files, {quote_ident(FILE)})] + file_row_number "
        f"AS {quote_ident(ROW)}, "
        f"{quote_ident(FILE)}, file_row_number AS {quote_ident(FILE_ROW)} "
        f"FROM read_parquet($files, hive_partitioning = {hive}, union_by_name = {by_name}, "
        f"hive_types_autocast = false, filename = '{FILE}')"
    )
    params: dict[str, Any] = {
        "files": [str(f) for f in dataset.files],
        "offsets": list(dataset.offsets),
    }
    if dataset.span is not None:  # a piece of one file: DuckDB reads only its row groups
        sql += " WHERE file_row_number >= $start AND file_row_number < $stop"
        params |= {"start": dataset.span[0], "stop": dataset.span[1]}
    return con.sql(sql, params=params)


def _file_columns(con: Any, dataset: Any) -> list[str]:
    """The SELECT terms of a dataset's file columns. Over many files DuckDB unifies their
    schemas; one file of a dataset whose schemas differ (a cluster's shard) reads its own
    columns cast to the dataset's types, and NULLs for the columns it lacks."""
    import pyarrow as pa

    if len(dataset.files) != 1 or dataset.uniform:
        return [quote_ident(n) for n in dataset.file_columns]
    own = {f.name: f.type for f in dataset.metas[0].schema.to_arrow_schema()}
    terms = []
    for name in dataset.file_columns:
        kind = dataset.schema.field(name).type
        if own.get(name) == kind:
            terms.append(quote_ident(name))
            continue
        (sql_type,) = con.from_arrow(pa.table({"x": pa.array([], kind)})).types
        value = quote_ident(name) if name in own else "NULL"
        terms.append(f"CAST({value} AS {sql_type}) AS {quote_ident(name)}")
    return terms
