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
kept between renders of that View while its data is unchanged (``_ViewMemo``),
so changing the colour of a cached 1M-point projection re-draws in a fraction
of a second.

Clicking a point lists its ``knn_k`` nearest neighbours in the ORIGINAL space
(``projection.nearest_neighbors``); the search box highlights the points whose
label (or colour) column contains the text, case-insensitively.

Under a Bokeh server the projection runs on the shared ``Projector`` (worker
threads; a newer render of the same view supersedes the older run) while the
card shows a progress bar; without a server (tests, scripts, static export)
or with ``PANELS_PROJECTION_SYNC=1`` it is computed before ``render`` returns.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from panels_builtin.captions import EMPTY_VIEW, OTHER, format_count, message
from panels_builtin.columns import looks_like_id
from panels_builtin.palette import category_palette
from panels_core import projection as proj
from panels_core.escape import html_text, markdown_code, markdown_text, tooltip_text
from panels_core.panel import Column, Panel, PanelConfig, Prefer, WarmUp, columns_of
from panels_core.query.errors import QueryError
from panels_core.types import (
    BooleanType,
    CategoryType,
    EmbeddingType,
    ImageType,
    NumberType,
    StringType,
    TableType,
    TimestampType,
    describe,
    strip_optional,
)

__all__ = [
    "MAX_CATEGORIES",
    "MAX_INLINE_THUMBNAILS",
    "MAX_SCATTER_POINTS",
    "Projection2D",
    "ProjectionConfig",
    "ProjectionPlot",
    "RasterLayer",
]

MAX_SCATTER_POINTS = 50_000
"""Above this many points the panel rasterises on the server instead of sending a scatter."""
MAX_INLINE_THUMBNAILS = 5_000
"""Up to this many points every row's hover thumbnail is sent with the scatter; above, only the
clicked row's image is fetched (beside the neighbour list)."""
MAX_CATEGORIES = 50
"""Categories coloured one by one; beyond, the most frequent ``MAX_CATEGORIES - 1`` keep their
colour and the rest share ``(other)`` (as TensorBoard's projector caps colour-by at 50)."""
THUMBNAIL_SIZE = 64
SYNC_ENV = "PANELS_PROJECTION_SYNC"
"""Set to 1 to compute projections before ``render`` returns even under a server."""
NULL_LABEL = "(null)"
OTHER_COLOUR = "#bbbbbb"
DIM_ALPHA = 0.08
X, Y = "x_2d", "y_2d"
"""Raster coordinate column names (datashader refuses a category named like a coordinate)."""
RASTER_WIDTH, RASTER_HEIGHT = 560, 420
"""Pixels of the server-side raster (re-aggregated for every zoom or pan under a server)."""
Metric = Literal["euclidean", "cosine"]

_PARAM_FIELDS = {
    "components": "pca_x / pca_y",
    "min_dist": "umap_min_dist / umap_spread",
    "spread": "umap_spread",
    "n_neighbors": "umap_n_neighbors",
    "perplexity": "tsne_perplexity",
    "learning_rate": "tsne_learning_rate",
    "early_exaggeration": "tsne_early_exaggeration",
    "n_iter": "tsne_n_iter",
}
"""ProjectionSpec parameter -> the config field(s) named in an error."""

_log = logging.getLogger(__name__)

_IN_APP = "panel" in sys.modules
"""Imported by an app (Panel already loaded), not by the CLI: see the end of the module."""

EMBEDDING = EmbeddingType()
NUMBER = NumberType()
_HOVER_TYPES = [NUMBER, CategoryType(), StringType(), BooleanType(), TimestampType()]


