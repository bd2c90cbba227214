"""Background runs: a ``Projector`` runs projections on threads, one live request per slot."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from panels_core.projection.cache import ProjectionCache, project_cached
from panels_core.projection.progress import ProgressFn
from panels_core.projection.spec import (
    ProjectionCancelled,
    ProjectionResult,
    ProjectionSpec,
    as_spec,
)

__all__ = ["ProjectionFuture", "Projector", "live_projectors"]


class ProjectionFuture(Future):
    """The future of a submitted projection: a caller that stops waiting cancels the job.

    ``result(timeout)`` or ``exception(timeout)`` whose timeout passes, and
    ``cancel()``, set the job's cancel event, as a closed page does: a queued job
    never runs, a running one stops and its future fails with ``ProjectionCancelled``
    (``cancel()`` still returns False for a job already running, as in
    ``concurrent.futures``). Nothing is left behind for the jobs that follow.
    """

    def __init__(self, stop: Callable[[str], None]) -> None:
        super().__init__()
        self._stop_job = stop

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except TimeoutError:
            self._stop_job("its caller stopped waiting")
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return super().exception(timeout)
        except TimeoutError:
            self._stop_job("its caller stopped waiting")
            raise

    def cancel(self) -> bool:
        if not self.done():
            self._stop_job("cancelled by its caller")
        return super().cancel()


@dataclass(eq=False)
class _Job:
    future: ProjectionFuture
    cancel: threading.Event
    reason: str = "cancelled"

    def stop(self, reason: str) -> None:
        """Set the cancel event; the first reason given is the one reported."""
        if not self.cancel.is_set():
            self.reason = reason
            self.cancel.set()


_PROJECTORS: weakref.WeakSet[Projector] = weakref.WeakSet()


def live_projectors() -> list[Projector]:
    """Every Projector of this process that was not shut down."""
    return list(_PROJECTORS)


class Projector:
    """Runs projections on worker threads, one live request per slot (e.g. a card id).

    A newer ``submit`` for the same slot sets the older job's cancel event; the
    older future then fails with ``ProjectionCancelled`` and never carries a
    result (a result that was finished anyway still lands in the cache). A
    caller that stops waiting for a future cancels its job (``ProjectionFuture``).
    """

    def __init__(
        self,
        max_workers: int = 2,
        cache: ProjectionCache | None = None,
        compute: Callable[..., ProjectionResult] | None = None,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="panels-projection")
        self._cache = cache
        self._compute = compute  # how a cache miss is computed (default: ``project`` here)
        self._jobs: dict[Hashable, _Job] = {}  # the live request of each slot
        self._unfinished: set[_Job] = set()  # every job whose future is not set yet
        self._lock = threading.Lock()
        _PROJECTORS.add(self)

    def submit(
        self,
        slot: Hashable,
        X: Any,
        spec: ProjectionSpec | dict[str, Any],
        on_progress: ProgressFn | None = None,
        *,
        key: Hashable | None = None,
    ) -> ProjectionFuture:
        """Start projecting ``X`` for ``slot``, superseding the slot's previous request."""
        spec = as_spec(spec)
        future = ProjectionFuture(lambda reason: self._stop(slot, job, reason))
        job = _Job(future, threading.Event())
        with self._lock:
            previous = self._jobs.get(slot)
            self._jobs[slot] = job
            self._unfinished.add(job)
        if previous is not None:
            previous.stop("superseded by a newer request")
        self._executor.submit(self._run, slot, job, X, spec, on_progress, key)
        return future

    def cancel(self, slot: Hashable) -> bool:
        """Cancel the slot's running request; True when there was one."""
        with self._lock:
            job = self._jobs.pop(slot, None)
        if job is None:
            return False
        job.stop("cancelled")
        return True

    def cancel_all(self, reason: str = "cancelled") -> list[ProjectionFuture]:
        """Cancel every job not finished yet (queued, running, or cancelled but still
        stopping); returns their futures, each of which ends soon."""
        with self._lock:
            jobs = list(self._unfinished)
            self._jobs.clear()
        for job in jobs:
            job.stop(reason)
        return [job.future for job in jobs]

    def _stop(self, slot: Hashable, job: _Job, reason: str) -> None:
        """Cancel ``job`` (its caller gave up on it)."""
        self._forget(slot, job)
        job.stop(reason)

    def _run(
        self,
        slot: Hashable,
        job: _Job,
        X: Any,
        spec: ProjectionSpec,
        on_progress: ProgressFn | None,
        key: Hashable | None,
    ) -> None:
        future = job.future
        if not future.set_running_or_notify_cancel():
            self._finish(slot, job)
            return

        def report(fraction: float, message: str) -> None:
            if on_progress is not None and not job.cancel.is_set():
                on_progress(fraction, message)

        try:
            if job.cancel.is_set():
                raise ProjectionCancelled(job.reason)
            result = project_cached(
                X,
                spec,
                key,
                cache=self._cache,
                progress=report,
                cancel=job.cancel,
                compute=self._compute,
            )
            if job.cancel.is_set():
                raise ProjectionCancelled(job.reason)
        except ProjectionCancelled as error:
            future.set_exception(ProjectionCancelled(job.reason) if job.cancel.is_set() else error)
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(result)
        finally:
            self._finish(slot, job)

    def _forget(self, slot: Hashable, job: _Job) -> None:
        with self._lock:
            if self._jobs.get(slot) is job:
                del self._jobs[slot]

    def _finish(self, slot: Hashable, job: _Job) -> None:
        self._forget(slot, job)
        with self._lock:
            self._unfinished.discard(job)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every request and stop the workers."""
        _PROJECTORS.discard(self)
        futures = self.cancel_all("the projector was shut down")
        self._executor.shutdown(wait=wait, cancel_futures=True)
        for future in futures:
            future.cancel()  # a job the executor dropped before it ran
