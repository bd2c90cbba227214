"""Progress reports and the cancel check of a running projection."""

from __future__ import annotations

import threading
from collections.abc import Callable

from panels_core.projection.spec import ProjectionCancelled

__all__ = ["ProgressFn", "Stages"]

ProgressFn = Callable[[float, str], None]
"""``progress(fraction, message)``: a fraction from 0 to 1 and a sentence."""


class Stages:
    """Reports progress and checks the cancel event at every report."""

    def __init__(self, progress: ProgressFn | None, cancel: threading.Event | None) -> None:
        self._progress = progress
        self._cancel = cancel

    def check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise ProjectionCancelled("the projection was cancelled")

    def quiet(self) -> Stages:
        """Stages that check the same cancel event but report nothing."""
        return Stages(None, self._cancel)

    def __call__(self, fraction: float, message: str) -> None:
        self.check()
        if self._progress is not None:
            self._progress(min(max(float(fraction), 0.0), 1.0), message)
