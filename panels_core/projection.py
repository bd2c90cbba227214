"""2D projections of embeddings (PCA, UMAP, t-SNE), their cache, background runs and neighbours.

``project(X, spec)`` turns an ``(n, d)`` matrix (an embedding column, or several
numeric columns stacked) into one 2D point per row that has every value:

1. rows with a missing, NaN or infinite value (or, for ragged input, the wrong
   length) are left out and counted (``result.kept``, ``result.dropped``,
   ``result.message``);
2. for the cosine metric rows are scaled to unit length, so euclidean distance
   ranks neighbours exactly as cosine distance does (all-zero rows have no
   direction and are left out, counted);
3. UMAP and t-SNE inputs with more than ``spec.pca_dims`` dimensions are first
   reduced by PCA (covariance eigendecomposition on float32: about 2 s for
   1M x 384 on 2 cores);
4. UMAP and t-SNE fit on a seeded random sample of ``max_fit_points`` rows
   (default: every row up to 200k for UMAP, 20k for t-SNE) and ``transform`` the
   rest (in chunks, so a cancel is noticed between chunks), so every kept row gets
   a point in the same 2D space;
5. UMAP's fit runs umap-learn's fuzzy graph and spectral initialisation on a
   neighbour graph from pynndescent (parallel), then our own layout optimiser
   (``_layout``: umap's gradients, parallel and deterministic for a seed) for
   ``umap_epochs(n)`` epochs (fewer than umap's 200 past 20k rows).

Degenerate input: no or one kept row, fewer than 2 dimensions, every kept row
identical, too few rows for UMAP/t-SNE, or a PCA component beyond the data's
dimensions raise ``ProjectionError`` with a message saying what to do.
Parameters that only make sense on more rows (UMAP ``n_neighbors`` >= rows,
t-SNE ``perplexity`` > (rows - 1) / 3) are clamped and the clamp is reported in
``result.notes``.

umap-learn and openTSNE (and scikit-learn) are imported only when a projection
needs them, so importing this module is cheap. Before umap is first imported,
``NUMBA_CACHE_DIR`` is pointed at a persistent folder (see ``cache_dir``) unless
the user set it, so numba compiles umap's kernels once per machine.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import warnings
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_MAX_FIT_POINTS",
    "PCAParams",
    "ProjectionCache",
    "ProjectionCancelled",
    "ProjectionError",
    "ProjectionFuture",
    "ProjectionParams",
    "ProjectionResult",
    "ProjectionSpec",
    "Projector",
    "TSNEParams",
    "UMAPParams",
    "cache_dir",
    "fingerprint",
    "live_projectors",
    "nearest_neighbors",
    "neighborhood_preservation",
    "project",
    "project_cached",
    "shared_cache",
    "shared_projector",
    "umap_epochs",
    "warm_up",
]

Method = Literal["pca", "umap", "tsne"]
Metric = Literal["euclidean", "cosine"]
ProgressFn = Callable[[float, str], None]

#: Rows a method is fitted on when ``ProjectionSpec.max_fit_points`` is not set.
#: PCA: 1M rows give components indistinguishable from the full data's and fit in
#: about 1.5 s (1M x 384, 2 cores); the rest is a matrix product. UMAP: every row up
#: to 200k is fitted (100k x 384 in about 13 s on 2 cores, see ``_run_umap``): fitting
#: a 20k sample and placing the rest with ``transform`` was faster but kept only half
#: of each point's 15 nearest neighbours that a full fit keeps. t-SNE: 20k rows fit in
#: tens of seconds on 2 cores; every further row is placed by ``transform``.
DEFAULT_MAX_FIT_POINTS: dict[str, int] = {"pca": 1_000_000, "umap": 200_000, "tsne": 20_000}

#: Fewest kept rows UMAP and t-SNE accept (their neighbour graphs need a few rows).
MIN_ROWS_NONLINEAR = 5

_TRANSFORM_CHUNK = 20_000  # rows per transform call; cancel is checked between calls


class ProjectionError(ValueError):
    """A projection that cannot run on this input; the message says what to do instead."""


class ProjectionCancelled(Exception):
    """The projection's cancel event was set (or a newer request superseded it)."""


# ----------------------------------------------------------------------------- parameters


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PCAParams(_Frozen):
    """PCA: which principal components (1-based) to plot, and whether to scale them to unit variance."""

    method: Literal["pca"] = "pca"
    components: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (1, 2)
    whiten: bool = False

    @field_validator("components")
    @classmethod
    def _distinct(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] == value[1]:
            raise ValueError(f"components must be two different components, got {value}")
        return value


class UMAPParams(_Frozen):
    """umap-learn's main parameters."""

    method: Literal["umap"] = "umap"
    n_neighbors: int = Field(15, ge=2, le=200)
    min_dist: float = Field(0.1, ge=0.0, le=0.99)
    spread: float = Field(1.0, gt=0.0, le=100.0)
    metric: Metric = "euclidean"

    @model_validator(mode="after")
    def _min_dist_le_spread(self) -> UMAPParams:
        if self.min_dist > self.spread:
            raise ValueError(
                f"min_dist ({self.min_dist}) must not exceed spread ({self.spread}); "
                "lower min_dist or raise spread"
            )
        return self


class TSNEParams(_Frozen):
    """openTSNE's main parameters; ``n_iter`` counts all iterations (a third is early exaggeration)."""

    method: Literal["tsne"] = "tsne"
    perplexity: float = Field(30.0, ge=2.0, le=100.0)
    learning_rate: Literal["auto"] | Annotated[float, Field(gt=0.0)] = "auto"
    early_exaggeration: float = Field(12.0, ge=1.0, le=100.0)
    n_iter: int = Field(750, ge=250, le=5000)
    metric: Metric = "euclidean"


ProjectionParams = Annotated[PCAParams | UMAPParams | TSNEParams, Field(discriminator="method")]
_PARAMS_BY_METHOD: dict[str, type[BaseModel]] = {
    "pca": PCAParams,
    "umap": UMAPParams,
    "tsne": TSNEParams,
}


