"""Damaged Parquet files: where the damage is, a message naming it, a sample that reads around it.

A Parquet file whose footer is intact opens (only the footer is read), so a
damaged data page shows only when a read reaches it. ``damage_message`` then
says which file, which column and which row group, found by reading the file
one column chunk at a time (only after a read failed, and once per version
of the file).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["READ_ERRORS", "damage_message", "find_damage", "sample_around_damage"]

READ_ERRORS = (OSError, pa.ArrowException)
"""What pyarrow raises for data it cannot read."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def find_damage(path: str | os.PathLike[str]) -> str | None:
    """Where a Parquet file first fails to read, as ``column `x` (row group 0): why``;
    None when every column chunk reads (or the file is gone)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _find(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _find(path: str, size: int, mtime_ns: int) -> str | None:
    """``find_damage`` for one version of a file (its size and time are the cache key)."""
    del size, mtime_ns
    try:
        with pq.ParquetFile(path) as file:
            meta = file.metadata
            for group in range(meta.num_row_groups):
                for leaf in range(meta.num_columns):
                    try:
                        file.reader.read_row_group(group, column_indices=[leaf])
                    except READ_ERRORS as exc:
                        name = meta.schema.column(leaf).path.split(".")[0]
                        shown = f"column `{name}`" if name else "a column with no name"
                        return f"{shown} (row group {group}): {_first_line(exc)}"
    except READ_ERRORS as exc:
        return f"its footer: {_first_line(exc)}"
    return None


def damage_message(path: str | os.PathLike[str], exc: BaseException) -> str:
    """The message for a read of ``path`` that failed with ``exc``: the file, the damaged
    column and row group when they can be found, and what to do."""
    where = find_damage(path)
    what = f"corrupt data in {where}" if where else f"its data does not read ({_first_line(exc)})"
    return (
        f"`{path}`: {what}; the file may be truncated or damaged: write it again, or get "
        "another copy"
    )


def sample_around_damage(
    file: pq.ParquetFile, schema: pa.Schema, names: Sequence[str], rows: int
) -> pa.Table:
    """The first ``rows`` rows of each column that reads, nulls for the rest (and for a
    name the file repeats or leaves empty, which pyarrow cannot pick alone)."""
    counts = Counter(names)
    columns: list[pa.Array | pa.ChunkedArray] = []
    for field, name in zip(schema, names, strict=True):
        column: pa.Array | pa.ChunkedArray = pa.nulls(0, field.type)
        if name and counts[name] == 1:
            try:
                for batch in file.iter_batches(batch_size=rows, columns=[name]):
                    column = batch.column(0)
                    break
            except READ_ERRORS:
                pass
        columns.append(column)
    length = max((len(c) for c in columns), default=0)
    padded = [
        pa.concat_arrays([*_chunks(c), pa.nulls(length - len(c), c.type)]) if len(c) < length else c
        for c in columns
    ]
    return pa.Table.from_arrays(padded, schema=schema)


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]
