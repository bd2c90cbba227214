"""Histograms of a query's numeric columns: by a column, per compared source, per group."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from panels_core.query.engine.answers import Histogram
from panels_core.query.engine.binning import Binned, Binner, Series, hashable
from panels_core.query.engine.execute import Runner
from panels_core.query.engine.failures import unknown_column
from panels_core.query.engine.plan import Planner
from panels_core.query.engine.relation import Rel, group_by, resolve, select_rows
from panels_core.query.errors import QueryError
from panels_core.query.model import Query
from panels_core.query.sql import Params, is_numeric, quote_ident

__all__ = ["Histograms", "label", "null_last"]


class Histograms:
    """Histograms of a query's columns, and the keys of its groups."""

    def __init__(self, planner: Planner, runner: Runner, binner: Binner) -> None:
        self.planner = planner
        self.runner = runner
        self.binner = binner

    def histogram(
        self,
        query: Query,
        column: str,
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
        by: str | None,
    ) -> Histogram:
        """Bins and counts of a numeric column (see ``Engine.histogram``)."""
        with self.planner.session(
            query, "histogram", group=False, needs=(column,) if by is None else (column, by)
        ) as (cur, params, pre):
            if query.group_by:
                if by is not None:
                    raise QueryError("histogram(): `by` cannot be combined with a grouped query")
                return self.grouped_histograms(
                    cur, query, params, pre, [column], bins, range, width
                )[0]
            series = self.series(pre, column, params)
            keys: list[str] = []
            if by is not None:
                if len(series) > 1:
                    raise QueryError("histogram(): `by` cannot be combined with a compared column")
                keys = [resolve(pre, by, params, "histogram `by` column")[0]]
            rows = select_rows(pre, query, params)
            binned = self.binner.bin(cur, params, rows, keys, series, bins, range, width)
            edges, stats = binned.edges[column], binned.stats
            if by is not None:
                groups = sorted(binned.counts[0], key=null_last)
                counts = np.array([binned.counts[0][g] for g in groups], dtype=np.int64).reshape(
                    len(groups), len(edges) - 1
                )
                labels = [label(g[0]) for g in groups]
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

    def series(self, rel: Rel, column: str, params: Params) -> list[Series]:
        """The numeric value(s) of a column: one per source when it is compared."""
        if column in rel.compared:
            out = []
            for i, source in enumerate(rel.sources):
                _require_number(rel.fields[column].type.field(source).type, column)
                x = f"{quote_ident(column)}.{quote_ident(source)}"
                out.append(
                    Series(column, i, f"CAST({x} AS DOUBLE)", f"present.{quote_ident(source)}", x)
                )
            return out
        sql, arrow_type = resolve(rel, column, params, "histogram column")
        _require_number(arrow_type, column)
        return [Series(column, None, f"CAST({sql} AS DOUBLE)", None, sql)]

    def grouped_histograms(
        self,
        cur: Any,
        query: Query,
        params: Params,
        pre: Rel,
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
        series: list[Series] = []
        for column in columns:
            if column in query.group_by:
                raise QueryError(
                    f"histogram(): `{column}` is a group key (one value per group); histogram a "
                    "grouped column instead, or drop group_by"
                )
            if column not in pre.fields:
                raise unknown_column(column, pre.fields, "histogram column")
            series += self.series(pre, column, params)
        keys = [resolve(pre, k, params, "group_by column")[0] for k in query.group_by]
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
            index = self.group_keys(cur, query, params, pre)[0]
        order = quote_ident(pre.order[0]) if first_seen else None
        binned = self.binner.bin(cur, params, pre.sql, keys, series, bins, range, width, order)
        if index is None:
            index = binned.first
        position = {hashable(k): i for i, k in enumerate(index)}
        labels = [", ".join(label(v) for v in key) for key in index]
        return [_per_group(binned, c, series, position, labels, pre.sources) for c in columns]

    def group_keys(
        self, cur: Any, query: Query, params: Params, pre: Rel
    ) -> tuple[list[tuple[Any, ...]], list[int]]:
        """The key tuples and sizes of the query's groups, in output order."""
        sorted_on = [k.column.split(".")[0] for k in query.sort]
        grouped = group_by(pre, query.group_by, params, sample=1, only=sorted_on)
        select = ", ".join(quote_ident(k) for k in (*grouped.keys, "count"))
        rows = self.runner.fetch(
            cur, select_rows(grouped, query, params, select, ordered=True), params, "grouped"
        )
        return [tuple(r[:-1]) for r in rows], [int(r[-1]) for r in rows]


def _per_group(
    binned: Binned,
    column: str,
    series: Sequence[Series],
    position: dict[Any, int],
    labels: list[str],
    sources: tuple[str, ...],
) -> Histogram:
    """One grouped column's histogram: a row of counts per group (``position``: a
    group key's row), per group and source when the column is compared."""
    parts = [(i, s) for i, s in enumerate(series) if s.column == column]
    n = len(binned.edges[column]) - 1
    counts = np.zeros((len(labels), len(parts), n), dtype=np.int64)
    for j, (i, _) in enumerate(parts):
        for key, row in binned.counts[i].items():
            if key in position:
                counts[position[key], j] = row
    stats = [binned.stats[i] for i, _ in parts]
    names = labels
    if len(parts) > 1:
        names = [f"{label} / {sources[s.source]}" for label in labels for _, s in parts]
    return Histogram(
        edges=binned.edges[column],
        counts=counts.reshape(len(labels) * len(parts), n),
        groups=names,
        nulls=sum(s[0] for s in stats),
        nonfinite=sum(s[1] for s in stats),
        outside=sum(s[2] for s in stats) - int(counts.sum()),
    )


def label(value: Any) -> str:
    """A group key's value as a histogram row's label."""
    return "null" if value is None else str(value)


def null_last(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """A sort key ordering key tuples with null values last."""
    return tuple((v is None, v) for v in key)


def _require_number(t: pa.DataType, column: str) -> None:
    if not (is_numeric(t) or pa.types.is_boolean(t)):
        raise QueryError(
            f"histogram(): `{column}` holds {t}, not numbers; use value_counts() for "
            "categories and strings"
        )