class ProjectionConfig(PanelConfig):
    """What to project, how, and how to colour, size, label and inspect the points."""

    columns: Annotated[
        list[str],
        Column(
            accepts=[EMBEDDING, NUMBER],
            multiple=True,
            prefer=[Prefer(EMBEDDING, max=1), Prefer(NUMBER, min=2)],
        ),
        Field(description="one embedding column, or two or more numeric columns"),
    ]
    method: Literal["pca", "umap", "tsne"] = Field("pca", description="the projection")
    pca_x: int = Field(1, ge=1, le=50, description="PCA: the component on the x axis")
    pca_y: int = Field(2, ge=1, le=50, description="PCA: the component on the y axis")
    pca_whiten: bool = Field(False, description="PCA: scale the components to unit variance")
    umap_n_neighbors: int = Field(15, ge=2, le=200, description="UMAP: neighbours per point")
    umap_min_dist: float = Field(0.1, ge=0.0, le=0.99, description="UMAP: minimum distance")
    umap_spread: float = Field(1.0, gt=0.0, le=100.0, description="UMAP: scale of the layout")
    umap_metric: Metric = Field("euclidean", description="UMAP: distance in the input space")
    tsne_perplexity: float = Field(30.0, ge=2.0, le=100.0, description="t-SNE: perplexity")
    tsne_learning_rate: Literal["auto"] | Annotated[float, Field(gt=0.0)] = Field(
        "auto", description='t-SNE: "auto" or a positive number'
    )
    tsne_early_exaggeration: float = Field(
        12.0, ge=1.0, le=100.0, description="t-SNE: early exaggeration"
    )
    tsne_n_iter: int = Field(750, ge=250, le=5000, description="t-SNE: iterations in all")
    tsne_metric: Metric = Field("euclidean", description="t-SNE: distance in the input space")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed (same seed, same layout)")
    max_fit_points: int | None = Field(
        None,
        ge=10,
        description="fit on a random sample of this many rows and place the rest with "
        "transform (default: 1,000,000 for PCA, 200,000 for UMAP, 20,000 for t-SNE)",
    )
    colour_by: Annotated[
        str | None,
        Column(
            accepts=[CategoryType(), BooleanType(), NUMBER, StringType()],
            required=False,
            prefer=[CategoryType(), BooleanType()],
        ),
        Field(description="category: a colour per value with a legend; number: a colour bar"),
    ] = None
    size_by: Annotated[
        str | None,
        Column(accepts=NUMBER, required=False),
        Field(description="a number column mapped to the point size"),
    ] = None
    image: Annotated[
        str | None,
        Column(accepts=ImageType(), required=False, prefer=[ImageType()]),
        Field(description="an image column shown as a thumbnail on hover"),
    ] = None
    label: Annotated[
        str | None,
        Column(accepts=[StringType(), CategoryType()], required=False),
        Field(
            description="the text searched and listed for neighbours "
            "(default: the colour column when it is a category)"
        ),
    ] = None
    tooltip: Annotated[
        list[str],
        Column(accepts=_HOVER_TYPES, required=False, multiple=True),
        Field(description="more columns shown on hover"),
    ] = []
    knn_k: int = Field(10, ge=1, le=100, description="neighbours listed for a clicked point")
    knn_metric: Metric = Field("cosine", description="distance of the neighbour list")
    search: str = Field("", description="highlight the points whose label contains this text")
    point_size: float = Field(6.0, ge=1.0, le=30.0, description="point size in pixels")

    @model_validator(mode="after")
    def _params_are_valid(self) -> ProjectionConfig:
        for method in ("pca", "umap", "tsne"):  # all, so a saved config stays valid on switching
            try:
                proj.ProjectionSpec(
                    method=method,
                    params={"method": method, **self._params(method)},
                    seed=self.seed,
                    max_fit_points=self.max_fit_points,
                )
            except ValidationError as exc:
                error = exc.errors()[0]
                where = _PARAM_FIELDS.get(str(error["loc"][-1]) if error["loc"] else "", method)
                text = str(error["msg"]).removeprefix("Value error, ")
                raise ValueError(f"{where}: {text}") from None
        return self

    def _params(self, method: str) -> dict[str, Any]:
        if method == "pca":
            return {"components": (self.pca_x, self.pca_y), "whiten": self.pca_whiten}
        if method == "umap":
            return {
                "n_neighbors": self.umap_n_neighbors,
                "min_dist": self.umap_min_dist,
                "spread": self.umap_spread,
                "metric": self.umap_metric,
            }
        return {
            "perplexity": self.tsne_perplexity,
            "learning_rate": self.tsne_learning_rate,
            "early_exaggeration": self.tsne_early_exaggeration,
            "n_iter": self.tsne_n_iter,
            "metric": self.tsne_metric,
        }

    def spec(self) -> proj.ProjectionSpec:
        """The ``ProjectionSpec`` of this config (its method's parameters only)."""
        return proj.ProjectionSpec(
            method=self.method,
            params={"method": self.method, **self._params(self.method)},
            seed=self.seed,
            max_fit_points=self.max_fit_points,
        )

    def search_column(self, view_type: Any) -> str | None:
        """The column the search box and the neighbour list read: ``label``, else ``colour_by``
        when it is not a number column."""
        if self.label is not None:
            return self.label
        if self.colour_by is not None and not _is_number(view_type, self.colour_by):
            return self.colour_by
        return None


# --------------------------------------------------------------------------- data


