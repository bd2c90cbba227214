"""Run slow card work off the server's event loop and apply its result on the loop.

In a served session ``run_off_loop(work, apply)`` runs ``work()`` on a worker
thread (so a long render never blocks other cards or other sessions) and then
calls ``apply(result)`` through the session document's next-tick callback, the
one safe way to change a Bokeh document from another thread. Outside a server
(a notebook, a script, a test) both run at once, in order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["Failed", "current_document", "run_off_loop"]

T = TypeVar("T")

log = logging.getLogger(__name__)

_WORKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="panels-card")


class Failed:
    """The exception ``work`` raised, handed to ``apply`` instead of a result."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failed({self.error!r})"


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
    except Exception as exc:  # handed to apply, which shows it in the card
        log.debug("card work failed", exc_info=True)
        return Failed(exc)


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
) -> None:
    """``apply(work())`` with ``work`` on a worker thread when serving ``doc`` (default:
    the current session's document); at once otherwise. A raised exception reaches
    ``apply`` as ``Failed``. ``after_load`` waits until the page is loaded in the
    browser (``pn.state.onload``), so a result never lands before the page can take it."""
    doc = doc if doc is not None else current_document()
    if doc is None:
        apply(_call(work))
        return

    def job() -> None:
        from panel.io.state import set_curdoc

        # Panel resolves resource URLs (server-relative vs CDN) from the current
        # document; without it a worker thread builds objects that fetch CDN CSS.
        with set_curdoc(doc):
            result = _call(work)
        try:
            doc.add_next_tick_callback(functools.partial(_apply_on, doc, apply, result))
        except Exception as exc:  # the session closed meanwhile: nothing to update
            log.debug("card result dropped: %s", exc)

    if after_load:
        import panel as pn

        pn.state.onload(lambda: _WORKERS.submit(job))
    else:
        _WORKERS.submit(job)
