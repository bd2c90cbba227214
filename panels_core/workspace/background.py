"""Run slow card work off the server's event loop, with a deadline, and apply its result on the loop.

In a served session ``run_off_loop(work, apply)`` runs ``work()`` on a thread of
its own (so a long render never blocks other cards or other sessions) and then
calls ``apply(result)`` through the session document's next-tick callback, the
one safe way to change a Bokeh document from another thread. Outside a server
(a notebook, a script, a test, a static report) both run at once, in order, with
the same deadline (``run_with_deadline``).

Work waits its turn in one of two lanes: typed-panels' own panels and plugin
panels, each with a limit on jobs running at once, in all and per session, so
hung plugin renders hold only plugin slots of their own session. A job gets
``render_timeout()`` seconds (``PANELS_RENDER_TIMEOUT``, default 180): past that,
``apply`` gets ``Failed(RenderTimeout)`` and the job no longer counts against its
lane. Python cannot stop a thread, so an abandoned job runs on until it returns,
and what it returns is dropped.
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import functools
import logging
import math
import os
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__ = [
    "DEFAULT_RENDER_TIMEOUT",
    "RENDER_TIMEOUT_ENV",
    "Failed",
    "Lane",
    "LaneJammed",
    "RenderTimeout",
    "current_document",
    "parse_timeout",
    "render_timeout",
    "run_off_loop",
    "run_with_deadline",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

RENDER_TIMEOUT_ENV: Final = "PANELS_RENDER_TIMEOUT"
DEFAULT_RENDER_TIMEOUT: Final = 180.0
"""Seconds a card's work may take before its card shows the deadline message."""


class Failed:
    """The exception ``work`` raised, handed to ``apply`` instead of a result."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failed({self.error!r})"


class LaneJammed(Exception):
    """A lane whose abandoned work (past its deadline, still running) reached its bound."""

    def __init__(self, lane: str, stuck: int) -> None:
        super().__init__(
            f"{stuck} earlier {lane} renders are still running past their deadline, so no "
            "more are started until they end (each holds a thread). A panel is hanging: "
            "fix or uninstall the plugin, or restart the server."
        )


class RenderTimeout(Exception):
    """Card work that did not finish within its deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"This panel did not finish within {seconds:g} s, so the card stopped waiting "
            "for it (it may still be running in the background). Narrow the query (a "
            "filter, fewer rows, fewer columns) or allow more time: `panels serve "
            f"--render-timeout SECONDS`, or the environment variable {RENDER_TIMEOUT_ENV}."
        )


def parse_timeout(text: str) -> float:
    """Seconds from text: a finite number > 0, else a ValueError saying so."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"a render timeout must be a number of seconds > 0, got {text!r}")
    return value


def render_timeout() -> float:
    """Seconds a card's work may take: ``$PANELS_RENDER_TIMEOUT``, else 180."""
    text = os.environ.get(RENDER_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_RENDER_TIMEOUT
    try:
        return parse_timeout(text)
    except ValueError as exc:
        log.warning("%s: %s; using %g s", RENDER_TIMEOUT_ENV, exc, DEFAULT_RENDER_TIMEOUT)
        return DEFAULT_RENDER_TIMEOUT


def current_document() -> Any:
    """The Bokeh document of the current server session, or None outside a server."""
    import panel as pn

    doc = pn.state.curdoc
    if doc is None or getattr(doc, "session_context", None) is None:
        return None
    return doc


def _call(work: Callable[[], T]) -> T | Failed:
    try:
        return work()
    except (Exception, SystemExit) as exc:  # handed to apply, which shows it in the card
        log.debug("card work failed", exc_info=True)
        return Failed(exc)


@dataclasses.dataclass(eq=False)
class _Job:
    session: Any
    work: Callable[[], Any]
    deliver: Callable[[Any], None]
    seconds: float
    finished: bool = False
    timer: threading.Timer | None = None


class Lane:
    """Jobs on daemon threads of their own: at most ``limit`` running at once and
    ``per_session`` of one session; the others wait, in order. A job past its deadline
    is delivered ``Failed(RenderTimeout)`` and frees its slot at once; its thread runs
    on (abandoned). While ``max_abandoned`` such threads are alive, new jobs are
    refused at once with ``Failed(LaneJammed)``, so hung renders cannot pile up threads
    without bound."""

    def __init__(self, name: str, limit: int, per_session: int, max_abandoned: int = 64) -> None:
        self.name, self.limit, self.per_session = name, limit, per_session
        self.max_abandoned = max_abandoned
        self.abandoned = 0  # threads past their deadline, still running
        self._lock = threading.Lock()
        self._waiting: collections.deque[_Job] = collections.deque()
        self._running: collections.Counter[Any] = collections.Counter()
        self._idle = threading.Condition(self._lock)

    @property
    def running(self) -> int:
        """Jobs holding a slot now (abandoned ones do not)."""
        return self._running.total()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no job runs or waits (abandoned ones aside); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running and not self._waiting, timeout)

    def submit(
        self, session: Any, work: Callable[[], T], deliver: Callable[[T | Failed], None]
    ) -> None:
        """Run ``deliver(work())`` when a slot is free (``deliver`` gets ``Failed`` when
        ``work`` raises or passes the deadline, then nothing more)."""
        job = _Job(session, work, deliver, render_timeout())
        with self._lock:
            stuck = self.abandoned
            if stuck < self.max_abandoned:
                self._waiting.append(job)
                ready = self._take_ready()
        if stuck >= self.max_abandoned:
            deliver(Failed(LaneJammed(self.name, stuck)))
            return
        self._start(ready)

    def _take_ready(self) -> list[_Job]:
        ready = []
        for job in list(self._waiting):
            if self.running >= self.limit:
                break
            if self._running[job.session] < self.per_session:
                self._waiting.remove(job)
                self._running[job.session] += 1
                ready.append(job)
        return ready

    def _start(self, jobs: list[_Job]) -> None:
        for job in jobs:
            job.timer = threading.Timer(job.seconds, self._expire, (job,))
            job.timer.daemon = True
            job.timer.start()
            name = f"panels-{self.name}"
            threading.Thread(target=self._run, args=(job,), name=name, daemon=True).start()

    def _finish(self, job: _Job, abandon: bool = False) -> bool:
        """Free the job's slot and start waiting jobs; False when it was already finished.
        ``abandon``: its thread runs on past the deadline (counted until ``_run`` ends)."""
        with self._lock:
            if job.finished:
                return False
            job.finished = True
            self.abandoned += abandon
            self._running[job.session] -= 1
            if self._running[job.session] <= 0:
                del self._running[job.session]
            ready = self._take_ready()
            if not self._running and not self._waiting:
                self._idle.notify_all()
        self._start(ready)
        return True

    def _run(self, job: _Job) -> None:
        result: Any = Failed(RuntimeError("card work was interrupted"))
        try:
            result = _call(job.work)
        finally:
            if self._finish(job):
                if job.timer is not None:
                    job.timer.cancel()
                job.deliver(result)
            else:
                log.info("a card's work ended after its deadline; its result is dropped")
                with self._lock:
                    self.abandoned -= 1

    def _expire(self, job: _Job) -> None:
        if self._finish(job, abandon=True):
            log.warning("card work passed its %g s deadline; abandoned", job.seconds)
            job.deliver(Failed(RenderTimeout(job.seconds)))


