"""The raster of a big projection: datashader aggregates the points into an RGBA image on the
server (``RasterLayer``), shown by a Bokeh ``image_rgba`` figure with hover per pixel, re-drawn
for every zoom or pan under a server (``RasterDrawing``, a mixin of ``ProjectionPlot``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from panels_builtin.projection.config import is_number
from panels_builtin.projection.inputs import remembered, thumbnails
from panels_builtin.projection.labels import Colouring, Labels
from panels_builtin.projection.session import live, on_document
from panels_core import projection as proj

__all__ = [
    "RASTER_HEIGHT",
    "RASTER_WIDTH",
    "FrameRasterLayer",
    "RasterDrawing",
    "RasterLayer",
    "shaded_counts",
    "warm_up_raster",
]

X, Y = "x_2d", "y_2d"
"""Raster coordinate column names (datashader refuses a category named like a coordinate)."""
SELECTED_CMAP = ["#fdd0a2", "#d94801"]
"""The shades of the selected points' layer drawn over the dimmed raster."""
FOUND_CMAP = ["#f4a3a3", "#e45756"]
"""The shades of a search's matches drawn on the workers (the local card's mark colour)."""
RASTER_WIDTH, RASTER_HEIGHT = 560, 420
"""Pixels of the server-side raster (re-aggregated for every zoom or pan under a server)."""

_IN_APP = "panel" in sys.modules
"""Imported by an app (Panel already loaded), not by the CLI: see the end of this module."""


