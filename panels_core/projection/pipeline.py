"""2D projections of embeddings (PCA, UMAP, t-SNE), their cache, background runs and neighbours.

``project(X, spec)`` turns an ``(n, d)`` matrix (an embedding column, or several
numeric columns stacked) into one 2D point per row that has every value:

1. rows with a missing, NaN or infinite value (or, for ragged input, the wrong
   length) are left out and counted (``result.kept``, ``result.dropped``,
   ``result.message``);
2. with ``spec.scale == "standard"`` each dimension is scaled to mean 0 and
   standard deviation 1 over the kept rows (one mean and standard deviation for the
   fitted and the transformed rows; a constant dimension is only shifted), noted in
   ``result.notes``;
3. for the cosine metric rows are scaled to unit length, so euclidean distance
   ranks neighbours exactly as cosine distance does (all-zero rows have no
   direction and are left out, counted; a row that standardizing put at the
   origin stays there);
4. UMAP and t-SNE fit exact duplicate rows once and give every copy its row's
   point (noted in ``result.notes``); the steps below see the distinct rows;
5. UMAP and t-SNE inputs with more than ``spec.pca_dims`` dimensions are first
   reduced by PCA (covariance eigendecomposition on float32: about 2 s for
   1M x 384 on 2 cores);
6. UMAP and t-SNE fit on a seeded random sample of ``max_fit_points`` rows
   (default: every row up to 200k for UMAP, 20k for t-SNE) and ``transform`` the
   rest (in chunks, so a cancel is noticed between chunks), so every kept row gets
   a point in the same 2D space;
7. UMAP's fit runs umap-learn's fuzzy graph on a neighbour graph from faiss
   (``knn_graph``: compiled, nothing to JIT), a start layout chosen from that graph
   (``start_layout``: umap's spectral start with a bounded solver on a graph of few
   components, else PCA), then our own layout optimiser (``optimise_layout``: umap's
   gradients, parallel and deterministic for a seed) for ``umap_epochs(n)`` epochs
   (fewer than umap's 200 past 20k rows).

Degenerate input: no or one kept row, fewer than 2 dimensions, every kept row
identical, too few (distinct) rows for UMAP/t-SNE, or a PCA component beyond the data's
dimensions raise ``ProjectionError`` with a message saying what to do.
Parameters that only make sense on more rows (UMAP ``n_neighbors`` >= rows,
t-SNE ``perplexity`` > (rows - 1) / 3) are clamped and the clamp is reported in
``result.notes``.

umap-learn and openTSNE (and scikit-learn) are imported only when a projection
needs them, so importing this module is cheap. Before umap is first imported,
``NUMBA_CACHE_DIR`` is pointed at a persistent folder (see ``cache_dir``) unless
the user set it, so numba compiles umap's kernels once per machine; while a first
UMAP on a machine compiles them, its status says so (``COMPILING_UMAP``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from panels_core.projection.blas import single_thread_blas
from panels_core.projection.numba_cache import COMPILING_UMAP, umap_kernels_ready
from panels_core.projection.pca import fit_pca, run_pca, transform_pca
from panels_core.projection.progress import ProgressFn, Stages
from panels_core.projection.rows import (
    Rows,
    as_rows,
    check_varies,
    distinct_rows,
    finite_rows,
    sample_rows,
    standardize,
    unit_rows,
)
from panels_core.projection.spec import (
    MIN_ROWS_NONLINEAR,
    PCAParams,
    Placer,
    ProjectionCancelled,
    ProjectionError,
    ProjectionResult,
    ProjectionSpec,
    as_spec,
)
from panels_core.projection.tsne import run_tsne
from panels_core.projection.umap import run_umap

__all__ = ["project", "warm_up"]

_TRANSFORM_CHUNK = 20_000  # rows per transform call; cancel is checked between calls


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
    spec = as_spec(spec)
    stages = Stages(progress, cancel)
    stages(0.0, "checking rows")
    rows = as_rows(X)
    kept, dropped, message, notes = _select_rows(rows, spec)
    data = rows.values if kept.all() else rows.values[kept]
    _check_shape(data, spec, dropped, message)
    if spec.scale == "standard":
        data = standardize(data)
        scaled = f"standardized the {data.shape[1]} input columns (mean 0, standard deviation 1)"
        notes = (*notes, scaled)
    if getattr(spec.params, "metric", "euclidean") == "cosine":
        data = unit_rows(data)

    if isinstance(spec.params, PCAParams):
        points, labels, fit_n = run_pca(data, spec, spec.params, stages)
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
    rows: Rows, spec: ProjectionSpec
) -> tuple[np.ndarray, int, str | None, tuple[str, ...]]:
    """The kept-row mask, how many were dropped, and a sentence per reason."""
    finite = finite_rows(rows.values) & ~rows.ragged & ~rows.missing
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


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _run_nonlinear(
    data: np.ndarray, spec: ProjectionSpec, stages: Stages
) -> tuple[np.ndarray, tuple[str, str], int, tuple[str, ...]]:
    """UMAP or t-SNE of ``data``: exact duplicate rows fitted once and given one point."""
    if spec.method == "umap" and not umap_kernels_ready():
        stages(0.02, COMPILING_UMAP)
        _compile_umap(stages.quiet())
    notes: list[str] = []
    n = len(data)
    distinct = distinct_rows(data)
    if distinct is not None:
        first = distinct[0]
        if len(first) < MIN_ROWS_NONLINEAR:
            raise ProjectionError(
                f"{_method_name(spec)} needs at least {MIN_ROWS_NONLINEAR} distinct rows, "
                f"got {len(first)} among {n:,} rows; use PCA"
            )
        data = data[first]
        notes.append(f"{n - len(first):,} duplicate rows share points")
    points, fit_n, more = _fit_and_place(
        data, spec, stages, "rows" if distinct is None else "distinct rows"
    )
    if distinct is not None:
        points = points[distinct[1]]
    name = _method_name(spec)
    return points, (f"{name} 1", f"{name} 2"), fit_n, (*notes, *more)


def _method_name(spec: ProjectionSpec) -> str:
    return "UMAP" if spec.method == "umap" else "t-SNE"


def _fit_and_place(
    data: np.ndarray, spec: ProjectionSpec, stages: Stages, rows: str = "rows"
) -> tuple[np.ndarray, int, list[str]]:
    """The points of distinct rows: PCA first when wide, a fit on a sample, transform the rest."""
    notes: list[str] = []
    n, d = data.shape
    if d > spec.pca_dims and n > spec.pca_dims:
        stages(0.03, f"reducing {d} dims to {spec.pca_dims} with PCA")
        with single_thread_blas():
            pca, _ = fit_pca(data, spec.pca_dims, spec)
            data = transform_pca(pca, data)
        notes.append(f"reduced {d} dims to {spec.pca_dims} with PCA first")
    idx = sample_rows(n, spec.fit_points, spec.seed)
    fit_data = data if idx is None else data[idx]
    fit_n = len(fit_data)
    check_varies(fit_data, n)
    if idx is not None:
        notes.append(
            f"fitted on a random sample of {fit_n:,} of {n:,} {rows}; the rest were placed "
            "with transform"
        )
    runner = run_umap if spec.method == "umap" else run_tsne
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
            "try PCA or other parameters"
        ) from error
    notes.extend(more)
    return _place_rows(place, data, idx, spec, stages), fit_n, notes


def _place_rows(
    place: Placer, data: np.ndarray, idx: np.ndarray | None, spec: ProjectionSpec, stages: Stages
) -> np.ndarray:
    """Every row's point: the fitted rows' from the fit, the rest through ``place`` in chunks."""
    if idx is None:
        return place(None)
    n = len(data)
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
    return points


def warm_up(seed: int | None = 0) -> float:
    """Compile (or load from the numba cache) umap's kernels now (fit, transform); returns seconds.

    A server can call this on a background thread at start so the first UMAP a
    user asks for does not wait for compilation (30-90 s on 2 cores; compiled
    code that numba can cache is kept in ``cache_dir()/numba`` for later runs).
    """
    started = time.perf_counter()
    _compile_umap(Stages(None, None), seed)
    return time.perf_counter() - started


def _compile_umap(stages: Stages, seed: int | None = 0) -> None:
    """Run a small UMAP (fit and transform) so numba compiles every kernel a UMAP needs."""
    rng = np.random.default_rng(0)
    # > 4096 rows so the neighbours come from knn_graph, as on real data
    data = rng.normal(size=(4500, 8)).astype(np.float32)
    _fit_and_place(data, ProjectionSpec(method="umap", seed=seed, max_fit_points=4200), stages)
