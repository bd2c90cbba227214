"""The merge join of a comparison: rows of two key-sorted tables paired in one pass.

When both tables hold the compare key as an integer column without nulls,
sorted ascending (or the comparison is by row position), ``Merger.paired``
pairs their rows with ``pairing.pair_sorted`` (no hash table) and gathers the
columns a query reads in pair order into one Arrow table, which
``compare.compare`` then glues without a join.
"""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from panels_core.query.engine.cache import LRU, MISS
from panels_core.query.engine.connection import ROW
from panels_core.query.engine.execute import Runner
from panels_core.query.engine.relation import Rel
from panels_core.query.engine.sources import Catalog, Source
from panels_core.query.model import CompareWith
from panels_core.query.sql import Params, quote_ident

__all__ = ["PAIR_MIN_ROWS", "STREAM_BATCH", "Merger", "merge_may_run", "take_key"]

PAIR_MIN_ROWS = 100_000  # smaller comparisons keep DuckDB's hash join (fast enough, no gathering)
STREAM_BATCH = 1 << 20  # rows per batch when a column is streamed into its gathered order
_PAIRINGS_KEPT = 2  # pairings of row positions kept (two arrays of the output's length)
_INT32 = (-(1 << 31), (1 << 31) - 1)


class Merger:
    """Pairs the rows of two key-sorted tables and gathers their columns in pair order."""

    def __init__(self, catalog: Catalog, runner: Runner) -> None:
        self.catalog = catalog
        self.runner = runner
        self.pairings = LRU(_PAIRINGS_KEPT)

    def paired(
        self,
        cur: Any,
        a: Source,
        b: Source,
        spec: CompareWith,
        required: frozenset[int],
        heads: set[str],
    ) -> tuple[Rel, Rel, CompareWith, str] | None:
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
        if a.length + b.length < PAIR_MIN_ROWS or a.numbered or b.numbered:
            return None  # small, or rows whose numbers are not their positions
        keys = (spec.on, spec.on) if isinstance(spec.on, str) else spec.on
        keep = (1 not in required, 0 not in required)  # rows without a partner, per side
        if keys is not None and not self._mergeable(a, b, keys):
            return None
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
        pairing = self._pairs(cur, a, b, keys, keep, (0 if spare != 0 else 1) if with_key else None)
        if pairing is None:
            return None
        view = self.catalog.new_view()
        sides = []
        for i, (source, columns) in enumerate(zip((a, b), shown)):
            fields = {c: source.fields[c] for c in columns}
            if keys is not None and with_key and i == spare:
                fields[keys[i]] = source.fields[keys[i]]  # an all-null child (see gather)
            sides.append(Rel("", fields, source.type, (ROW,)))
        gather = self._gathering(view, (a, b), sides, shown, keys, keep, pairing)
        self.catalog.call.lazy[quote_ident(view)] = gather  # built when a statement reads it
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

    def _pairs(
        self,
        cur: Any,
        a: Source,
        b: Source,
        keys: Sequence[str] | None,
        keep: tuple[bool, bool],
        key_side: int | None,
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[bool, bool], dict[int, pa.Array]] | None:
        """The two sides' row positions in pair order (the last few pairings are kept),
        whether each side's ascend, and, when the keys were read now, side
        ``key_side``'s key column already in pair order. None: the keys do not
        merge (a null, not sorted, out of range)."""
        cache_key = (self.catalog.call.stamp, a.view, b.view, keys, keep)
        kept = self.pairings.get(cache_key)
        if kept is not MISS:
            return kept[0], kept[1], {}
        from panels_core.query.engine.pairing import monotone, pair_positions, pair_sorted

        taken: dict[int, pa.Array] = {}
        if keys is None:
            pairs = pair_positions(a.length, b.length, *keep)
        else:
            # keys that all fit int32 are read and merged at half the bytes
            narrow = self.fits_int32(a, keys[0]) and self.fits_int32(b, keys[1])
            key_a = self.read_key(cur, a, keys[0], narrow)
            key_b = None if key_a is None else self.read_key(cur, b, keys[1], narrow)
            if key_a is None or key_b is None:
                return None
            pairs = pair_sorted(key_a, key_b, *keep)
            if pairs is None:
                return None
            if key_side is not None:  # the key the query reads, taken now: the read keys are freed
                i, source = key_side, (a, b)[key_side]
                taken[i] = take_key(
                    (key_a, key_b)[i], source.fields[keys[i]].type, pairs[i], keep[1 - i]
                )
            del key_a, key_b
        # whether each side's positions ascend (then its number columns can stream)
        ascending = (monotone(pairs[0]), monotone(pairs[1]))
        self.pairings.put(cache_key, (pairs, ascending))
        return pairs, ascending, taken

    def _gathering(
        self,
        view: str,
        sources: tuple[Source, Source],
        sides: Sequence[Rel],
        shown: Sequence[Sequence[str]],
        keys: Sequence[str] | None,
        keep: tuple[bool, bool],
        pairing: tuple[Any, tuple[bool, bool], dict[int, pa.Array]],
    ) -> Callable[[Any], None]:
        """What registers ``view`` on a cursor: the shown columns of both sides in pair order."""
        pairs, ascending, taken = pairing

        def gather(cur: Any) -> None:
            from panels_core.query.engine.pairing import index_array

            flat: dict[str, pa.Array] = {}
            # a side has no-partner (-1) slots only where the other side keeps its rows
            for i, (alias, source, side, columns, rows, partnerless) in enumerate(
                zip(("__tp_a", "__tp_b"), sources, sides, shown, pairs, reversed(keep))
            ):
                index = index_array(rows, partnerless)
                streamable = source.parquet and ascending[i]
                children = {
                    c: taken.pop(i)
                    if i in taken and c == keys[i]  # type: ignore[index]
                    else self.gather(cur, source, c, rows, index, streamable)
                    for c in columns
                }
                children |= {c: pa.nulls(len(rows)) for c in side.fields if c not in children}
                children[ROW] = index
                flat |= {f"{alias}.{c}": values for c, values in children.items()}
            cur.register(view, pa.table(flat))
            self.catalog.call.gathered = True

        return gather

    def read_column(self, cur: Any, source: Source, column: str) -> pa.ChunkedArray:
        """A whole column in row order (of a Parquet file, just that column)."""
        if not source.parquet:
            return source.arrow.column(column)  # type: ignore[union-attr]
        sql = f"SELECT {quote_ident(column)} FROM {quote_ident(source.view)}"
        return self.runner.arrow(cur, sql, Params(), "compare", batch=max(source.length, 1)).column(
            0
        )

    def fits_int32(self, source: Source, key: str) -> bool:
        """Whether every value of an integer key column fits int32: by its type, a Parquet
        file's statistics, or one min/max pass over an Arrow column."""
        kind = source.fields[key].type
        if kind.bit_width < 32 or kind == pa.int32():
            return True
        if source.parquet:
            groups = self.catalog.key_ranges(source, key)  # ascending: the first low, the last high
            return groups is not None and (
                not groups or (_INT32[0] <= groups[0][0] and groups[-1][1] <= _INT32[1])
            )
        bounds = pc.min_max(source.arrow.column(key))  # type: ignore[union-attr]
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        return low is None or (_INT32[0] <= low and high <= _INT32[1])

    def read_key(
        self, cur: Any, source: Source, key: str, narrow: bool = False
    ) -> np.ndarray | None:
        """An integer key column as int64 numpy (int32 when ``narrow``); None when it has
        nulls or does not fit."""
        from panels_core.query.engine.pairing import collect_keys, one_chunk

        kind = pa.int32() if narrow else pa.int64()
        if source.parquet:
            sql_type = "INTEGER" if narrow else "BIGINT"
            sql = (
                f"SELECT TRY_CAST({quote_ident(key)} AS {sql_type}) FROM {quote_ident(source.view)}"
            )
            batches = cur.sql(sql).to_arrow_reader(STREAM_BATCH)
            return collect_keys(batches, source.length, kind.to_pandas_dtype())
        column = source.arrow.column(key)  # type: ignore[union-attr]
        if column.null_count:
            return None
        try:
            column = column.cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # e.g. uint64 past the int64 range
        return one_chunk(column).to_numpy()

    def gather(
        self,
        cur: Any,
        source: Source,
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
        from panels_core.query.engine.pairing import gather_stream, take

        kind = source.fields[column].type
        if streamable and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            sql = f"SELECT {quote_ident(column)} FROM {quote_ident(source.view)}"
            batches = cur.sql(sql).to_arrow_reader(STREAM_BATCH)
            return gather_stream(batches, rows, kind)
        values = self.read_column(cur, source, column)
        if values.type != kind:
            values = values.cast(kind)
        return take(values, rows, index)


def take_key(
    values: np.ndarray, kind: pa.DataType, rows: np.ndarray, partnerless: bool
) -> pa.Array:
    """A key column read as int64 for the pairing, at positions ``rows``, in its own type."""
    from panels_core.query.engine.pairing import index_array, take

    taken = take(pa.array(values), rows, index_array(rows, partnerless))
    return taken if taken.type == kind else taken.cast(kind)


def merge_may_run(tables: Sequence[Any]) -> bool:
    """Whether a comparison of these tables may be big enough to merge (then the
    merge's kernels are worth loading before it is asked for).

    The registered tables' own lengths count (no query at start-up); a joined
    table is never compared, so it does not."""
    from panels_core.data.table import JoinedTable

    sizes = [len(t) for t in tables if not isinstance(t, JoinedTable)]
    return bool(sizes) and max(sizes) * 2 >= PAIR_MIN_ROWS
