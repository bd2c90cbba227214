"""Partial answers of many files combined into the answer of the whole table.

Orders follow DuckDB's, so a combined answer equals the local engine's:
ascending values are numbers, then NaN, then null (``NULLS LAST``); descending
ones NaN, then numbers, then null; ties keep row order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.query.cluster.tasks import KEY, ORDER, SELECTED
from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.engine.binning import hashable
from panels_core.query.engine.histogram import label, null_last
from panels_core.query.model import Query

__all__ = [
    "group_key",
    "merged_counts",
    "merged_group_histogram",
    "merged_groups",
    "merged_histogram",
    "merged_page",
    "page_span",
    "rank",
]

_NAN = float("nan")


def rank(value: Any) -> int:
    """0 for a value, 1 for NaN, 2 for null."""
    if value is None:
        return 2
    return 1 if isinstance(value, float) and math.isnan(value) else 0


def _stable_sort(order: list[int], values: Sequence[Any], descending: bool) -> list[int]:
    """``order`` stably sorted by ``values`` in DuckDB's order for one sort key."""
    groups: list[list[int]] = [[], [], []]
    for i in order:
        groups[rank(values[i])].append(i)
    groups[0].sort(key=values.__getitem__, reverse=descending)  # stable, reversed or not
    first = (groups[1], groups[0]) if descending else (groups[0], groups[1])
    return [*first[0], *first[1], *groups[2]]


def page_span(query: Query, offset: int, limit: int) -> tuple[int, int]:
    """The rows ``start .. stop`` of the whole query a page is (its own offset/limit kept)."""
    start = query.offset + offset
    stop = start + limit
    if query.limit is not None:
        stop = max(min(stop, query.offset + query.limit), start)
    return start, stop


def merged_page(
    parts: Sequence[pa.Table], query: Query, start: int, stop: int, names: list[str]
) -> pa.Table:
    """Rows ``start .. stop`` of the parts' first rows in the query's order (the selected
    rows first with ``selected_first``; ties in row order: the row number, or a
    comparison's row of each source, null last)."""
    rows = pa.concat_tables(parts, promote_options="permissive")
    ties = [c for c in rows.column_names if c.startswith(ORDER)]
    columns = [rows.column(c).fill_null(np.iinfo(np.int64).max).to_numpy() for c in ties]
    order = np.lexsort(columns[::-1]).tolist() if columns else list(range(rows.num_rows))
    for i in reversed(range(len(query.sort))):
        values = rows.column(f"{KEY}{i}").to_pylist()
        order = _stable_sort(order, values, query.sort[i].descending)
    if SELECTED in rows.column_names:  # the selected rows first, each part in its order
        selected = rows.column(SELECTED).to_pylist()
        order = [i for i in order if selected[i]] + [i for i in order if not selected[i]]
    chosen = pa.array(order[start:stop], type=pa.int64())
    return rows.select(names).take(chosen)


Counted = tuple[list[Any], np.ndarray, int, "list[str] | None"]
"""A part's values, their counts (a row per source of a compared column), its rows with
a null, and the sources."""


def merged_counts(parts: Sequence[Counted], top: int, several: bool) -> ValueCounts:
    """The parts' value counts summed; most frequent first (over every source of a
    compared column), ties by value, cut at ``top``."""
    sources = next((p[3] for p in parts if p[3] is not None), None)
    width = 1 if sources is None else len(sources)
    totals: dict[Any, np.ndarray] = {}
    nulls = 0
    for values, counts, part_nulls, _ in parts:
        nulls += part_nulls
        rows = np.asarray(counts, dtype=np.int64).reshape(width, len(values))
        for i, value in enumerate(values):
            key = tuple(map(_one_nan, value)) if several else _one_nan(value)
            totals[key] = totals.get(key, np.zeros(width, dtype=np.int64)) + rows[:, i]
    keys = sorted(totals, key=lambda v: _value_order(v, several))
    keys.sort(key=lambda v: int(totals[v].sum()), reverse=True)
    kept = keys[:top]
    table = np.array([totals[k] for k in kept], dtype=np.int64).reshape(len(kept), width).T
    other = sum(int(t.sum()) for t in totals.values()) - int(table.sum())
    counts = table[0] if sources is None else table
    return ValueCounts(kept, counts, int(other), int(nulls), sources)


def _one_nan(value: Any) -> Any:
    """NaN as one value (``float("nan") != float("nan")``: each would count apart)."""
    return _NAN if rank(value) == 1 else value


