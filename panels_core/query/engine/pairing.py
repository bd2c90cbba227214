"""Pair the rows of two tables by a sorted integer key: a merge join, streamed.

A comparison of two versions of a table usually has both sorted by the same
integer id. Then one linear pass over the two key columns finds which row of
one side meets which row of the other, much faster than a hash join.

``merged_batches`` reads both tables in key order, batch by batch, and pairs
each run of keys that both sides hold completely (``pair_sorted``), handing
on one Arrow batch of the two sides' columns side by side per run: only a few
batches of each table are in memory at a time, however many rows they hold;
each side's rows may carry their positions in the table, counted as they stream.
``pair_sorted`` (one pass, with room for every pair unless a key repeats on
both sides) returns the pairs as two arrays of row positions (``-1``: the
row has no partner on that side) in key order, with SQL join semantics: a key
held by ``m`` rows on one side and ``n`` on the other gives ``m * n`` pairs.
It returns None when a key column is not sorted ascending; ``merged_batches``
raises ``Unsorted`` when a batch it reads is not (or holds a null key).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numba
import numpy as np
import pyarrow as pa


@numba.njit(nogil=True, cache=True)
def _merge_range(a, b, i, i_end, j, j_end, keep_left, keep_right, left, right, k):
    """Merge a[i:i_end], b[j:j_end]; pairs written from k while they fit; the new k."""
    fits = left.size
    while i < i_end and j < j_end:
        va = a[i]
        vb = b[j]
        if va == vb:
            single_a = i + 1 == i_end or a[i + 1] != va
            single_b = j + 1 == j_end or b[j + 1] != vb
            if single_a and single_b:
                if k < fits:
                    left[k] = i
                    right[k] = j
                k += 1
                i += 1
                j += 1
            else:
                i2 = i
                while i2 < i_end and a[i2] == va:
                    i2 += 1
                j2 = j
                while j2 < j_end and b[j2] == va:
                    j2 += 1
                for x in range(i, i2):
                    for y in range(j, j2):
                        if k < fits:
                            left[k] = x
                            right[k] = y
                        k += 1
                i = i2
                j = j2
        elif va < vb:
            if keep_left:
                if k < fits:
                    left[k] = i
                    right[k] = -1
                k += 1
            i += 1
        else:
            if keep_right:
                if k < fits:
                    left[k] = -1
                    right[k] = j
                k += 1
            j += 1
    if keep_left:
        while i < i_end:
            if k < fits:
                left[k] = i
                right[k] = -1
            k += 1
            i += 1
    if keep_right:
        while j < j_end:
            if k < fits:
                left[k] = -1
                right[k] = j
            k += 1
            j += 1
    return k


@numba.njit(nogil=True, cache=True)
def _ascending(a, start, stop):
    """Whether a[start:stop] never steps down (counting from the element before ``start``)."""
    for i in range(max(start, 1), stop):  # noqa: SIM110 (a loop numba compiles)
        if a[i] < a[i - 1]:
            return False
    return True


def pair_sorted(
    a: np.ndarray, b: np.ndarray, keep_left: bool, keep_right: bool, checked: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """Row positions pairing equal keys of ``a`` and ``b`` (ascending; both int32, else
    both as int64).

    ``keep_left`` / ``keep_right`` also keep the rows of that side without a
    partner (a left, right or full outer join); their partner is ``-1``. The
    pairs come in key order, as int32 when every position fits (half the
    memory), else int64. None when ``a`` or ``b`` is not sorted ascending
    (``checked``: the caller already knows they are; not looked at again).

    One thread: it runs on the thread of DuckDB's that reads the stream (a
    parallel kernel there waited on DuckDB's busy threads, 10-30x slower).
    """
    kind = np.int32 if a.dtype == b.dtype == np.int32 else np.int64
    a = np.ascontiguousarray(a, dtype=kind)
    b = np.ascontiguousarray(b, dtype=kind)
    keep_left, keep_right = bool(keep_left), bool(keep_right)
    if not (checked or (_ascending(a, 0, a.size) and _ascending(b, 0, b.size))):
        return None
    dtype = _position_type(a.size, b.size)
    room = a.size + b.size  # every pair, unless a key repeats on both sides
    left, right = empty(room, dtype), empty(room, dtype)
    count = _merge_range(a, b, 0, a.size, 0, b.size, keep_left, keep_right, left, right, 0)
    if count > room:
        left, right = empty(count, dtype), empty(count, dtype)
        _merge_range(a, b, 0, a.size, 0, b.size, keep_left, keep_right, left, right, 0)
    return left[:count], right[:count]


def _position_type(na: int, nb: int) -> type[np.signedinteger]:
    return np.int32 if max(na, nb) < np.iinfo(np.int32).max else np.int64


def empty(n: int, dtype: Any) -> np.ndarray:
    """An uninitialised array in memory from Arrow's pool.

    The pool keeps freed memory and hands it out again; a fresh numpy array of
    this size is new pages from the kernel, and touching them first costs more
    than the gathering itself (measured: 80 MB in 0.01-0.12 s vs 0.003 s).
    """
    dtype = np.dtype(dtype)
    buffer = pa.allocate_buffer(max(n * dtype.itemsize, 1))
    return np.frombuffer(buffer, dtype=dtype, count=n)


def as_arrow(values: np.ndarray, kind: pa.DataType, missing: np.ndarray | None) -> pa.Array:
    """``values`` as an Arrow array without a copy; ``missing`` (bool) marks nulls."""
    validity = None
    nulls = 0
    if missing is not None:
        nulls = int(np.count_nonzero(missing))
        if nulls:
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(values)], nulls)


def index_array(rows: np.ndarray, partnerless: bool) -> pa.Array:
    """Row positions as an Arrow array, ``-1`` as null when the side has partnerless rows."""
    return as_arrow(rows, pa.from_numpy_dtype(rows.dtype), rows < 0 if partnerless else None)


def _int64_keys(column: pa.Array) -> np.ndarray | None:
    """An integer key array as int64 numpy; None when it holds a null, does not fit, or
    steps down."""
    if column.null_count:
        return None
    try:
        keys = column.cast(pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # e.g. uint64 past the int64 range
    return keys if _ascending(keys, 0, keys.size) else None


def _first_column(batch: pa.RecordBatch | pa.Array) -> pa.Array:
    return batch.column(0) if isinstance(batch, pa.RecordBatch) else batch


class Unsorted(ValueError):
    """A key column of a merge holds a null or steps down (found as it streams)."""


class _Side:
    """One table's batches in key order (the key first), buffered until paired."""

    def __init__(self, reader: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        self.reader = reader
        self.rows = schema.empty_table()
        self.keys = np.empty(0, np.int64)
        self.high: int | None = None  # the last key read
        self.ended = False
        self.passed = 0  # rows read and handed on before the buffered ones

    def read(self) -> None:
        """Append the next non-empty batch, or note that the table has ended. Raises
        ``Unsorted`` when its keys hold a null or do not ascend."""
        for batch in self.reader:
            if not batch.num_rows:
                continue
            keys = _int64_keys(batch.column(0))
            if keys is None or (self.high is not None and keys[0] < self.high):
                raise Unsorted("the compare key holds a null or is not sorted ascending")
            self.rows = pa.concat_tables([self.rows, pa.Table.from_batches([batch])])
            held = empty(len(self.keys) + len(keys), np.int64)  # pooled: no fresh pages
            self.keys = np.concatenate([self.keys, keys], out=held)
            self.high = int(keys[-1])
            return
        self.ended = True

    def last(self) -> int | None:
        """The last key held; None (beyond every key) when the table has ended."""
        return None if self.ended else int(self.keys[-1])

    def before(self, bound: int | None) -> int:
        """How many rows held have a key below ``bound`` (None: every row)."""
        return len(self.keys) if bound is None else int(np.searchsorted(self.keys, bound))

    def take(
        self, count: int, rows: np.ndarray, partnerless: bool, pick: Sequence[int], numbered: bool
    ) -> list[pa.Array]:
        """The ``pick`` columns of the first ``count`` rows at positions ``rows`` (``-1``:
        null), then (``numbered``) those rows' positions in the table; the rows leave the
        buffer."""
        index = index_array(rows, partnerless)
        taken = self.rows.slice(0, count).select(list(pick)).take(index)
        columns = [column.combine_chunks() for column in taken.columns]
        if numbered:
            positions = np.add(rows, self.passed, out=empty(len(rows), np.int64), dtype=np.int64)
            columns.append(as_arrow(positions, pa.int64(), rows < 0 if partnerless else None))
        self.rows, self.keys = self.rows.slice(count), self.keys[count:]
        self.passed += count
        return columns


def merged_batches(
    readers: tuple[Iterator[pa.RecordBatch], Iterator[pa.RecordBatch]],
    schemas: tuple[pa.Schema, pa.Schema],
    keep: tuple[bool, bool],
    schema: pa.Schema,
    picks: tuple[Sequence[int], Sequence[int]],
    numbered: bool = False,
) -> Iterator[pa.RecordBatch]:
    """The merge join of two tables read (``readers``) in ascending key order (each
    batch's first column the key; ``Unsorted`` when it is not), as batches of ``schema``:
    the columns ``picks[0]`` of the left side's batches, then ``picks[1]`` of the
    right's, paired. ``numbered``: each side's columns are followed by the row's
    position in its table (int64; null without a partner there), counted as the rows
    stream, so no row-number column need be read.

    ``keep``: keep the rows of that side without a partner (their partner's columns
    are null). Keys below the smaller of the two sides' last keys are complete on
    both sides: they are paired and handed on, and the side holding that key reads
    on. Pairs come in key order, ties in (row of left, row of right) order.
    """
    sides = (_Side(readers[0], schemas[0]), _Side(readers[1], schemas[1]))
    while True:
        for side in sides:
            if not side.ended and not len(side.keys):
                side.read()
        if all(side.ended and not len(side.keys) for side in sides):
            return
        lasts = [side.last() for side in sides if not side.ended]
        bound = min(lasts) if lasts else None
        counts = [side.before(bound) for side in sides]
        if not any(counts):
            for side in sides:
                if side.last() == bound:
                    side.read()
            continue
        pairs = pair_sorted(sides[0].keys[: counts[0]], sides[1].keys[: counts[1]], *keep, True)
        if pairs is None:  # checked as each batch was read: cannot happen
            raise Unsorted("the compare key is not sorted ascending")
        columns = []
        for side, count, rows, pick, partnerless in zip(sides, counts, pairs, picks, keep[::-1]):
            columns += side.take(count, rows, partnerless, pick, numbered)
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def warm_up() -> None:
    """Load (or compile, the first time on a machine) the kernels on tiny inputs."""
    for dtype in (np.int64, np.int32):
        keys = np.arange(4, dtype=dtype)
        for keep in (False, True):
            pairs = pair_sorted(keys, keys, keep, keep)
            assert pairs is not None
