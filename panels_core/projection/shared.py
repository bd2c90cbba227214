"""The process-wide Projector: the worker process's, or threads of this process."""

from __future__ import annotations

import os
import threading

from panels_core.projection.runner import Projector

__all__ = ["shared_projector"]

_SHARED_PROJECTOR: Projector | None = None
_SHARED_LOCK = threading.Lock()


def shared_projector() -> Projector:
    """The process-wide Projector (the shared cache); cache misses run in a low-priority
    worker process (``ProcessProjector``) unless ``PANELS_PROJECTION_WORKER=0``, which
    runs them on threads of this process."""
    global _SHARED_PROJECTOR
    with _SHARED_LOCK:
        if _SHARED_PROJECTOR is None:
            if os.environ.get("PANELS_PROJECTION_WORKER", "1") == "0":
                _SHARED_PROJECTOR = Projector()
            else:
                from panels_core.projection.worker import ProcessProjector

                _SHARED_PROJECTOR = ProcessProjector(
                    warm_up=os.environ.get("PANELS_WARM_UP", "1") != "0"
                )
        return _SHARED_PROJECTOR
