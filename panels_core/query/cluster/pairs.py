"""A comparison (or join) on the cluster: both tables' rows co-partitioned on the key by Dask.

Every file of both tables is a partition of a Dask dataframe (``side_part``): its rows
(every column and their row numbers) and a hash of the compare key in one canonical
type (``route``). Dask's shuffle on that hash, to the same number of partitions for
both tables (the first half of Dask's hash merge), sends the rows of every key of both
tables to the same partition number. The second half runs on the worker that holds a
partition: the engine's own comparison of the two tables' rows there (``Pair``: the
planner's SQL, a DuckDB join, over rows that keep their row numbers), so null keys,
NaN keys, repeated keys and the compared columns' types are the local engine's. The
pairs stay on the workers (``Comparisons`` keeps the last ``PAIRS_KEPT``), and every
query of that comparison is one task per pair (``tasks``), combined as files are. A
join's rows are paired the same way (the planner joins a pair's rows as it compares
them).
"""

# SQL here is the planner's own, cut by an integer LIMIT:
# ruff: noqa: S608

from __future__ import annotations

import tempfile
import threading
import uuid
import weakref
from collections import OrderedDict
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from panels_core.query.cluster.client import Tasks
from panels_core.query.cluster.tasks import Shard, files_of
from panels_core.query.engine.cache import LRU, file_stamp
from panels_core.query.engine.connection import ROW
from panels_core.query.engine.parts import Parts
from panels_core.query.errors import QueryError
from panels_core.query.model import Query

__all__ = [
    "FOLDER",
    "PAIRS_KEPT",
    "ROUTE",
    "Comparisons",
    "Pair",
    "route",
    "route_kind",
    "scratch",
    "side_part",
]

ROUTE = "__tp_route"
"""The column of a side's rows holding its key's hash (what Dask shuffles on)."""
PAIRS_KEPT = 2
"""Comparisons whose pairs stay on the workers (each holds both tables' rows, on disk)."""
FOLDER = "tp-pairs"
"""The folder of a worker's local directory holding its pairs' files, a folder per
comparison."""
ROW_GROUP = 128_000
"""Rows per row group of a pair's file (DuckDB streams a file a row group at a time)."""

_lock = threading.Lock()


def route_kind(a: pa.DataType, b: pa.DataType) -> str | None:
    """How two compare keys hash alike: ``int``, ``float`` (an integer key compared with a
    float key too, as DuckDB compares them) or ``text``; None when they are of other
    kinds (that comparison runs in the server process)."""
    kinds = {_kind(a), _kind(b)}
    if None in kinds:
        return None
    if len(kinds) == 1:
        return kinds.pop()
    return "float" if kinds == {"int", "float"} else None


def _kind(kind: pa.DataType) -> str | None:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    return None


def route(column: pa.ChunkedArray, kind: str) -> np.ndarray:
    """The key's hash (uint64): keys DuckDB's join finds equal (-0.0 and 0.0, NaN and
    NaN, 1 and 1.0) hash alike on both sides. A null key matches nothing: it hashes as
    any other value and finds no partner."""
    import pandas as pd

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind == "text":
        values = pc.fill_null(column.cast(pa.large_string()), "").to_numpy()
    elif kind == "int":
        values = pc.fill_null(column.cast(pa.int64(), safe=False), 0).to_numpy()
    else:
        values = column.cast(pa.float64()).to_numpy() + 0.0  # -0.0 becomes 0.0
        values[np.isnan(values)] = np.nan  # one NaN (a null is NaN here too)
    return pd.util.hash_array(np.asarray(values))


def side_rows(parts: Parts, table: str, limit: int | None = None) -> pa.Table:
    """A table's rows as the engine reads them: every column and ``ROW`` (``limit=0``:
    none, for their types)."""
    with parts.planner.session(Query(table=table), "compare") as (cur, params, rel):
        sql = rel.sql if limit is None else f"SELECT * FROM ({rel.sql}) AS __tp_l LIMIT {limit:d}"
        return parts.runner.arrow(cur, sql, params, "compare")