class _Inputs:
    """The matrix to project, its cache key, and the view's row count."""

    def __init__(self, values: np.ndarray, columns: Sequence[str]) -> None:
        self.values = values
        self.columns = tuple(columns)
        self._key: tuple[Any, ...] | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """The projection cache key: the columns and a fingerprint of the rows."""
        if self._key is None:
            self._key = ("rows", self.columns, proj.fingerprint(self.values))
        return self._key

    @property
    def n(self) -> int:
        return int(self.values.shape[0])


class _ViewMemo:
    """What the panel fetched from one View, kept between renders (a colour change re-renders
    over the same View): the input matrix with its fingerprint, and colourings and labels
    per (column, projection result). Valid while the engine holds the same table objects,
    their Parquet files keep their size and modification time, and the view its row
    count; one input matrix per View is kept."""

    def __init__(self, token: tuple[Any, ...], tables: tuple[Any, ...]) -> None:
        self.token = token
        self.tables = tables  # held, so a replaced table is never mistaken for a new one
        self.inputs: dict[tuple[str, ...], _Inputs] = {}
        self.derived: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def matches(self, token: tuple[Any, ...], tables: tuple[Any, ...]) -> bool:
        """Same token and the very same table objects."""
        same = len(tables) == len(self.tables) and all(a is b for a, b in zip(tables, self.tables))
        return same and token == self.token


_MEMOS: weakref.WeakKeyDictionary[Any, _ViewMemo] = weakref.WeakKeyDictionary()
_MEMO_LOCK = threading.Lock()


