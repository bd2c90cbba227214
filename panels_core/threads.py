"""Background threads that yield the CPU to the server's own (warm-ups, compiles)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["lower_thread_priority", "start_background"]


def lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to the server's other threads (Linux)."""
    # not Linux, or not allowed: the thread keeps its normal priority
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def start_background(name: str, label: str, job: Callable[[], Any]) -> threading.Thread:
    """Run ``job`` on a started low-priority daemon thread; a failure is printed, not raised."""

    def run() -> None:
        lower_thread_priority()
        try:
            job()
        except Exception as exc:
            print(f"typed-panels: {label} warm-up failed: {exc}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
