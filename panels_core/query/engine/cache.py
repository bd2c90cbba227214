"""The answer cache: a small LRU of answers keyed by the tables' stamp and the call.

``Answers.get`` gives the kept answer of a call under the current tables, or
computes and keeps it; a kept answer is copied out, so callers may change it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.model import Query

if TYPE_CHECKING:
    from panels_core.query.engine.sources import Catalog

__all__ = [
    "CACHE_MAX_BYTES",
    "CACHE_SIZE",
    "LRU",
    "MISS",
    "Answers",
    "file_stamp",
    "fresh",
    "query_key",
]

CACHE_SIZE = 256
"""Answers (counts, histograms, value counts, grouped tables, column stats) the engine keeps."""
CACHE_MAX_BYTES = 8 << 20
"""A grouped table bigger than this is not kept."""
MISS = object()
"""What ``LRU.get`` gives for a key it does not hold."""


class LRU:
    """A small thread-safe LRU of answers keyed by (tables' stamp, call, arguments)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key, MISS)
            if value is not MISS:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Answers:
    """The engine's kept answers: each call's answer under the tables' current stamp."""

    def __init__(self, catalog: Catalog, lru: LRU) -> None:
        self.catalog = catalog
        self.lru = lru

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, or the answer kept for ``key`` under the current tables."""
        with self.catalog.lock:
            self.catalog.refresh()
            stamp = self.catalog.stamp()
        value = self.lru.get((stamp, *key))
        if value is MISS:
            value = compute()
            keep = not isinstance(value, pa.Table) or value.nbytes <= CACHE_MAX_BYTES
            if keep:
                self.lru.put((self.catalog.call.stamp, *key), value)
        return fresh(value)


def fresh(value: Any) -> Any:
    """A copy of a cached answer whose numpy arrays the caller may change freely."""
    if isinstance(value, Histogram):
        return dataclasses.replace(
            value,
            edges=value.edges.copy(),
            counts=value.counts.copy(),
            groups=None if value.groups is None else list(value.groups),
        )
    if isinstance(value, ValueCounts):
        return dataclasses.replace(
            value,
            values=list(value.values),
            counts=value.counts.copy(),
            groups=None if value.groups is None else list(value.groups),
        )
    return value  # ints and Arrow tables are immutable


def file_stamp(path: Path | None) -> tuple[int, int] | None:
    """A file's (modification time, size); (-1, -1) when it cannot be read; None: no file."""
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return (-1, -1)
    return (info.st_mtime_ns, info.st_size)


def query_key(query: Any, what: str) -> str:
    """The cache key of a Query (TypeError for anything else).

    The selection a query carries does not change its rows (unless they are put
    selected first), so it is left out: a new selection finds the unselected
    answers kept."""
    if not isinstance(query, Query):
        raise TypeError(f"Engine.{what} needs a Query, not {type(query).__name__}")
    if query.selected_first:
        return query.model_dump_json()
    return query.model_dump_json(exclude={"selection"})