BUILTINS = Lane("card", limit=16, per_session=8)
"""Work of typed-panels' own panels."""
PLUGINS = Lane("plugin-card", limit=16, per_session=4)
"""Work of plugin panels: a hung plugin holds these slots only, until its deadline."""


def _call_with_deadline(work: Callable[[], T]) -> T | Failed:
    """``work()`` on a daemon thread (in this thread's context), waited for
    ``render_timeout()`` seconds: its result, ``Failed(what it raised)``, or past the
    deadline ``Failed(RenderTimeout)`` (the thread is abandoned)."""
    results: list[Any] = []
    done = threading.Event()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            results.append(context.run(_call, work))
        finally:
            done.set()

    threading.Thread(target=run, name="panels-render", daemon=True).start()
    seconds = render_timeout()
    if not done.wait(seconds):
        return Failed(RenderTimeout(seconds))
    return results[0] if results else Failed(RuntimeError("the render was interrupted"))


def run_with_deadline(work: Callable[[], T]) -> T:
    """``work()`` with the render deadline, as ``_call_with_deadline``, raising what it
    raised or RenderTimeout."""
    result = _call_with_deadline(work)
    if isinstance(result, Failed):
        raise result.error
    return result


def _apply_on(doc: Any, apply: Callable[[Any], None], result: Any) -> None:
    from panel.io.state import set_curdoc

    try:
        with set_curdoc(doc):
            apply(result)
    except Exception:
        log.exception("updating a card failed")
        raise


def run_off_loop(
    work: Callable[[], T],
    apply: Callable[[T | Failed], None],
    doc: Any = None,
    *,
    after_load: bool = False,
    plugin: bool = False,
) -> None:
    """``apply(work())`` with ``work`` off the loop when serving ``doc`` (default: the
    current session's document), in the plugin lane when ``plugin``; at once otherwise.
    A raised exception, or the deadline passing, reaches ``apply`` as ``Failed``.
    ``after_load`` waits until the page is loaded in the browser (``pn.state.onload``),
    so a result never lands before the page can take it."""
    doc = doc if doc is not None else current_document()
    if doc is None:
        apply(_call_with_deadline(work))
        return

    def in_session() -> T:
        from panel.io.state import set_curdoc

        # Panel resolves resource URLs (server-relative vs CDN) from the current
        # document; without it a worker thread builds objects that fetch CDN CSS.
        with set_curdoc(doc):
            return work()

    def deliver(result: T | Failed) -> None:
        try:
            doc.add_next_tick_callback(functools.partial(_apply_on, doc, apply, result))
        except Exception as exc:  # the session closed meanwhile: nothing to update
            log.debug("card result dropped: %s", exc)

    lane = PLUGINS if plugin else BUILTINS

    def submit() -> None:
        lane.submit(doc, in_session, deliver)

    if after_load:
        import panel as pn

        pn.state.onload(submit)
    else:
        submit()
