"""The engine's answers computed on a Dask cluster, one task per Parquet file.

``ClusterAnswers`` answers what ``Engine`` asks of its rows (``LocalAnswers``'
methods): a query over one Parquet table (a dataset or a file), without
groups, runs as one task per file (``tasks``) whose partial answers the
client combines (``combine``); a comparison or a join of two Parquet tables
runs as one task per pair of key partitions, co-partitioned and kept on the
workers (``pairs``); a join's match counts are a Dask dataframe merge of the
two tables' keys (``joins``). Anything else (in-memory tables, grouped
tables) is answered by DuckDB in this process over the same files, exactly
as without a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from panels_core.query.cluster import tasks
from panels_core.query.cluster.client import Tasks
from panels_core.query.cluster.combine import (
    merged_counts,
    merged_group_histogram,
    merged_groups,
    merged_histogram,
    merged_page,
    page_span,
)
from panels_core.query.cluster.joins import join_counts
from panels_core.query.cluster.pairs import Comparisons
from panels_core.query.engine.aggregate import hist_struct
from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.engine.binning import numpy_edges, quartiles
from panels_core.query.engine.parts import Parts
from panels_core.query.engine.relation import group_by
from panels_core.query.errors import QueryError
from panels_core.query.expr import Binary, In, InSelection, Lit, RowNumber, walk
from panels_core.query.model import Query
from panels_core.query.sql import is_numeric

__all__ = ["ClusterAnswers", "named_rows"]

ALL = 2**62
"""A limit no table reaches: every row."""


class ClusterAnswers:
    """Rows and aggregates of Parquet tables computed where the files are."""

    def __init__(self, client: Any, parts: Parts) -> None:
        self.tasks = Tasks(client)
        self.parts = parts
        self.local = parts.answers
        self.comparisons = Comparisons(self.tasks, parts)

    # ------------------------------------------------------------- which way

    def shards(self, query: Query, what: str, whole: bool = False) -> list[Any] | None:
        """What a query runs over, one task each: the files of its table, or the key
        partitions of its comparison (``pairs``); None when it runs here instead.
        ``what``: the call (named in errors); ``whole``: the answer needs every row (no
        offset/limit of the query's own)."""
        if query.group_by:
            return None
        first = query.selection.as_filter() if query.selected_first and query.selection else None
        exprs = [e for e in (query.filter, first) if e is not None]
        if any(isinstance(n, InSelection) for e in exprs for n in walk(e)):
            return None  # the projection's points are registered in this process only
        if whole and (query.offset or query.limit is not None):
            return None
        with self.parts.planner.session(query, what):
            pass  # the query's own mistakes are told here, as the local engine tells them
        if query.compare_with is not None or query.join is not None:
            return self.comparisons.pairs(query)
        files = tasks.files_of(self.parts.catalog.source(query.table))
        rows = named_rows(query.filter)
        return files if files is None or rows is None else tasks.holding(files, rows)

    def fields(self, query: Query) -> list[str]:
        """The columns of the query's rows (a comparison's: its key, compared columns,
        ``present``; a join's: a struct per side)."""
        if query.compare_with is None and query.join is None:
            return list(self.parts.catalog.source(query.table).fields)
        with self.parts.planner.session(query, "page") as (_, _, rel):
            return list(rel.fields)

    # ------------------------------------------------------------- rows

    def count(self, query: Query) -> int:
        shards = self.shards(query, "count")
        if shards is None:
            return self.local.count(query)
        if query.filter is None and query.compare_with is None and query.join is None:
            total = self.parts.catalog.source(query.table).length  # the footers say: no task
        else:
            total = sum(self.tasks.map(tasks.count_part, shards, query=query))
        start, stop = page_span(query, 0, total)
        return max(min(total, stop) - start, 0)

    def page(
        self, query: Query, offset: int, limit: int, columns: Sequence[str] | None
    ) -> pa.Table:
        if offset < 0 or limit < 0:
            raise QueryError(f"page(): offset and limit must be >= 0, got {offset} and {limit}")
        if columns is not None and not list(columns):
            raise QueryError("page(): columns=[] selects nothing; name at least one column")
        shards = self.shards(query, "page")
        if shards is None:
            return self.local.page(query, offset, limit, columns)
        start, stop = page_span(query, offset, limit)
        names = self.fields(query) if columns is None else list(dict.fromkeys(columns))
        parts = self.tasks.map(tasks.page_part, shards, query=query, stop=stop, columns=names)
        return merged_page(parts, query, start, stop, names if columns is None else list(columns))

    def compared(self, query: Query) -> pa.Table:
        if query.compare_with is None:
            return self.local.compared(query)  # which tells what to set
        shards = self.shards(query, "compared")
        if shards is None:
            return self.local.compared(query)
        start, stop = page_span(query, 0, ALL)
        names = self.fields(query)
        parts = self.tasks.map(tasks.page_part, shards, query=query, stop=stop, columns=names)
        return merged_page(parts, query, start, stop, names)

    def join_counts(self, query: Query) -> tuple[int, int, int]:
        left, lk, right, rk = self.parts.pager.join_sides(query)
        sides = [(tasks.files_of(s), k, s.fields.get(k)) for s, k in ((left, lk), (right, rk))]
        if any(files is None or field is None for files, _, field in sides):
            return self.local.join_counts(query)  # not Parquet, or a key it tells about
        (a, ka, fa), (b, kb, fb) = sides
        return join_counts(
            self.tasks, (a, ka, fa.type, left.length), (b, kb, fb.type, right.length)
        )

    def row_numbers(self, query: Query) -> np.ndarray:
        return self.local.row_numbers(query)  # in the order of this process's column_numpy

    def column_numpy(self, query: Query, column: str) -> np.ndarray:
        # in this process's order
        ordered = query.sort or query.compare_with is not None or query.join is not None
        shards = None if ordered else self.shards(query, "column_numpy", whole=True)
        if shards is None:
            return self.local.column_numpy(query, column)
        parts = self.tasks.map(tasks.column_part, shards, query=query, column=column)
        return np.concatenate(parts)

    # ------------------------------------------------------------- aggregates

    def value_counts(self, query: Query, names: list[str], top: int) -> ValueCounts:
        shards = self.shards(query, "value_counts", whole=True)
        if shards is None:
            return self.local.value_counts(query, names, top)
        parts = self.tasks.map(tasks.values_part, shards, query=query, names=names)
        return merged_counts(parts, top, several=len(names) > 1)

    def histogram(
        self,
        query: Query,
        column: str,
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
        by: str | None,
    ) -> Histogram:
        grouped = bool(query.group_by)
        plain = query.model_copy(update={"group_by": ()})
        shards = None
        # a comparison's or join's groups run here, and its `by` (the local engine tells
        # which `by` a compared column refuses)
        two = query.compare_with is not None or query.join is not None
        local = two and (grouped or by is not None)
        if not local and (
            not grouped or (by is None and not query.sort and column not in query.group_by)
        ):
            shards = self.shards(plain, "histogram", whole=True)
        if shards is None:
            return self.local.histogram(query, column, bins, range, width, by)
        edges, span = self.edges(shards, plain, column, bins, range, width)
        common = {"query": query, "column": column, "span": span, "bins": len(edges) - 1}
        parts = self.tasks.map(tasks.bins_part, shards, width=width, by=by, **common)
        if grouped:  # per group, groups in the order of their first row
            return merged_group_histogram(edges, parts)
        return merged_histogram(edges, parts, by is not None, self.sources(query, column))

    def sources(self, query: Query, column: str) -> list[str] | None:
        """The sources of a compared column (a histogram row each); None for any other."""
        if query.compare_with is None:
            return None
        with self.parts.planner.session(query, "histogram") as (_, _, rel):
            return list(rel.sources) if column in rel.compared else None

    def edges(
        self,
        shards: list[tasks.Shard],
        query: Query,
        column: str,
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
    ) -> tuple[np.ndarray, tuple[float, float]]:
        """numpy's edges over the filtered rows of every file (a first pass for their
        finite min/max, and for auto bins their count and quartiles), and the span the
        files bin over to find the same edges."""
        auto = bins == "auto" and width is None
        span = range
        found: tuple[str, tuple[float, float] | None, int] = (column, None, 0)
        if range is None or auto:
            bounds = self.tasks.map(
                tasks.bounds_part, shards, query=query, column=column, auto=auto
            )
            lows = [b[0] for b in bounds if b[0] is not None]
            highs = [b[1] for b in bounds if b[1] is not None]
            span = range or ((min(lows), max(highs)) if lows else None)
            if auto:
                sample = np.concatenate([b[3] for b in bounds])
                found = (column, quartiles({column: sample}).get(column), sum(b[2] for b in bounds))
        edges = numpy_edges(found, [span or (None, None)], bins, range, width)
        return edges, span or (float(edges[0]), float(edges[-1]))

    def grouped(self, query: Query, bins: int | Literal["auto"], sample: int) -> pa.Table:
        plain = query.model_copy(update={"sort": (), "offset": 0, "limit": None})
        shards = None
        # sorted on the keys or sizes (sorted on a list, or selected first: here)
        if not query.selected_first and all(
            k.column in (*query.group_by, "count") for k in query.sort
        ):
            shards = self.shards(plain.model_copy(update={"group_by": ()}), "grouped")
        if shards is None or query.compare_with is not None or query.join is not None:
            return self.local.grouped(query, bins, sample)
        with self.parts.planner.session(plain, "grouped", group=False) as (_, params, pre):
            fields = group_by(pre, query.group_by, params, sample=sample).fields
        parts = self.tasks.map(tasks.groups_part, shards, query=plain, sample=sample)
        rows, places = merged_groups(parts, query, sample)
        columns = {c: pa.array([r[c] for r in rows], type=f.type) for c, f in fields.items()}
        if max((r["count"] for r in rows), default=0) > sample:  # of the groups kept
            # every numeric column a histogram per group, edges shared (``docs/engine.md``)
            for name, field in pre.fields.items():
                if name not in query.group_by and is_numeric(field.type):
                    hist = self.histogram(plain, name, bins, None, None, None)
                    columns[name] = hist_struct(hist, None).take(pa.array(places, pa.int64()))
        return pa.table(columns)


def named_rows(expr: Any) -> np.ndarray | None:
    """The sorted row numbers a filter keeps at most when it names them (``row_number() ==
    N`` or ``row_number() in (...)``, alone or and-ed with other conditions: a hover's or a
    click's one row); None when it does not."""
    if expr is None:
        return None
    if isinstance(expr, Binary) and expr.op == "and":
        sides = [r for r in (named_rows(expr.left), named_rows(expr.right)) if r is not None]
        return np.intersect1d(*sides) if len(sides) == 2 else (sides[0] if sides else None)
    if isinstance(expr, Binary) and expr.op == "==":
        pair = {type(expr.left), type(expr.right)}
        if pair == {RowNumber, Lit}:
            value = expr.right if isinstance(expr.right, Lit) else expr.left
            return _ints([value])
    if isinstance(expr, In) and not expr.negated and isinstance(expr.operand, RowNumber):
        return _ints(expr.values)
    return None


def _ints(values: Sequence[Any]) -> np.ndarray | None:
    """The sorted integer values of literals; None when one is not an integer literal."""
    if not all(isinstance(v, Lit) and type(v.value) is int for v in values):
        return None
    return np.unique(np.array([v.value for v in values], dtype=np.int64))
