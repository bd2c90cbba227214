"""``ProjectionPlot``: the rendered projection (progress while it runs, then the plot, caption,
search box and neighbour list) and what a user does with it (click, search)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from panels_builtin.captions import OTHER, format_count, message
from panels_builtin.projection.brushing import Brushing
from panels_builtin.projection.config import DIM_ALPHA, MAX_SCATTER_POINTS, ProjectionConfig
from panels_builtin.projection.inputs import Inputs, remembered, thumbnails
from panels_builtin.projection.labels import MAX_CATEGORIES, Colouring, Labels, colouring_for
from panels_builtin.projection.raster import RasterDrawing
from panels_builtin.projection.scatter import ScatterDrawing
from panels_builtin.projection.session import cancel_when_closed, live, on_document
from panels_core import projection as proj
from panels_core.escape import html_text, markdown_code, markdown_text
from panels_core.query.errors import QueryError

__all__ = ["METHOD_NAMES", "Progress", "ProjectionPlot"]

_log = logging.getLogger(__name__)

METHOD_NAMES = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
"""Each method as the caption and the progress line name it."""


class Progress:
    """A running projection's last report (fraction, sentence), written by the thread that
    runs it and read by the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = (0.0, "queued")

    def report(self, fraction: float, text: str) -> None:
        with self._lock:
            self._state = (fraction, text)

    def read(self) -> tuple[float, str]:
        with self._lock:
            return self._state


