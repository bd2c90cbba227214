"""Panel's notebook extension set up for typed-panels: offline, with what the panels need.

``panels_core.extension()`` in a notebook's first cell loads Panel's extension with
every JavaScript and CSS bundle inlined into the output (``inline=True``), so the
notebook's panels draw with no network, and saved notebooks keep working offline.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXTENSIONS", "extension"]

EXTENSIONS: tuple[str, ...] = ("tabulator",)
"""Panel extensions the built-in panels use (the table panel's Tabulator)."""


def extension(*args: str, **kwargs: Any) -> None:
    """``pn.extension`` with the built-in panels' extensions and inline resources.

    ``args`` add Panel extensions a plugin needs (``"vega"``, ``"plotly"``, ...);
    ``kwargs`` go to ``pn.extension`` unchanged (``sizing_mode``, ``template``, ...).
    ``inline`` is always True and ``pn.config.inline`` is set, so later output
    inlines its resources too.
    """
    import panel as pn

    if kwargs.get("inline", True) is not True:
        raise ValueError(
            "panels_core.extension: inline resources are what makes notebook output work "
            "offline; call pn.extension(...) yourself to load them from a CDN"
        )
    kwargs["inline"] = True
    wanted = list(dict.fromkeys([*EXTENSIONS, *args]))
    pn.config.inline = True
    pn.extension(*wanted, **kwargs)
