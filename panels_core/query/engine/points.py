"""Projected points registered with the engine, and which of them lie inside a polygon.

A projection registers its points (row numbers and an (n, 2) array) under a key;
``in_selection("key", (x, y), ...)`` in a filter is then the rows whose point lies
inside the polygon: found here with numpy (even-odd ray casting over the points
inside the polygon's bounding box), handed to DuckDB as a table of row numbers and
joined on the row number, so it costs a filter's time on 10M rows.
"""

# SQL here is built only from quote_ident() names, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.query.engine.connection import RESERVED, ROW
from panels_core.query.errors import QueryError
from panels_core.query.sql import quote_ident

__all__ = ["Points", "inside_polygon"]

_KEPT = 32
"""Polygons whose rows are kept (a brush redrawn while other cards ask again)."""
_CHUNK = 1 << 20
"""Points tested at a time (bounds the temporary arrays)."""


@dataclass(frozen=True)
class _Registered:
    rows: np.ndarray
    xy: np.ndarray
    generation: int


def inside_polygon(xy: np.ndarray, polygon: Any) -> np.ndarray:
    """Which points of ``xy`` ((n, 2)) lie inside ``polygon`` (corners, in order): a bool mask.

    Even-odd rule, as Bokeh's and matplotlib's point-in-polygon tests use; points
    outside the polygon's bounding box are never tested edge by edge."""
    corners = np.asarray(polygon, dtype=np.float64)
    x, y = xy[:, 0], xy[:, 1]
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    mask = np.zeros(len(xy), dtype=bool)
    candidates = np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
    following = np.roll(corners, -1, axis=0)
    for start in range(0, len(candidates), _CHUNK):
        chosen = candidates[start : start + _CHUNK]
        px, py = x[chosen], y[chosen]
        odd = np.zeros(len(chosen), dtype=bool)
        for (ax, ay), (bx, by) in zip(corners, following):
            if ay == by:  # a horizontal edge never crosses the ray
                continue
            straddles = (ay > py) != (by > py)
            crossing_x = ax + (py - ay) * (bx - ax) / (by - ay)
            odd ^= straddles & (px < crossing_x)
        mask[chosen] = odd
    return mask


class Points:
    """The engine's registered points, by key; thread-safe."""

    def __init__(self) -> None:
        self._points: dict[str, _Registered] = {}
        self._kept: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._generations = itertools.count(1)
        self._names = itertools.count(1)

    def register(self, key: str, rows: Any, xy: Any) -> None:
        """Register (or replace) the points under ``key``: row numbers and (n, 2) positions."""
        if not isinstance(key, str) or not key:
            raise QueryError("register_points(): the key must be a non-empty string")
        rows = np.ascontiguousarray(rows, dtype=np.int64).reshape(-1)
        xy = np.ascontiguousarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape != (len(rows), 2):
            raise QueryError(
                f"register_points({key!r}): xy must be an (n, 2) array for the {len(rows):,} "
                f"rows, not shape {xy.shape}"
            )
        with self._lock:
            old = self._points.get(key)
            if old is not None and np.array_equal(old.rows, rows) and np.array_equal(old.xy, xy):
                return  # the same points again: kept answers stay true
            self._points[key] = _Registered(rows, xy, next(self._generations))

    def stamp(self) -> tuple[tuple[str, int], ...]:
        """What answers over registered points depend on (changes when points are replaced)."""
        with self._lock:
            return tuple(sorted((k, p.generation) for k, p in self._points.items()))

    def rows_inside(self, key: str, polygon: tuple[tuple[float, float], ...]) -> np.ndarray:
        """The row numbers of the points under ``key`` inside ``polygon`` (kept for reuse)."""
        with self._lock:
            points = self._points.get(key)
            if points is None:
                known = ", ".join(f"`{k}`" for k in sorted(self._points)) or "none yet"
                raise QueryError(
                    f"in_selection(): no points are registered as `{key}` (registered: {known}); "
                    "show the projection that draws them first, or clear this selection"
                )
            kept_key = (key, points.generation, polygon)
            kept = self._kept.get(kept_key)
            if kept is not None:
                self._kept.move_to_end(kept_key)
                return kept
        rows = points.rows[inside_polygon(points.xy, polygon)]
        with self._lock:
            self._kept[kept_key] = rows
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return rows

    def sql(self, key: str, polygon: tuple[tuple[float, float], ...], cur: Any) -> str:
        """SQL true for the rows inside ``polygon``: the rows found registered on ``cur``
        as a table (zero copy) and joined on the row number."""
        rows = self.rows_inside(key, polygon)
        name = f"{RESERVED}region{next(self._names)}"
        cur.register(name, pa.table({"r": rows}))
        return f"({quote_ident(ROW)} IN (SELECT r FROM {quote_ident(name)}))"