def side_frame(rows: pa.Table, key: str, kind: str) -> Any:
    """Rows as a pandas frame of Arrow-typed columns (their types kept exactly) with the
    key's hash in ``ROUTE``."""
    import pandas as pd

    frame = rows.to_pandas(types_mapper=pd.ArrowDtype)
    frame[ROUTE] = route(rows.column(key), kind)
    return frame


def side_part(shard: Shard, key: str, kind: str) -> Any:
    """One file's rows, hashed on the key (a task of the Dask dataframe of a side)."""
    return side_frame(side_rows(shard.parts(), shard.table), key, kind)


class Pair:
    """One partition of a comparison, on a worker: the rows of both tables whose keys hash
    to it, each side a Parquet file (its columns and each row's own number) in the
    worker's local directory (``scratch``), never in its memory; the engine over them
    streams them from disk, is built at its first query and kept while the pair is. The
    files go with the pair (when Dask forgets it) or with the worker's directory."""

    def __init__(self, sides: list[tuple[str, Path, Any]], rows: int, total: int) -> None:
        self.sides = sides  # (table name, file, the table's type)
        self.table = sides[0][0]
        self.rows = rows
        self.total = total  # both tables' rows (a pair's share of a sample)
        self.engine: Parts | None = None
        self.removal = weakref.finalize(self, remove_files, [path for _, path, _ in sides])

    @classmethod
    def written(cls, sides: list[tuple[str, pa.Table, Any]], total: int, folder: str) -> Pair:
        """A pair of these rows (each with its ``ROW``), written into this worker's
        ``folder`` of the comparison."""
        where = scratch(folder)
        files = [(name, write_side(rows, where), kind) for name, rows, kind in sides]
        return cls(files, sum(rows.num_rows for _, rows, _ in sides), total)

    def __getstate__(self) -> dict[str, Any]:
        # a pair sent to another worker carries its rows: its files are this worker's
        sides = [(name, pq.read_table(path), kind) for name, path, kind in self.sides]
        return {"sides": sides, "total": self.total, "folder": self.sides[0][1].parent.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        pair = Pair.written(state["sides"], state["total"], state["folder"])
        self.__init__(pair.sides, pair.rows, pair.total)  # type: ignore[misc]
        pair.removal.detach()  # its files are this pair's now

    def parts(self) -> Parts:
        """The engine over this pair's files (its tables under their own names)."""
        with _lock:
            if self.engine is None:
                parts = Parts({}, threads=1, cache=LRU(16), whole_file=True)
                for name, path, kind in self.sides:
                    if not path.exists():
                        raise QueryError(
                            f"the rows of `{name}` this comparison kept in `{path.parent}` "
                            "are gone (the folder was emptied under the worker); restart the "
                            "cluster's workers, or serve without --cluster"
                        )
                    parts.catalog.add_numbered_file(name, path, kind, f"{path.parent.parent}/")
                self.engine = parts
            return self.engine


def scratch(folder: str) -> Path:
    """This worker's folder of a comparison's pair files, made if missing: in the worker's
    local directory (``FOLDER``), which goes when the worker closes; outside a worker,
    in the system's temporary folder."""
    import distributed

    try:
        root = Path(distributed.get_worker().local_directory)
    except ValueError:  # not in a worker
        root = Path(tempfile.gettempdir())
    where = root / FOLDER / folder
    where.mkdir(parents=True, exist_ok=True)
    return where


def write_side(rows: pa.Table, folder: Path) -> Path:
    """A side's rows as a Parquet file of ``folder`` (a name of its own): its columns,
    then ``ROW``, in row groups DuckDB streams."""
    path = folder / f"{uuid.uuid4().hex}.parquet"
    names = [n for n in rows.column_names if n != ROW]
    # plain values: dictionary encoding took 2/3 of the time to write, for scratch files
    pq.write_table(
        rows.select([*names, ROW]), path, row_group_size=ROW_GROUP, use_dictionary=False
    )
    return path


def remove_files(paths: list[Path]) -> None:
    """Remove a pair's files, and its comparison's folder once it is empty."""
    for path in paths:
        path.unlink(missing_ok=True)
    with suppress(OSError):  # other pairs' files are still there
        paths[0].parent.rmdir()


def pair_of(
    frames: list[Any], names: list[str], kinds: list[Any], total: int, folder: str
) -> Pair:
    """The pair of one partition number of both shuffled sides, written to this worker's
    disk (a table compared with itself is written once)."""
    sides: list[tuple[str, pa.Table, Any]] = []
    for frame, name, kind in zip(frames, names, kinds, strict=True):
        if all(name != seen for seen, _, _ in sides):
            rows = pa.Table.from_pandas(frame.drop(columns=[ROUTE]), preserve_index=False)
            sides.append((name, rows, kind))
    return Pair.written(sides, total, folder)


class Comparisons:
    """The comparisons co-partitioned on the cluster: their pairs, kept for the next query."""

    def __init__(self, runner: Tasks, parts: Parts) -> None:
        self.runner = runner
        self.parts = parts
        self.kept: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self.lock = threading.Lock()

    def pairs(self, query: Query) -> list[Any] | None:
        """The pairs (futures on the workers) of the query's comparison or join; None when
        a table is not read from Parquet files or the keys do not hash alike."""
        spec: Any = query.compare_with if query.compare_with is not None else query.join
        catalog = self.parts.catalog
        sources = (catalog.source(query.table), catalog.source(spec.table))
        files = [files_of(s) for s in sources]
        on = spec.on
        keys = (ROW, ROW) if on is None else (on, on) if isinstance(on, str) else tuple(on)
        fields = [s.fields.get(k) for s, k in zip(sources, keys)]
        if on is None:
            kind: str | None = "int"
        elif any(f is None for f in fields):
            return None
        else:
            kind = route_kind(fields[0].type, fields[1].type)  # type: ignore[union-attr]
        if kind is None or files[0] is None or files[1] is None:
            return None
        # the two tables' registrations and files (not the engine's other tables or points)
        stamp = tuple((s.view, *(file_stamp(f) for f in s.files)) for s in sources)
        found = (stamp, *(s.name for s in sources), keys, kind)
        with self.lock:
            if found in self.kept:
                self.kept.move_to_end(found)
                return self.kept[found]
            pairs = self.co_partition(sources, files, keys, kind)  # type: ignore[arg-type]
            self.kept[found] = pairs
            while len(self.kept) > PAIRS_KEPT:
                # dropped, not released: a query still using them holds them until it ends
                self.kept.popitem(last=False)
            return pairs

    def co_partition(
        self, sources: Any, files: list[list[Shard]], keys: Any, kind: str
    ) -> list[Any]:
        """Both tables shuffled on their keys' hash into the same number of partitions,
        each partition number's rows of both made a ``Pair`` kept on the workers."""
        import dask
        import dask.dataframe as dd

        npartitions = max(len(f) for f in files)
        sides = []
        for source, shards, key in zip(sources, files, keys):
            meta = side_frame(side_rows(self.parts, source.name, 0), key, kind)  # no row read
            frame = dd.from_map(side_part, shards, key=key, kind=kind, meta=meta)
            # the task shuffle: P2P's own Arrow path does not take list columns
            shuffled = frame.shuffle(ROUTE, npartitions=npartitions, shuffle_method="tasks")
            sides.append(shuffled.to_delayed())
        names = [s.name for s in sources]
        kinds = [s.type for s in sources]
        total = sum(s.length for s in sources)
        make = dask.delayed(pair_of, pure=True)
        folder = uuid.uuid4().hex  # the comparison's folder on each worker
        pieces = [make([a, b], names, kinds, total, folder) for a, b in zip(*sides, strict=True)]
        return self.runner.persist(pieces)
