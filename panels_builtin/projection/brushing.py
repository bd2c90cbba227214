"""Linked selection in the projection: the points registered with the View (so a region
brush is evaluated by the engine), box and lasso select publishing a ``RegionBrush``, and
which points the table's selection selects; a mixin of ``ProjectionPlot``."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from panels_builtin.projection.config import DIM_ALPHA
from panels_builtin.projection.inputs import remembered
from panels_builtin.projection.session import on_document
from panels_builtin.selecting import selection_answer
from panels_core import projection as proj

__all__ = ["Brushing", "points_key", "polygon_of"]


def polygon_of(geometry: Any) -> tuple[tuple[float, float], ...] | None:
    """The polygon, in data coordinates, of a Bokeh ``SelectionGeometry`` (a box's four
    corners, a lasso's vertices); None for other shapes or a degenerate one."""
    geometry = geometry or {}
    if geometry.get("type") == "rect":
        x0, x1, y0, y1 = (geometry.get(k) for k in ("x0", "x1", "y0", "y1"))
        if None in (x0, x1, y0, y1):
            return None
        corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    elif geometry.get("type") == "poly":
        corners = tuple(zip(geometry.get("x") or (), geometry.get("y") or ()))
    else:
        return None
    polygon = tuple((float(x), float(y)) for x, y in corners)
    finite = all(np.isfinite(v) for p in polygon for v in p)
    return polygon if len(polygon) >= 3 and finite else None


def points_key(view: Any, inputs_key: Any, spec: proj.ProjectionSpec) -> str:
    """The key a projection registers its points under: the same for the same table, rows
    (the view's query without its selection), inputs and projection, in every session and
    after a restart (a saved region brush names it), and distinct for any other."""
    rows = view.query.model_copy(update={"selection": None, "selected_first": False})
    text = "\n".join((rows.model_dump_json(), repr(inputs_key), spec.model_dump_json()))
    return "projection:" + hashlib.sha256(text.encode()).hexdigest()[:16]


class Brushing:
    """``ProjectionPlot``'s part of the linked selection.

    After ``show``: ``points_key`` (the key the points are registered under, stable for
    the same rows and projection), ``table_rows`` (each point's table row number) and
    ``chosen`` (a bool per point: selected by the table's selection; None without one).
    """

    points_key = ""
    table_rows = np.empty(0, dtype=np.int64)
    chosen: np.ndarray | None = None

    def register(self, result: proj.ProjectionResult) -> None:
        """Register the points with the View and find which of them are selected."""
        view = self.view
        self.points_key = points_key(view, self.inputs.key, self.config.spec(self.inputs.embedding))
        every = remembered(view, ("row_numbers",), result.kept, view.row_numbers)
        self.table_rows = np.asarray(every, dtype=np.int64)[self.rows]
        view.register_points(self.points_key, self.table_rows, result.points)
        self.chosen = self._chosen(view)

    def _chosen(self, view: Any) -> np.ndarray | None:
        selected = selection_answer(view, lambda chosen: chosen.row_numbers())
        return None if selected is None else np.isin(self.table_rows, selected)

    def follow_selection(self, view: Any) -> None:
        """Show ``view``'s linked selection without drawing the projection again: only the
        highlight changes, so the user's zoom and drawn shape stay (the card calls this
        instead of rendering again). Still computing: ``show`` reads it when done."""
        self.view = view
        if self.result is None:
            return
        self.chosen = self._chosen(view)
        if not self._brushed_here(view):
            self._clear_drawn_selection()
        if self.raster is not None:
            self.raster.chosen = self.chosen
            self.redraw_raster()
        elif self.source is not None:
            matches, source = self.matches, self.source
            alpha = self.base_alpha() if matches is None else np.where(matches, 0.9, DIM_ALPHA)
            on_document(lambda: source.data.update(alpha=alpha))

    def _brushed_here(self, view: Any) -> bool:
        """Whether the selection holds a region over this projection's points."""
        from panels_core.query.selection import RegionBrush

        brushes = view.selection.brushes if view.selection is not None else ()
        return any(isinstance(b, RegionBrush) and b.points == self.points_key for _, b in brushes)

    def _clear_drawn_selection(self) -> None:
        """Drop Bokeh's own selection of the points a box or lasso drew over (it would
        keep dimming the others once the brush is cleared elsewhere)."""
        drawn = [s for s in (self.source, self.marks) if s is not None and s.selected.indices]

        def clear() -> None:
            self._syncing = True
            try:
                for source in drawn:
                    source.selected.indices = []
            finally:
                self._syncing = False

        if drawn:
            on_document(clear)

    def add_select_tools(self, fig: Any, renderers: list[Any]) -> None:
        """Box and lasso select (Bokeh's tools) on ``fig``; the drawn shape comes to the
        server as a ``SelectionGeometry`` event in data coordinates."""
        from bokeh import events
        from bokeh.models import BoxSelectTool, LassoSelectTool

        fig.add_tools(
            BoxSelectTool(renderers=renderers, continuous=False),
            LassoSelectTool(renderers=renderers, continuous=False),
        )
        fig.on_event(events.SelectionGeometry, self.on_geometry)

    def on_geometry(self, event: Any) -> Any:
        """Publish the drawn box or lasso as this projection's ``RegionBrush``."""
        from panels_core.query.selection import RegionBrush

        if not getattr(event, "final", True) or not self.points_key:
            return None
        polygon = polygon_of(getattr(event, "geometry", None))
        if polygon is None:
            return None
        brush = RegionBrush(points=self.points_key, polygon=polygon)
        self.view.select(brush)
        return brush

    def base_alpha(self) -> np.ndarray:
        """Each point's alpha without a search: the selected points bright, the others dim."""
        assert self.result is not None
        if self.chosen is None:
            return np.full(self.result.n_kept, 0.8)
        return np.where(self.chosen, 0.9, DIM_ALPHA)
