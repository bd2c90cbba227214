"""Projections computed in a separate, low-priority worker process.

A UMAP or t-SNE on a thread of the server process holds the GIL for long
stretches (numba and numpy code), so the server's event loop stalls and every
other session slows down; its cancel is only cooperative (umap's fit cannot be
interrupted) and a crash in native code (numba, an out-of-memory kill) would
take the server down. ``ProcessProjector`` keeps the ``Projector`` interface
and everything cheap in the server process (the cache, the keys, fetching the
rows) and sends only cache misses to one persistent worker process, except a PCA
(``pca_in_process``): a PCA whose solver is the covariance one (up to 1000 dims) is
BLAS work that releases the GIL, reads the rows the server holds without writing them
(nor copying them when every row is kept) and needs little memory beyond its
(n, components) output, so it runs on
the projector's own thread here, at the server's priority, with no copy of the rows
into shared memory (1.5 GB for 1M x 384) and no wait behind the worker's queue or its
UMAP warm-up:

- the worker is started with the "spawn" method (lazily, or by ``start()``),
  runs at a lower CPU priority (``os.nice``), ignores Ctrl-C (the server stops
  it) and exits when the server process disappears; it can compile UMAP's
  numba kernels (``warm_up``) on a thread of its own, beside the jobs, so only
  it pays for compilation and a PCA does not wait for it;
- one job runs in it at a time, the others wait in submission order; a job
  cancelled (or superseded, or given up by its caller: a wait that timed out, a
  closed page) while it waits never reaches the worker, and a waiting job's
  status counts only the earlier jobs still wanted;
- the rows travel through a ``multiprocessing.shared_memory`` segment named
  ``panels-proj-<pid>-...`` (through the pipe when /dev/shm has no room), the
  spec as JSON; the result's fields come back pickled over the pipe between the
  two processes and are rebuilt into a ``ProjectionResult``;
- progress messages from the worker are passed to the job's progress callback;
  an error raised in the worker comes back with its type and message (types
  outside ``KEPT_ERRORS`` become a ``ProjectionError`` naming the type);
- cancelling a running job terminates the worker (SIGTERM, then SIGKILL) and
  the next job gets a new one; a worker that dies (segfault, out-of-memory
  kill) fails only the job it was running, with a ``ProjectionError`` saying so;
- ``shutdown()`` and an exit hook stop the worker and unlink every segment.

As with any "spawn" child, the worker imports the server's main module under
another name: a script that starts a server must do so under
``if __name__ == "__main__":`` (the ``panels`` command and ``panel serve`` do).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from panels_core.projection.cache import ProjectionCache
from panels_core.projection.pca import pca_solver
from panels_core.projection.pipeline import project
from panels_core.projection.progress import ProgressFn
from panels_core.projection.rows import Rows, as_rows
from panels_core.projection.runner import Projector, live_projectors
from panels_core.projection.spec import (
    ProjectionCancelled,
    ProjectionError,
    ProjectionResult,
    ProjectionSpec,
    as_spec,
)
from panels_core.projection.transport import (
    SEGMENT_PREFIX,
    release,
    send_rows,
    share,
    unlink_all,
)
from panels_core.projection.worker_process import POLL_SECONDS, Worker, WorkerGone

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_WARM_UP",
    "KEPT_ERRORS",
    "SEGMENT_PREFIX",
    "ProcessProjector",
]

#: What the worker calls for a job, as "module:function" (``project``'s signature).
DEFAULT_TARGET = "panels_core.projection:project"
#: What the worker runs on a thread at start when ``warm_up`` is on (compiles UMAP's kernels).
DEFAULT_WARM_UP = "panels_core.projection:warm_up"

#: Exception types that keep their type (and arguments) when raised in the worker.
KEPT_ERRORS: tuple[type[BaseException], ...] = (
    ProjectionError,
    ProjectionCancelled,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    LookupError,
    ArithmeticError,
    ZeroDivisionError,
    OverflowError,
    FloatingPointError,
    MemoryError,
    RuntimeError,
    AssertionError,
)
_KEPT_BY_NAME = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in KEPT_ERRORS}

_METHOD_NAMES = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
_TARGET_PATTERN = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


class _RemoteTraceback(Exception):
    """The worker's traceback, attached as ``__cause__`` of an error it raised."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n(in the projection worker)\n{self.text}"