class ProjectionSpec(_Frozen):
    """What to compute: method, its parameters, seed, fit sample size and the PCA pre-reduction.

    ``params`` defaults to the method's defaults, and a params dict without a
    ``method`` key is read as the spec's method. An integer ``seed`` makes every
    method deterministic: the same input, spec and seed give the same points on
    one machine (UMAP's neighbour search and layout run on every core either way;
    pynndescent's search may pick other neighbours under another thread count, so
    a machine with a different core count can give a different layout).
    ``seed=None`` draws a fresh seed per run. ``max_fit_points=None`` means
    ``DEFAULT_MAX_FIT_POINTS[method]``.
    """

    method: Method = "pca"
    params: ProjectionParams = Field(default_factory=PCAParams)
    seed: int | None = Field(0, ge=0, le=2**32 - 1)
    max_fit_points: int | None = Field(None, ge=10)
    pca_dims: int = Field(50, ge=2, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _fill_params(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        params = data.get("params")
        method = data.get("method")
        if method is None:
            if isinstance(params, BaseModel):
                method = getattr(params, "method", None)
            elif isinstance(params, dict):
                method = params.get("method")
            data["method"] = method = method or "pca"
        if params is None:
            data["params"] = {"method": method}
        elif isinstance(params, dict) and "method" not in params:
            data["params"] = {**params, "method": method}
        return data

    @model_validator(mode="after")
    def _params_match_method(self) -> ProjectionSpec:
        if self.params.method != self.method:
            raise ValueError(
                f"params are {self.params.method} parameters but method is {self.method!r}; "
                f"pass {_PARAMS_BY_METHOD[self.method].__name__} or leave params out"
            )
        return self

    @property
    def fit_points(self) -> int:
        """Rows the method is fitted on at most (the rest are transformed)."""
        if self.max_fit_points is not None:
            return self.max_fit_points
        return DEFAULT_MAX_FIT_POINTS[self.method]


def _as_spec(spec: ProjectionSpec | dict[str, Any]) -> ProjectionSpec:
    if isinstance(spec, ProjectionSpec):
        return spec
    return ProjectionSpec.model_validate(spec)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class ProjectionResult:
    """One 2D point per kept row; arrays are read-only because results are shared via the cache.

    ``points[i]`` belongs to row ``kept_indices[i]`` of the input.
    """

    points: np.ndarray  # float32 (n_kept, 2)
    kept: np.ndarray  # bool (n,)
    spec: ProjectionSpec
    dropped: int
    message: str | None
    notes: tuple[str, ...]
    axis_labels: tuple[str, str]
    fit_points: int
    seconds: float

    @property
    def n_kept(self) -> int:
        """Rows that got a point."""
        return int(self.points.shape[0])

    @property
    def kept_indices(self) -> np.ndarray:
        """Input row numbers of ``points``, in order."""
        return np.flatnonzero(self.kept)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (what the cache counts)."""
        return int(self.points.nbytes + self.kept.nbytes)


# ----------------------------------------------------------------------------- input rows


@dataclass(frozen=True, eq=False)
class _Rows:
    """The input as a float32 matrix plus why rows are unusable (bad rows hold NaN)."""

    values: np.ndarray  # float32 (n, d), C-contiguous
    missing: np.ndarray  # bool (n,): no value at all (null / all NaN)
    ragged: np.ndarray  # bool (n,): a vector of the wrong length or not numeric
    expected_dim: int

    @property
    def n(self) -> int:
        return int(self.values.shape[0])


def _coerce(X: Any) -> _Rows:
    """Read ``X`` (2-D array, DataFrame, or a sequence of vectors/None) as float32 rows."""
    if isinstance(X, _Rows):
        return X
    if type(X).__module__.startswith("pyarrow"):
        X = _from_arrow(X)
    if hasattr(X, "to_numpy") and getattr(X, "ndim", 2) == 2:
        try:
            X = X.to_numpy(dtype="float32", na_value=np.nan)
        except (TypeError, ValueError) as error:
            raise ProjectionError(
                f"the columns to project must all be numeric ({error}); choose numeric columns"
            ) from error
    if isinstance(X, np.ma.MaskedArray):
        X = X.astype(np.float32).filled(np.nan)
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.dtype.kind not in "biuf":
            raise ProjectionError(
                f"cannot project values of dtype {X.dtype}; pass numbers (an embedding column "
                "or numeric columns)"
            )
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2:
            raise ProjectionError(f"expected a 2-D (rows x dims) array, got shape {X.shape}")
        values = np.ascontiguousarray(X, dtype=np.float32)
        n = values.shape[0]
        ragged = np.zeros(n, dtype=bool)
        missing = np.zeros(n, dtype=bool)
        if values.shape[1] and n:
            missing = np.isnan(values).all(axis=1) if values.shape[1] <= 4 else _all_nan(values)
        return _Rows(values, missing, ragged, values.shape[1])
    return _coerce_ragged(list(X))


def _from_arrow(array: Any) -> Any:
    """A fixed-size-list Arrow column without nulls as a 2-D array; anything else as Python rows."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array, pa.FixedSizeListArray) and array.null_count == 0:
        flat = array.flatten()
        numeric = pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)
        if numeric and flat.null_count == 0:
            return flat.to_numpy(zero_copy_only=False).reshape(len(array), -1)
    if isinstance(array, pa.Table):
        return array.to_pandas()
    return array.to_pylist()


def _all_nan(values: np.ndarray) -> np.ndarray:
    """Rows that are all NaN, checked on the first column first (cheap for big inputs)."""
    out = np.isnan(values[:, 0])
    if out.any():
        rows = np.flatnonzero(out)
        out[rows] = np.isnan(values[rows]).all(axis=1)
    return out


def _coerce_ragged(rows: list[Any]) -> _Rows:
    vectors: list[np.ndarray | None] = []
    ragged_flags: list[bool] = []
    for row in rows:
        if row is None:
            vectors.append(None)
            ragged_flags.append(False)
            continue
        try:
            vec = np.asarray(row, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            vectors.append(None)
            ragged_flags.append(True)
            continue
        vectors.append(vec)
        ragged_flags.append(False)
    lengths = Counter(len(v) for v in vectors if v is not None)
    dim = lengths.most_common(1)[0][0] if lengths else 0
    n = len(rows)
    values = np.full((n, dim), np.nan, dtype=np.float32)
    missing = np.zeros(n, dtype=bool)
    ragged = np.array(ragged_flags, dtype=bool)
    for i, vec in enumerate(vectors):
        if vec is None:
            missing[i] = not ragged[i]
        elif len(vec) != dim:
            ragged[i] = True
        else:
            values[i] = vec
    if dim:
        missing |= ~ragged & np.isnan(values).all(axis=1)
    else:
        missing = ~ragged
    return _Rows(values, missing, ragged, dim)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _finite_rows(values: np.ndarray) -> np.ndarray:
    """Rows without NaN or infinity (one float64 pass, no (n, d) temporary)."""
    if values.shape[1] == 0:
        return np.zeros(values.shape[0], dtype=bool)
    return np.isfinite(values.sum(axis=1, dtype=np.float64))


# ----------------------------------------------------------------------------- progress


class _Stages:
    """Reports progress and checks the cancel event at every report."""

    def __init__(self, progress: ProgressFn | None, cancel: threading.Event | None) -> None:
        self._progress = progress
        self._cancel = cancel

    def check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise ProjectionCancelled("the projection was cancelled")

    def __call__(self, fraction: float, message: str) -> None:
        self.check()
        if self._progress is not None:
            self._progress(min(max(float(fraction), 0.0), 1.0), message)


# ----------------------------------------------------------------------------- the pipeline


def project(
    X: Any,
    spec: ProjectionSpec | dict[str, Any],
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> ProjectionResult:
    """Project the rows of ``X`` (n x d numbers) to 2D; see the module docstring for the steps.

    ``progress(fraction, message)`` is called between stages; ``cancel`` is checked
    at each of them (and every 25 t-SNE iterations) and raises ``ProjectionCancelled``.
    """
    started = time.perf_counter()
    spec = _as_spec(spec)
    stages = _Stages(progress, cancel)
    stages(0.0, "checking rows")
    rows = _coerce(X)
    kept, dropped, message, notes = _select_rows(rows, spec)
    data = rows.values if kept.all() else rows.values[kept]
    metric = getattr(spec.params, "metric", "euclidean")
    if metric == "cosine":
        data = _unit_rows(data)
    _check_shape(data, spec, dropped, message)

    if isinstance(spec.params, PCAParams):
        points, labels, fit_n = _run_pca(data, spec, spec.params, stages)
    else:
        points, labels, fit_n, more = _run_nonlinear(data, spec, stages)
        notes = (*notes, *more)
    stages(1.0, f"{len(points):,} points")
    points = np.ascontiguousarray(points, dtype=np.float32)
    points.setflags(write=False)
    kept.setflags(write=False)
    return ProjectionResult(
        points=points,
        kept=kept,
        spec=spec,
        dropped=dropped,
        message=message,
        notes=tuple(notes),
        axis_labels=labels,
        fit_points=fit_n,
        seconds=time.perf_counter() - started,
    )


def _select_rows(
    rows: _Rows, spec: ProjectionSpec
) -> tuple[np.ndarray, int, str | None, tuple[str, ...]]:
    """The kept-row mask, how many were dropped, and a sentence per reason."""
    finite = _finite_rows(rows.values) & ~rows.ragged & ~rows.missing
    parts: list[str] = []
    missing = int(rows.missing.sum())
    if missing:
        parts.append(_plural(missing, "row without an embedding", "rows without an embedding"))
    ragged = int(rows.ragged.sum())
    if ragged:
        parts.append(
            _plural(ragged, "row", "rows")
            + f" whose values are not {rows.expected_dim} numbers like the others"
        )
    nonfinite = int((~finite).sum()) - missing - ragged
    if nonfinite:
        parts.append(_plural(nonfinite, "row", "rows") + " with missing, NaN or infinite values")
    kept = finite
    if getattr(spec.params, "metric", "euclidean") == "cosine" and rows.values.shape[1]:
        squares = np.einsum("ij,ij->i", rows.values, rows.values, dtype=np.float64)
        zero = kept & (squares == 0)
        if zero.any():
            parts.append(
                _plural(int(zero.sum()), "all-zero row", "all-zero rows")
                + " (no direction for the cosine metric)"
            )
            kept = kept & ~zero
    dropped = rows.n - int(kept.sum())
    message = None
    if parts:
        verb = "was" if dropped == 1 else "were"
        message = "; ".join(parts) + f" {verb} left out"
    return kept, dropped, message, ()


def _unit_rows(data: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", data, data, dtype=np.float64)).astype(np.float32)
    return data / norms[:, None]


def _check_shape(data: np.ndarray, spec: ProjectionSpec, dropped: int, message: str | None) -> None:
    n, d = data.shape
    why = f" ({message})" if message else ""
    if n == 0:
        raise ProjectionError(f"no rows to project: every row was left out{why}")
    if n == 1:
        raise ProjectionError(
            f"only one row to project{why}; a 2D projection needs at least 2 rows"
        )
    if d < 2:
        raise ProjectionError(
            f"the input has {d} dimension{'s' if d != 1 else ''}; a 2D projection needs at "
            "least 2 (choose an embedding column or two or more numeric columns)"
        )
    if spec.method != "pca" and n < MIN_ROWS_NONLINEAR:
        raise ProjectionError(
            f"{spec.method.upper() if spec.method == 'umap' else 't-SNE'} needs at least "
            f"{MIN_ROWS_NONLINEAR} rows, got {n}; use PCA for so few rows"
        )
    if isinstance(spec.params, PCAParams):
        top = max(spec.params.components)
        if top > min(n, d):
            limit = "dimensions" if d <= n else "rows"
            raise ProjectionError(
                f"PCA component {top} was asked for, but the input has only {min(n, d)} "
                f"{limit}; choose components up to {min(n, d)}"
            )


_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"users": 0, "limiter": None}


@contextmanager
def _single_thread_blas() -> Iterator[None]:
    """Run BLAS on one thread while any projection is inside this block.

    On a shared 2-core server multi-threaded OpenBLAS oversubscribes the cores
    and spin-waits: X^T X of 300k x 384 took 1.5-4.2 s on 2 threads under load
    and 0.7 s on one. The limit is process-wide, so it is reference-counted:
    the first user sets it and the last one restores the original.
    """
    with _BLAS_LOCK:
        if _BLAS_STATE["users"] == 0:
            from threadpoolctl import threadpool_limits

            _BLAS_STATE["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _BLAS_STATE["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["users"] -= 1
            if _BLAS_STATE["users"] == 0:
                _BLAS_STATE["limiter"].restore_original_limits()
                _BLAS_STATE["limiter"] = None


def _check_varies(data: np.ndarray, total: int) -> None:
    """ProjectionError when every row of ``data`` is the same (a leading slice is tried first)."""
    head = data[:4096]
    if np.any(head.max(axis=0) != head.min(axis=0)):
        return
    if not np.any(data.max(axis=0) != data.min(axis=0)):
        raise ProjectionError(
            f"all {total:,} kept rows have identical values, so there is nothing to project; "
            "check the column (or filter) feeding the projection"
        )


def _sample(n: int, size: int, seed: int | None) -> np.ndarray | None:
    """Sorted indices of a seeded random sample, or None when every row fits."""
    if n <= size:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False))


def _fit_pca(data: np.ndarray, n_components: int, spec: ProjectionSpec, whiten: bool = False):
    """A scikit-learn PCA fitted on at most DEFAULT_MAX_FIT_POINTS['pca'] sampled rows."""
    from sklearn.decomposition import PCA

    limit = spec.fit_points if spec.method == "pca" else DEFAULT_MAX_FIT_POINTS["pca"]
    idx = _sample(len(data), limit, spec.seed)
    fit_data = data if idx is None else data[idx]
    n, d = fit_data.shape
    # covariance_eigh: one X^T X pass then a d x d eigendecomposition; fastest for n >> d.
    solver = "covariance_eigh" if d <= 1000 and n >= d else "full"
    pca = PCA(n_components=n_components, svd_solver=solver, whiten=whiten, random_state=0)
    from sklearn import config_context

    _check_varies(fit_data, len(data))
    with config_context(assume_finite=True):  # rows were checked; skip another full pass
        pca.fit(fit_data)
    return pca, n


def _transform_pca(pca: Any, data: np.ndarray) -> np.ndarray:
    from sklearn import config_context

    with config_context(assume_finite=True):
        return np.asarray(pca.transform(data), dtype=np.float32)


def _run_pca(
    data: np.ndarray, spec: ProjectionSpec, params: PCAParams, stages: _Stages
) -> tuple[np.ndarray, tuple[str, str], int]:
    first, second = params.components
    stages(0.1, f"PCA of {len(data):,} rows x {data.shape[1]} dims")
    with _single_thread_blas():
        pca, fit_n = _fit_pca(data, max(first, second), spec, whiten=params.whiten)
        stages(0.6, "placing the rows")
        coords = _transform_pca(pca, data)
    points = coords[:, [first - 1, second - 1]]
    ratio = pca.explained_variance_ratio_
    labels = (
        f"PC{first} ({100 * ratio[first - 1]:.1f}%)",
        f"PC{second} ({100 * ratio[second - 1]:.1f}%)",
    )
    return points, labels, fit_n


def _run_nonlinear(
    data: np.ndarray, spec: ProjectionSpec, stages: _Stages
) -> tuple[np.ndarray, tuple[str, str], int, tuple[str, ...]]:
    notes: list[str] = []
    n, d = data.shape
    if d > spec.pca_dims and n > spec.pca_dims:
        stages(0.03, f"reducing {d} dims to {spec.pca_dims} with PCA")
        with _single_thread_blas():
            pca, _ = _fit_pca(data, spec.pca_dims, spec)
            data = _transform_pca(pca, data)
        notes.append(f"reduced {d} dims to {spec.pca_dims} with PCA first")
    idx = _sample(n, spec.fit_points, spec.seed)
    fit_data = data if idx is None else data[idx]
    fit_n = len(fit_data)
    _check_varies(fit_data, n)
    if idx is not None:
        notes.append(
            f"fitted on a random sample of {fit_n:,} of {n:,} rows; the rest were placed "
            "with transform"
        )
    runner = _run_umap if spec.method == "umap" else _run_tsne
    try:
        place, more = runner(fit_data, spec, stages, n - fit_n)
    except (ProjectionCancelled, ProjectionError):
        raise
    except MemoryError as error:
        raise ProjectionError(
            f"{spec.method} ran out of memory on {fit_n:,} rows; lower max_fit_points"
        ) from error
    except Exception as error:
        raise ProjectionError(
            f"{spec.method} failed on this input ({type(error).__name__}: {error}); "
            "try PCA, other parameters, or check the data for duplicates"
        ) from error
    notes.extend(more)
    if idx is None:
        points = place(None)
    else:
        points = np.empty((n, 2), dtype=np.float32)
        rest = np.ones(n, dtype=bool)
        rest[idx] = False
        rest_idx = np.flatnonzero(rest)
        for start in range(0, len(rest_idx), _TRANSFORM_CHUNK):
            chunk = rest_idx[start : start + _TRANSFORM_CHUNK]
            stages(
                0.7 + 0.28 * start / len(rest_idx),
                f"placing rows {start + 1:,}-{start + len(chunk):,} of {len(rest_idx):,}",
            )
            try:
                points[chunk] = place(data[chunk])
            except ProjectionCancelled:
                raise
            except Exception as error:
                raise ProjectionError(
                    f"{spec.method} transform failed ({type(error).__name__}: {error}); "
                    "raise max_fit_points to fit on every row"
                ) from error
        points[idx] = place(None)
    name = "UMAP" if spec.method == "umap" else "t-SNE"
    return points, (f"{name} 1", f"{name} 2"), fit_n, tuple(notes)


Placer = Callable[[np.ndarray | None], np.ndarray]


def _run_umap(
    fit_data: np.ndarray, spec: ProjectionSpec, stages: _Stages, n_rest: int
) -> tuple[Placer, tuple[str, ...]]:
    """Fit UMAP on ``fit_data``: umap-learn's graph and initial layout, our parallel layout.

    Steps: the k-nearest-neighbour graph (pynndescent on every core, from 4,096 rows;
    umap's exact search below), umap's fuzzy graph and spectral initialisation
    (``UMAP(n_epochs=0)``), then ``umap_epochs(n)`` epochs of ``_layout`` (umap's
    gradients and schedule, every core, deterministic for a seed). The fitted model,
    holding that layout, places the ``n_rest`` other rows with ``_umap_transform``.
    """
    params = spec.params
    assert isinstance(params, UMAPParams)
    notes: list[str] = []
    n = len(fit_data)
    n_neighbors = params.n_neighbors
    if n_neighbors >= n:
        n_neighbors = n - 1
        notes.append(f"n_neighbors lowered from {params.n_neighbors} to {n_neighbors} ({n} rows)")
    stages(0.1, "loading UMAP")
    umap = _import_umap()
    seed = spec.seed if spec.seed is not None else _fresh_seed()
    knn: tuple[Any, ...] = (None, None, None)
    if n >= _UMAP_EXACT_BELOW:
        stages(0.15, f"nearest neighbours of {n:,} rows")
        knn = _umap_knn(fit_data, n_neighbors, seed)
    stages(0.35, f"UMAP graph and spectral layout of {n:,} rows")
    model = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=params.min_dist,
        spread=params.spread,
        metric="euclidean",  # cosine input was scaled to unit rows
        n_epochs=0,  # umap stops after the initial layout; _layout optimises it
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,
        precomputed_knn=knn,
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*not fully connected.*", category=UserWarning)
        model.fit(fit_data)
    epochs = umap_epochs(n)
    model.embedding_ = _layout(model, epochs, seed, stages)
    model.n_epochs = None  # umap's own transform then picks its default epochs
    embedding = np.asarray(model.embedding_, dtype=np.float32)
    # umap's rule for one transform call of every remaining row
    transform_epochs = 100 if n_rest <= 10_000 else 30

    def place(rows: np.ndarray | None) -> np.ndarray:
        if rows is None:
            return embedding
        return _umap_transform(model, rows, transform_epochs)

    return place, tuple(notes)


_UMAP_EXACT_BELOW = 4096
"""umap-learn computes exact neighbours below this many rows; from it on we run pynndescent."""


def umap_epochs(n: int) -> int:
    """Layout epochs for a UMAP fit on ``n`` rows.

    umap-learn uses 500 up to 10,000 rows and 200 above. Past 20,000 rows we use
    fewer, ``4,000,000 // n`` but at least 60: measured on 100k x 384 clustered
    embeddings (benchmarks/bench_projection.py), 60 epochs of ``_layout`` after the
    spectral start keep 98% of umap-learn's neighbourhood preservation (0.043 vs
    0.044) at a third of the layout time; 100 epochs give 0.047.
    """
    if n <= 10_000:
        return 500
    if n <= 20_000:
        return 200
    return max(60, min(200, 4_000_000 // n))


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**31))


def _umap_knn(data: np.ndarray, n_neighbors: int, seed: int) -> tuple[Any, Any, Any]:
    """umap-learn's approximate k-nearest-neighbour search (same NNDescent settings) on every
    core. With a fixed ``random_state`` pynndescent's parallel search returns the same graph
    on every run (its updates are applied in a fixed order per thread count)."""
    from pynndescent import NNDescent

    n = len(data)
    index = NNDescent(
        data,
        n_neighbors=n_neighbors,
        metric="euclidean",
        random_state=seed,
        n_trees=min(64, 5 + round(n**0.5 / 20.0)),
        n_iters=max(5, round(np.log2(n))),
        max_candidates=60,
        low_memory=True,
        n_jobs=-1,
        compressed=False,
        verbose=False,
    )
    indices, distances = index.neighbor_graph
    return indices, distances, index


_LAYOUT_CHUNK = 10  # epochs per kernel call; progress and cancel are checked between calls


def _layout(model: Any, n_epochs: int, seed: int, stages: _Stages) -> np.ndarray:
    """Optimise ``model.embedding_`` (umap's initial layout) against ``model.graph_``.

    umap-learn's stochastic gradient descent (its attractive and repulsive forces, edge
    sampling schedule, ``negative_sample_rate`` and linearly decaying learning rate),
    run per point on every core: in each epoch every point moves by the forces of its
    sampled edges and negative samples, computed from the previous epoch's positions,
    with random numbers drawn from (seed, epoch, point). No point reads a position
    written in the same epoch, so the result does not depend on the thread count or
    scheduling: the same seed gives the same layout. (umap-learn itself runs one thread
    with a seed, and threads race on shared positions without one.)
    """
    graph = model.graph_.tocsr().astype(np.float64)
    graph.sum_duplicates()
    top = float(graph.data.max()) if graph.nnz else 0.0
    layout = np.array(model.embedding_, dtype=np.float32, copy=True, order="C")
    if top <= 0.0 or not np.isfinite(layout).all():
        return layout
    graph.data[graph.data < top / float(n_epochs)] = 0.0
    graph.eliminate_zeros()
    graph.sort_indices()
    epochs_per_sample = top / graph.data
    next_sample = epochs_per_sample.copy()
    rate = float(model.negative_sample_rate)
    next_negative = epochs_per_sample / rate
    kernel = _layout_kernel()
    indptr = graph.indptr.astype(np.int64)
    indices = graph.indices.astype(np.int64)
    for start in range(0, n_epochs, _LAYOUT_CHUNK):
        stop = min(start + _LAYOUT_CHUNK, n_epochs)
        stages(0.45 + 0.25 * start / n_epochs, f"UMAP layout, epoch {start + 1} of {n_epochs}")
        kernel(
            layout,
            indptr,
            indices,
            epochs_per_sample,
            next_sample,
            next_negative,
            float(model._a),
            float(model._b),
            float(model.repulsion_strength),
            float(model.learning_rate),
            rate,
            n_epochs,
            start,
            stop,
            seed,
        )
    return layout


def _layout_epochs(
    layout, indptr, indices, epochs_per_sample, next_sample, next_negative,
    a, b, gamma, initial_alpha, negative_rate, n_epochs, start, stop, seed,
):  # fmt: skip
    """Epochs ``start`` to ``stop`` of ``_layout`` (compiled by numba in ``_layout_kernel``)."""
    n = layout.shape[0]
    for epoch in range(start, stop):
        alpha = initial_alpha * (1.0 - epoch / n_epochs)
        before = layout.copy()
        for i in _prange(n):
            y0 = before[i, 0]
            y1 = before[i, 1]
            state = (
                (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15))
                ^ (np.uint64(epoch + 1) * np.uint64(0xBF58476D1CE4E5B9))
                ^ (np.uint64(i + 1) * np.uint64(0x94D049BB133111EB))
            )
            if state == np.uint64(0):
                state = np.uint64(0x2545F4914F6CDD1D)
            for e in range(indptr[i], indptr[i + 1]):
                if next_sample[e] > epoch:
                    continue
                j = indices[e]
                d0 = y0 - before[j, 0]
                d1 = y1 - before[j, 1]
                dist2 = d0 * d0 + d1 * d1
                if dist2 > 0.0:
                    coeff = -2.0 * a * b * dist2 ** (b - 1.0) / (a * dist2**b + 1.0)
                    # umap moves both ends of an edge and holds each edge twice (i->j, j->i);
                    # here each point moves only itself, so by twice the clipped step
                    y0 += 2.0 * min(4.0, max(-4.0, coeff * d0)) * alpha
                    y1 += 2.0 * min(4.0, max(-4.0, coeff * d1)) * alpha
                next_sample[e] += epochs_per_sample[e]
                per_negative = epochs_per_sample[e] / negative_rate
                negatives = int((epoch - next_negative[e]) / per_negative)
                for _ in range(negatives):
                    state ^= state << np.uint64(13)
                    state ^= state >> np.uint64(7)
                    state ^= state << np.uint64(17)
                    k = np.int64(state % np.uint64(n))
                    if k == i:
                        continue
                    d0 = y0 - before[k, 0]
                    d1 = y1 - before[k, 1]
                    dist2 = d0 * d0 + d1 * d1
                    if dist2 > 0.0:
                        coeff = 2.0 * gamma * b / ((0.001 + dist2) * (a * dist2**b + 1.0))
                        y0 += min(4.0, max(-4.0, coeff * d0)) * alpha
                        y1 += min(4.0, max(-4.0, coeff * d1)) * alpha
                next_negative[e] += negatives * per_negative
            layout[i, 0] = y0
            layout[i, 1] = y1


_KERNELS: dict[str, Any] = {}
_prange: Callable[[int], Any] = range
"""The point loop of ``_layout_epochs``: ``numba.prange`` once compiled (plain ``range`` in Python)."""


def _layout_kernel() -> Any:
    """``_layout_epochs`` compiled by numba (parallel, cached in ``cache_dir()/numba``)."""
    kernel = _KERNELS.get("layout")
    if kernel is None:
        _configure_numba_cache()
        import numba

        globals()["_prange"] = numba.prange  # read when numba compiles _layout_epochs
        kernel = numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)(_layout_epochs)
        _KERNELS["layout"] = kernel
    return kernel


