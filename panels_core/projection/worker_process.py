"""The projection worker process: its main loop (one job at a time, an optional warm-up beside
them) and ``Worker``, the server's handle on one such process (start, messages, stop).

See ``panels_core.projection.worker`` for how the server uses it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import fields
from multiprocessing import connection, shared_memory
from typing import Any

from panels_core.projection.spec import ProjectionResult, ProjectionSpec
from panels_core.projection.transport import rows_from_pipe, rows_view

__all__ = ["POLL_SECONDS", "Worker", "WorkerGone", "worker_main"]

_log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often a waiting job looks at its cancel event
_TERM_GRACE_SECONDS = 1.0  # SIGTERM, then SIGKILL after this long
# how long ``exit_status`` waits for a worker whose pipe closed to end: no time when it died
# (the usual case); a bound generous enough for a very busy machine
_EXIT_WAIT_SECONDS = 60.0


def _resolve(target: str) -> Callable[..., Any]:
    """The function named by ``"module:function"`` (checked by ``_check_target`` in the server)."""
    module_name, _, name = target.partition(":")
    function = getattr(importlib.import_module(module_name), name)
    if not callable(function):
        raise TypeError(f"{target} is not a function")
    return function


def worker_main(conn: Any, target: str, warm_target: str | None, niceness: int) -> None:
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
            rows = rows_view(segment.buf, job)
        else:
            rows = rows_from_pipe(conn, job)
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


class WorkerGone(Exception):
    """The worker process ended (or its pipe broke)."""


class Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, target: str, warm_target: str | None, niceness: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(
            target=worker_main,
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

    def receive(self, timeout: float = POLL_SECONDS) -> tuple[Any, ...] | None:
        """The next message, None after ``timeout`` without one; ``WorkerGone`` once it died."""
        try:
            ready = connection.wait([self.conn, self.process.sentinel], timeout=timeout)
            if not ready:
                return None
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError) as error:
            raise WorkerGone from error
        raise WorkerGone  # the process ended with nothing left to read

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
