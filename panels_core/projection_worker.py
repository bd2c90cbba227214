"""Projections computed in a separate, low-priority worker process.

A UMAP or t-SNE on a thread of the server process holds the GIL for long
stretches (numba and numpy code), so the server's event loop stalls and every
other session slows down; its cancel is only cooperative (umap's fit cannot be
interrupted) and a crash in native code (numba, an out-of-memory kill) would
take the server down. ``ProcessProjector`` keeps the ``Projector`` interface
and everything cheap in the server process (the cache, the keys, fetching the
rows) and sends only cache misses to one persistent worker process:

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
import importlib
import itertools
import logging
import multiprocessing
import os
import re
import secrets
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import fields
from multiprocessing import connection, shared_memory
from typing import Any

import numpy as np

from panels_core import projection as proj
from panels_core.projection import (
    ProjectionCache,
    ProjectionCancelled,
    ProjectionError,
    ProjectionResult,
    ProjectionSpec,
    Projector,
)

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_WARM_UP",
    "KEPT_ERRORS",
    "SEGMENT_PREFIX",
    "ProcessProjector",
]

_log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

#: What the worker calls for a job, as "module:function" (``project``'s signature).
DEFAULT_TARGET = "panels_core.projection:project"
#: What the worker runs on a thread at start when ``warm_up`` is on (compiles UMAP's kernels).
DEFAULT_WARM_UP = "panels_core.projection:warm_up"
#: Every shared memory segment this module creates is named with this prefix.
SEGMENT_PREFIX = "panels-proj-"

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
_POLL_SECONDS = 0.05  # how often a waiting job looks at its cancel event
_TERM_GRACE_SECONDS = 1.0  # SIGTERM, then SIGKILL after this long
# how long ``exit_status`` waits for a worker whose pipe closed to end: no time when it died
# (the usual case); a bound generous enough for a very busy machine
_EXIT_WAIT_SECONDS = 60.0
_SEGMENT_COUNTER = itertools.count()


# ----------------------------------------------------------------------------- the worker process


def _resolve(target: str) -> Callable[..., Any]:
    """The function named by ``"module:function"`` (checked by ``_check_target`` in the server)."""
    module_name, _, name = target.partition(":")
    function = getattr(importlib.import_module(module_name), name)
    if not callable(function):
        raise TypeError(f"{target} is not a function")
    return function


def _worker_main(conn: Any, target: str, warm_target: str | None, niceness: int) -> None:
    """The worker process: one job per message until the pipe closes; the warm-up, if any,
    runs on a thread beside the jobs (a PCA need not wait for UMAP's compilation)."""
    # Ctrl-C reaches the whole process group; the server stops the worker itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):
        os.nice(niceness)
    _exit_with_parent()
    send = _locked_sender(conn)
    try:
        compute = _resolve(target)
        warm = _resolve(warm_target) if warm_target else None
    except Exception as error:
        send(("fatal", f"{type(error).__name__}: {error}"))
        return
    send(("ready",))
    if warm is not None:
        threading.Thread(
            target=_warm_up, args=(warm, send), name="panels-warm-up", daemon=True
        ).start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "job":
            return
        _serve_job(conn, send, compute, target, message[1])


def _locked_sender(conn: Any) -> Callable[[tuple[Any, ...]], None]:
    """``conn.send`` for two threads (the job's and the warm-up's)."""
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            conn.send(message)

    return send


def _warm_up(warm: Callable[[], Any], send: Callable[[tuple[Any, ...]], None]) -> None:
    """Run the warm-up and tell the server how it went."""
    try:
        warm()
    except Exception as error:
        outcome: tuple[Any, ...] = ("warmed", False, f"{type(error).__name__}: {error}")
    else:
        outcome = ("warmed", True, "")
    with contextlib.suppress(OSError):
        send(outcome)


def _exit_with_parent() -> None:
    """End this process as soon as the server process is gone (even if it was killed)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="panels-parent-watch", daemon=True).start()


def _serve_job(
    conn: Any,
    send: Callable[[tuple[Any, ...]], None],
    compute: Callable[..., Any],
    target: str,
    job: dict[str, Any],
) -> None:
    """Run one job and send back its result or error; the rows' segment is closed afterwards."""
    segment = None
    try:
        if job["segment"] is not None:
            segment = shared_memory.SharedMemory(name=job["segment"])
            rows = _rows_view(segment.buf, job)
        else:
            rows = _rows_from_pipe(conn, job)
        reply = _compute_reply(send, compute, target, rows, job)
        del rows
        send(reply)
        del reply
    finally:
        if segment is not None:
            with contextlib.suppress(BufferError):  # a result still viewing the rows: freed at exit
                segment.close()


def _compute_reply(
    send: Callable[[tuple[Any, ...]], None],
    compute: Callable[..., Any],
    target: str,
    rows: Any,
    job: dict[str, Any],
) -> tuple[str, Any]:
    """("result", the result's fields) or ("error", the exception described)."""
    spec = ProjectionSpec.model_validate_json(job["spec"])

    def progress(fraction: float, message: str) -> None:
        send(("progress", float(fraction), str(message)))

    try:
        with _joblib_threads():
            result = compute(rows, spec, progress=progress, cancel=None)
        if not isinstance(result, ProjectionResult):
            raise TypeError(f"{target} returned {type(result).__name__}, not a ProjectionResult")
        return (
            "result",
            {f.name: getattr(result, f.name) for f in fields(ProjectionResult) if f.name != "spec"},
        )
    except Exception as error:
        return ("error", _describe(error))


def _joblib_threads() -> contextlib.AbstractContextManager[Any]:
    """joblib on threads: its default (loky) cannot start processes from this daemon process,
    and scikit-learn would warn and fall back to one job on each neighbour search."""
    try:
        from joblib import parallel_config
    except ImportError:
        return contextlib.nullcontext()
    return parallel_config(backend="threading")


def _rows_view(buffer: Any, job: dict[str, Any]) -> Any:
    """The job's rows (values, missing and ragged flags) as views of one buffer."""
    n, d = job["n"], job["d"]
    size = n * d * 4
    values = np.ndarray((n, d), dtype=np.float32, buffer=buffer)
    missing = np.ndarray((n,), dtype=np.bool_, buffer=buffer, offset=size)
    ragged = np.ndarray((n,), dtype=np.bool_, buffer=buffer, offset=size + n)
    return proj._Rows(values, missing, ragged, job["expected_dim"])


def _rows_from_pipe(conn: Any, job: dict[str, Any]) -> Any:
    """The job's rows read from the pipe (when the server had no room in /dev/shm)."""
    n, d = job["n"], job["d"]
    values = np.empty((n, d), dtype=np.float32)
    missing = np.empty(n, dtype=np.bool_)
    ragged = np.empty(n, dtype=np.bool_)
    for array in (values, missing, ragged):
        conn.recv_bytes_into(memoryview(array).cast("B"))
    return proj._Rows(values, missing, ragged, job["expected_dim"])


def _describe(error: BaseException) -> dict[str, Any]:
    """An exception as plain data: its type's name, plain arguments, message and traceback."""
    cls = type(error)
    plain = all(isinstance(arg, str | int | float | bool | type(None)) for arg in error.args)
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "name": cls.__name__,
        "args": tuple(error.args) if plain else None,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
    }