class ProjectionPlot(ScatterDrawing, RasterDrawing, Brushing):
    """The rendered projection: a Panel layout plus the data it draws (for callbacks and tests).

    After ``show``: ``result`` (the ProjectionResult), ``rows`` (view row number of
    each point), ``source`` (the Bokeh ColumnDataSource, scatter mode) or
    ``raster`` (the ``RasterLayer``, above ``MAX_SCATTER_POINTS``; ``raster_source``
    is its Bokeh ColumnDataSource and ``marks`` the source of the highlighted points),
    ``colouring``, ``caption``; ``select(row)`` fills ``neighbours`` (a
    DataFrame also shown in ``neighbour_table``); ``search(text)`` sets
    ``matches`` (a bool per point) and dims the others. With a linked selection
    ``chosen`` marks the selected points (``Brushing``): bright, the others dimmed.
    """

    def __init__(self, config: ProjectionConfig, view: Any, inputs: Inputs) -> None:
        import panel as pn

        self.config = config
        self.view = view
        self.inputs = inputs
        self.result: proj.ProjectionResult | None = None
        self.rows = np.empty(0, dtype=np.int64)
        self.source: Any = None
        self.raster: Any = None
        self.figure: Any = None
        self.colouring = Colouring("none")
        self.caption = ""
        self.labels: Labels | None = None
        self.search_column: str | None = None
        self.matches: np.ndarray | None = None
        self.neighbours: Any = None
        self.selected: int | None = None
        self.error: str | None = None
        self._syncing = False
        self.marks: Any = None
        self.raster_source: Any = None
        self.hover_image = pn.pane.HTML("", margin=(0, 10))
        self.progress = pn.indicators.Progress(value=0, max=100, width=240)
        self.status = pn.pane.Markdown("Projecting…", margin=(0, 10))
        self.layout = pn.Column(
            pn.Row(pn.indicators.LoadingSpinner(value=True, size=20), self.status),
            self.progress,
            sizing_mode="stretch_width",
        )
        # what a workspace card calls with a new linked selection, on what it shows
        self.layout.follow_selection = self.follow_selection

    def __panel__(self) -> Any:
        return self.layout

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.layout._repr_mimebundle_(include, exclude)

    # -- computing ---------------------------------------------------------------------

    def run_in_background(self, spec: proj.ProjectionSpec) -> None:
        """Submit to the shared Projector and poll it from the event loop until done."""
        progress = Progress()
        slot = ("projection", id(self.view))
        future = proj.shared_projector().submit(
            slot, self.inputs.values, spec, progress.report, key=self.inputs.key
        )
        self.watch(future, spec, self.inputs.n, progress)
        cancel_when_closed(future)

    def watch(self, future: Any, spec: proj.ProjectionSpec, rows: int, progress: Progress) -> None:
        """Show ``progress`` from the event loop until ``future`` is done, then ``show`` its
        result (or its error in place of the plot)."""
        import panel as pn

        name = METHOD_NAMES[spec.method]

        def poll() -> None:
            fraction, text = progress.read()
            self.progress.value = int(100 * fraction)
            self.status.object = f"{name} of {format_count(rows)} rows: {markdown_text(text)}"
            if not future.done():
                return
            callback.stop()
            error = future.exception()
            if isinstance(error, proj.ProjectionCancelled):
                self.fail(f"This projection was stopped ({error}).", kind="info")
            elif isinstance(error, proj.ProjectionError | QueryError):
                self.fail(str(error))
            elif error is not None:
                self.fail(f"The projection failed: {type(error).__name__}: {error}", "danger")
            else:
                # drawn on the next tick, so the periodic callback returns at once
                pn.state.execute(lambda: self._show_safely(future.result()), schedule=live())

        callback = pn.state.add_periodic_callback(poll, period=250)

    def _show_safely(self, result: proj.ProjectionResult) -> None:
        try:
            self.show(result)
        except Exception as exc:  # shown in the card rather than lost in the event loop
            _log.exception("2D projection: drawing failed")
            self.fail(f"Drawing the projection failed: {type(exc).__name__}: {exc}", "danger")

    def fail(self, text: str, kind: str = "warning") -> None:
        """Show ``text`` (plain text) instead of the plot."""
        self.error = text
        self.layout.objects = [message(markdown_text(text), kind)]

    # -- drawing -----------------------------------------------------------------------

    def show(self, result: proj.ProjectionResult) -> None:
        """Draw ``result`` (scatter or raster), the caption, search box and neighbour list."""
        cfg = self.config
        self.result = result
        self.rows = result.kept_indices
        self.register(result)
        self.colouring = remembered(
            self.view,
            ("colouring", cfg.colour_by),
            result.kept,
            lambda: colouring_for(self.view, cfg, result.kept),
        )
        column = self.search_column = cfg.search_column(self.view.type)
        if column is not None:
            self.labels = remembered(
                self.view,
                ("labels", column, self.colouring.column),
                result.kept,
                lambda: self._labels(column, result.kept),
            )
        self.caption = self._caption(result)
        big = result.n_kept > MAX_SCATTER_POINTS
        figure = self._raster(result) if big else self._scatter(result)
        self.layout.objects = self._widgets(figure, column)
        if cfg.search:
            self.search(cfg.search)

    def _widgets(self, figure: Any, column: str | None) -> list[Any]:
        """The drawn layout: caption, search box, the figure, and the neighbour list below."""
        import panel as pn

        cfg = self.config
        plot = pn.pane.Bokeh(figure, sizing_mode="stretch_width")
        self.search_box = pn.widgets.TextInput(
            placeholder=f"search {column}" if column else "choose a label column to search",
            value=cfg.search,
            disabled=column is None,
            width=240,
        )
        self.search_box.param.watch(lambda event: self.search(event.new), "value")
        self.search_info = pn.pane.Markdown("", margin=(0, 10))
        self.neighbour_title = pn.pane.Markdown(
            f"Click a point to list its {cfg.knn_k} nearest neighbours ({cfg.knn_metric}, in "
            "the original space).",
            margin=(0, 10),
        )
        self.neighbour_image = pn.pane.HTML("", margin=(0, 10))
        self.neighbour_table = pn.widgets.Tabulator(
            None,
            show_index=False,
            disabled=True,
            height=300,
            width=320,
            visible=False,
            titles={column: html_text(column)} if column else {},  # titles are HTML
        )
        side = pn.Column(
            self.hover_image,
            self.neighbour_title,
            self.neighbour_image,
            self.neighbour_table,
            width=340,
        )
        return [
            pn.pane.Markdown(self.caption, margin=(0, 10)),
            pn.Row(self.search_box, self.search_info),
            # the neighbour list goes below the plot, so a narrow card keeps a usable plot
            plot,
            side,
        ]

    def inputs_text(self) -> str:
        """What is projected, for the caption: "PCA of `emb`", "UMAP of 5 numeric columns"."""
        cfg = self.config
        inputs = (
            markdown_code(cfg.columns[0])
            if len(cfg.columns) == 1
            else f"{len(cfg.columns)} numeric columns"
        )
        return f"{METHOD_NAMES[cfg.method]} of {inputs}"

    def _caption(self, result: proj.ProjectionResult) -> str:
        parts = [f"{self.inputs_text()}: {format_count(result.n_kept)} points"]
        if result.n_kept > MAX_SCATTER_POINTS:
            parts.append("rasterised on the server")
        text = ", ".join(parts)
        notes = [result.message] if result.message else []
        notes.extend(result.notes)  # the projection's own words, no data
        notes.extend(self.colouring_notes(self.colouring))
        return text + ("; " + "; ".join(notes) if notes else "")

    def colouring_notes(self, colouring: Colouring) -> list[str]:
        """The caption's note on categories coloured as ``(other)`` (none when all have a
        colour of their own)."""
        if not colouring.merged:
            return []
        return [
            f"{colouring.merged} values of {markdown_code(colouring.column)} beyond the "
            f"{MAX_CATEGORIES - 1} most frequent are coloured as {OTHER}"
        ]

    def _labels(self, column: str, kept: np.ndarray) -> Labels:
        colouring = self.colouring
        if colouring.column == column and colouring.kind == "category" and not colouring.merged:
            return Labels(colouring.values, colouring.factors)
        return Labels.of_column(self.view, column, kept)

    def _hover_columns(self) -> list[str]:
        cfg = self.config
        names: list[str] = []
        for name in (cfg.label, cfg.colour_by, cfg.size_by, *cfg.tooltip):
            if name is not None and name not in names:
                names.append(name)
        return names

    # -- interaction -------------------------------------------------------------------

    def point_of(self, row: int) -> int:
        """The point index of view row ``row``; raises ValueError when the row has no point."""
        where = np.searchsorted(self.rows, row)
        if where >= len(self.rows) or self.rows[where] != row:
            raise ValueError(f"row {row} has no point (it was left out of the projection)")
        return int(where)

    def select(self, row: int) -> Any:
        """List the ``knn_k`` nearest neighbours of view row ``row`` in the original space."""
        import pandas as pd

        cfg = self.config
        point = self.point_of(row)
        indices, distances = proj.nearest_neighbors(
            self.inputs.values, row, k=cfg.knn_k, metric=cfg.knn_metric
        )
        frame: dict[str, Any] = {"rank": np.arange(1, len(indices) + 1), "row": indices}
        if self.labels is not None:
            points = [self.point_of(int(i)) for i in indices]
            frame[self.search_column] = [self.labels[p] for p in points]
        frame["distance"] = distances
        self.neighbours = pd.DataFrame(frame)
        self.selected = row
        label = f" ({markdown_text(self.labels[point])})" if self.labels is not None else ""
        self.neighbour_title.object = (
            f"**Row {row}{label}**: its {len(indices)} nearest neighbours "
            f"({cfg.knn_metric}, original space)"
        )
        if cfg.image is not None:
            uri = thumbnails(self.view, cfg.image, np.array([row]))[0]
            self.neighbour_image.object = (
                f'<img src="{uri}" style="width:96px;height:96px;image-rendering:pixelated">'
                if uri
                else ""
            )
        self.neighbour_table.value = self.neighbours
        self.neighbour_table.visible = True
        if self.source is not None:
            chosen = [point] + [self.point_of(int(i)) for i in indices]

            def select_points() -> None:
                self._syncing = True
                try:
                    self.source.selected.indices = chosen
                finally:
                    self._syncing = False

            on_document(select_points)
        elif self.marks is not None:
            chosen = np.concatenate([[point], [self.point_of(int(i)) for i in indices]])
            self._highlight(chosen)
        return self.neighbours

    def search(self, text: str) -> np.ndarray | None:
        """Highlight the points whose label contains ``text`` (case-insensitive); "" clears."""
        if self.labels is None or self.result is None:
            return None
        needle = text.strip().lower()
        if not needle:
            self.matches = None
            alpha = self.base_alpha()
            self.search_info.object = ""
            chosen = np.empty(0, dtype=np.int64)
        else:
            self.matches = self.labels.containing(needle)
            alpha = np.where(self.matches, 0.9, DIM_ALPHA)
            count = int(self.matches.sum())
            self.search_info.object = (
                f"{format_count(count)} of {format_count(len(self.matches))} points match "
                f"{markdown_code(text.strip())} in {markdown_code(self.search_column)}"
            )
            chosen = np.flatnonzero(self.matches)
        if self.source is not None:
            source = self.source
            on_document(lambda: source.data.update(alpha=alpha))
        elif self.marks is not None:
            self._highlight(chosen[:MAX_SCATTER_POINTS])
        return self.matches

    def _highlight(self, points: np.ndarray) -> None:
        """Mark ``points`` (search matches, a clicked point and its neighbours) over the raster."""
        assert self.result is not None
        data = {
            "x": self.result.points[points, 0],
            "y": self.result.points[points, 1],
            "row": self.rows[points],
        }
        marks = self.marks
        on_document(lambda: setattr(marks, "data", data))