def _value_order(value: Any, several: bool) -> tuple[Any, ...]:
    """A value (tuple) ordered as DuckDB orders it ascending (NaN after numbers)."""
    items = value if several else (value,)
    return tuple((rank(v), v if rank(v) == 0 else 0) for v in items)


Binned = tuple[list[dict[tuple[Any, ...], np.ndarray]], list[tuple[int, int, int]], list[Any]]
"""A part's bin counts per key and its (nulls, nonfinite, finite) values, per series (one,
or one per source of a compared column), and its keys by their first row."""


def merged_histogram(
    edges: np.ndarray, parts: Sequence[Binned], by: bool, sources: list[str] | None = None
) -> Histogram:
    """The parts' bin counts added (per ``by`` value: sorted, null last; per source of a
    compared column when ``sources`` names them)."""
    bins = len(edges) - 1
    n = 1 if sources is None else len(sources)
    totals: list[dict[tuple[Any, ...], np.ndarray]] = [{} for _ in range(n)]
    for counts, _, _ in parts:
        for total, part in zip(totals, counts, strict=True):
            for key, row in part.items():
                total[key] = total.get(key, np.zeros(bins, dtype=np.int64)) + row
    nulls, nonfinite, finite = (sum(s[i] for p in parts for s in p[1]) for i in range(3))
    labels: list[str] | None = None
    if by:
        groups = sorted(totals[0], key=null_last)
        counts = np.array([totals[0][g] for g in groups], dtype=np.int64).reshape(len(groups), bins)
        labels = [label(g[0]) for g in groups]
    elif sources is not None:
        counts = np.stack([t.get((), np.zeros(bins, dtype=np.int64)) for t in totals])
        labels = list(sources)
    else:
        counts = totals[0].get((), np.zeros(bins, dtype=np.int64))
    return Histogram(
        edges=edges,
        counts=counts,
        groups=labels,
        nulls=int(nulls),
        nonfinite=int(nonfinite),
        outside=int(finite) - int(counts.sum()),
    )


def merged_group_histogram(edges: np.ndarray, parts: Sequence[Binned]) -> Histogram:
    """A grouped query's per-group counts added; groups by their first row in the table
    (the files come in row order, so the first file holding a group says where it goes)."""
    groups: dict[Any, tuple[Any, ...]] = {}
    for _, _, first in parts:
        for key in first:
            groups.setdefault(group_key(key), key)
    nulls, nonfinite, finite = (sum(p[1][0][i] for p in parts) for i in range(3))
    bins = len(edges) - 1
    counts = np.zeros((len(groups), bins), dtype=np.int64)
    position = {key: i for i, key in enumerate(groups)}
    for part_counts, _, _ in parts:
        for key, row in part_counts[0].items():
            if group_key(key) in position:
                counts[position[group_key(key)]] += row
    return Histogram(
        edges=edges,
        counts=counts,
        groups=[", ".join(label(v) for v in key) for key in groups.values()],
        nulls=int(nulls),
        nonfinite=int(nonfinite),
        outside=int(finite) - int(counts.sum()),
    )


def group_key(values: Sequence[Any]) -> Any:
    """A group's key values as one dict key (every NaN alike, as DuckDB groups them)."""
    return hashable(tuple(_one_nan(v) for v in values))


def merged_groups(
    parts: Sequence[pa.Table], query: Query, sample: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """The files' groups as the whole table's, in the query's order and cut to its
    offset/limit, with each one's place among the groups by first row: sizes added, each list the first ``sample`` values of the files' lists
    (the files come in row order); groups by their first row, then sorted on the keys or
    ``count`` (DuckDB's order, ties by first row)."""
    keys = query.group_by
    groups: dict[Any, dict[str, Any]] = {}
    for part in parts:
        for row in part.to_pylist():
            kept = groups.setdefault(group_key([row[k] for k in keys]), row)
            if kept is row:
                continue
            kept["count"] += row["count"]
            for column, values in row.items():
                if column not in keys and column != "count":
                    kept[column] = kept[column] + values[: max(sample - len(kept[column]), 0)]
    rows = list(groups.values())
    order = list(range(len(rows)))
    for key in reversed(query.sort):
        order = _stable_sort(order, [r[key.column] for r in rows], key.descending)
    start, stop = page_span(query, 0, len(rows))
    chosen = order[start:stop]
    return [rows[i] for i in chosen], chosen
