"""Projection at scale on a Dask cluster: fit on a seeded sample of a Parquet dataset, place
every row on the workers, and aggregate the points there.

``fit_on_cluster(client, dataset, columns, spec)`` runs the local pipeline's steps
(``pipeline.project``) with the rows spread over a cluster:

1. one pass over every row group (``pieces``) on the workers gives each piece's kept-row
   moments (for ``scale="standard"``: the mean and standard deviation of every kept row,
   combined exactly as one pass would give them), its dropped rows, and its rows of a seeded
   sample of ``sample`` rows spread over the files in proportion to their rows
   (``sample_plan``); only the moments and the sampled rows come back to the client;
2. the client fits the method on the sample (standardized with the global moments, scaled
   to unit length for the cosine metric, reduced by PCA before UMAP/t-SNE: the same steps
   and helpers as the local pipeline) into a ``FittedProjection``;
3. the fitted model is scattered once to every worker (``broadcast=True``) and every row
   group becomes one partition of a Dask dataframe of points (``row``: the dataset row
   number, file offset + row in file, as the engine's ROW; ``x``, ``y``), computed on the
   workers when something reads it: datashader's ``Canvas.points`` aggregates it there
   (``count_image``), so no process ever holds every point.

Nearest neighbours come from the sampled rows (``ClusterProjection.neighbours``, with the
note "neighbours among the N sampled rows"): exact in the original space, in one process,
at the cost of missing neighbours outside the sample (see docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from panels_core.projection.blas import single_thread_blas
from panels_core.projection.neighbours import nearest_neighbors
from panels_core.projection.numba_cache import configure_numba_cache
from panels_core.projection.pca import fit_pca, pca_labels, transform_pca
from panels_core.projection.pieces import (
    Moments,
    Piece,
    dataset_pieces,
    kept_rows,
    piece_row,
    read_piece,
    sample_plan,
    scan_piece,
)
from panels_core.projection.progress import Stages
from panels_core.projection.rows import check_varies, unit_rows
from panels_core.projection.spec import (
    MIN_ROWS_NONLINEAR,
    PCAParams,
    Placer,
    ProjectionError,
    ProjectionSpec,
    as_spec,
)
from panels_core.query.cluster.client import RETRIES, ClusterError, Tasks, worker_threads
from panels_core.query.cluster.tasks import rows_per_span

__all__ = [
    "DEFAULT_SAMPLE",
    "PARTITIONS_PER_THREAD",
    "POINTS_PER_PARTITION",
    "ClusterProjection",
    "Constant",
    "FittedProjection",
    "count_image",
    "drawable",
    "fit_on_cluster",
    "fit_projection",
    "lost_as_projection_error",
    "piece_extras",
    "piece_picks",
    "place_piece",
    "points_extent",
    "points_extent_and_count",
    "points_frame",
]

DEFAULT_SAMPLE = 200_000
"""Rows the cluster fit is made on (fewer when ``spec.max_fit_points`` says so)."""


@dataclass(frozen=True, eq=False)
class FittedProjection:
    """A projection fitted on a sample: what every worker needs to place its rows."""

    spec: ProjectionSpec
    mean: np.ndarray | None
    """float32 per dimension when ``scale="standard"`` (of every kept row), else None."""
    std: np.ndarray | None
    cosine: bool
    pca: Any = None
    """The fitted PCA of ``method="pca"``."""
    reduce: Any = None
    """The PCA pre-reduction of UMAP/t-SNE input with more than ``pca_dims`` dimensions."""
    place: Placer | None = None
    """UMAP/t-SNE: places new rows in the fitted layout."""
    fitted_rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    """UMAP/t-SNE: the dataset row numbers fitted on (sorted), placed at ``fitted_points``."""
    fitted_points: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.float32))
    axis_labels: tuple[str, str] = ("", "")

    def prepare(self, values: np.ndarray) -> np.ndarray:
        """Raw kept rows as the method sees them: standardized, then unit length for cosine."""
        data = np.asarray(values, dtype=np.float32)
        if self.mean is not None and self.std is not None:
            data = np.ascontiguousarray((data - self.mean) / self.std, dtype=np.float32)
        return unit_rows(data) if self.cosine else data

    def transform(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The 2D points (float32) of raw kept rows; ``rows`` (their dataset row numbers) puts
        the fitted rows of UMAP/t-SNE where the fit put them, as the local pipeline does."""
        data = self.prepare(values)
        if not len(data):
            return np.empty((0, 2), dtype=np.float32)
        if self.pca is not None:
            first, second = self.spec.params.components
            return np.ascontiguousarray(transform_pca(self.pca, data)[:, [first - 1, second - 1]])
        if self.reduce is not None:
            data = transform_pca(self.reduce, data)
        out = np.empty((len(data), 2), dtype=np.float32)
        fitted = np.zeros(len(data), dtype=bool)
        if rows is not None and len(self.fitted_rows):
            at = np.minimum(np.searchsorted(self.fitted_rows, rows), len(self.fitted_rows) - 1)
            fitted = self.fitted_rows[at] == rows
            out[fitted] = self.fitted_points[at[fitted]]
        if (~fitted).any():
            assert self.place is not None
            out[~fitted] = self.place(np.ascontiguousarray(data[~fitted]))
        return out