def _data_token(view: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """What a View's rows depend on: (query, row count, each table's name and Parquet file
    size and modification time), and the registered table objects."""
    engine = view.engine
    parts: list[Any] = [view.query.model_dump_json(), view.count()]
    tables = []
    for name in engine.table_names():
        table = engine.table(name)
        path = getattr(table, "parquet_path", None)
        stat = os.stat(path) if path is not None and os.path.exists(path) else None
        parts.append((name, (stat.st_size, stat.st_mtime_ns) if stat else None))
        tables.append(table)
    return tuple(parts), tuple(tables)


def _memo(view: Any) -> _ViewMemo | None:
    """The View's memo (a fresh one when its data changed); None when the view cannot be
    weakly referenced or has no engine."""
    try:
        token, tables = _data_token(view)
    except (AttributeError, TypeError, QueryError):
        return None
    with _MEMO_LOCK:
        try:
            memo = _MEMOS.get(view)
            if memo is None or not memo.matches(token, tables):
                memo = _MEMOS[view] = _ViewMemo(token, tables)
        except TypeError:
            return None
    return memo


def _remembered(view: Any, key: tuple[Any, ...], anchor: Any, compute: Any) -> Any:
    """``compute()`` kept in the View's memo under ``key`` while ``anchor`` (the projection
    result's kept mask) is the same object; the last 8 such values are kept."""
    memo = _memo(view)
    if memo is None:
        return compute()
    found = memo.derived.get(key)
    if found is not None and found[0] is anchor:
        return found[1]
    value = compute()
    memo.derived[key] = (anchor, value)
    while len(memo.derived) > 8:
        memo.derived.pop(next(iter(memo.derived)))
    return value


def _fetch_inputs(view: Any, config: ProjectionConfig) -> _Inputs:
    """The configured columns as one float32 (n, d) matrix (bad rows keep their NaN), kept
    between renders of the same View while its data is unchanged."""
    memo = _memo(view)
    columns = tuple(config.columns)
    if memo is not None and columns in memo.inputs:
        return memo.inputs[columns]
    inputs = _read_inputs(view, config)
    if memo is not None:
        memo.inputs = {columns: inputs}
        inputs.key  # noqa: B018 - fingerprint once, kept with the matrix
    return inputs


def _read_inputs(view: Any, config: ProjectionConfig) -> _Inputs:
    columns = columns_of(view.type)
    for name in config.columns:
        if name not in columns:
            raise QueryError(f"2D projection: the view has no column `{name}`")
    kinds = [strip_optional(columns[c]) for c in config.columns]
    embeddings = [c for c, t in zip(config.columns, kinds) if isinstance(t, EmbeddingType)]
    if embeddings and len(config.columns) > 1:
        raise QueryError(
            f"2D projection: `{embeddings[0]}` is an embedding; project one embedding column "
            "or several numeric columns, not both"
        )
    if embeddings:
        values = np.asarray(view.column_numpy(embeddings[0]), dtype=np.float32)
        if values.ndim != 2:
            values = values.reshape(len(values), -1)
        return _Inputs(np.ascontiguousarray(values), config.columns)
    for name, kind in zip(config.columns, kinds):
        if not isinstance(kind, NumberType):
            raise QueryError(
                f"2D projection: `{name}` is {describe(columns[name])}; choose an embedding "
                "column or numeric columns"
            )
    if len(config.columns) < 2:
        raise QueryError(
            f"2D projection: one numeric column (`{config.columns[0]}`) has one dimension; "
            "choose two or more numeric columns, or an embedding column"
        )
    stacked = np.empty((view.count(), len(config.columns)), dtype=np.float32)
    for j, name in enumerate(config.columns):
        column = np.asarray(view.column_numpy(name), dtype=np.float32)
        if j == 0 and len(column) != len(stacked):
            stacked = np.empty((len(column), len(config.columns)), dtype=np.float32)
        stacked[:, j] = column
    return _Inputs(stacked, config.columns)


class Labels:
    """Display strings of one column's points, factorised: ``names[codes[i]]`` is point i's.

    Nulls read ``(null)``, booleans ``true``/``false``. Searching and colouring work
    on the distinct names, so a million points cost one pass over integer codes.
    """

    def __init__(self, codes: np.ndarray, names: list[str]) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        self.names = list(names)

    @classmethod
    def of(cls, values: np.ndarray) -> Labels:
        """Factorise one column's values (object array, nulls as None)."""
        import pandas as pd

        codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
        names = [_text(v) for v in uniques.tolist()]
        if (codes < 0).any():
            if NULL_LABEL in names:
                codes = np.where(codes < 0, names.index(NULL_LABEL), codes)
            else:
                codes = np.where(codes < 0, len(names), codes)
                names.append(NULL_LABEL)
        return cls(codes, names)

    @classmethod
    def of_column(cls, view: Any, column: str, kept: np.ndarray) -> Labels:
        """The labels of the kept rows of a category, string or boolean column, read as one
        Arrow column (``view.page``) and dictionary-encoded there, so no Python string per row."""
        import pyarrow as pa
        import pyarrow.compute as pc

        values = view.page(0, len(kept), columns=[column]).column(0)
        if pa.types.is_boolean(values.type):
            values = pc.if_else(values, "true", "false")
        if not pa.types.is_dictionary(values.type):
            values = pc.dictionary_encode(values)
        if isinstance(values, pa.ChunkedArray):
            values = values.unify_dictionaries().combine_chunks()
        indices = values.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        names = [_text(v) for v in values.dictionary.to_pylist()]
        codes = indices[kept]
        if (codes < 0).any():
            codes = np.where(codes < 0, len(names), codes)
            names.append(NULL_LABEL)
        used = np.zeros(len(names), dtype=bool)
        used[codes] = True
        if not used.all():  # values of rows left out (or unused dictionary entries)
            names = [name for name, keep in zip(names, used) if keep]
            codes = (np.cumsum(used) - 1)[codes]
        return cls(codes, names)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, point: int) -> str:
        return self.names[self.codes[point]]

    @property
    def values(self) -> np.ndarray:
        """One string per point (object array)."""
        return np.asarray(self.names, dtype=object)[self.codes]

    def containing(self, text: str) -> np.ndarray:
        """A bool per point: its label contains ``text``, ignoring case."""
        needle = text.lower()
        hit = np.array([needle in name.lower() for name in self.names], dtype=bool)
        return hit[self.codes] if len(hit) else np.zeros(len(self.codes), dtype=bool)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NULL_LABEL
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def _is_number(view_type: Any, column: str) -> bool:
    return isinstance(strip_optional(columns_of(view_type)[column]), NumberType)


class Colouring:
    """How points are coloured: ``kind`` is ``"none"``, ``"category"`` or ``"number"``.

    Numbers: ``values`` holds one float per kept point. Categories: ``values``
    holds each point's index into ``factors`` (sorted names, ``(other)`` last when
    values were merged), and ``palette[i]`` is the colour of ``factors[i]``.
    """

    def __init__(
        self,
        kind: str,
        column: str | None = None,
        values: np.ndarray | None = None,
        factors: list[str] | None = None,
        palette: list[str] | None = None,
        merged: int = 0,
    ) -> None:
        self.kind = kind
        self.column = column
        self.values = values
        self.factors = factors or []
        self.palette = palette or []
        self.merged = merged  # categories folded into (other)

    @property
    def colour_of(self) -> dict[str, str]:
        """Category -> colour."""
        return dict(zip(self.factors, self.palette))

    @property
    def labels(self) -> np.ndarray:
        """Categories: each point's category name (object array)."""
        assert self.values is not None
        return np.asarray(self.factors, dtype=object)[self.values]


