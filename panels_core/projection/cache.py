"""The projection results cache: a fingerprint of the rows, a bounded LRU, and ``project_cached``."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from panels_core.projection.pipeline import project
from panels_core.projection.progress import ProgressFn, Stages
from panels_core.projection.rows import as_rows
from panels_core.projection.spec import ProjectionError, ProjectionResult, ProjectionSpec, as_spec

__all__ = ["ProjectionCache", "fingerprint", "project_cached", "shared_cache"]


def fingerprint(X: Any) -> str:
    """A SHA-256 digest of the rows as float32 (shape included); same data -> same string.

    Big inputs are hashed in pieces on several threads (hashlib releases the GIL),
    then the piece digests are hashed together: about 0.2 s for 100k x 384.
    """
    values = as_rows(X).values
    raw = values.reshape(-1).view(np.uint8)
    pieces = max(1, min(os.cpu_count() or 1, 8)) if raw.nbytes > 32 * 2**20 else 1
    bounds = np.linspace(0, raw.nbytes, pieces + 1).astype(np.int64)

    def digest(i: int) -> bytes:
        return hashlib.sha256(raw[bounds[i] : bounds[i + 1]]).digest()

    if pieces == 1:
        digests = [digest(0)]
    else:
        with ThreadPoolExecutor(pieces) as pool:
            digests = list(pool.map(digest, range(pieces)))
    final = hashlib.sha256(repr(values.shape).encode())
    for part in digests:
        final.update(part)
    return final.hexdigest()


class ProjectionCache:
    """A thread-safe in-process LRU of ProjectionResults, bounded by their total bytes."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, ProjectionResult] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> ProjectionResult | None:
        """The cached result (now most recently used), or None."""
        with self._lock:
            result = self._items.get(key)
            if result is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return result

    def put(self, key: Hashable, result: ProjectionResult) -> None:
        """Store a result, evicting the least recently used ones past ``max_bytes``."""
        size = result.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = result
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        """Forget every result."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


_SHARED_CACHE = ProjectionCache()


def shared_cache() -> ProjectionCache:
    """The process-wide cache, so every session of one server shares results."""
    return _SHARED_CACHE


def _cache_key(data_key: Hashable, spec: ProjectionSpec) -> tuple[Hashable, str]:
    return (data_key, spec.model_dump_json())


def project_cached(
    X: Any,
    spec: ProjectionSpec | dict[str, Any],
    key: Hashable | None = None,
    *,
    cache: ProjectionCache | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    compute: Callable[..., ProjectionResult] | None = None,
) -> ProjectionResult:
    """``project`` through a cache keyed by (data, spec).

    ``key`` identifies the data cheaply (e.g. (table fingerprint, query json,
    column)); without it the rows are hashed (``fingerprint``). With a key, ``X``
    may be a zero-argument callable that fetches the rows only on a cache miss.
    ``compute`` (same signature as ``project``) computes a miss; default ``project``.
    """
    spec = as_spec(spec)
    cache = _SHARED_CACHE if cache is None else cache
    rows: Any = X
    if key is None:
        if callable(X):
            raise ProjectionError("pass a cache key when X is a function that fetches the rows")
        rows = as_rows(X)
        data_key: Hashable = ("blake2b", fingerprint(rows))
    else:
        data_key = ("key", key)
    cache_key = _cache_key(data_key, spec)
    hit = cache.get(cache_key)
    if hit is not None:
        Stages(progress, cancel)(1.0, "from cache")
        return hit
    if callable(rows):
        rows = rows()
    result = (compute or project)(rows, spec, progress=progress, cancel=cancel)
    cache.put(cache_key, result)
    return result
