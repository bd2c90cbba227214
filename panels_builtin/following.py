"""Following a new linked selection in place, for the chart panels: the caption and figure
a render returned (``captioned_chart``), the series changed there, and the user's own drawn
selection on the chart kept while its brush stands (cleared once it is gone).

A panel's ``follow_selection(shown, view)`` (``panels_core.panel.Panel``) asks the engine
off the event loop and returns what changes the models; the card calls that on the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "brushed",
    "chart_parts",
    "chart_to_follow",
    "keep_drawn_brush",
    "renderer_named",
    "update_sources",
]


def chart_parts(shown: Any) -> tuple[Any, Any] | None:
    """(the caption pane, the Bokeh figure) of what ``captioned_chart`` made; None for
    anything else (an alert shown instead of a chart: the card renders again)."""
    import panel as pn

    objects = list(getattr(shown, "objects", None) or ())
    if len(objects) != 2:
        return None
    caption, chart = objects
    if not isinstance(caption, pn.pane.Markdown) or not isinstance(chart, pn.pane.Bokeh):
        return None
    return caption, chart.object


def chart_to_follow(shown: Any, data: Callable[[], Any]) -> tuple[Any, Any, Any] | None:
    """(caption pane, figure, ``data()``) for a chart that can follow in place; None when
    ``shown`` is not a chart or ``data()`` cannot be drawn (the card renders again and shows
    why). ``data`` asks the engine: call this off the event loop."""
    from panels_builtin.captions import NothingToShow
    from panels_core.query.errors import QueryError

    parts = chart_parts(shown)
    if parts is None:
        return None
    try:
        return (*parts, data())
    except (NothingToShow, QueryError):
        return None


def renderer_named(fig: Any, name: str) -> Any:
    """The glyph renderer named ``name`` on ``fig`` (None when it has none)."""
    from bokeh.models import GlyphRenderer

    return fig.select_one({"name": name, "type": GlyphRenderer})


def brushed(view: Any, brush: Any) -> bool:
    """Whether ``view``'s selection holds ``brush`` (from this card or any other)."""
    selection = getattr(view, "selection", None)
    return brush is not None and selection is not None and brush in dict(selection.brushes).values()


def keep_drawn_brush(source: Any, view: Any, brush_of: Callable[[list[int]], Any]) -> None:
    """Clear what the user drew on ``source`` (its selected indices) unless the brush it
    makes (``brush_of(indices)``) is in ``view``'s selection: a range dragged here stays
    while it selects, and goes once cleared elsewhere. Call it on the event loop."""
    indices = list(source.selected.indices)
    if indices and not brushed(view, brush_of(indices)):
        source.selected.indices = []


def update_sources(fig: Any, data: Mapping[str, Mapping[str, Any]]) -> None:
    """Give the figure's sources named in ``data`` their new columns (on the event loop)."""
    from bokeh.models import ColumnDataSource

    for name, columns in data.items():
        fig.select_one({"type": ColumnDataSource, "name": name}).data = dict(columns)