def _umap_transform(model: Any, rows: np.ndarray, n_epochs: int) -> np.ndarray:
    """umap's ``transform`` with its per-row Python initialisation loop vectorised.

    Same steps as ``UMAP.transform`` (umap-learn 0.5): the bipartite graph to the
    fitted rows (``transform_mode="graph"``), each new row started on its nearest
    fitted row (or the weighted mean of its neighbours), then ``n_epochs`` of
    layout optimisation against the fixed fitted embedding. Falls back to
    ``model.transform`` if umap's internals differ.
    """
    try:
        from sklearn.utils import check_random_state
        from umap.layouts import optimize_layout_euclidean
        from umap.umap_ import INT32_MAX, INT32_MIN, make_epochs_per_sample

        model.transform_mode = "graph"
        try:
            graph = model.transform(rows).tocoo()
        finally:
            model.transform_mode = "embedding"
        init = _graph_init(graph.tocsr(), model.embedding_)
        graph.data[graph.data < (graph.data.max() / float(n_epochs))] = 0.0
        graph.eliminate_zeros()
        rng_state = (
            check_random_state(model.transform_seed)
            .randint(INT32_MIN, INT32_MAX, 3)
            .astype(np.int64)
        )
        placed = optimize_layout_euclidean(
            init,
            model.embedding_.astype(np.float32, copy=True),
            graph.row,
            graph.col,
            n_epochs,
            graph.shape[1],
            make_epochs_per_sample(graph.data, n_epochs),
            model._a,
            model._b,
            rng_state,
            model.repulsion_strength,
            model._initial_alpha / 4.0,
            model.negative_sample_rate,
            model.random_state is None,
            verbose=False,
        )
    except (AttributeError, ImportError, TypeError):
        placed = model.transform(rows)
    return np.asarray(placed, dtype=np.float32)


