"""The 2D Projection panel: an embedding (or several numeric columns) drawn as 2D points.

The input rows come from the engine (``view.column_numpy``: an embedding column
as an ``(n, dim)`` float32 matrix, or numeric columns stacked), are projected by
``panels_core.projection`` (PCA, UMAP or t-SNE; cached by data fingerprint and
spec, so re-rendering the same config is instant) and drawn:

- up to ``MAX_SCATTER_POINTS`` (50k) points: a Bokeh WebGL scatter whose
  ColumnDataSource holds x, y, the view row number, the colour field, the
  hover columns and (up to ``MAX_INLINE_THUMBNAILS`` rows) each row's
  thumbnail as a data URI for the hover tooltip;
- above that: a server-side raster (``RasterLayer``: datashader aggregates the
  points straight into an RGBA image shown by a Bokeh ``image_rgba`` glyph, no
  HoloViews), with image-shaped arrays beside it holding, per pixel, the row
  drawn on top and its hover values, so the hover reports the row under the
  cursor in the browser; re-aggregated for every zoom or pan (Bokeh
  ``RangesUpdate``) when a Bokeh server runs, a precomputed image in static
  output. Under a server the hovered row's image thumbnail is shown below the
  plot (``show_hovered``).

The input matrix, colourings, labels and hover values fetched for a View are
kept between renders of that View while its data is unchanged (``inputs``),
so changing the colour of a cached 1M-point projection re-draws in a fraction
of a second.

Clicking a point lists its ``knn_k`` nearest neighbours in the ORIGINAL space
(``projection.nearest_neighbors``); the search box highlights the points whose
label (or colour) column contains the text, case-insensitively.

Under a Bokeh server the projection runs on the shared ``Projector`` (worker
threads; a newer render of the same view supersedes the older run) while the
card shows a progress bar; without a server (tests, scripts, static export)
or with ``PANELS_PROJECTION_SYNC=1`` it is computed before ``render`` returns.

Modules: ``config`` (the config), ``panel`` (``Projection2D``), ``inputs`` (what is
read from the View), ``labels`` (labels and colouring), ``plot``
(``ProjectionPlot``: progress, layout, click and search), ``scatter`` and
``raster`` (the two drawings), ``brushing`` (linked selection: box and lasso select
as a region brush over the points registered with the View, the selected points
highlighted), ``session`` (the Bokeh server session), ``on_cluster`` (``ClusterPlot``: a
Parquet dataset on the engine's Dask cluster, fitted on a sample and every row placed and
drawn on the workers; docs/scale-out.md).
"""

from __future__ import annotations

from panels_builtin.projection.config import (
    MAX_INLINE_THUMBNAILS,
    MAX_SCATTER_POINTS,
    ProjectionConfig,
)
from panels_builtin.projection.labels import MAX_CATEGORIES
from panels_builtin.projection.panel import Projection2D
from panels_builtin.projection.plot import ProjectionPlot
from panels_builtin.projection.raster import RASTER_HEIGHT, RASTER_WIDTH, RasterLayer

__all__ = [
    "MAX_CATEGORIES",
    "MAX_INLINE_THUMBNAILS",
    "MAX_SCATTER_POINTS",
    "RASTER_HEIGHT",
    "RASTER_WIDTH",
    "Projection2D",
    "ProjectionConfig",
    "ProjectionPlot",
    "RasterLayer",
]
