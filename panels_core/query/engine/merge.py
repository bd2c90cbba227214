"""The merge join of a comparison: rows of two key-sorted tables paired as they stream.

When both tables hold the compare key as an integer column (or the comparison
is by row position), ``Merger.paired`` names a view that each statement reading
it streams afresh: both tables are read in key order, batch by batch, and
paired as they come (``pairing.merged_batches``, no hash table), and DuckDB
filters, counts and sorts the paired batches as they arrive. The columns a
query reads are the only ones read (not the row numbers: a row's number is its
position, counted as the rows stream), each table one batch ahead on a thread
of its own (``read_ahead``: the reads overlap the pairing and DuckDB's work); a
few batches of each table are in memory at a time, however many rows the tables
hold. ``compare.compare`` glues the two sides without a join.

A key found unsorted or null as it streams fails the statement, which runs
again (``execute.RERUN``) over the same view as DuckDB's hash join of the two
tables; the next comparisons of those tables plan the hash join at once.
"""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from panels_core.query.engine.cache import LRU
from panels_core.query.engine.connection import ROW
from panels_core.query.engine.execute import RERUN
from panels_core.query.engine.relation import Rel, base
from panels_core.query.engine.sources import Catalog, Source
from panels_core.query.model import CompareWith
from panels_core.query.sql import quote_ident

__all__ = ["PAIR_MIN_ROWS", "STREAM_BATCH", "Merger", "merge_may_run", "read_ahead"]

PAIR_MIN_ROWS = 100_000  # smaller comparisons keep DuckDB's hash join (fast enough)
STREAM_BATCH = 1 << 18  # rows per batch read from each table
_VERDICTS_KEPT = 16  # whether a table's key column ascends, per table version and key


