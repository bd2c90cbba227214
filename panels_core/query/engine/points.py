"""Projected points registered with the engine, and which of them lie inside a polygon.

A projection registers its points (row numbers and an (n, 2) array) under a key;
``in_selection("key", (x, y), ...)`` in a filter is then the rows whose point lies
inside the polygon: found here with numpy (even-odd ray casting over the points
sorted by y, each edge testing only the points level with it; measured faster
than the same test in SQL, ``benchmarks/bench_selection.py``), handed to DuckDB as a table of row numbers and
joined on the row number, so it costs a filter's time on 10M rows.
"""

# SQL here is built only from quote_ident() names, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.query.engine.connection import RESERVED, ROW
from panels_core.query.errors import PointsNotRegistered, QueryError
from panels_core.query.sql import quote_ident

__all__ = ["Points", "SortedPoints", "inside_polygon"]

_KEPT = 32
"""Polygons whose rows are kept (a brush redrawn while other cards ask again)."""


class SortedPoints:
    """Points sorted by y with their row numbers, so that each edge of a polygon tests
    only the points level with it (about two edges per point, not every edge)."""

    def __init__(self, rows: np.ndarray, xy: np.ndarray) -> None:
        order = np.argsort(xy[:, 1])
        self.rows = rows[order]
        self.x = np.ascontiguousarray(xy[order, 0])
        self.y = np.ascontiguousarray(xy[order, 1])

    def inside(self, polygon: Any) -> np.ndarray:
        """The row numbers of the points inside ``polygon`` (corners, in order).

        Even-odd rule, as Bokeh's and matplotlib's point-in-polygon tests use; an
        axis-aligned box holds the points on its edges too."""
        corners = np.asarray(polygon, dtype=np.float64)
        if _is_box(corners):
            (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
            start = np.searchsorted(self.y, y0, side="left")
            stop = np.searchsorted(self.y, y1, side="right")
            x = self.x[start:stop]
            return self.rows[start:stop][(x >= x0) & (x <= x1)]
        odd = np.zeros(len(self.rows), dtype=bool)
        for (ax, ay), (bx, by) in zip(corners, np.roll(corners, -1, axis=0)):
            if ay == by:  # a horizontal edge never crosses the ray
                continue
            # (ay > y) != (by > y) holds exactly for y in [min, max): one slice of the points
            start, stop = np.searchsorted(self.y, [min(ay, by), max(ay, by)], side="left")
            level = slice(start, stop)
            odd[level] ^= self.x[level] < ax + (self.y[level] - ay) * (bx - ax) / (by - ay)
        return self.rows[odd]


def inside_polygon(xy: np.ndarray, polygon: Any) -> np.ndarray:
    """Which points of ``xy`` ((n, 2)) lie inside ``polygon``: a bool mask (``SortedPoints``)."""
    mask = np.zeros(len(xy), dtype=bool)
    mask[SortedPoints(np.arange(len(xy)), np.asarray(xy, dtype=np.float64)).inside(polygon)] = True
    return mask


def _is_box(corners: np.ndarray) -> bool:
    """Whether the polygon is an axis-aligned rectangle (four corners, edges on the axes)."""
    if len(corners) != 4:
        return False
    following = np.roll(corners, -1, axis=0)
    same_x, same_y = corners[:, 0] == following[:, 0], corners[:, 1] == following[:, 1]
    return bool(np.all(same_x ^ same_y) and np.all(same_x[::2] != same_x[1::2]))


@dataclass(frozen=True)
class _Registered:
    points: Any
    """A ``SortedPoints``, or any finder with ``inside(polygon)`` -> row numbers."""
    digest: str
    generation: int


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
        digest = hashlib.blake2b(rows.tobytes() + xy.tobytes(), digest_size=16).hexdigest()
        with self._lock:
            old = self._points.get(key)
            if old is not None and old.digest == digest:
                return  # the same points again: kept answers stay true
        self.register_finder(key, SortedPoints(rows, xy), digest)

    def register_finder(self, key: str, finder: Any, digest: str) -> None:
        """Register (or replace) under ``key`` points held elsewhere: ``finder.inside(polygon)``
        gives the row numbers inside a polygon; ``digest`` names the points (the same digest
        again changes nothing, so kept answers stay true)."""
        if not isinstance(key, str) or not key:
            raise QueryError("register_points(): the key must be a non-empty string")
        with self._lock:
            old = self._points.get(key)
            if old is None or old.digest != digest:
                self._points[key] = _Registered(finder, digest, next(self._generations))

    def has(self, key: str) -> bool:
        """Whether points are registered under ``key``."""
        with self._lock:
            return key in self._points

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
                raise PointsNotRegistered(
                    f"in_selection(): no points are registered as `{key}` (registered: {known}); "
                    "show the projection that draws them first, or clear this selection",
                    key,
                )
            kept_key = (key, points.generation, polygon)
            kept = self._kept.get(kept_key)
            if kept is not None:
                self._kept.move_to_end(kept_key)
                return kept
        rows = points.points.inside(polygon)
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