def _colouring(view: Any, config: ProjectionConfig, kept: np.ndarray) -> Colouring:
    column = config.colour_by
    if column is None:
        return Colouring("none")
    if _is_number(view.type, column):
        values = np.asarray(view.column_numpy(column), dtype=np.float64)
        return Colouring("number", column, values[kept])
    labels = Labels.of_column(view, column, kept)
    counts = np.bincount(labels.codes, minlength=len(labels.names))
    names = np.asarray(labels.names, dtype=object)
    merged = 0
    if len(names) > MAX_CATEGORIES:
        order = np.argsort(-counts, kind="stable")
        keep = sorted(names[order[: MAX_CATEGORIES - 1]].tolist())
        merged = len(names) - len(keep)
        other = OTHER if OTHER not in keep else f"{OTHER} rest"
        factors = [*keep, other]
        position = {name: i for i, name in enumerate(keep)}
        remap = np.array([position.get(name, len(keep)) for name in names], dtype=np.int64)
        codes = remap[labels.codes]
        palette = [*category_palette(len(keep)), OTHER_COLOUR]
    else:
        order = np.argsort(names.astype(str), kind="stable")
        factors = names[order].tolist()
        remap = np.empty(len(names), dtype=np.int64)
        remap[order] = np.arange(len(names))
        codes = remap[labels.codes]
        palette = category_palette(len(factors))
    return Colouring("category", column, codes, factors, palette, merged)


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
    """

    def __init__(
        self,
        points: np.ndarray,
        rows: np.ndarray,
        colouring: Colouring,
        hover: Sequence[tuple[str, np.ndarray]] = (),
    ) -> None:
        import pandas as pd

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
        data: dict[str, Any] = {
            "image": [np.ascontiguousarray(image.data, dtype=np.uint32)],
            "row": [np.where(empty, -1, self.rows[safe]).astype(np.int32)],
            "x": [x_range[0]],
            "y": [y_range[0]],
            "dw": [x_range[1] - x_range[0]],
            "dh": [y_range[1] - y_range[0]],
        }
        for i, (_, values) in enumerate(self.hover):
            if values.dtype.kind == "f":
                data[f"c{i}"] = [np.where(empty, np.nan, values[safe]).astype(np.float32)]
            else:
                codes = np.int16 if values.max(initial=0) < 32_767 else np.int32
                data[f"c{i}"] = [np.where(empty, -1, values[safe]).astype(codes)]
        return data

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


def _viridis() -> list[str]:
    from bokeh.palettes import Viridis256

    return list(Viridis256)


def _thumbnails(view: Any, column: str, rows: np.ndarray) -> list[str]:
    """Data-URI PNG thumbnails of ``rows`` of an image column ("" where there is none)."""
    from panels_core.data.media import thumbnail_png

    if len(rows) == 0:
        return []
    lo, hi = int(rows.min()), int(rows.max())
    table = view.page(lo, hi - lo + 1, columns=[column])
    cells = table.column(0).to_pylist()
    out: list[str] = []
    for row in rows.tolist():
        cell = cells[row - lo]
        data = cell.get("data") if isinstance(cell, dict) else cell
        if not data:
            out.append("")
            continue
        try:
            png = thumbnail_png(bytes(data), THUMBNAIL_SIZE)
        except (OSError, ValueError):
            out.append("")
            continue
        out.append("data:image/png;base64," + base64.b64encode(png).decode("ascii"))
    return out


def _live() -> bool:
    """True inside a Bokeh server session (callbacks and dynamic plots work)."""
    import panel as pn

    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


def _cancel_when_closed(future: proj.ProjectionFuture) -> None:
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


def _must_wait() -> bool:
    """True when the projection must be computed before ``render`` returns (no live server,
    or ``PANELS_PROJECTION_SYNC=1``)."""
    if os.environ.get(SYNC_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True
    return not _live()


def _on_document(change: Any) -> None:
    """Run ``change`` (it edits Bokeh models) now, or under a server on the event loop with the
    document locked (a widget callback may not hold the lock)."""
    import panel as pn

    pn.state.execute(change, schedule=_live())


def _cached(inputs: _Inputs, spec: proj.ProjectionSpec) -> proj.ProjectionResult | None:
    """The cached result for these rows and spec, or None (never computes)."""

    class _Miss(Exception):
        pass

    def miss() -> Any:
        raise _Miss

    try:
        return proj.project_cached(miss, spec, inputs.key)
    except _Miss:
        return None


# --------------------------------------------------------------------------- the panel


class Projection2D(Panel[ProjectionConfig]):
    """PCA, UMAP or t-SNE of an embedding column (or numeric columns) as an interactive scatter."""

    kind = "projection"
    title = "2D Projection"
    description = (
        "Embeddings or numeric columns projected to 2D (PCA, UMAP, t-SNE): colour, hover "
        "images, nearest neighbours, search."
    )

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """After the table on a new workspace when the table has an embedding column or
        five or more numeric columns."""
        if not isinstance(table_type, TableType):
            return None
        numbers = 0
        for t in table_type.columns.values():
            inner = strip_optional(t)
            if isinstance(inner, EmbeddingType):
                return 1
            numbers += isinstance(inner, NumberType)
        return 1 if numbers >= 5 else None

    @classmethod
    def warm_up(cls) -> WarmUp | None:
        """UMAP's kernels compile early: in the projection worker process (started
        here) or, without one, on the server's low-priority warm-up thread."""
        projector = proj.shared_projector()
        if hasattr(projector, "wait_until_warm"):  # a worker process: it compiles them there
            projector.start()
            return None
        # the first UMAP compiles instead if this fails, and shows any error
        return WarmUp("UMAP", lambda: proj.warm_up())

    @classmethod
    def default_config(cls, view_type: Any) -> ProjectionConfig:
        """The slots' defaults, without integer columns named like row ids among the inputs."""
        config = super().default_config(view_type)
        columns = columns_of(view_type)
        chosen = [c for c in config.columns if not looks_like_id(c, columns[c])]
        if chosen == list(config.columns) or len(chosen) < 2:
            return config
        return cls.validate_config({**config.model_dump(), "columns": chosen}, view_type)

    def render(self, view: Any) -> Any:
        """A ``ProjectionPlot`` (or an Alert when the view has nothing to project)."""
        try:
            inputs = _fetch_inputs(view, self.config)
        except QueryError as exc:
            return message(markdown_text(exc), "danger")
        if inputs.n == 0:
            return message(EMPTY_VIEW, "info")
        spec = self.config.spec()
        plot = ProjectionPlot(self.config, view, inputs)
        result = _cached(inputs, spec)
        if result is not None:
            plot.show(result)
        elif _must_wait():
            try:
                plot.show(proj.project_cached(inputs.values, spec, inputs.key))
            except proj.ProjectionError as exc:
                plot.fail(str(exc))
        else:
            plot.run_in_background(spec)
        return plot


