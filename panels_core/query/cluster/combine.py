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

from panels_core.query.cluster.tasks import KEY
from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.engine.binning import hashable
from panels_core.query.engine.connection import ROW
from panels_core.query.engine.histogram import label, null_last
from panels_core.query.model import Query

__all__ = [
    "merged_counts",
    "merged_group_histogram",
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
    """Rows ``start .. stop`` of the files' first rows in the query's order (ties by row)."""
    rows = pa.concat_tables(parts, promote_options="permissive")
    order = np.argsort(rows.column(ROW).to_numpy(), kind="stable").tolist()
    for i in reversed(range(len(query.sort))):
        values = rows.column(f"{KEY}{i}").to_pylist()
        order = _stable_sort(order, values, query.sort[i].descending)
    chosen = pa.array(order[start:stop], type=pa.int64())
    return rows.select(names).take(chosen)


def merged_counts(
    parts: Sequence[tuple[list[Any], list[int], int]], top: int, several: bool
) -> ValueCounts:
    """The files' value counts summed; most frequent first, ties by value, cut at ``top``."""
    totals: dict[Any, int] = {}
    nulls = 0
    for values, counts, part_nulls in parts:
        nulls += part_nulls
        for value, count in zip(values, counts, strict=True):
            key = tuple(map(_one_nan, value)) if several else _one_nan(value)
            totals[key] = totals.get(key, 0) + count
    keys = sorted(totals, key=lambda v: _value_order(v, several))
    keys.sort(key=totals.__getitem__, reverse=True)
    kept = keys[:top]
    counts = np.array([totals[k] for k in kept], dtype=np.int64)
    other = sum(totals.values()) - int(counts.sum())
    return ValueCounts(kept, counts, int(other), int(nulls))


def _one_nan(value: Any) -> Any:
    """NaN as one value (``float("nan") != float("nan")``: each would count apart)."""
    return _NAN if rank(value) == 1 else value


def _value_order(value: Any, several: bool) -> tuple[Any, ...]:
    """A value (tuple) ordered as DuckDB orders it ascending (NaN after numbers)."""
    items = value if several else (value,)
    return tuple((rank(v), v if rank(v) == 0 else 0) for v in items)


Binned = tuple[dict[tuple[Any, ...], np.ndarray], tuple[int, int, int], list[tuple[Any, ...]]]
"""A file's bin counts per key, its (nulls, nonfinite, finite) values, its keys by first row."""


def merged_histogram(edges: np.ndarray, parts: Sequence[Binned], by: bool) -> Histogram:
    """The files' bin counts added (per ``by`` value: sorted, null last)."""
    bins = len(edges) - 1
    totals: dict[tuple[Any, ...], np.ndarray] = {}
    for counts, _, _ in parts:
        for key, row in counts.items():
            totals[key] = totals.get(key, np.zeros(bins, dtype=np.int64)) + row
    nulls, nonfinite, finite = (sum(p[1][i] for p in parts) for i in range(3))
    if by:
        groups = sorted(totals, key=null_last)
        counts = np.array([totals[g] for g in groups], dtype=np.int64).reshape(len(groups), bins)
        labels: list[str] | None = [label(g[0]) for g in groups]
    else:
        counts, labels = totals.get((), np.zeros(bins, dtype=np.int64)), None
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
            groups.setdefault(hashable(key), key)
    nulls, nonfinite, finite = (sum(p[1][i] for p in parts) for i in range(3))
    bins = len(edges) - 1
    counts = np.zeros((len(groups), bins), dtype=np.int64)
    position = {key: i for i, key in enumerate(groups)}
    for part_counts, _, _ in parts:
        for key, row in part_counts.items():
            if key in position:
                counts[position[key]] += row
    return Histogram(
        edges=edges,
        counts=counts,
        groups=[", ".join(label(v) for v in key) for key in groups.values()],
        nulls=int(nulls),
        nonfinite=int(nonfinite),
        outside=int(finite) - int(counts.sum()),
    )
