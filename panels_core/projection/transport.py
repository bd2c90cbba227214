"""How a job's rows travel to the worker process: a shared memory segment, or the pipe.

The rows (a ``Rows``: values, missing and ragged flags) are copied into one
``multiprocessing.shared_memory`` segment named ``panels-proj-<pid>-...``, or sent
over the pipe when /dev/shm has no room; the worker views them as a ``Rows``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import threading
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from panels_core.projection.rows import Rows

__all__ = [
    "SEGMENT_PREFIX",
    "release",
    "rows_from_pipe",
    "rows_view",
    "send_rows",
    "share",
    "unlink_all",
]

_log = logging.getLogger(__name__)

#: Every shared memory segment this module creates is named with this prefix.
SEGMENT_PREFIX = "panels-proj-"

_SEGMENT_COUNTER = itertools.count()
_SEGMENTS: dict[str, shared_memory.SharedMemory] = {}  # live segments, unlinked at exit
_SEGMENTS_LOCK = threading.Lock()


def rows_view(buffer: Any, job: dict[str, Any]) -> Any:
    """The job's rows (values, missing and ragged flags) as views of one buffer."""
    n, d = job["n"], job["d"]
    size = n * d * 4
    values = np.ndarray((n, d), dtype=np.float32, buffer=buffer)
    missing = np.ndarray((n,), dtype=np.bool_, buffer=buffer, offset=size)
    ragged = np.ndarray((n,), dtype=np.bool_, buffer=buffer, offset=size + n)
    return Rows(values, missing, ragged, job["expected_dim"])


def rows_from_pipe(conn: Any, job: dict[str, Any]) -> Any:
    """The job's rows read from the pipe (when the server had no room in /dev/shm)."""
    n, d = job["n"], job["d"]
    values = np.empty((n, d), dtype=np.float32)
    missing = np.empty(n, dtype=np.bool_)
    ragged = np.empty(n, dtype=np.bool_)
    for array in (values, missing, ragged):
        conn.recv_bytes_into(memoryview(array).cast("B"))
    return Rows(values, missing, ragged, job["expected_dim"])


def send_rows(conn: Any, rows: Rows) -> None:
    """Send the rows over the pipe (read by ``rows_from_pipe``)."""
    for array in (rows.values, rows.missing, rows.ragged):
        conn.send_bytes(memoryview(np.ascontiguousarray(array)).cast("B"))


def share(data: Any) -> shared_memory.SharedMemory | None:
    """The rows copied into a new shared memory segment; None when /dev/shm has no room."""
    n, d = data.values.shape
    size = n * d * 4 + 2 * n
    name = f"{SEGMENT_PREFIX}{os.getpid()}-{next(_SEGMENT_COUNTER)}-{secrets.token_hex(4)}"
    try:
        segment = shared_memory.SharedMemory(name=name, create=True, size=max(size, 1))
    except OSError as error:
        _log.info("no shared memory for the projection rows (%s); sending them by pipe", error)
        return None
    with _SEGMENTS_LOCK:
        _SEGMENTS[segment.name] = segment
    try:
        _reserve(segment, max(size, 1))
        view = rows_view(segment.buf, {"n": n, "d": d, "expected_dim": data.expected_dim})
        np.copyto(view.values, data.values)
        np.copyto(view.missing, data.missing)
        np.copyto(view.ragged, data.ragged)
        del view
    except OSError as error:
        release(segment)
        _log.info("no room in shared memory for the projection rows (%s); using the pipe", error)
        return None
    return segment


def _reserve(segment: shared_memory.SharedMemory, size: int) -> None:
    """Allocate the segment's pages now: a full /dev/shm raises OSError here instead of
    killing the server with SIGBUS when the rows are written."""
    fd = getattr(segment, "_fd", -1)
    if fd >= 0 and hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)


def release(segment: shared_memory.SharedMemory) -> None:
    """Close and unlink a segment (unless the exit hook unlinked it already)."""
    with _SEGMENTS_LOCK:
        owned = _SEGMENTS.pop(segment.name, None) is not None
    with contextlib.suppress(BufferError):
        segment.close()
    if owned:
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()


def unlink_all() -> None:
    """Unlink every segment still there (at exit)."""
    with _SEGMENTS_LOCK:
        segments = list(_SEGMENTS.values())
        _SEGMENTS.clear()
    for segment in segments:
        with contextlib.suppress(OSError):
            segment.unlink()  # not closed: a job thread may still be writing to it