def fit_projection(
    sample: np.ndarray,
    sample_rows: np.ndarray,
    moments: Moments,
    spec: ProjectionSpec,
    stages: Stages | None = None,
) -> tuple[FittedProjection, tuple[str, ...]]:
    """Fit ``spec``'s method on the raw kept ``sample`` rows (dataset rows ``sample_rows``),
    standardized with ``moments`` of every kept row; returns the model and its notes."""
    stages = stages or Stages(None, None)
    standard = spec.scale == "standard"
    base = FittedProjection(
        spec=spec,
        mean=moments.mean.astype(np.float32) if standard else None,
        std=moments.std.astype(np.float32) if standard else None,
        cosine=getattr(spec.params, "metric", "euclidean") == "cosine",
    )
    data = base.prepare(sample)
    _check_sample(data, spec, moments.count)
    notes = [f"fitted on a sample of {len(data):,} of {moments.count:,} rows"]
    if standard:
        notes.append(f"standardized the {data.shape[1]} input columns over every row")
    with single_thread_blas():
        if isinstance(spec.params, PCAParams):
            stages(0.3, f"PCA of {len(data):,} sampled rows")
            pca, _ = fit_pca(data, max(spec.params.components), spec, spec.params.whiten)
            labels = pca_labels(pca, spec.params.components)
            return _with(base, pca=pca, axis_labels=labels), tuple(notes)
        reduce = None
        if data.shape[1] > spec.pca_dims and len(data) > spec.pca_dims:
            reduce, _ = fit_pca(data, spec.pca_dims, spec)
            data = transform_pca(reduce, data)
            notes.append(f"reduced {sample.shape[1]} dims to {spec.pca_dims} with PCA first")
    place, more = _fit_nonlinear(data, spec, stages, moments.count - len(data))
    name = "UMAP" if spec.method == "umap" else "t-SNE"
    fitted = _with(
        base,
        reduce=reduce,
        place=place,
        fitted_rows=np.asarray(sample_rows, dtype=np.int64),
        fitted_points=np.asarray(place(None), dtype=np.float32),
        axis_labels=(f"{name} 1", f"{name} 2"),
    )
    return fitted, (*notes, *more)


def _with(base: FittedProjection, **fields: Any) -> FittedProjection:
    return replace(base, **fields)


def _fit_nonlinear(
    data: np.ndarray, spec: ProjectionSpec, stages: Stages, rest: int
) -> tuple[Placer, tuple[str, ...]]:
    from panels_core.projection.tsne import run_tsne
    from panels_core.projection.umap import run_umap

    check_varies(data, len(data))
    runner = run_umap if spec.method == "umap" else run_tsne
    try:
        return runner(data, spec, stages, rest)
    except ProjectionError:
        raise
    except Exception as error:
        raise ProjectionError(
            f"{spec.method} failed on the sample ({type(error).__name__}: {error}); "
            "try PCA, other parameters, or a larger sample"
        ) from error


def _check_sample(data: np.ndarray, spec: ProjectionSpec, kept: int) -> None:
    n, d = data.shape
    if n < 2:
        raise ProjectionError(
            f"only {n} usable row{'s' if n != 1 else ''} in the sample ({kept:,} kept rows in "
            "all); a 2D projection needs at least 2: check the columns for missing values"
        )
    if d < 2:
        raise ProjectionError(
            f"the input has {d} dimension{'s' if d != 1 else ''}; a 2D projection needs at "
            "least 2 (choose an embedding column or two or more numeric columns)"
        )
    if spec.method != "pca" and n < MIN_ROWS_NONLINEAR:
        raise ProjectionError(
            f"{spec.method} needs at least {MIN_ROWS_NONLINEAR} sampled rows, got {n}; use PCA"
        )
    if isinstance(spec.params, PCAParams) and max(spec.params.components) > min(n, d):
        raise ProjectionError(
            f"PCA component {max(spec.params.components)} was asked for, but the sample has "
            f"only {min(n, d)} dimensions; choose components up to {min(n, d)}"
        )


