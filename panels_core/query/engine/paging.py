"""Rows out of a query: counts, pages (sorted pages in two passes), whole columns."""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.data.infer import is_list_type
from panels_core.query.engine.cache import LRU, MISS, query_key
from panels_core.query.engine.compare import columns_read
from panels_core.query.engine.connection import ROW
from panels_core.query.engine.execute import Runner
from panels_core.query.engine.plan import Planner
from panels_core.query.engine.relation import FIRST, Pick, Rel, base, resolve, select_rows
from panels_core.query.engine.sources import Catalog, Source
from panels_core.query.errors import QueryError
from panels_core.query.expr import Col, walk
from panels_core.query.model import Query
from panels_core.query.sql import Params, is_numeric, quote_ident

__all__ = ["FIRST_PAGE", "Pager", "restore_metadata"]

FIRST_PAGE = 50
"""``count()`` of a join or comparison also finds this many first rows for ``page()``."""


class Pager:
    """Counts, pages, the rows of a comparison and whole columns of a query."""

    def __init__(self, catalog: Catalog, runner: Runner, planner: Planner, cache: LRU) -> None:
        self.catalog = catalog
        self.runner = runner
        self.planner = planner
        self.cache = cache

    def count(self, query: Query) -> int:
        """Rows (or groups) the query gives, after offset/limit."""
        with self.planner.session(query, "count", needs=()) as (cur, params, rel):
            if not rel.natural and not query.group_by:
                # a join or comparison: the join is the cost, so the same pass also finds
                # the first page's rows (a table card asks for both)
                _, n, _ = self.positions(cur, params, rel, query, 0, FIRST_PAGE)
                if n is not None:
                    return n
            sql = select_rows(rel, query, params, select="1")
            ((n,),) = self.runner.fetch(
                cur, f"SELECT count(*) FROM ({sql}) AS __tp_c", params, "count"
            )
            return int(n)

    def page(
        self, query: Query, offset: int = 0, limit: int = 50, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Rows ``offset .. offset+limit`` of the query's rows (within its own offset/limit)."""
        if offset < 0 or limit < 0:
            raise QueryError(f"page(): offset and limit must be >= 0, got {offset} and {limit}")
        with self.planner.session(query, "page", needs=()) as (cur, params, rel):
            names = list(rel.fields) if columns is None else list(columns)
            if not names:
                raise QueryError("page(): columns=[] selects nothing; name at least one column")
            select = []
            for name in names:
                sql, _ = resolve(rel, name, params, "page column")
                select.append(f"{sql} AS {quote_ident(name)}")
            if query.group_by or (rel.natural and not query.sort):
                sql = select_rows(
                    rel, query, params, ", ".join(select), offset, limit, ordered=True
                )
                result = self.runner.arrow(cur, sql, params, "page")
            else:
                result = self.page_by_position(cur, params, rel, query, names, offset, limit)
            if rel.plain:
                result = restore_metadata(result, rel.fields)
            return result

    def positions(
        self,
        cur: Any,
        params: Params,
        rel: Rel,
        query: Query,
        offset: int,
        limit: int,
        carry: Sequence[str] = (),
    ) -> tuple[list[tuple[Any, ...]], int | None, pa.Table | None]:
        """The order tuples of a sorted page's rows, the query's count when known, and
        the ``carry`` columns of those rows when this pass read them.

        One top-N pass (``ORDER BY .. LIMIT``); over a join or comparison it also
        counts every row (``_counted_top``), and both answers are kept, so a page
        after a count (or a count after a page) does not run the join again.
        The count is None over one table (its count is a cheap scan of its own)
        and when the page is empty past the first row (the total is unknown).
        Over one table the pass also returns ``carry`` (columns the filter or sort
        reads anyway), so the page's second pass need not read them again.
        """
        qkey = query_key(query, "page")
        stamp = self.catalog.call.stamp
        kept = self.cache.get((stamp, "positions", qkey, offset, limit))
        if kept is not MISS:
            return kept, None, None
        order = ", ".join(quote_ident(o) for o in rel.order)
        if rel.natural:
            carried = [f"{quote_ident(c)} AS __tp_c{i}" for i, c in enumerate(carry)]
            select = ", ".join([order, *carried])
            first = select_rows(rel, query, params, select, offset, limit, ordered=True)
            head = self.runner.arrow(cur, first, params, "page")
            positions = list(
                zip(*(head.column(i).to_pylist() for i in builtins.range(len(rel.order))))
            )
            self.cache.put((stamp, "positions", qkey, offset, limit), positions)
            if not carry:
                return positions, None, None
            head = pa.Table.from_arrays(
                [head.column(f"__tp_c{i}") for i in builtins.range(len(carry))], names=list(carry)
            )
            return positions, None, head
        first = _counted_top(rel, query, params, offset, limit)
        rows = self.runner.fetch(cur, first, params, "page")
        positions = [tuple(r[:-1]) for r in rows]
        self.cache.put((stamp, "positions", qkey, offset, limit), positions)
        total = int(rows[0][-1]) if rows else (0 if query.offset + offset == 0 else None)
        if total is None:
            return positions, None, None
        n = max(total - query.offset, 0)
        if query.limit is not None:
            n = min(n, query.limit)
        self.cache.put((stamp, "count", qkey), n)
        return positions, n, None

    def page_by_position(
        self,
        cur: Any,
        params: Params,
        rel: Rel,
        query: Query,
        names: list[str],
        offset: int,
        limit: int,
    ) -> pa.Table:
        """A sorted page in two passes: the rows' positions first (reading only the
        filter and sort columns, and keeping those of them the page shows), then
        the other asked columns at those positions."""
        carry = _read_by(query, rel.fields, names) if rel.natural else []
        positions, _, head = self.positions(cur, params, rel, query, offset, limit, carry)
        rest = list(dict.fromkeys(n for n in names if head is None or n not in carry))
        table = None
        if rest:
            second = Params()
            picked = query.model_copy(update={"filter": None, "sort": ()})
            pick = Pick(positions, second, compare=query.compare_with is not None)
            rel2 = self.planner.plan(picked, second, cur, pick=pick)
            select = [
                f"{resolve(rel2, n, second, 'page column')[0]} AS {quote_ident(n)}" for n in rest
            ]
            select += [f"{quote_ident(o)} AS __tp_o{i}" for i, o in enumerate(rel.order)]
            sql = f"SELECT {', '.join(select)} FROM ({rel2.sql}) AS __tp_q"
            table = self.runner.arrow(cur, sql, second, "page")
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
        with self.planner.session(query, "compared") as (cur, params, rel):
            select = ", ".join(quote_ident(c) for c in rel.fields)
            return self.runner.arrow(
                cur, select_rows(rel, query, params, select, ordered=True), params, "compared"
            )

    def join_sides(self, query: Query) -> tuple[Source, str, Source, str]:
        """(left table, its key, right table, its key) of the query's join."""
        source = self.catalog.source(query.table)
        if source.sides is not None:
            left, right = (self.catalog.hidden[v] for v in source.sides)
            return left, source.table.left_key, right, source.table.right_key
        if query.join is not None:
            on = query.join.on
            lk, rk = (on, on) if isinstance(on, str) else on
            return source, lk, self.catalog.source(query.join.table), rk
        raise QueryError(
            "join_counts(): the query joins nothing; set join=... or use a JoinedTable"
        )

    def join_counts(self, query: Query) -> tuple[int, int, int]:
        """(matched rows, left-only rows, right-only rows) of the query's join, before filters."""
        left, lk, right, rk = self.join_sides(query)
        with self.catalog.cursor() as cur:
            a, b = base(left, self.catalog.hidden), base(right, self.catalog.hidden)
            sql = (
                f"SELECT count(*) FILTER (WHERE __tp_a.{quote_ident(ROW)} IS NOT NULL "
                f"AND __tp_b.{quote_ident(ROW)} IS NOT NULL), "
                f"count(*) FILTER (WHERE __tp_b.{quote_ident(ROW)} IS NULL), "
                f"count(*) FILTER (WHERE __tp_a.{quote_ident(ROW)} IS NULL) "
                f"FROM ({a.sql}) AS __tp_a FULL OUTER JOIN ({b.sql}) AS __tp_b "
                f"ON __tp_a.{quote_ident(lk)} = __tp_b.{quote_ident(rk)}"
            )
            ((both, left_only, right_only),) = self.runner.fetch(cur, sql, Params(), "join_counts")
            return int(both), int(left_only), int(right_only)

    def column_numpy(self, query: Query, column: str) -> np.ndarray:
        """A column as numpy: numbers -> float64 (null -> nan); embeddings -> (n, dim) float32.

        Strings, categories, booleans and timestamps come back as numpy object or
        datetime arrays; image columns are refused (they are never decoded here).
        """
        with self.planner.session(query, "column_numpy", needs=(column,)) as (cur, params, rel):
            sql, arrow_type = resolve(rel, column, params, "column")
            if is_list_type(arrow_type):
                return self.embedding(cur, rel, query, params, sql, arrow_type, column)
            if pa.types.is_struct(arrow_type) or pa.types.is_map(arrow_type):
                raise QueryError(
                    f"column_numpy(): `{column}` holds records ({arrow_type}); ask for one of its "
                    "fields (e.g. `column.field`) or use page()"
                )
            if is_numeric(arrow_type):
                sql = f"CAST({sql} AS DOUBLE)"
            rows = select_rows(rel, query, params, f"{sql} AS v", ordered=True)
            values = self.runner.arrow(cur, rows, params, "column_numpy").column(0)
            if is_numeric(arrow_type):
                return (
                    values.to_numpy().astype(np.float64, copy=False)
                    if values.null_count == 0
                    else values.to_numpy(zero_copy_only=False)
                )
            return values.to_numpy(zero_copy_only=False)

    def row_numbers(self, query: Query) -> np.ndarray:
        """The table row numbers of the query's rows (int64), in ``column_numpy``'s order."""
        with self.planner.session(query, "row_numbers", needs=()) as (cur, params, rel):
            if rel.order != (ROW,) or (query.group_by and rel.keys):
                raise QueryError(
                    "row_numbers(): only the rows of one table have row numbers, not a "
                    "comparison, a join or groups"
                )
            rows = select_rows(rel, query, params, f"{quote_ident(ROW)} AS r", ordered=True)
            values = self.runner.arrow(cur, rows, params, "row_numbers").column(0)
            return values.to_numpy().astype(np.int64, copy=False)

    def embedding(
        self,
        cur: Any,
        rel: Rel,
        query: Query,
        params: Params,
        sql: str,
        arrow_type: pa.DataType,
        column: str,
    ) -> np.ndarray:
        """An embedding column (lists of numbers, one length) as an (n, dim) float32 matrix."""
        if not is_numeric(arrow_type.value_type):
            raise QueryError(
                f"column_numpy(): `{column}` is a list of {arrow_type.value_type}, not of numbers"
            )
        if pa.types.is_fixed_size_list(arrow_type):
            dim = arrow_type.list_size
        else:
            rows = select_rows(rel, query, params, f"len({sql}) AS n")
            stats = f"SELECT min(n), max(n) FROM ({rows}) AS __tp_l"
            ((lo, hi),) = self.runner.fetch(cur, stats, params, "column_numpy")
            if lo != hi:
                raise QueryError(
                    f"column_numpy(): `{column}` is ragged: its lists have {lo} to {hi} items; "
                    "an embedding needs one length per row (pad or filter the rows)"
                )
            dim = int(lo or 0)
        rows = select_rows(rel, query, params, f"CAST({sql} AS FLOAT[{dim}]) AS v", ordered=True)
        chunks = self.runner.arrow(cur, rows, params, "column_numpy").column(0).chunks
        return _fill_matrix(chunks, dim)


def _fill_matrix(chunks: list[Any], dim: int) -> np.ndarray:
    """Fixed-size-list chunks as one writable (n, dim) float32 matrix, a null list as a row of
    NaN. Each chunk is copied into place and let go at once, so the rows are held about once
    (not twice, as joining the chunks and then converting them would), and the matrix is
    writable, so a caller such as scikit-learn need not copy it again."""
    matrix = np.empty((sum(len(chunk) for chunk in chunks), dim), dtype=np.float32)
    start = 0
    for i, chunk in enumerate(chunks):
        chunks[i] = None  # the list no longer holds it
        n = len(chunk)
        if n and dim:
            flat = chunk.values.to_numpy(zero_copy_only=False)
            block = matrix[start : start + n]
            block[...] = flat[chunk.offset * dim : (chunk.offset + n) * dim].reshape(n, dim)
            if chunk.null_count:
                block[chunk.is_null().to_numpy(zero_copy_only=False)] = np.nan
        del chunk
        start += n
    return matrix


def _read_by(query: Query, fields: Mapping[str, pa.Field], names: Sequence[str]) -> list[str]:
    """The asked columns the query's filter or sort reads whole (a top-level name)."""
    read = {key.column for key in query.sort}
    if query.filter is not None:
        read |= {
            node.path[0]
            for node in walk(query.filter)
            if isinstance(node, Col) and node.source is None and len(node.path) == 1
        }
    return [n for n in dict.fromkeys(names) if n in read and n in fields]


def _counted_top(rel: Rel, query: Query, params: Params, offset: int, limit: int) -> str:
    """The order tuples of the sorted rows ``offset .. offset+limit`` of a join or
    comparison, each with the count of all its rows, in one pass over the join.

    The rows are kept once (a materialized CTE of the order columns and those the
    sort reads) for both the count and the top rows: a ``count(*) OVER ()`` window
    did the same at 1.5-1.7x the time (issue #16)."""
    sort = query.model_copy(update={"filter": None})
    heads = columns_read(sort, rel.fields, (), sort=not rel.presorted)
    kept = [*rel.order, *([FIRST] if rel.first else []), *(c for c in rel.fields if c in heads)]
    names = ", ".join(quote_ident(c) for c in dict.fromkeys(kept))
    order = ", ".join(quote_ident(o) for o in rel.order)
    select = f"{order}, (SELECT count(*) FROM __tp_m) AS __tp_n"
    rows = dataclasses.replace(rel, sql="SELECT * FROM __tp_m")
    top = select_rows(rows, query, params, select, offset, limit, ordered=True)
    return f"WITH __tp_m AS MATERIALIZED (SELECT {names} FROM ({rel.sql}) AS __tp_j) {top}"


def restore_metadata(table: pa.Table, fields: Mapping[str, pa.Field]) -> pa.Table:
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