# ----------------------------------------------------------------------------- server side


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


class _WorkerGone(Exception):
    """The worker process ended (or its pipe broke)."""


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, target: str, warm_target: str | None, niceness: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_worker_main,
            args=(child_conn, target, warm_target, niceness),
            name="panels-projection-worker",
            daemon=True,
        )
        self.process.start()
        child_conn.close()
        self.ready = False  # imported its functions; takes jobs
        # the warm-up: "off" (not asked), "running", "done" or "failed"
        self.warm_state = "running" if warm_target is not None else "off"
        self.crashed = False  # ended by itself (not by us)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def receive(self, timeout: float = _POLL_SECONDS) -> tuple[Any, ...] | None:
        """The next message, None after ``timeout`` without one; ``_WorkerGone`` once it died."""
        try:
            ready = connection.wait([self.conn, self.process.sentinel], timeout=timeout)
            if not ready:
                return None
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError) as error:
            raise _WorkerGone from error
        raise _WorkerGone  # the process ended with nothing left to read

    def note(self, message: tuple[Any, ...]) -> bool:
        """Take in a status message ("ready", "warmed"); False for any other message."""
        if message[0] == "ready":
            self.ready = True
        elif message[0] == "warmed":
            self.warm_state = "done" if message[1] else "failed"
            if not message[1]:
                _log.warning("the projection worker's warm-up failed: %s", message[2])
        else:
            return False
        return True

    def exit_status(self) -> str:
        """How the process ended: "exit code N" or "signal NAME"."""
        self.process.join(_EXIT_WAIT_SECONDS)
        code = self.process.exitcode
        if code is None:
            return "its pipe closed"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            hint = ", perhaps out of memory" if -code == signal.SIGKILL else ""
            return f"signal {name}{hint}"
        return f"exit code {code}"

    def stop(self) -> None:
        """End the process: SIGTERM, then SIGKILL if it is still there after a short wait."""
        if self.process.exitcode is None:
            self.process.terminate()
            self.process.join(_TERM_GRACE_SECONDS)
            if self.process.exitcode is None:
                self.process.kill()
                self.process.join()

    def close(self) -> None:
        """Stop the process (busy with a job) and close the pipe."""
        self.stop()
        self.conn.close()

    def close_idle(self) -> None:
        """Let an idle worker end by itself (it exits when its pipe closes), else stop it."""
        self.conn.close()
        self.process.join(_TERM_GRACE_SECONDS)
        self.stop()


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
    user input. ``niceness`` is added to the worker's CPU niceness.
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
    ) -> None:
        self._target = _check_target(target, "target")
        self._warm_target = _check_target(warm_up_target, "warm_up_target") if warm_up else None
        self._warm_next = warm_up
        self._niceness = niceness
        self._worker: _Worker | None = None
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
            except _WorkerGone:
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
        spec = proj._as_spec(spec)
        data = proj._coerce(rows)
        cancel = cancel if cancel is not None else threading.Event()
        report = progress if progress is not None else _ignore_progress
        with self._turn(cancel, report):
            return self._run_in_worker(data, spec, report, cancel)

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
                self._turns.wait(_POLL_SECONDS)
        return None

    def _check_open(self, cancel: threading.Event) -> None:
        if self._closed:
            raise ProjectionCancelled("the projector was shut down")
        if cancel.is_set():
            raise ProjectionCancelled("the projection was cancelled")

    def _run_in_worker(
        self, data: Any, spec: ProjectionSpec, progress: ProgressFn, cancel: threading.Event
    ) -> ProjectionResult:
        method = _METHOD_NAMES.get(spec.method, spec.method)
        n, d = data.values.shape
        self._check_open(cancel)
        segment = _share(data)
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
                        for array in (data.values, data.missing, data.ragged):
                            view = memoryview(np.ascontiguousarray(array)).cast("B")
                            worker.conn.send_bytes(view)
                kind, payload = self._wait_for_reply(worker, progress, cancel, method, n)
            except BaseException:
                # cancelled, crashed, or the progress callback failed: the worker may still be
                # busy with this job, so it must not get the next one
                self._retire(worker)
                raise
        finally:
            if segment is not None:
                _release(segment)
        if kind == "error":
            raise _rebuild_error(payload, method) from _RemoteTraceback(payload["traceback"])
        return _rebuild_result(payload, spec)

    def _ready_worker(self, cancel: threading.Event, progress: ProgressFn) -> _Worker:
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
        except _WorkerGone:
            status = worker.exit_status()
            worker.crashed = True
            self._retire(worker)
            self._check_open(cancel)
            raise ProjectionError(
                f"the projection worker stopped ({status}) while starting; see the server's log"
            ) from None
        return worker

    def _wait_for_reply(
        self, worker: _Worker, progress: ProgressFn, cancel: threading.Event, method: str, n: int
    ) -> tuple[str, Any]:
        """Pass on the job's progress until its ("result", fields) or ("error", description)."""
        while True:
            if cancel.is_set():
                raise ProjectionCancelled("the projection was cancelled")
            try:
                message = worker.receive()
            except _WorkerGone:
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

    def _ensure_worker(self) -> _Worker:
        """The current worker, started if there is none (call with ``_worker_lock`` held)."""
        if self._closed:
            raise ProjectionCancelled("the projector was shut down")
        if self._worker is None:
            warm = self._warm_target if self._warm_next else None
            self._worker = _Worker(self._target, warm, self._niceness)
        return self._worker

    def _retire(self, worker: _Worker) -> None:
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