class ProjectionPlot:
    """The rendered projection: a Panel layout plus the data it draws (for callbacks and tests).

    After ``show``: ``result`` (the ProjectionResult), ``rows`` (view row number of
    each point), ``source`` (the Bokeh ColumnDataSource, scatter mode) or
    ``raster`` (the ``RasterLayer``, above ``MAX_SCATTER_POINTS``; ``raster_source``
    is its Bokeh ColumnDataSource and ``marks`` the source of the highlighted points),
    ``colouring``, ``caption``; ``select(row)`` fills ``neighbours`` (a
    DataFrame also shown in ``neighbour_table``); ``search(text)`` sets
    ``matches`` (a bool per point) and dims the others.
    """

    def __init__(self, config: ProjectionConfig, view: Any, inputs: _Inputs) -> None:
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

    def __panel__(self) -> Any:
        return self.layout

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.layout._repr_mimebundle_(include, exclude)

    # -- computing ---------------------------------------------------------------------

    def run_in_background(self, spec: proj.ProjectionSpec) -> None:
        """Submit to the shared Projector and poll it from the event loop until done."""
        import panel as pn

        state = {"fraction": 0.0, "message": "queued"}
        lock = threading.Lock()

        def on_progress(fraction: float, text: str) -> None:
            with lock:
                state["fraction"], state["message"] = fraction, text

        slot = ("projection", id(self.view))
        future = proj.shared_projector().submit(
            slot, self.inputs.values, spec, on_progress, key=self.inputs.key
        )
        name = spec.method.upper() if spec.method != "tsne" else "t-SNE"
        rows = format_count(self.inputs.n)

        def poll() -> None:
            with lock:
                fraction, text = state["fraction"], state["message"]
            self.progress.value = int(100 * fraction)
            self.status.object = f"{name} of {rows} rows: {markdown_text(text)}"
            if not future.done():
                return
            callback.stop()
            error = future.exception()
            if isinstance(error, proj.ProjectionCancelled):
                self.fail(f"This projection was stopped ({error}).", kind="info")
            elif isinstance(error, proj.ProjectionError):
                self.fail(str(error))
            elif error is not None:
                self.fail(f"The projection failed: {type(error).__name__}: {error}", "danger")
            else:
                # drawn on the next tick, so the periodic callback returns at once
                pn.state.execute(lambda: self._show_safely(future.result()), schedule=_live())

        callback = pn.state.add_periodic_callback(poll, period=250)
        _cancel_when_closed(future)

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
        import panel as pn

        cfg = self.config
        self.result = result
        self.rows = result.kept_indices
        self.colouring = _remembered(
            self.view,
            ("colouring", cfg.colour_by),
            result.kept,
            lambda: _colouring(self.view, cfg, result.kept),
        )
        column = self.search_column = cfg.search_column(self.view.type)
        if column is not None:
            self.labels = _remembered(
                self.view,
                ("labels", column, self.colouring.column),
                result.kept,
                lambda: self._labels(column, result.kept),
            )
        self.caption = self._caption(result)
        big = result.n_kept > MAX_SCATTER_POINTS
        figure = self._raster(result) if big else self._scatter(result)
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
        self.layout.objects = [
            pn.pane.Markdown(self.caption, margin=(0, 10)),
            pn.Row(self.search_box, self.search_info),
            # the neighbour list goes below the plot, so a narrow card keeps a usable plot
            plot,
            side,
        ]
        if cfg.search:
            self.search(cfg.search)

    def _caption(self, result: proj.ProjectionResult) -> str:
        cfg = self.config
        name = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}[cfg.method]
        inputs = (
            markdown_code(cfg.columns[0])
            if len(cfg.columns) == 1
            else f"{len(cfg.columns)} numeric columns"
        )
        parts = [f"{name} of {inputs}: {format_count(result.n_kept)} points"]
        if result.n_kept > MAX_SCATTER_POINTS:
            parts.append("rasterised on the server")
        text = ", ".join(parts)
        notes = [result.message] if result.message else []
        notes.extend(result.notes)  # the projection's own words, no data
        if self.colouring.merged:
            notes.append(
                f"{self.colouring.merged} values of {markdown_code(self.colouring.column)} beyond the "
                f"{MAX_CATEGORIES - 1} most frequent are coloured as {OTHER}"
            )
        return text + ("; " + "; ".join(notes) if notes else "")

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

    def _scatter(self, result: proj.ProjectionResult) -> Any:
        from bokeh.models import ColorBar, ColumnDataSource, HoverTool, Legend, TapTool
        from bokeh.plotting import figure
        from bokeh.transform import factor_cmap, linear_cmap

        cfg = self.config
        n = result.n_kept
        data: dict[str, Any] = {
            "x": result.points[:, 0],
            "y": result.points[:, 1],
            "row": self.rows,
            "alpha": np.full(n, 0.8),
            "size": self._sizes(result.kept),
        }
        hover = self._hover_columns()
        for i, name in enumerate(hover):
            data[f"c{i}"] = self._hover_values(name, result.kept)
        colouring = self.colouring
        if colouring.kind == "category":
            data["colour"] = colouring.labels
        elif colouring.kind == "number":
            data["colour"] = colouring.values
        thumbs = cfg.image is not None and n <= MAX_INLINE_THUMBNAILS
        if thumbs:
            data["thumb"] = _thumbnails(self.view, cfg.image, self.rows)
        source = ColumnDataSource(data, name="points")
        fig = figure(
            height=480,
            sizing_mode="stretch_width",
            output_backend="webgl",
            x_axis_label=result.axis_labels[0],
            y_axis_label=result.axis_labels[1],
            tools="pan,wheel_zoom,box_zoom,reset,save",
            toolbar_location="right",
            match_aspect=True,
        )
        kwargs: dict[str, Any] = {}
        if colouring.kind == "category":
            kwargs["color"] = factor_cmap("colour", colouring.palette, colouring.factors)
            kwargs["legend_field"] = "colour"
            fig.add_layout(Legend(title=colouring.column, click_policy="hide"), "right")
        elif colouring.kind == "number":
            finite = colouring.values[np.isfinite(colouring.values)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            mapper = linear_cmap("colour", "Viridis256", low, high, nan_color=OTHER_COLOUR)
            kwargs["color"] = mapper
            fig.add_layout(ColorBar(color_mapper=mapper.transform, title=colouring.column), "right")
        else:
            kwargs["color"] = "#4c78a8"
        renderer = fig.scatter(
            "x",
            "y",
            source=source,
            size="size",
            fill_alpha="alpha",
            line_alpha="alpha",
            name="points",
            **kwargs,
        )
        fig.add_tools(
            HoverTool(renderers=[renderer], tooltips=self._tooltip(hover, thumbs)),
            TapTool(renderers=[renderer]),
        )
        source.selected.on_change("indices", self._on_tap)
        self.source, self.figure = source, fig
        return fig

    def _sizes(self, kept: np.ndarray) -> np.ndarray:
        base = float(self.config.point_size)
        n = int(kept.sum())
        if self.config.size_by is None:
            return np.full(n, base)
        values = np.asarray(self.view.column_numpy(self.config.size_by), dtype=np.float64)[kept]
        finite = np.isfinite(values)
        out = np.full(n, base / 2)
        if finite.any():
            lo, hi = values[finite].min(), values[finite].max()
            span = hi - lo if hi > lo else 1.0
            out[finite] = base / 2 + (values[finite] - lo) / span * base * 2
        return out

    def _hover_values(self, name: str, kept: np.ndarray) -> Any:
        raw = np.asarray(self.view.column_numpy(name))
        if _is_number(self.view.type, name):
            return raw.astype(np.float64)[kept]
        return Labels.of(raw[kept]).values

    def _tooltip(self, hover: list[str], thumbs: bool) -> str:
        lines = ['<div style="font-size:12px">']
        if thumbs:
            lines.append(
                '<img src="@thumb" style="width:64px;height:64px;image-rendering:pixelated;'
                'display:block;margin-bottom:4px" alt="">'
            )
        lines.append("<div><b>row</b>: @row</div>")
        for i, name in enumerate(hover):
            fmt = "{0.[000]}" if _is_number(self.view.type, name) else ""
            lines.append(f"<div><b>{tooltip_text(name)}</b>: @c{i}{fmt}</div>")
        lines.append("</div>")
        return "".join(lines)

    def _raster(self, result: proj.ProjectionResult) -> Any:
        from bokeh import events
        from bokeh.models import (
            ColorBar,
            ColumnDataSource,
            CustomJSHover,
            HoverTool,
            Legend,
            LegendItem,
            LinearColorMapper,
        )
        from bokeh.plotting import figure

        colouring = self.colouring
        hover_names = self._hover_columns()
        hover = [
            _remembered(
                self.view,
                ("hover", name, self.colouring.column),
                result.kept,
                lambda name=name: self._raster_hover_values(name, result.kept),
            )
            for name in hover_names
        ]
        layer = RasterLayer(result.points, self.rows, colouring, [(n, v) for n, v, _ in hover])
        (x0, x1), (y0, y1) = layer.extent
        fig = figure(
            height=480,
            sizing_mode="stretch_width",
            x_range=(x0, x1),
            y_range=(y0, y1),
            x_axis_label=result.axis_labels[0],
            y_axis_label=result.axis_labels[1],
            tools="pan,wheel_zoom,box_zoom,reset,save",
            toolbar_location="right",
        )
        source = ColumnDataSource(layer.draw(), name="raster")
        image = fig.image_rgba(
            image="image", x="x", y="y", dw="dw", dh="dh", source=source, name="raster"
        )
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
        hover_tool = HoverTool(renderers=[image], tooltips=tooltips, formatters=formatters)
        fig.add_tools(hover_tool)
        if self.config.image is not None and _live():
            self._hover_thumbnails(hover_tool, source)
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
        marks = ColumnDataSource({"x": [], "y": [], "row": []}, name="marks")
        fig.scatter("x", "y", source=marks, color="#e45756", size=4, line_alpha=0.0)
        self.raster, self.marks, self.figure, self.raster_source = layer, marks, fig, source
        if _live():
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
        uri = _thumbnails(self.view, image, np.array([row]))[0]
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
        if _is_number(self.view.type, name):
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

    def _on_raster_tap(self, event: Any) -> None:
        if self.raster is None or event.x is None or event.y is None:
            return
        point = self.raster.point_at(event.x, event.y)
        if point is not None:
            self.select(int(self.rows[point]))

    # -- interaction -------------------------------------------------------------------

    def _on_tap(self, attr: str, old: list[int], new: list[int]) -> None:
        if self._syncing or not new:
            return
        self.select(int(self.rows[new[0]]))

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
            uri = _thumbnails(self.view, cfg.image, np.array([row]))[0]
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

            _on_document(select_points)
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
            alpha = np.full(self.result.n_kept, 0.8)
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
            _on_document(lambda: source.data.update(alpha=alpha))
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
        _on_document(lambda: setattr(marks, "data", data))


if _IN_APP:
    # Inside an app the module is imported (by the registry) before the first page is sent.
    # Importing datashader here, on the importing thread, means no worker thread imports it
    # while another card's thread imports shared modules (Python can report a module-lock
    # deadlock then).
    import datashader  # noqa: F401
