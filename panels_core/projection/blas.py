"""One BLAS thread while any projection or neighbour search runs (a shared 2-core server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["single_thread_blas"]

_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"users": 0, "limiter": None}


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run BLAS on one thread while any projection is inside this block.

    On a shared 2-core server multi-threaded OpenBLAS oversubscribes the cores
    and spin-waits: X^T X of 300k x 384 took 1.5-4.2 s on 2 threads under load
    and 0.7 s on one. The limit is process-wide, so it is reference-counted:
    the first user sets it and the last one restores the original.
    """
    with _BLAS_LOCK:
        if _BLAS_STATE["users"] == 0:
            from threadpoolctl import threadpool_limits

            _BLAS_STATE["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _BLAS_STATE["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["users"] -= 1
            if _BLAS_STATE["users"] == 0:
                _BLAS_STATE["limiter"].restore_original_limits()
                _BLAS_STATE["limiter"] = None