# ----------------------------------------------------------------------------- shared memory

_SEGMENTS: dict[str, shared_memory.SharedMemory] = {}  # live segments, unlinked at exit
_SEGMENTS_LOCK = threading.Lock()


def _share(data: Any) -> shared_memory.SharedMemory | None:
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
        view = _rows_view(segment.buf, {"n": n, "d": d, "expected_dim": data.expected_dim})
        np.copyto(view.values, data.values)
        np.copyto(view.missing, data.missing)
        np.copyto(view.ragged, data.ragged)
        del view
    except OSError as error:
        _release(segment)
        _log.info("no room in shared memory for the projection rows (%s); using the pipe", error)
        return None
    return segment


def _reserve(segment: shared_memory.SharedMemory, size: int) -> None:
    """Allocate the segment's pages now: a full /dev/shm raises OSError here instead of
    killing the server with SIGBUS when the rows are written."""
    fd = getattr(segment, "_fd", -1)
    if fd >= 0 and hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)


def _release(segment: shared_memory.SharedMemory) -> None:
    """Close and unlink a segment (unless the exit hook unlinked it already)."""
    with _SEGMENTS_LOCK:
        owned = _SEGMENTS.pop(segment.name, None) is not None
    with contextlib.suppress(BufferError):
        segment.close()
    if owned:
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()


# ----------------------------------------------------------------------------- exit


def _stop_everything() -> None:
    """At exit: stop every worker process and unlink every segment still there."""
    for projector in proj.live_projectors():
        if isinstance(projector, ProcessProjector):
            with contextlib.suppress(Exception):
                projector._close()
    with _SEGMENTS_LOCK:
        segments = list(_SEGMENTS.values())
        _SEGMENTS.clear()
    for segment in segments:
        with contextlib.suppress(OSError):
            segment.unlink()  # not closed: a job thread may still be writing to it


atexit.register(_stop_everything)
# Runs before the interpreter joins the thread pools' threads (which would otherwise wait
# for a running projection to finish); the same hook concurrent.futures uses.
with contextlib.suppress(AttributeError, RuntimeError):
    threading._register_atexit(_stop_everything)  # type: ignore[attr-defined]