class RasterLayer:
    """The points of a big projection aggregated by datashader into one RGBA image.

    ``draw(x_range, y_range)`` bins the points in that window into
    ``RASTER_WIDTH`` x ``RASTER_HEIGHT`` pixels, in one datashader pass: a count per
    category (``by``) and the index of the last point drawn in each pixel (``max``),
    or the mean of a number colour column, or a plain count. It shades them (the
    category palette, Viridis over the column's full range, or Blues with
    histogram equalisation) and returns the ``ColumnDataSource`` data of a Bokeh
    ``image_rgba`` glyph, plus one image-shaped array per hover field holding the
    value of the pixel's point (``row``: its view row number, -1 where the pixel is
    empty), so the hover reports the row under the cursor without the server.
    The last draw is kept: ``counts`` (points per category, or ``{"count": n}``),
    ``grid`` (point index per pixel, -1 empty), ``window`` ((x0, x1), (y0, y1)).

    ``chosen`` (a bool per point, the linked selection): the raster is dimmed and the
    chosen points are aggregated again into a second image in a highlight colour
    (column ``selected``, drawn over it; ``selected`` is their count per pixel in the
    last draw).
    """

    def __init__(
        self,
        points: np.ndarray,
        rows: np.ndarray,
        colouring: Colouring,
        hover: Sequence[tuple[str, np.ndarray]] = (),
        chosen: np.ndarray | None = None,
    ) -> None:
        import pandas as pd

        self.chosen = chosen
        self.selected = np.zeros((0, 0), dtype=np.int64)
        self.points = points
        self.rows = rows
        self.colouring = colouring
        self.hover = list(hover)
        frame: dict[str, Any] = {
            X: points[:, 0],
            Y: points[:, 1],
            "point": np.arange(len(points), dtype=np.float64),
        }
        if colouring.kind == "category":
            frame["colour"] = pd.Categorical.from_codes(colouring.values, colouring.factors)
        elif colouring.kind == "number":
            frame["colour"] = colouring.values
            finite = colouring.values[np.isfinite(colouring.values)]
            self.span = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self.frame = pd.DataFrame(frame, copy=False)
        self.extent = _padded_extent(points)
        self.counts: dict[str, int] = {}
        self.grid = np.empty((0, 0), dtype=np.int64)
        self.window = self.extent

    def _aggregator(self) -> Any:
        import datashader as ds

        last = ds.max("point")
        if self.colouring.kind == "category":
            return ds.summary(value=ds.by("colour", ds.count()), point=last)
        if self.colouring.kind == "number":
            return ds.summary(value=ds.mean("colour"), count=ds.count(), point=last)
        return ds.summary(value=ds.count(), point=last)

    def draw(
        self, x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """Aggregate and shade the points inside the window (default: all of them)."""
        import datashader as ds
        import datashader.transfer_functions as tf

        x_range = x_range or self.extent[0]
        y_range = y_range or self.extent[1]
        canvas = ds.Canvas(
            plot_width=RASTER_WIDTH,
            plot_height=RASTER_HEIGHT,
            x_range=x_range,
            y_range=y_range,
        )
        agg = canvas.points(self.frame, X, Y, agg=self._aggregator())
        value = agg["value"]
        colouring = self.colouring
        if colouring.kind == "category":
            per = value.values.sum(axis=(0, 1))
            self.counts = {name: int(c) for name, c in zip(colouring.factors, per)}
            image = tf.shade(value, color_key=colouring.colour_of, how="eq_hist", min_alpha=60)
        elif colouring.kind == "number":
            self.counts = {"count": int(agg["count"].values.sum())}
            image = tf.shade(value, cmap=_viridis(), how="linear", span=self.span)
        else:
            self.counts = {"count": int(value.values.sum())}
            image = tf.shade(value, cmap=["#c6dbef", "#08306b"], how="eq_hist", min_alpha=80)
        point = agg["point"].values
        empty = ~np.isfinite(point)
        grid = np.where(empty, -1, np.nan_to_num(point, nan=-1.0)).astype(np.int64)
        self.grid, self.window = grid, (tuple(x_range), tuple(y_range))
        safe = np.where(empty, 0, grid)
        pixels = np.ascontiguousarray(image.data, dtype=np.uint32)
        data: dict[str, Any] = {
            "image": [pixels if self.chosen is None else _faded(pixels, 0.25)],
            "row": [np.where(empty, -1, self.row_numbers(safe)).astype(np.int32)],
            "x": [x_range[0]],
            "y": [y_range[0]],
            "dw": [x_range[1] - x_range[0]],
            "dh": [y_range[1] - y_range[0]],
        }
        # always a layer (transparent without a selection), so a new selection only redraws
        data["selected"] = [self._selected_image(canvas)]
        for i, (_, values) in enumerate(self.hover):
            if values.dtype.kind == "f":
                data[f"c{i}"] = [np.where(empty, np.nan, values[safe]).astype(np.float32)]
            else:
                codes = np.int16 if values.max(initial=0) < 32_767 else np.int32
                data[f"c{i}"] = [np.where(empty, -1, values[safe]).astype(codes)]
        return data

    def _selected_image(self, canvas: Any) -> np.ndarray:
        """The chosen points' own aggregate shaded in the highlight colour (transparent
        where there is none), drawn by Bokeh as a second image over the dimmed raster."""
        if self.chosen is None:
            self.selected = np.zeros((RASTER_HEIGHT, RASTER_WIDTH), dtype=np.int64)
            return np.zeros(self.selected.shape, dtype=np.uint32)
        self.selected, image = shaded_counts(canvas, self.chosen_frame(), SELECTED_CMAP, 160)
        return image

    def row_numbers(self, points: np.ndarray) -> np.ndarray:
        """The view row numbers of point indices."""
        return self.rows[points]

    def chosen_frame(self) -> Any:
        """The points of the linked selection (``chosen`` a bool per point)."""
        return self.frame[self.chosen]

    def pixel_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (row, column) pixel of the last draw that each (x, y) position falls in, with
        datashader's own arithmetic (``x * sx + tx``, truncated), clipped to the image."""
        (x0, x1), (y0, y1) = self.window
        height, width = self.grid.shape
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        sx, sy = width / (x1 - x0), height / (y1 - y0)
        j = np.clip(np.floor(xy[:, 0] * sx - x0 * sx), 0, width - 1).astype(np.int64)
        i = np.clip(np.floor(xy[:, 1] * sy - y0 * sy), 0, height - 1).astype(np.int64)
        return i, j

    def point_at(self, x: float, y: float) -> int | None:
        """The point drawn on top in the pixel at data position (x, y) of the last draw, or
        the nearest point to it when that pixel is empty; None outside the window."""
        (x0, x1), (y0, y1) = self.window
        if not (x0 <= x <= x1 and y0 <= y <= y1) or not len(self.points) or not self.grid.size:
            return None
        i, j = self.pixel_of(np.array([[x, y]]))
        if self.grid[i[0], j[0]] >= 0:
            return int(self.grid[i[0], j[0]])
        distance = (self.points[:, 0] - x) ** 2 + (self.points[:, 1] - y) ** 2
        return int(np.argmin(distance))


class FrameRasterLayer(RasterLayer):
    """A raster of points no process needs to hold: a frame of ``row``, ``x``, ``y`` (a Dask
    dataframe, which datashader aggregates partition by partition on the workers, or a pandas
    one), such as ``ClusterProjection.points``; a pixel's hover and click give the row number
    of its last point, itself the dataset's row number. With a ``colouring`` of kind
    ``category`` or ``number`` the frame also has ``colour`` (a categorical of its
    ``factors``, or floats over ``span``), aggregated there as ``RasterLayer`` does.
    ``chosen``: the sorted row numbers of the linked selection (None: no selection),
    aggregated again on the workers as the highlight layer; ``found``: those of a search's
    matches (None: no search), aggregated there as a third image (``found`` in the data)."""

    def __init__(
        self,
        frame: Any,
        extent: tuple[tuple[float, float], tuple[float, float]] | None = None,
        colouring: Colouring | None = None,
        span: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        from panels_core.projection.distributed import points_extent

        (x0, x1), (y0, y1) = extent or points_extent(frame)
        self.chosen: np.ndarray | None = None
        self.found: np.ndarray | None = None
        self.selected = np.zeros((0, 0), dtype=np.int64)
        self.points = np.empty((0, 2), dtype=np.float32)
        self.rows = np.empty(0, dtype=np.int64)
        self.colouring = colouring or Colouring("none")
        self.span = span
        self.hover = []
        renamed = frame.rename(columns={"x": X, "y": Y})
        self.frame = renamed.assign(point=renamed["row"].astype("float64"))
        self.extent = _padded_extent(np.array([[x0, y0], [x1, y1]]))
        self.counts = {}
        self.grid = np.empty((0, 0), dtype=np.int64)
        self.window = self.extent

    def draw(
        self, x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """``RasterLayer.draw``, plus the search's matches as the image ``found``."""
        import datashader as ds

        data = super().draw(x_range, y_range)
        found = np.zeros((RASTER_HEIGHT, RASTER_WIDTH), dtype=np.uint32)
        if self.found is not None and len(self.found):
            (x0, x1), (y0, y1) = self.window
            canvas = ds.Canvas(RASTER_WIDTH, RASTER_HEIGHT, x_range=(x0, x1), y_range=(y0, y1))
            _, found = shaded_counts(canvas, self.among(self.found), FOUND_CMAP, 200)
        data["found"] = [found]
        return data

    def row_numbers(self, points: np.ndarray) -> np.ndarray:
        """A pixel's point is already its row number."""
        return points

    def among(self, rows: np.ndarray) -> Any:
        """The points of the sorted row numbers ``rows`` (each partition keeps its own, on the
        workers)."""
        return self.frame.map_partitions(_among_rows, np.asarray(rows, dtype=np.int64))

    def chosen_frame(self) -> Any:
        """The points of the chosen rows."""
        return self.among(self.chosen)

    def point_at(self, x: float, y: float) -> int | None:
        """The row drawn on top in the pixel at (x, y) of the last draw, or that of the nearest
        drawn pixel when it is empty; None outside the window or when nothing is drawn."""
        (x0, x1), (y0, y1) = self.window
        filled = np.argwhere(self.grid >= 0)
        if not (x0 <= x <= x1 and y0 <= y <= y1) or not len(filled):
            return None
        i, j = self.pixel_of(np.array([[x, y]]))
        nearest = np.argmin((filled[:, 0] - i[0]) ** 2 + (filled[:, 1] - j[0]) ** 2)
        return int(self.grid[tuple(filled[nearest])])


def shaded_counts(
    canvas: Any, points: Any, cmap: list[str], min_alpha: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points per pixel of ``points`` on ``canvas``, and their image shaded in ``cmap``
    (transparent where there is none): a layer Bokeh draws over the raster."""
    import datashader as ds
    import datashader.transfer_functions as tf

    counts = canvas.points(points, X, Y, agg=ds.count())
    values = counts.values.astype(np.int64)
    if not values.any():
        return values, np.zeros(values.shape, dtype=np.uint32)
    image = tf.shade(counts, cmap=cmap, how="eq_hist", min_alpha=min_alpha)
    return values, np.ascontiguousarray(image.data, dtype=np.uint32)


def _among_rows(part: Any, rows: np.ndarray) -> Any:
    """The points of a partition whose ``row`` is among the sorted ``rows``."""
    mine = part["row"].to_numpy(dtype=np.int64)
    at = np.minimum(np.searchsorted(rows, mine), max(len(rows) - 1, 0))
    return part[rows[at] == mine] if len(rows) else part.iloc[:0]


def _padded_extent(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """The points' bounding box widened by 2% per side (datashader drops points on the far
    edge otherwise), at least 1e-9 wide."""
    out = []
    for axis in (0, 1):
        values = points[:, axis]
        lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        pad = max((hi - lo) * 0.02, 1e-9)
        out.append((lo - pad, hi + pad))
    return out[0], out[1]


def _faded(rgba: np.ndarray, factor: float) -> np.ndarray:
    """Packed RGBA pixels with their alpha scaled by ``factor``."""
    rgba = np.asarray(rgba, dtype=np.uint32)
    alpha = ((rgba >> 24) * factor).astype(np.uint32)
    return (rgba & np.uint32(0x00FFFFFF)) | (alpha << 24)


def _viridis() -> list[str]:
    from bokeh.palettes import Viridis256

    return list(Viridis256)


def warm_up_raster() -> None:
    """Compile datashader's kernels for the three colourings now, on a few points of the
    dtypes a projection gives (numba cannot keep datashader's generated kernels on disk,
    so each process compiles them: 3-4 s on 2 cores that a first big card waited for)."""
    points = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    rows = np.arange(64, dtype=np.int64)
    codes = rows % 3
    for colouring in (
        Colouring("none"),
        Colouring("category", "c", codes, ["a", "b", "c"], ["#000000", "#555555", "#aaaaaa"]),
        Colouring("number", "n", codes.astype(np.float64)),
    ):
        RasterLayer(points, rows, colouring).draw()


class RasterDrawing:
    """``ProjectionPlot``'s raster: the figure, its hover, thumbnails, zoom and click."""

    def _raster(self, result: proj.ProjectionResult) -> Any:
        hover_names = self._hover_columns()
        hover = [
            remembered(
                self.view,
                ("hover", name, self.colouring.column),
                result.kept,
                lambda name=name: self._raster_hover_values(name, result.kept),
            )
            for name in hover_names
        ]
        hovered = [(n, v) for n, v, _ in hover]
        layer = RasterLayer(result.points, self.rows, self.colouring, hovered, self.chosen)
        thumbs = self.config.image is not None
        return self.raster_figure(layer, layer.draw(), result.axis_labels, hover, thumbs)

    def raster_figure(
        self,
        layer: RasterLayer,
        data: dict[str, Any],
        axis_labels: tuple[str, str],
        hover: list[tuple[str, np.ndarray, list[str] | None]],
        thumbs: bool,
    ) -> Any:
        """The Bokeh figure of ``layer`` drawn as ``data`` (its first ``draw``), with its
        hover, legend, box and lasso select, and (under a server) zoom, pan and click;
        ``thumbs``: the hovered row's image is shown beside it."""
        from bokeh import events
        from bokeh.models import ColumnDataSource, HoverTool
        from bokeh.plotting import figure

        (x0, x1), (y0, y1) = layer.extent
        fig = figure(
            height=480,
            sizing_mode="stretch_width",
            x_range=(x0, x1),
            y_range=(y0, y1),
            x_axis_label=axis_labels[0],
            y_axis_label=axis_labels[1],
            tools="pan,wheel_zoom,box_zoom,reset,save",
            toolbar_location="right",
        )
        source = ColumnDataSource(data, name="raster")
        image = fig.image_rgba(
            image="image", x="x", y="y", dw="dw", dh="dh", source=source, name="raster"
        )
        # the selected points over the dimmed raster (transparent without a selection)
        fig.image_rgba(
            image="selected", x="x", y="y", dw="dw", dh="dh", source=source, name="selected"
        )
        if "found" in data:  # a search's matches aggregated on a cluster's workers
            fig.image_rgba(
                image="found", x="x", y="y", dw="dw", dh="dh", source=source, name="found"
            )
        hover_tool = HoverTool(renderers=[image], **_raster_tooltips(hover))
        fig.add_tools(hover_tool)
        if thumbs and live():
            self._hover_thumbnails(hover_tool, source)
        _raster_legend(fig, layer)
        marks = ColumnDataSource({"x": [], "y": [], "row": []}, name="marks")
        marked = fig.scatter("x", "y", source=marks, color="#e45756", size=4, line_alpha=0.0)
        self.add_select_tools(fig, [marked])
        self.raster, self.marks, self.figure, self.raster_source = layer, marks, fig, source
        if live():
            fig.on_event(events.RangesUpdate, self._on_ranges)
            fig.on_event(events.Tap, self._on_raster_tap)
        return fig

    def _hover_thumbnails(self, hover_tool: Any, source: Any) -> None:
        """Under a server: the browser reports the row under the cursor (a HoverTool callback
        writing to a one-row source) and the server shows that row's image beside the plot."""
        from bokeh.models import ColumnDataSource, CustomJS

        hovered = ColumnDataSource({"row": [-1]}, name="hovered")
        hover_tool.callback = CustomJS(
            args={"source": source, "hovered": hovered},
            code="""
            const hits = (cb_data.index && cb_data.index.image_indices) || [];
            if (hits.length == 0) return;
            const row = source.data.row[0][hits[0].flat_index];
            if (row >= 0 && hovered.data.row[0] !== row) hovered.data = {row: [row]};
            """,
        )
        hovered.on_change("data", lambda attr, old, new: self.show_hovered(int(new["row"][0])))

    def show_hovered(self, row: int) -> str:
        """Show view row ``row``'s image thumbnail beside the raster (the hover of big plots)."""
        image = self.config.image
        if image is None or row < 0:
            return ""
        uri = thumbnails(self.view, image, np.array([row]))[0]
        text = f"<b>row {row}</b>" + (
            f'<br><img src="{uri}" style="width:64px;height:64px;image-rendering:pixelated">'
            if uri
            else " (no image)"
        )
        self.hover_image.object = text
        return text

    def _raster_hover_values(
        self, name: str, kept: np.ndarray
    ) -> tuple[str, np.ndarray, list[str] | None]:
        """A hover field of the raster: numbers per point, else codes per point and names."""
        if is_number(self.view.type, name):
            return name, np.asarray(self.view.column_numpy(name), dtype=np.float64)[kept], None
        colouring = self.colouring
        if name == colouring.column and colouring.kind == "category":
            return name, colouring.values, colouring.factors
        labels = self.labels if name == self.search_column and self.labels is not None else None
        labels = labels or Labels.of_column(self.view, name, kept)
        return name, labels.codes, labels.names

    def _on_ranges(self, event: Any) -> None:
        """Re-aggregate the points inside the new view window (zoom, pan, reset)."""
        if self.raster is None or None in (event.x0, event.x1, event.y0, event.y1):
            return
        x_range, y_range = (event.x0, event.x1), (event.y0, event.y1)
        if x_range[0] >= x_range[1] or y_range[0] >= y_range[1]:
            return
        self.raster_source.data = self.raster.draw(x_range, y_range)

    def redraw_raster(self) -> None:
        """Aggregate the raster again in its current window (a new linked selection)."""
        layer, source = self.raster, self.raster_source
        data = layer.draw(*layer.window)
        on_document(lambda: setattr(source, "data", data))

    def _on_raster_tap(self, event: Any) -> None:
        if self.raster is None or event.x is None or event.y is None:
            return
        point = self.raster.point_at(event.x, event.y)
        if point is not None:
            self.select(int(self.raster.row_numbers(np.array([point]))[0]))


def _raster_tooltips(hover: list[tuple[str, np.ndarray, list[str] | None]]) -> dict[str, Any]:
    """The raster HoverTool's ``tooltips`` and ``formatters``: the row (or "no point here"),
    numbers as numbers, and codes shown as their names."""
    from bokeh.models import CustomJSHover

    no_point = "return value < 0 ? '(no point here)' : String(value)"
    tooltips = [("row", "@row{custom}")]
    formatters: dict[str, Any] = {"@row": CustomJSHover(code=no_point)}
    for i, (name, _, names) in enumerate(hover):
        if names is None:
            tooltips.append((name, f"@c{i}{{0.[000]}}"))
        else:
            tooltips.append((name, f"@c{i}{{custom}}"))
            formatters[f"@c{i}"] = CustomJSHover(
                code="return value >= 0 ? names[value] : ''", args={"names": names}
            )
    return {"tooltips": tooltips, "formatters": formatters}


def _raster_legend(fig: Any, layer: RasterLayer) -> None:
    """The legend of a category colouring, or the colour bar of a number colouring."""
    from bokeh.models import ColorBar, ColumnDataSource, Legend, LegendItem, LinearColorMapper

    colouring = layer.colouring
    if colouring.kind == "category":
        # an undrawn glyph (NaN positions) with one swatch per category carries the legend
        k = len(colouring.factors)
        swatches = ColumnDataSource(
            {"x": np.full(k, np.nan), "y": np.full(k, np.nan), "fill": colouring.palette},
            name="legend",
        )
        swatch = fig.scatter("x", "y", source=swatches, color="fill", size=8)
        items = [
            LegendItem(label=name, renderers=[swatch], index=i)
            for i, name in enumerate(colouring.factors)
        ]
        fig.add_layout(Legend(items=items, title=colouring.column), "right")
    elif colouring.kind == "number":
        low, high = layer.span
        mapper = LinearColorMapper(palette=_viridis(), low=low, high=high)
        fig.add_layout(ColorBar(color_mapper=mapper, title=colouring.column), "right")


if _IN_APP:
    # Inside an app the module is imported (by the registry) before the first page is sent.
    # Importing datashader here, on the importing thread, means no worker thread imports it
    # while another card's thread imports shared modules (Python can report a module-lock
    # deadlock then).
    import datashader  # noqa: F401
