"""Aggregates of a query: value counts (per source when compared) and grouped tables."""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.engine.binning import hashable
from panels_core.query.engine.execute import Runner
from panels_core.query.engine.histogram import Histograms
from panels_core.query.engine.plan import Planner
from panels_core.query.engine.relation import (
    Rel,
    group_by,
    list_agg,
    order_expr,
    resolve,
    select_rows,
)
from panels_core.query.model import Query
from panels_core.query.sql import Params, is_numeric, quote_ident

__all__ = ["GROUP_SAMPLE", "Aggregates"]

GROUP_SAMPLE = 100
"""``grouped()`` keeps at most this many values per group of a non-numeric column."""
_PREFIX_START, _PREFIX_MAX = 1 << 16, 1 << 22  # grouped(): rows read to find the samples


class Aggregates:
    """Value counts and grouped tables of a query."""

    def __init__(self, planner: Planner, runner: Runner, histograms: Histograms) -> None:
        self.planner = planner
        self.runner = runner
        self.histograms = histograms

    def value_counts(self, query: Query, names: list[str], top: int) -> ValueCounts:
        """The ``top`` most frequent values of the ``names`` columns."""
        with self.planner.session(query, "value_counts", needs=names) as (cur, params, rel):
            if len(names) == 1 and names[0] in rel.compared:
                return self.compared_counts(cur, params, rel, query, names[0], top)
            exprs = [resolve(rel, n, params, "value_counts column")[0] for n in names]
            select = ", ".join(f"{e} AS __tp_v{i}" for i, e in enumerate(exprs))
            rows = select_rows(rel, query, params, select)
            cols = [f"__tp_v{i}" for i in range(len(exprs))]
            any_null = " OR ".join(f"{c} IS NULL" for c in cols)
            sql = (
                f"WITH __tp_r AS ({rows}) "
                f"SELECT {', '.join(cols)}, count(*) AS __tp_n, "
                f"(SELECT count(*) FROM __tp_r), (SELECT count(*) FROM __tp_r WHERE {any_null}) "
                f"FROM __tp_r WHERE NOT ({any_null}) GROUP BY ALL "
                f"ORDER BY __tp_n DESC, {', '.join(cols)} LIMIT {int(top)}"
            )
            result = self.runner.fetch(cur, sql, params, "value_counts")
            if not result:
                sql = f"SELECT count(*), count(*) FILTER (WHERE {any_null}) FROM ({rows}) AS __tp_r"
                ((total, nulls),) = self.runner.fetch(cur, sql, params, "value_counts")
            else:
                total, nulls = result[0][-2], result[0][-1]
            k = len(cols)
            values = [r[0] if k == 1 else tuple(r[:k]) for r in result]
            counts = np.array([r[k] for r in result], dtype=np.int64)
            return ValueCounts(values, counts, int(total - nulls - counts.sum()), int(nulls))

    def compared_counts(
        self, cur: Any, params: Params, rel: Rel, query: Query, column: str, top: int
    ) -> ValueCounts:
        """Value counts of a compared column, one row of counts per source."""
        rows = select_rows(rel, query, params)
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
        result = self.runner.fetch(cur, sql, params, "value_counts")
        totals = self.runner.fetch(
            cur,
            f"SELECT count(*), count(*) FILTER (WHERE v IS NULL) FROM ({values_sql}) AS __tp_a",
            params,
            "value_counts",
        )
        # NaN is one value (each NaN DuckDB returns is a float object of its own)
        values = list(dict.fromkeys(_one_nan(r[0]) for r in result))
        position = {v: i for i, v in enumerate(values)}
        counts = np.zeros((len(rel.sources), len(values)), dtype=np.int64)
        for value, _, source, count in result:
            counts[source, position[_one_nan(value)]] = count
        total, nulls = totals[0]
        return ValueCounts(
            values, counts, int(total - nulls - counts.sum()), int(nulls), list(rel.sources)
        )

    def grouped(self, query: Query, bins: int | Literal["auto"], sample: int) -> pa.Table:
        """One row per group (see ``Engine.grouped``)."""
        with self.planner.session(query, "grouped", group=False) as (cur, params, pre):
            grouped = group_by(pre, query.group_by, params, sample=sample)
            index, sizes = self.histograms.group_keys(cur, query, params, pre)
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
                table = self.prefix_samples(cur, params, pre, grouped, kept, sample, index, sizes)
            if table is None:
                select = ", ".join(quote_ident(c) for c in kept)
                rows = select_rows(grouped, query, params, select, ordered=True)
                table = self.runner.arrow(cur, rows, params, "grouped")
            if not numeric:
                return table
            hists = self.histograms.grouped_histograms(
                cur, query, params, pre, numeric, bins, index=index
            )
            columns = {c: table.column(c) for c in kept}
            for column, hist in zip(numeric, hists):
                columns[column] = hist_struct(
                    hist, pre.sources if column in pre.compared else None
                )
            return pa.table({c: columns[c] for c in grouped.fields})

    def prefix_samples(
        self,
        cur: Any,
        params: Params,
        pre: Rel,
        grouped: Rel,
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
        order = order_expr(pre.order)
        aggs = [f"{list_agg(quote_ident(c), order, sample)} AS {quote_ident(c)}" for c in columns]
        select = [f"{k} AS __tp_k{i}" for i, k in enumerate(grouped.pre_keys)]
        need = {hashable(k): min(sample, n) for k, n in zip(index, sizes)}
        prefix = _PREFIX_START
        while prefix <= _PREFIX_MAX:
            sql = (
                f"SELECT {', '.join([*select, 'count(*) AS __tp_n', *aggs])} "
                f"FROM (SELECT * FROM ({pre.sql}) AS __tp_p LIMIT {prefix}) AS __tp_l "
                f"GROUP BY {', '.join(grouped.pre_keys)}"
            )
            result = self.runner.arrow(cur, sql, params, "grouped")
            got = {
                hashable(tuple(row[f"__tp_k{i}"] for i in builtins.range(len(keys)))): row
                for row in result.to_pylist()
            }
            if all(key in got and got[key]["__tp_n"] >= n for key, n in need.items()):
                data: dict[str, list[Any]] = {c: [] for c in kept}
                for key, size in zip(index, sizes):
                    row = got[hashable(key)]
                    for i, k in enumerate(keys):
                        data[k].append(key[i])
                    data["count"].append(size)
                    for c in columns:
                        data[c].append(row[c])
                return pa.table({c: pa.array(data[c], type=grouped.fields[c].type) for c in kept})
            prefix *= 8
        return None


def hist_struct(hist: Histogram, sources: tuple[str, ...] | None) -> pa.Array:
    """A grouped column's histograms as a struct ``{edges, counts}`` per group (a
    struct of them per source of a compared column)."""
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
        return all(is_numeric(t.field(i).type) for i in range(t.num_fields))
    return is_numeric(t)


_NAN = float("nan")


def _one_nan(value: Any) -> Any:
    """The one NaN object for any NaN (a dict then finds it), any other value as it is."""
    return _NAN if isinstance(value, float) and value != value else value