def _graph_init(graph: Any, embedding: np.ndarray) -> np.ndarray:
    """umap's init_graph_transform without the Python loop: a row with a weight-1 edge starts
    on that fitted point, others on the weighted mean of their neighbours, none -> NaN."""
    sums = np.asarray(graph.sum(axis=1)).ravel()
    out = (graph @ embedding.astype(np.float64)) / np.where(sums > 0, sums, 1.0)[:, None]
    exact = graph.data == 1
    if exact.any():
        row_of = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))[exact]
        first = np.unique(row_of, return_index=True)[1]
        out[row_of[first]] = embedding[graph.indices[exact][first]]
    out[sums == 0] = np.nan
    return out.astype(np.float32)


def _run_tsne(
    fit_data: np.ndarray, spec: ProjectionSpec, stages: _Stages, n_rest: int
) -> tuple[Placer, tuple[str, ...]]:
    """Fit openTSNE on ``fit_data``; ``n_rest`` rows will be placed with its transform."""
    from openTSNE import TSNE

    params = spec.params
    assert isinstance(params, TSNEParams)
    notes: list[str] = []
    n = len(fit_data)
    perplexity = params.perplexity
    if 3 * perplexity > n - 1:
        perplexity = (n - 1) / 3
        notes.append(
            f"perplexity lowered from {params.perplexity:g} to {perplexity:.3g} ({n} rows)"
        )
    early = params.n_iter // 3
    watcher = _TSNEProgress(stages, early, params.n_iter)
    stages(0.1, f"t-SNE affinities of {n:,} rows")
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        learning_rate=params.learning_rate,
        early_exaggeration=params.early_exaggeration,
        early_exaggeration_iter=early,
        n_iter=params.n_iter - early,
        metric="euclidean",  # cosine input was scaled to unit rows
        random_state=spec.seed,
        n_jobs=_tsne_jobs(),
        callbacks=watcher,
        callbacks_every_iters=25,
        verbose=False,
    )
    embedding = tsne.fit(fit_data)
    watcher.fitting = False
    stages(0.7, "t-SNE fitted")

    def place(rows: np.ndarray | None) -> np.ndarray:
        if rows is None:
            # transform() re-centres the reference embedding in place: read it last.
            return np.asarray(embedding, dtype=np.float32)
        return np.asarray(embedding.transform(rows), dtype=np.float32)

    return place, tuple(notes)