def _rebuild_error(info: dict[str, Any], method: str) -> BaseException:
    """The worker's exception as the same type (``KEPT_ERRORS``), else a ProjectionError."""
    cls = _KEPT_BY_NAME.get(info["type"])
    if cls is None:
        return ProjectionError(
            f"{method} failed in the projection worker ({info['name']}: {info['message']})"
        )
    args = info["args"] if info["args"] is not None else (info["message"],)
    try:
        return cls(*args)
    except Exception:  # a constructor that wants other arguments
        return ProjectionError(f"{method} failed in the projection worker ({info['message']})")


def _check_target(target: str, what: str) -> str:
    if not isinstance(target, str) or not _TARGET_PATTERN.fullmatch(target):
        raise ValueError(
            f"{what} must name a module-level function as 'package.module:function', got {target!r}"
        )
    return target


class ProcessProjector(Projector):
    """A ``Projector`` whose cache misses are computed in one low-priority worker process.

    Same interface as ``Projector`` (``submit``, ``cancel``, ``shutdown``); see the
    module docstring for how jobs reach the worker. ``max_workers`` threads of the
    server wait for results, check the cache and fetch rows (they do not compute).
    ``warm_up`` compiles UMAP's kernels in each new worker, on a thread beside the
    jobs; a worker that replaces one whose warm-up failed, or that died by itself
    before its warm-up finished, does not warm up.
    ``target`` and ``warm_up_target`` name the functions the worker calls, as
    ``"package.module:function"``; they are for tests and are never read from
    user input. ``niceness`` is added to the worker's CPU niceness. With
    ``pca_in_process`` (the default) a PCA of up to 1000 dims runs on the projector's
    thread in this process instead (see the module docstring).
    """

    def __init__(
        self,
        max_workers: int = 4,
        cache: ProjectionCache | None = None,
        *,
        warm_up: bool = True,
        target: str = DEFAULT_TARGET,
        warm_up_target: str = DEFAULT_WARM_UP,
        niceness: int = 10,
        pca_in_process: bool = True,
    ) -> None:
        self._target = _check_target(target, "target")
        self._warm_target = _check_target(warm_up_target, "warm_up_target") if warm_up else None
        self._warm_next = warm_up
        self._niceness = niceness
        self._pca_in_process = pca_in_process
        self._worker: Worker | None = None
        self._worker_lock = threading.Lock()
        self._turns = threading.Condition()
        # the cancel events of the jobs waiting for the worker; the head's job owns it
        self._queue: deque[threading.Event] = deque()
        self._closed = False
        self.jobs_sent = 0  # jobs that reached a worker process
        super().__init__(max_workers, cache, compute=self._compute_in_worker)

    # -- public ---------------------------------------------------------------------------

    def start(self) -> int | None:
        """Start the worker now (it warms up in the background); returns its pid."""
        with self._worker_lock:
            worker = self._ensure_worker()
        return worker.pid

    def wait_until_warm(self, timeout: float | None = None) -> bool:
        """Start the worker if needed and wait until its warm-up ends; True if it succeeded.

        False at once when the worker does not warm up, and after ``timeout``
        seconds. Jobs submitted meanwhile wait (for benchmarks and tests).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        cancel = threading.Event()
        with self._turn(cancel, _ignore_progress):
            worker = self._ready_worker(cancel, _ignore_progress)
            try:
                while worker.warm_state == "running":
                    if deadline is not None and time.monotonic() > deadline:
                        return False
                    message = worker.receive()
                    if message is not None:
                        worker.note(message)
            except WorkerGone:
                worker.crashed = True
                self._retire(worker)
                return False
            return worker.warm_state == "done"

    @property
    def warm_up_state(self) -> str | None:
        """The current worker's warm-up as last heard: "off" (none), "running", "done" or
        "failed"; None when there is no worker."""
        worker = self._worker
        return None if worker is None else worker.warm_state

    @property
    def worker_pid(self) -> int | None:
        """The running worker process's pid, or None when there is none."""
        worker = self._worker
        return worker.pid if worker is not None and worker.process.is_alive() else None

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every request, stop the worker process and free the shared memory."""
        self._close()
        super().shutdown(wait=wait)

    # -- one job ---------------------------------------------------------------------------

    def _compute_in_worker(
        self,
        rows: Any,
        spec: ProjectionSpec | dict[str, Any],
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ProjectionResult:
        """``project``'s signature; runs the job in the worker when it is this job's turn."""
        spec = as_spec(spec)
        data = as_rows(rows)
        if self.runs_here(spec, data):
            return project(data, spec, progress=progress, cancel=cancel)
        cancel = cancel if cancel is not None else threading.Event()
        report = progress if progress is not None else _ignore_progress
        with self._turn(cancel, report):
            return self._run_in_worker(data, spec, report, cancel)

    def runs_here(self, spec: ProjectionSpec, rows: Rows) -> bool:
        """True when this job is computed on the projector's thread in this process (a PCA
        with the covariance solver, when ``pca_in_process``), not in the worker."""
        n, d = rows.values.shape
        return (
            self._pca_in_process
            and spec.method == "pca"
            and pca_solver(min(n, spec.fit_points), d) == "covariance_eigh"
        )

    @contextlib.contextmanager
    def _turn(self, cancel: threading.Event, progress: ProgressFn) -> Iterator[None]:
        """Wait (in submission order) until this job may use the worker; while it waits, say
        how many earlier jobs that were not cancelled are ahead of it, whenever that changes."""
        with self._turns:
            self._check_open(cancel)
            self._queue.append(cancel)  # each job's own event is its place in the queue
        try:
            shown = 0
            while (ahead := self._wait_in_queue(cancel, shown)) is not None:
                progress(0.0, _queue_message(ahead))
                shown = ahead
            yield
        finally:
            with self._turns:
                self._queue.remove(cancel)
                self._turns.notify_all()

    def _wait_in_queue(self, ticket: threading.Event, shown: int) -> int | None:
        """None once ``ticket`` heads the queue; before that, as soon as it differs from
        ``shown``, how many jobs ahead of it are still wanted (a cancelled job still
        ahead is stopping: it holds the worker only until it has stopped it)."""
        with self._turns:
            while self._queue[0] is not ticket:
                self._check_open(ticket)
                ahead = sum(
                    not job.is_set()
                    for job in itertools.takewhile(lambda job: job is not ticket, self._queue)
                )
                if ahead != shown:
                    return ahead
                self._turns.wait(POLL_SECONDS)
        return None

    def _check_open(self, cancel: threading.Event) -> None:
        if self._closed:
            raise ProjectionCancelled("the projector was shut down")
        if cancel.is_set():
            raise ProjectionCancelled("the projection was cancelled")

    def _run_in_worker(
        self, data: Rows, spec: ProjectionSpec, progress: ProgressFn, cancel: threading.Event
    ) -> ProjectionResult:
        method = _METHOD_NAMES.get(spec.method, spec.method)
        n, d = data.values.shape
        self._check_open(cancel)
        segment = share(data)
        try:
            worker = self._ready_worker(cancel, progress)
            if spec.method == "umap" and worker.warm_state == "running":
                progress(0.0, "waiting for UMAP's kernels to compile (once per server)")
            job = {
                "spec": spec.model_dump_json(),
                "segment": None if segment is None else segment.name,
                "n": n,
                "d": d,
                "expected_dim": data.expected_dim,
            }
            try:
                self.jobs_sent += 1
                with contextlib.suppress(OSError):  # it died: the wait below says how
                    worker.conn.send(("job", job))
                    if segment is None:
                        send_rows(worker.conn, data)
                kind, payload = self._wait_for_reply(worker, progress, cancel, method, n)
            except BaseException:
                # cancelled, crashed, or the progress callback failed: the worker may still be
                # busy with this job, so it must not get the next one
                self._retire(worker)
                raise
        finally:
            if segment is not None:
                release(segment)
        if kind == "error":
            raise _rebuild_error(payload, method) from _RemoteTraceback(payload["traceback"])
        return _rebuild_result(payload, spec)

    def _ready_worker(self, cancel: threading.Event, progress: ProgressFn) -> Worker:
        """The worker once it has imported its functions (a job cancelled meanwhile leaves it be),
        with the status messages it sent while idle taken in."""
        with self._worker_lock:
            self._check_open(cancel)
            worker = self._ensure_worker()
        try:
            if not worker.ready:
                progress(0.0, "starting the projection worker")
            while not worker.ready:
                self._check_open(cancel)
                message = worker.receive()
                if message is None or worker.note(message):
                    continue
                if message[0] == "fatal":
                    worker.crashed = True  # no eager successor: it would fail the same way
                    self._retire(worker)
                    raise ProjectionError(f"the projection worker could not start ({message[1]})")
            while (message := worker.receive(0.0)) is not None:
                worker.note(message)
        except WorkerGone:
            status = worker.exit_status()
            worker.crashed = True
            self._retire(worker)
            self._check_open(cancel)
            raise ProjectionError(
                f"the projection worker stopped ({status}) while starting; see the server's log"
            ) from None
        return worker

    def _wait_for_reply(
        self, worker: Worker, progress: ProgressFn, cancel: threading.Event, method: str, n: int
    ) -> tuple[str, Any]:
        """Pass on the job's progress until its ("result", fields) or ("error", description)."""
        while True:
            if cancel.is_set():
                raise ProjectionCancelled("the projection was cancelled")
            try:
                message = worker.receive()
            except WorkerGone:
                worker.crashed = True
                status = worker.exit_status()
                self._check_open(cancel)
                hint = (
                    "fewer rows (a filter) or fewer columns"
                    if method == "PCA"
                    else "PCA, fewer rows (max_fit_points, or a filter) or a smaller "
                    "n_neighbors / perplexity"
                )
                raise ProjectionError(
                    f"the projection worker stopped ({status}) while running {method} on "
                    f"{n:,} rows; try {hint}"
                ) from None
            if message is None or worker.note(message):
                continue
            if message[0] == "progress":
                if not cancel.is_set():
                    progress(message[1], message[2])
            elif message[0] in ("result", "error"):
                return message[0], message[1]

    # -- the worker's life -------------------------------------------------------------------

    def _ensure_worker(self) -> Worker:
        """The current worker, started if there is none (call with ``_worker_lock`` held)."""
        if self._closed:
            raise ProjectionCancelled("the projector was shut down")
        if self._worker is None:
            warm = self._warm_target if self._warm_next else None
            self._worker = Worker(self._target, warm, self._niceness)
        return self._worker

    def _retire(self, worker: Worker) -> None:
        """Stop ``worker``; start a successor at once if it is to warm up.

        The successor warms up when the worker's warm-up had succeeded, or was still
        running when we stopped it (a cancel); not after a failed warm-up, nor when
        the worker died by itself during its warm-up (which may be what killed it).
        """
        with self._worker_lock:
            if self._worker is worker:
                self._worker = None
            if worker.warm_state != "off":
                self._warm_next = worker.warm_state == "done" or (
                    worker.warm_state == "running" and not worker.crashed
                )
        worker.close()
        if self._warm_next and self._warm_target is not None:
            with self._worker_lock, contextlib.suppress(ProjectionCancelled):
                self._ensure_worker()

    def _close(self) -> None:
        """No more jobs; stop the worker (a job using it notices and closes its pipe)."""
        with self._turns:
            self._closed = True
            busy = bool(self._queue)
            self._turns.notify_all()
        with self._worker_lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            if busy:
                worker.stop()
            else:
                worker.close_idle()


def _queue_message(ahead: int) -> str:
    """A queued job's status when ``ahead`` wanted jobs are before it (0: only cancelled ones)."""
    if ahead == 0:
        return "waiting for a cancelled projection to stop"
    return f"waiting for {ahead} earlier projection{'s' if ahead > 1 else ''}"


def _ignore_progress(fraction: float, message: str) -> None:
    """Progress sink for jobs without a callback."""


def _rebuild_result(values: dict[str, Any], spec: ProjectionSpec) -> ProjectionResult:
    """A ProjectionResult from the worker's fields; arrays read-only, as the cache shares them."""
    for value in values.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return ProjectionResult(spec=spec, **values)


# ----------------------------------------------------------------------------- exit


def _stop_everything() -> None:
    """At exit: stop every worker process and unlink every segment still there."""
    for projector in live_projectors():
        if isinstance(projector, ProcessProjector):
            with contextlib.suppress(Exception):
                projector._close()
    unlink_all()


atexit.register(_stop_everything)
# Runs before the interpreter joins the thread pools' threads (which would otherwise wait
# for a running projection to finish); the same hook concurrent.futures uses.
with contextlib.suppress(AttributeError, RuntimeError):
    threading._register_atexit(_stop_everything)  # type: ignore[attr-defined]