def piece_picks(dataset: Any, pieces: Sequence[Piece], size: int, seed: int | None) -> list[Any]:
    """Each piece's sampled rows (numbers within the piece) of a ``sample_plan`` over the files."""
    plan = dict(zip((str(p) for p in dataset.files), sample_plan(dataset.rows, size, seed)))
    offsets = dict(zip((str(p) for p in dataset.files), dataset.offsets))
    picks = []
    for piece in pieces:
        within = plan[piece.path] - (piece.first - offsets[piece.path])
        picks.append(within[(within >= 0) & (within < piece.rows)])
    return picks


@dataclass(frozen=True)
class Constant:
    """A column every row of a piece holds the same value of (a Hive partition's)."""

    value: Any


def piece_extras(dataset: Any, pieces: Sequence[Piece], names: dict[str, str]) -> list[Any]:
    """For each piece, where ``place_piece`` finds the columns read alongside the points
    (``names``: the frame's column -> the dataset's): ``(column, None)``, the file's row
    group (null where the file lacks it), or a ``Constant`` (a partition column: the file's
    value, a number for a numeric partition)."""
    import pyarrow as pa

    from panels_core.data.dataset import kind_value

    files = {str(path): i for i, path in enumerate(dataset.files)}
    out = []
    for piece in pieces:
        extra: dict[str, Any] = {}
        for name, column in names.items():
            if column not in dataset.partitions:
                extra[name] = (column, None)
                continue
            raw = dataset.values[files[piece.path]][dataset.partitions.index(column)]
            kind = dataset.schema.field(column).type
            numeric = raw is not None and (pa.types.is_integer(kind) or pa.types.is_floating(kind))
            extra[name] = Constant(kind_value(kind, raw) if numeric else raw)
        out.append(extra)
    return out


