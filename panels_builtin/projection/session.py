"""The Bokeh server session, if any: live or not, running on its event loop, closing pages."""

from __future__ import annotations

import os
import weakref
from typing import Any

from panels_core import projection as proj

__all__ = ["SYNC_ENV", "cancel_when_closed", "live", "must_wait", "on_document"]

SYNC_ENV = "PANELS_PROJECTION_SYNC"
"""Set to 1 to compute projections before ``render`` returns even under a server."""


def live() -> bool:
    """True inside a Bokeh server session (callbacks and dynamic plots work)."""
    import panel as pn

    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


def cancel_when_closed(future: proj.ProjectionFuture) -> None:
    """Cancel the projection when the page it was started for closes: nobody waits for
    it any more, and the next projection must not wait behind it."""
    import panel as pn

    doc = pn.state.curdoc
    if doc is None or getattr(doc, "session_context", None) is None:
        return
    ref = weakref.ref(future)  # the page does not keep a finished projection alive

    def cancel(session_context: Any) -> None:
        job = ref()
        if job is not None:
            job.cancel()

    doc.on_session_destroyed(cancel)


def must_wait() -> bool:
    """True when the projection must be computed before ``render`` returns (no live server,
    or ``PANELS_PROJECTION_SYNC=1``)."""
    if os.environ.get(SYNC_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True
    return not live()


def on_document(change: Any) -> None:
    """Run ``change`` (it edits Bokeh models) now, or under a server on the event loop with the
    document locked (a widget callback may not hold the lock)."""
    import panel as pn

    pn.state.execute(change, schedule=live())