class Merger:
    """Pairs the rows of two key-sorted tables as they stream, for a statement to read."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.verdicts = LRU(_VERDICTS_KEPT)

    def paired(
        self,
        cur: Any,
        a: Source,
        b: Source,
        spec: CompareWith,
        required: frozenset[int],
        heads: set[str],
    ) -> tuple[Rel, Rel, CompareWith, str] | None:
        """The ``heads`` columns of both tables, paired row by row: the two sides
        (their fields), the comparison to glue them with, and the view holding them
        (columns named ``__tp_a.<column>``, ``__tp_b.<column>``, streamed afresh for
        each statement that reads it).

        None: the keys are not integers, or hold a null, or do not ascend (a
        Parquet file's statistics, else one pass over each key column, kept per
        table version), or the tables are small enough for DuckDB's hash join.
        """
        if a.length + b.length < PAIR_MIN_ROWS or a.numbered or b.numbered:
            return None  # small, or rows whose numbers are not their positions
        keys = (spec.on, spec.on) if isinstance(spec.on, str) else spec.on
        verdict = (self.catalog.call.stamp, a.view, b.view, keys)
        if self.verdicts.get(verdict) is False:
            return None
        if keys is not None and not self._mergeable(a, b, keys):
            return None
        keep = (1 not in required, 0 not in required)  # rows without a partner, per side
        # the key is carried only when the query reads it (otherwise the sides are glued
        # by position alone): the comparison's key is coalesce(key of 0, key of 1)
        with_key = keys is not None and keys[0] in heads
        shown = [
            [
                c
                for c in source.fields
                if (c == keys[i] and with_key) or (c != keys[i] and c in heads)
            ]
            if keys is not None
            else [c for c in source.fields if c in heads]
            for i, source in enumerate((a, b))
        ]
        view = self.catalog.new_view()
        sides = [
            Rel("", {c: source.fields[c] for c in columns}, source.type, (ROW,))
            for source, columns in zip((a, b), shown)
        ]
        merged = self._streaming(verdict, (a, b), shown, keys, keep)
        self.catalog.call.lazy[quote_ident(view)] = merged  # built for each statement
        glue = spec if with_key else spec.model_copy(update={"on": None})
        return sides[0], sides[1], glue, view

    def _mergeable(self, a: Source, b: Source, keys: Sequence[str]) -> bool:
        """Whether both key columns are integers, not known (by a file's statistics) unsorted."""
        for source, key in ((a, keys[0]), (b, keys[1])):
            if not pa.types.is_integer(source.fields[key].type):
                return False
            if source.parquet and self.catalog.key_ranges(source, key) is None:
                return False  # the file's statistics already say it is not sorted
        return True

    def batches(self, cur: Any, source: Source, columns: Sequence[str]) -> pa.RecordBatchReader:
        """``columns`` of a table in row order, ``STREAM_BATCH`` rows at a time (``cur``:
        the cursor reading a Parquet file)."""
        if not source.parquet:
            return source.arrow.select(list(columns)).to_reader(STREAM_BATCH)  # type: ignore[union-attr]
        names = ", ".join(quote_ident(c) for c in columns)
        return cur.sql(f"SELECT {names} FROM {quote_ident(source.view)}").to_arrow_reader(
            STREAM_BATCH
        )

    def _streaming(
        self,
        verdict: Any,
        sources: tuple[Source, Source],
        shown: Sequence[Sequence[str]],
        keys: Sequence[str] | None,
        keep: tuple[bool, bool],
    ) -> Callable[[Any, str], None]:
        """What registers the paired rows on a cursor under a name (the view, or another
        name for a second scan of it in one statement): the shown columns of both sides,
        as a stream, or as DuckDB's hash join once the stream found the keys unsorted."""

        def register(cur: Any, name: str) -> None:
            if self.verdicts.get(verdict) is False:
                sql = _hash_joined(self.catalog, sources, shown, keys, keep)
                cur.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS {sql}")
                return
            readers, picks, fields, cursors = [], [], [], []
            for i, (alias, source, columns) in enumerate(zip(("__tp_a", "__tp_b"), sources, shown)):
                # the rows' numbers are their positions, counted as they stream: not read
                read = list(dict.fromkeys([ROW if keys is None else keys[i], *columns]))
                if source.parquet:  # a cursor of its own: ``cur`` runs the statement reading it
                    cursors.append(cur.cursor())
                reader = self.batches(cursors[-1] if source.parquet else None, source, read)
                pick = [read.index(c) for c in columns]
                readers.append(reader)
                picks.append(pick)
                fields += [
                    reader.schema.field(j).with_name(f"{alias}.{c}") for c, j in zip(columns, pick)
                ]
                fields.append(pa.field(f"{alias}.{ROW}", pa.int64()))
            schema = pa.schema(fields)
            stream = self._stream(verdict, readers, picks, keep, schema, cursors)
            cur.register(name, pa.RecordBatchReader.from_batches(schema, stream))
            self.catalog.call.gathered = True

        return register

    def _stream(
        self,
        verdict: Any,
        readers: Sequence[pa.RecordBatchReader],
        picks: Sequence[Sequence[int]],
        keep: tuple[bool, bool],
        schema: pa.Schema,
        cursors: Sequence[Any],
    ) -> Iterator[pa.RecordBatch]:
        """The paired batches; keys found unsorted are noted (the statement runs again
        over the hash join) and fail the statement."""
        from panels_core.query.engine.pairing import Unsorted, merged_batches

        ahead = (read_ahead(readers[0]), read_ahead(readers[1]))
        try:
            yield from merged_batches(
                ahead,
                (readers[0].schema, readers[1].schema),
                keep,
                schema,
                (picks[0], picks[1]),
                True,  # numbered: each side's row positions, not read
            )
        except Unsorted as exc:
            self.verdicts.put(verdict, False)
            raise ValueError(f"{exc} {RERUN}") from None
        finally:
            for side in ahead:
                side.close()  # waits for a read in flight: then its cursor may close
            for sub in cursors:
                sub.close()


def read_ahead(batches: Iterable[pa.RecordBatch]) -> Generator[pa.RecordBatch, None, None]:
    """``batches``, the next one read on a thread of its own while the caller works on the
    one it has (both tables are read while the rows read before are paired and DuckDB
    takes them: the reads release the GIL). One batch ahead: memory stays bounded."""
    source = iter(batches)
    with ThreadPoolExecutor(1, thread_name_prefix="panels-merge-read") as pool:
        pending = pool.submit(next, source, None)
        try:
            while (batch := pending.result()) is not None:
                pending = pool.submit(next, source, None)
                yield batch
        finally:
            pending.cancel()  # a read already running finishes as the pool shuts down


def _hash_joined(
    catalog: Catalog,
    sources: tuple[Source, Source],
    shown: Sequence[Sequence[str]],
    keys: Sequence[str] | None,
    keep: tuple[bool, bool],
) -> str:
    """The paired rows as DuckDB's hash join, in the merge's order (key, row of each)."""
    how = {(True, True): "FULL OUTER", (True, False): "LEFT", (False, True): "RIGHT"}
    on = [quote_ident(ROW if keys is None else k) for k in (keys or (ROW, ROW))]
    terms = [
        f"{alias}.{quote_ident(c)} AS {quote_ident(f'{alias}.{c}')}"
        for alias, columns in zip(("__tp_a", "__tp_b"), shown)
        for c in [*columns, ROW]
    ]
    row = quote_ident(ROW)
    a, b = (base(source, catalog.hidden).sql for source in sources)
    return (
        f"SELECT {', '.join(terms)} FROM ({a}) AS __tp_a {how.get(keep, 'INNER')} JOIN ({b}) "
        f"AS __tp_b ON __tp_a.{on[0]} = __tp_b.{on[1]} "
        f"ORDER BY coalesce(__tp_a.{on[0]}, __tp_b.{on[1]}), __tp_a.{row}, __tp_b.{row}"
    )


def merge_may_run(tables: Sequence[Any]) -> bool:
    """Whether a comparison of these tables may be big enough to merge (then the
    merge's kernels are worth loading before it is asked for).

    The registered tables' own lengths count (no query at start-up); a joined
    table is never compared, so it does not."""
    from panels_core.data.table import JoinedTable

    sizes = [len(t) for t in tables if not isinstance(t, JoinedTable)]
    return bool(sizes) and max(sizes) * 2 >= PAIR_MIN_ROWS
