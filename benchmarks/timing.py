"""The timing and memory helpers the benchmark scripts share."""

from __future__ import annotations

import re
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(
    fn: Callable[[], Any], repeat: int = 5, before: Callable[[], Any] | None = None
) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs; ``before()`` runs untimed ahead of each."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_mib() -> float:
    """This process's peak resident memory in MiB, counted from its own start.

    ``VmHWM`` of /proc rather than ``ru_maxrss``: Linux carries ``ru_maxrss``
    over from the parent through fork and exec, so a side started by a parent
    that had just generated the data reported the parent's 1.5 GiB as its own.
    """
    try:
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1)) / 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