def _tsne_jobs() -> int:
    """openTSNE threads (its results for a seed do not depend on the thread count)."""
    return max(1, min(os.cpu_count() or 1, 8))


class _TSNEProgress:
    """openTSNE callback: reports fit progress and raises ProjectionCancelled when asked to stop."""

    def __init__(self, stages: _Stages, early: int, total: int) -> None:
        self.stages = stages
        self.early = early
        self.total = total
        self.phase = 0
        self.fitting = True

    def optimization_about_to_start(self) -> None:
        self.phase += 1
        self.stages.check()

    def __call__(self, iteration: int, error: float, embedding: Any) -> bool:
        if not self.fitting:
            self.stages.check()
            return False
        done = min(iteration + (self.early if self.phase > 1 else 0), self.total)
        self.stages(0.15 + 0.55 * done / self.total, f"t-SNE iteration {done} of {self.total}")
        return False


# ----------------------------------------------------------------------------- umap and numba


def cache_dir() -> Path:
    """typed-panels' persistent cache folder: $PANELS_CACHE_DIR, else ~/.cache/typed-panels."""
    configured = os.environ.get("PANELS_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "typed-panels"


def _configure_numba_cache() -> None:
    """Point numba's on-disk cache at cache_dir()/numba unless NUMBA_CACHE_DIR is set."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    folder = cache_dir() / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: numba falls back to __pycache__ or compiles each run
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    config = sys.modules.get("numba.core.config")
    if config is not None and not getattr(config, "CACHE_DIR", ""):
        config.CACHE_DIR = str(folder)  # numba was imported earlier (e.g. by datashader)


def _import_umap() -> Any:
    _configure_numba_cache()
    import umap

    return umap


def warm_up(seed: int | None = 0) -> float:
    """Compile umap's numba kernels now (fit, neighbour search, transform); returns seconds.

    A server can call this on a background thread at start so the first UMAP a
    user asks for does not wait for compilation (30-90 s on 2 cores; compiled
    code that numba can cache is kept in ``cache_dir()/numba`` for later runs).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    # > 4096 rows so umap takes its NN-descent path, as on real data
    data = rng.normal(size=(4500, 8)).astype(np.float32)
    spec = ProjectionSpec(method="umap", seed=seed, max_fit_points=4200)
    project(data, spec)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- caching


def fingerprint(X: Any) -> str:
    """A SHA-256 digest of the rows as float32 (shape included); same data -> same string.

    Big inputs are hashed in pieces on several threads (hashlib releases the GIL),
    then the piece digests are hashed together: about 0.2 s for 100k x 384.
    """
    values = _coerce(X).values
    raw = values.reshape(-1).view(np.uint8)
    pieces = max(1, min(os.cpu_count() or 1, 8)) if raw.nbytes > 32 * 2**20 else 1
    bounds = np.linspace(0, raw.nbytes, pieces + 1).astype(np.int64)

    def digest(i: int) -> bytes:
        return hashlib.sha256(raw[bounds[i] : bounds[i + 1]]).digest()

    if pieces == 1:
        digests = [digest(0)]
    else:
        with ThreadPoolExecutor(pieces) as pool:
            digests = list(pool.map(digest, range(pieces)))
    final = hashlib.sha256(repr(values.shape).encode())
    for part in digests:
        final.update(part)
    return final.hexdigest()


class ProjectionCache:
    """A thread-safe in-process LRU of ProjectionResults, bounded by their total bytes."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, ProjectionResult] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> ProjectionResult | None:
        """The cached result (now most recently used), or None."""
        with self._lock:
            result = self._items.get(key)
            if result is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return result

    def put(self, key: Hashable, result: ProjectionResult) -> None:
        """Store a result, evicting the least recently used ones past ``max_bytes``."""
        size = result.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = result
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        """Forget every result."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


_SHARED_CACHE = ProjectionCache()


def shared_cache() -> ProjectionCache:
    """The process-wide cache, so every session of one server shares results."""
    return _SHARED_CACHE


def _cache_key(data_key: Hashable, spec: ProjectionSpec) -> tuple[Hashable, str]:
    return (data_key, spec.model_dump_json())


def project_cached(
    X: Any,
    spec: ProjectionSpec | dict[str, Any],
    key: Hashable | None = None,
    *,
    cache: ProjectionCache | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    compute: Callable[..., ProjectionResult] | None = None,
) -> ProjectionResult:
    """``project`` through a cache keyed by (data, spec).

    ``key`` identifies the data cheaply (e.g. (table fingerprint, query json,
    column)); without it the rows are hashed (``fingerprint``). With a key, ``X``
    may be a zero-argument callable that fetches the rows only on a cache miss.
    ``compute`` (same signature as ``project``) computes a miss; default ``project``.
    """
    spec = _as_spec(spec)
    cache = _SHARED_CACHE if cache is None else cache
    rows: Any = X
    if key is None:
        if callable(X):
            raise ProjectionError("pass a cache key when X is a function that fetches the rows")
        rows = _coerce(X)
        data_key: Hashable = ("blake2b", fingerprint(rows))
    else:
        data_key = ("key", key)
    cache_key = _cache_key(data_key, spec)
    hit = cache.get(cache_key)
    if hit is not None:
        _Stages(progress, cancel)(1.0, "from cache")
        return hit
    if callable(rows):
        rows = rows()
    result = (compute or project)(rows, spec, progress=progress, cancel=cancel)
    cache.put(cache_key, result)
    return result


# ----------------------------------------------------------------------------- background runs


class ProjectionFuture(Future):
    """The future of a submitted projection: a caller that stops waiting cancels the job.

    ``result(timeout)`` or ``exception(timeout)`` whose timeout passes, and
    ``cancel()``, set the job's cancel event, as a closed page does: a queued job
    never runs, a running one stops and its future fails with ``ProjectionCancelled``
    (``cancel()`` still returns False for a job already running, as in
    ``concurrent.futures``). Nothing is left behind for the jobs that follow.
    """

    def __init__(self, stop: Callable[[str], None]) -> None:
        super().__init__()
        self._stop_job = stop

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except TimeoutError:
            self._stop_job("its caller stopped waiting")
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return super().exception(timeout)
        except TimeoutError:
            self._stop_job("its caller stopped waiting")
            raise

    def cancel(self) -> bool:
        if not self.done():
            self._stop_job("cancelled by its caller")
        return super().cancel()


@dataclass(eq=False)
class _Job:
    future: ProjectionFuture
    cancel: threading.Event
    reason: str = "cancelled"

    def stop(self, reason: str) -> None:
        """Set the cancel event; the first reason given is the one reported."""
        if not self.cancel.is_set():
            self.reason = reason
            self.cancel.set()


_PROJECTORS: weakref.WeakSet[Projector] = weakref.WeakSet()


def live_projectors() -> list[Projector]:
    """Every Projector of this process that was not shut down."""
    return list(_PROJECTORS)


class Projector:
    """Runs projections on worker threads, one live request per slot (e.g. a card id).

    A newer ``submit`` for the same slot sets the older job's cancel event; the
    older future then fails with ``ProjectionCancelled`` and never carries a
    result (a result that was finished anyway still lands in the cache). A
    caller that stops waiting for a future cancels its job (``ProjectionFuture``).
    """

    def __init__(
        self,
        max_workers: int = 2,
        cache: ProjectionCache | None = None,
        compute: Callable[..., ProjectionResult] | None = None,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="panels-projection")
        self._cache = cache
        self._compute = compute  # how a cache miss is computed (default: ``project`` here)
        self._jobs: dict[Hashable, _Job] = {}  # the live request of each slot
        self._unfinished: set[_Job] = set()  # every job whose future is not set yet
        self._lock = threading.Lock()
        _PROJECTORS.add(self)

    def submit(
        self,
        slot: Hashable,
        X: Any,
        spec: ProjectionSpec | dict[str, Any],
        on_progress: ProgressFn | None = None,
        *,
        key: Hashable | None = None,
    ) -> ProjectionFuture:
        """Start projecting ``X`` for ``slot``, superseding the slot's previous request."""
        spec = _as_spec(spec)
        future = ProjectionFuture(lambda reason: self._stop(slot, job, reason))
        job = _Job(future, threading.Event())
        with self._lock:
            previous = self._jobs.get(slot)
            self._jobs[slot] = job
            self._unfinished.add(job)
        if previous is not None:
            previous.stop("superseded by a newer request")
        self._executor.submit(self._run, slot, job, X, spec, on_progress, key)
        return future

    def cancel(self, slot: Hashable) -> bool:
        """Cancel the slot's running request; True when there was one."""
        with self._lock:
            job = self._jobs.pop(slot, None)
        if job is None:
            return False
        job.stop("cancelled")
        return True

    def cancel_all(self, reason: str = "cancelled") -> list[ProjectionFuture]:
        """Cancel every job not finished yet (queued, running, or cancelled but still
        stopping); returns their futures, each of which ends soon."""
        with self._lock:
            jobs = list(self._unfinished)
            self._jobs.clear()
        for job in jobs:
            job.stop(reason)
        return [job.future for job in jobs]

    def _stop(self, slot: Hashable, job: _Job, reason: str) -> None:
        """Cancel ``job`` (its caller gave up on it)."""
        self._forget(slot, job)
        job.stop(reason)

    def _run(
        self,
        slot: Hashable,
        job: _Job,
        X: Any,
        spec: ProjectionSpec,
        on_progress: ProgressFn | None,
        key: Hashable | None,
    ) -> None:
        future = job.future
        if not future.set_running_or_notify_cancel():
            self._finish(slot, job)
            return

        def report(fraction: float, message: str) -> None:
            if on_progress is not None and not job.cancel.is_set():
                on_progress(fraction, message)

        try:
            if job.cancel.is_set():
                raise ProjectionCancelled(job.reason)
            result = project_cached(
                X,
                spec,
                key,
                cache=self._cache,
                progress=report,
                cancel=job.cancel,
                compute=self._compute,
            )
            if job.cancel.is_set():
                raise ProjectionCancelled(job.reason)
        except ProjectionCancelled as error:
            future.set_exception(ProjectionCancelled(job.reason) if job.cancel.is_set() else error)
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(result)
        finally:
            self._finish(slot, job)

    def _forget(self, slot: Hashable, job: _Job) -> None:
        with self._lock:
            if self._jobs.get(slot) is job:
                del self._jobs[slot]

    def _finish(self, slot: Hashable, job: _Job) -> None:
        self._forget(slot, job)
        with self._lock:
            self._unfinished.discard(job)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every request and stop the workers."""
        _PROJECTORS.discard(self)
        futures = self.cancel_all("the projector was shut down")
        self._executor.shutdown(wait=wait, cancel_futures=True)
        for future in futures:
            future.cancel()  # a job the executor dropped before it ran


_SHARED_PROJECTOR: Projector | None = None
_SHARED_LOCK = threading.Lock()


def shared_projector() -> Projector:
    """The process-wide Projector (the shared cache); cache misses run in a low-priority
    worker process (``ProcessProjector``) unless ``PANELS_PROJECTION_WORKER=0``, which
    runs them on threads of this process."""
    global _SHARED_PROJECTOR
    with _SHARED_LOCK:
        if _SHARED_PROJECTOR is None:
            if os.environ.get("PANELS_PROJECTION_WORKER", "1") == "0":
                _SHARED_PROJECTOR = Projector()
            else:
                from panels_core.projection_worker import ProcessProjector

                _SHARED_PROJECTOR = ProcessProjector(
                    warm_up=os.environ.get("PANELS_WARM_UP", "1") != "0"
                )
        return _SHARED_PROJECTOR


# ----------------------------------------------------------------------------- neighbours


def nearest_neighbors(
    X: Any,
    index: int | np.ndarray | list[int],
    k: int = 10,
    metric: Metric = "cosine",
    *,
    max_block: int = 16_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``X`` to row(s) ``index`` (itself excluded), nearest first.

    Exact brute force in the original space, in blocks of rows so memory stays
    bounded; candidates are ranked in float32 and their distances recomputed in
    float64. Rows with missing or non-finite values are never neighbours.
    Cosine distance is 1 - cosine similarity. Returns ``(indices, distances)``,
    1-D for a scalar ``index``, else shaped (len(index), k); fewer than ``k``
    columns when fewer other rows are usable. Ties are broken by row number.
    """
    with _single_thread_blas():
        return _nearest_neighbors(X, index, k, metric, max_block)


def _nearest_neighbors(
    X: Any, index: Any, k: int, metric: str, max_block: int
) -> tuple[np.ndarray, np.ndarray]:
    if metric not in ("cosine", "euclidean"):
        raise ProjectionError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")
    if k < 1:
        raise ProjectionError(f"k must be at least 1, got {k}")
    values = _coerce(X).values
    n = values.shape[0]
    scalar = np.ndim(index) == 0
    queries = np.atleast_1d(np.asarray(index))
    if queries.dtype.kind not in "iu":
        raise ProjectionError(f"row numbers must be integers, got {queries.dtype}")
    queries = queries.astype(np.int64)
    if len(queries) and (queries.min() < 0 or queries.max() >= n):
        bad = int(queries[(queries < 0) | (queries >= n)][0])
        raise ProjectionError(f"row {bad} does not exist; the input has {n:,} rows")
    usable = _finite_rows(values)
    if not usable[queries].all():
        bad = int(queries[~usable[queries]][0])
        raise ProjectionError(
            f"row {bad} has missing or non-finite values, so it has no neighbours; pick another row"
        )
    k_eff = min(k, int(usable.sum()) - 1)
    if k_eff < 1 or len(queries) == 0:
        empty_i = np.empty((len(queries), 0), dtype=np.int64)
        empty_d = np.empty((len(queries), 0), dtype=np.float64)
        return (empty_i[0], empty_d[0]) if scalar else (empty_i, empty_d)

    norms = np.sqrt(np.einsum("ij,ij->i", values, values, dtype=np.float64))
    query_vecs = values[queries].astype(np.float32)
    if metric == "cosine":
        qn = norms[queries]
        query_vecs = query_vecs / np.where(qn > 0, qn, 1.0).astype(np.float32)[:, None]
    else:
        qsq = (norms[queries] ** 2).astype(np.float32)
    width = min(k_eff + 1 + 8, n)
    best_idx = np.empty((len(queries), 0), dtype=np.int64)
    best_d = np.empty((len(queries), 0), dtype=np.float32)
    block = max(256, max_block // max(len(queries), 1))
    for start in range(0, n, block):
        chunk = values[start : start + block]
        dots = query_vecs @ chunk.T  # (q, rows)
        if metric == "cosine":
            cn = norms[start : start + block]
            dist = 1.0 - dots / np.where(cn > 0, cn, np.inf).astype(np.float32)
        else:
            csq = (norms[start : start + block] ** 2).astype(np.float32)
            dist = qsq[:, None] - 2.0 * dots + csq[None, :]
        dist[:, ~usable[start : start + block]] = np.inf
        own = (queries >= start) & (queries < start + len(chunk))
        dist[np.flatnonzero(own), queries[own] - start] = np.inf
        dist = np.nan_to_num(dist, nan=np.inf, posinf=np.inf)
        take = min(width, dist.shape[1])
        part = np.argpartition(dist, take - 1, axis=1)[:, :take]
        cand_d = np.take_along_axis(dist, part, axis=1)
        best_idx = np.concatenate([best_idx, part + start], axis=1)
        best_d = np.concatenate([best_d, cand_d], axis=1)
        if best_idx.shape[1] > width:
            keep = np.argpartition(best_d, width - 1, axis=1)[:, :width]
            best_idx = np.take_along_axis(best_idx, keep, axis=1)
            best_d = np.take_along_axis(best_d, keep, axis=1)

    exact = _exact_distances(values, norms, queries, best_idx, metric)
    exact[~np.isfinite(best_d)] = np.inf
    order = np.lexsort((best_idx, exact), axis=1)[:, :k_eff]
    indices = np.take_along_axis(best_idx, order, axis=1)
    distances = np.take_along_axis(exact, order, axis=1)
    if scalar:
        return indices[0], distances[0]
    return indices, distances


def _exact_distances(
    values: np.ndarray, norms: np.ndarray, queries: np.ndarray, cands: np.ndarray, metric: str
) -> np.ndarray:
    """float64 distances from each query to its candidate rows, in query batches."""
    out = np.empty(cands.shape, dtype=np.float64)
    batch = max(1, 4_000_000 // max(cands.shape[1] * values.shape[1], 1))
    for start in range(0, len(queries), batch):
        q = values[queries[start : start + batch]].astype(np.float64)
        c = values[cands[start : start + batch]].astype(np.float64)
        if metric == "cosine":
            dots = np.einsum("qd,qkd->qk", q, c)
            denom = (
                norms[queries[start : start + batch]][:, None] * norms[cands[start : start + batch]]
            )
            sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
            out[start : start + batch] = 1.0 - sim
        else:
            diff = c - q[:, None, :]
            out[start : start + batch] = np.sqrt(np.einsum("qkd,qkd->qk", diff, diff))
    return out


def neighborhood_preservation(
    X_high: Any,
    Y_2d: Any,
    k: int = 15,
    sample: int | None = 2000,
    *,
    metric: Metric = "euclidean",
    seed: int = 0,
) -> float:
    """Mean fraction of each point's ``k`` nearest neighbours in ``X_high`` also among its ``k``
    nearest in ``Y_2d`` (1.0 = every neighbourhood kept), over a seeded sample of points.
    """
    high = _coerce(X_high).values
    low = _coerce(Y_2d).values
    if high.shape[0] != low.shape[0]:
        raise ProjectionError(
            f"X_high has {high.shape[0]:,} rows but Y_2d has {low.shape[0]:,}; pass the kept rows "
            "of both"
        )
    n = high.shape[0]
    if n <= k:
        raise ProjectionError(f"need more than k={k} rows, got {n}")
    points = np.arange(n) if sample is None or sample >= n else _sample(n, sample, seed)
    assert points is not None
    hi, _ = nearest_neighbors(high, points, k=k, metric=metric)
    lo, _ = nearest_neighbors(low, points, k=k, metric="euclidean")
    shared = (hi[:, :, None] == lo[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(shared / k))