def place_piece(
    piece: Piece,
    names: Sequence[str],
    model: FittedProjection,
    among: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """The points of a piece's kept rows of columns ``names`` (on a worker): a pandas frame of
    row, x, y; only of the dataset rows ``among`` when given (a filter's rows in the piece);
    then each column of ``extra`` (see ``piece_extras``) as its values (object; null: None, or NaN in a number column).
    (Not ``columns``: ``dd.from_map`` passes that keyword to a function taking it.)"""
    import pandas as pd

    rows = read_piece(piece, names)
    kept = kept_rows(rows, model.cosine)
    if among is not None:
        wanted = np.zeros(piece.rows, dtype=bool)
        wanted[np.asarray(among, dtype=np.int64) - piece.first] = True
        kept &= wanted
    numbers = np.flatnonzero(kept).astype(np.int64) + piece.first
    with single_thread_blas():
        points = model.transform(rows.values[kept], numbers)
    frame = pd.DataFrame({"row": numbers, "x": points[:, 0], "y": points[:, 1]})
    for name, values in _extra_values(piece, extra or {}).items():
        frame[name] = pd.Series(values[kept], dtype=object)
    return frame


def _extra_values(piece: Piece, extra: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each extra column's values for every row of ``piece`` (object arrays)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    read = {where[0] for where in extra.values() if not isinstance(where, Constant)}
    with pq.ParquetFile(piece.path) as file:
        present = sorted(read & set(file.schema_arrow.names))
        table = file.read_row_group(piece.row_group, columns=present) if present else None
    out = {}
    for name, where in extra.items():
        if isinstance(where, Constant):
            out[name] = np.full(piece.rows, where.value, dtype=object)
        elif table is not None and where[0] in table.column_names:
            column = table.column(where[0])
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            # (a null reads None, or NaN in a number column)
            out[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
        else:
            out[name] = np.full(piece.rows, None, dtype=object)
    return out


def points_frame(
    client: Any,
    pieces: Sequence[Piece],
    columns: Sequence[str],
    model: FittedProjection,
    among: Sequence[np.ndarray] | None = None,
    extras: Sequence[dict[str, Any]] | None = None,
) -> Any:
    """A lazy Dask dataframe of every kept row's point, one partition per piece, the model
    scattered once to every worker; ``among`` (one array per piece) keeps only those rows;
    ``extras`` (``piece_extras``) adds those columns' values (object) beside the points."""
    import dask.dataframe as dd
    import pandas as pd

    if model.place is not None:  # umap's kernels: numba's persistent cache on every worker too
        client.run(configure_numba_cache)
    shipped = client.scatter(model, broadcast=True, hash=False)
    meta = pd.DataFrame(
        {
            "row": np.empty(0, np.int64),
            "x": np.empty(0, np.float32),
            "y": np.empty(0, np.float32),
        }
    )
    for name in extras[0] if extras else {}:
        meta[name] = pd.Series([], dtype=object)
    count = len(pieces)
    if not count:
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_map(
        place_piece, pieces, [tuple(columns)] * count, [shipped] * count,
        list(among) if among is not None else [None] * count,
        list(extras) if extras is not None else [None] * count,
        meta=meta, label="project-points", enforce_metadata=False,
    )  # fmt: skip


def lost_as_projection_error(client: Any, work: Any) -> Any:
    """``work()`` (which talks to ``client``'s cluster); a cluster that does not answer is a
    ``ProjectionError`` with the engine's words: "the Dask cluster at ... is not answering"."""
    try:
        return Tasks(client).run(work)
    except ClusterError as error:
        raise ProjectionError(str(error)) from None


def points_extent(points: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """The points' (x_min, x_max), (y_min, y_max), in one pass on the workers."""
    return points_extent_and_count(points)[0]


def points_extent_and_count(
    points: Any,
) -> tuple[tuple[tuple[float, float], tuple[float, float]], int]:
    """The points' extent (as ``points_extent``) and how many there are, in one pass."""
    import dask

    x, y = points.x, points.y
    x0, x1, y0, y1, n = dask.compute(x.min(), x.max(), y.min(), y.max(), points.row.count())
    return ((float(x0), float(x1)), (float(y0), float(y1))), int(n)


POINTS_PER_PARTITION = 8_000_000
"""Points kept for drawing are held in partitions of up to this many (and at least
``PARTITIONS_PER_THREAD`` per worker thread): datashader makes an image per partition and
sums them, so hundreds of small partitions (a piece each) cost more than the points (100M
points in 800 partitions: 18-25 s a draw; in 16: 0.6 s)."""
PARTITIONS_PER_THREAD = 4


def drawable(client: Any, points: Any, count: int) -> Any:
    """The Dask frame ``points`` (about ``count`` points) in fewer, bigger partitions for
    drawing: consecutive partitions joined, the rows' order kept."""
    wanted = max(PARTITIONS_PER_THREAD * worker_threads(client), -(-count // POINTS_PER_PARTITION))
    return points if points.npartitions <= wanted else points.repartition(npartitions=wanted)


def count_image(
    points: Any,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int,
    height: int,
) -> Any:
    """Points per pixel (an xarray of counts) of a pandas or Dask frame of points; datashader
    aggregates a Dask frame partition by partition on the workers."""
    import datashader as ds

    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)
    return canvas.points(points, "x", "y", agg=ds.count())


@dataclass(frozen=True, eq=False)
class ClusterProjection:
    """A projection of a dataset on a cluster: the model, the lazy points, the sample."""

    model: FittedProjection
    points: Any
    """Dask dataframe (row, x, y) of every kept row, computed on the workers when read."""
    pieces: tuple[Piece, ...]
    columns: tuple[str, ...]
    sample: np.ndarray
    """The kept sampled rows, raw (float32); ``model.fitted_rows`` or ``sample_rows`` say which."""
    sample_rows: np.ndarray
    kept: int
    dropped: int
    notes: tuple[str, ...]

    @property
    def message(self) -> str | None:
        """Why rows have no point, or None."""
        if not self.dropped:
            return None
        verb = "was" if self.dropped == 1 else "were"
        plural = "row" if self.dropped == 1 else "rows"
        return (
            f"{self.dropped:,} {plural} with missing, NaN or infinite values (or no "
            f"direction for the cosine metric) {verb} left out"
        )

    def points_among(
        self, client: Any, rows: np.ndarray | None, extras: Sequence[dict[str, Any]] = ()
    ) -> Any:
        """A lazy Dask dataframe of the points of the dataset rows ``rows`` only (sorted row
        numbers, such as a filter's; None: every row): only the pieces holding some of them
        are read, and only those rows are placed; ``extras`` (``piece_extras`` of
        ``pieces``) adds those columns beside the points."""
        if rows is None:
            pieces, among, kept = list(self.pieces), None, list(extras)
        else:
            found = rows_per_span(
                np.asarray(rows, dtype=np.int64),
                [p.first for p in self.pieces],
                [p.rows for p in self.pieces],
            )
            pieces = [self.pieces[at] for at, _ in found]
            among = [held for _, held in found]
            kept = [extras[at] for at, _ in found] if extras else []
        return lost_as_projection_error(
            client,
            lambda: points_frame(client, pieces, self.columns, self.model, among, kept or None),
        )

    def vector(self, client: Any, row: int) -> np.ndarray | None:
        """Dataset row ``row``'s raw values, read by a worker from its piece (None: left out)."""
        firsts = np.array([p.first for p in self.pieces])
        at = int(np.searchsorted(firsts, row, side="right")) - 1
        if at < 0 or row >= self.pieces[at].first + self.pieces[at].rows:
            raise ProjectionError(f"row {row} is not in the dataset ({self.kept:,} kept rows)")
        piece = self.pieces[at]
        args = (piece_row, piece, self.columns, row, self.model.cosine)
        tasks = Tasks(client)
        return lost_as_projection_error(
            client, lambda: tasks.collect(lambda: [client.submit(*args, retries=RETRIES)])[0]
        )

    def neighbours(
        self, client: Any, row: int, k: int = 10, metric: str = "cosine"
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """The ``k`` nearest sampled rows to dataset row ``row`` in the original space: their
        dataset row numbers, distances, and the note saying they come from the sample."""
        note = f"neighbours among the {len(self.sample_rows):,} sampled rows"
        at = int(np.searchsorted(self.sample_rows, row))
        if at < len(self.sample_rows) and self.sample_rows[at] == row:
            values, index = self.sample, at
        else:
            vector = self.vector(client, row)
            if vector is None:
                raise ProjectionError(f"row {row} has no point (it was left out of the projection)")
            values, index = np.vstack([self.sample, vector[None, :]]), len(self.sample)
        found, distances = nearest_neighbors(values, index, k=k, metric=metric)
        return self.sample_rows[found], distances, note


def fit_on_cluster(
    client: Any,
    dataset: Any,
    columns: Sequence[str],
    spec: ProjectionSpec | dict[str, Any],
    *,
    sample: int | None = None,
    stages: Stages | None = None,
) -> ClusterProjection:
    """Fit ``spec`` on a seeded sample of a ``ParquetDataset``'s ``columns`` (one embedding
    column, or numeric columns) and place every row on ``client``'s cluster; see the module
    docstring. A cluster that cannot be reached raises ``ProjectionError`` saying so."""
    spec = as_spec(spec)
    unknown = [c for c in columns if c not in dataset.file_columns]
    if unknown or not columns:
        raise ProjectionError(
            f"the dataset `{dataset.name}` has no column `{unknown[0] if unknown else ''}` to "
            f"project; choose among {', '.join(dataset.file_columns)}"
        )
    size = min(sample or DEFAULT_SAMPLE, spec.fit_points)
    pieces = dataset_pieces(dataset, columns)
    picks = piece_picks(dataset, pieces, size, spec.seed)
    cosine = getattr(spec.params, "metric", "euclidean") == "cosine"
    count = len(pieces)
    arguments = (pieces, [tuple(columns)] * count, picks, [cosine] * count)

    def scan() -> list[Any]:
        return client.map(scan_piece, *arguments, retries=RETRIES, pure=False)

    scans = lost_as_projection_error(client, lambda: Tasks(client).collect(scan))
    moments = sum((s.moments for s in scans[1:]), scans[0].moments)
    values = np.concatenate([s.sample for s in scans])
    rows = np.concatenate([s.sample_rows for s in scans])
    model, notes = fit_projection(values, rows, moments, spec, stages)
    points = lost_as_projection_error(client, lambda: points_frame(client, pieces, columns, model))
    dropped = sum(s.dropped for s in scans)
    return ClusterProjection(
        model, points, tuple(pieces), tuple(columns), values, rows, moments.count, dropped, notes
    )
