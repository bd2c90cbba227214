"""UMAP: umap-learn's neighbour graph, a start layout chosen from it, our layout, and a vectorised transform."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from panels_core.projection.knn import knn_graph
from panels_core.projection.layout import optimise_layout
from panels_core.projection.numba_cache import (
    import_umap,
    mark_umap_compiled,
    umap_load_message,
)
from panels_core.projection.progress import Stages
from panels_core.projection.spec import Placer, ProjectionSpec, UMAPParams
from panels_core.projection.start import start_layout

__all__ = ["run_umap", "umap_epochs"]


def run_umap(
    fit_data: np.ndarray, spec: ProjectionSpec, stages: Stages, n_rest: int
) -> tuple[Placer, tuple[str, ...]]:
    """Fit UMAP on ``fit_data``: umap-learn's graph, our start layout, our parallel layout.

    Steps: the k-nearest-neighbour graph (``knn_graph``: faiss, no JIT, from 4,096 rows;
    umap's exact search below), umap's fuzzy graph (``UMAP(n_epochs=0, init="random")``,
    so umap lays nothing out), the start layout chosen from the graph (``start_layout``:
    umap's spectral start, its solver bounded, on a graph of few components, else PCA),
    then ``umap_epochs(n, metric)`` epochs of ``optimise_layout`` (umap's gradients and schedule,
    every core, deterministic for a seed). The fitted model, holding that layout, places
    the ``n_rest`` other rows with ``_umap_transform``.
    """
    params = spec.params
    assert isinstance(params, UMAPParams)
    notes: list[str] = []
    n = len(fit_data)
    n_neighbors = params.n_neighbors
    if n_neighbors >= n:
        n_neighbors = n - 1
        notes.append(f"n_neighbors lowered from {params.n_neighbors} to {n_neighbors} ({n} rows)")
    seed = spec.seed if spec.seed is not None else _fresh_seed()
    model = _umap_graph(fit_data, n_neighbors, params, seed, stages)
    stages(0.4, f"UMAP start layout of {n:,} rows")
    start = start_layout(model.graph_, fit_data, spec, seed)
    if start.note:
        notes.append(start.note)
    model.embedding_ = start.points
    epochs = umap_epochs(n, params.metric)
    model.embedding_ = optimise_layout(model, epochs, seed, stages)
    mark_umap_compiled()
    model.n_epochs = None  # umap's own transform then picks its default epochs
    embedding = np.asarray(model.embedding_, dtype=np.float32)
    # umap's rule for one transform call of every remaining row
    transform_epochs = 100 if n_rest <= 10_000 else 30

    def place(rows: np.ndarray | None) -> np.ndarray:
        if rows is None:
            return embedding
        return _umap_transform(model, rows, transform_epochs)

    return place, tuple(notes)


def _umap_graph(
    fit_data: np.ndarray, n_neighbors: int, params: UMAPParams, seed: int, stages: Stages
) -> Any:
    """umap-learn's model of ``fit_data`` holding its fuzzy graph and nothing laid out: the
    neighbours from ``knn_graph`` (umap's exact search below 4,096 rows)."""
    n = len(fit_data)
    stages(0.1, umap_load_message())
    umap = import_umap()
    knn: tuple[Any, ...] = (None, None, None)
    if n >= _UMAP_EXACT_BELOW:
        stages(0.15, f"nearest neighbours of {n:,} rows")
        knn = knn_graph(fit_data, n_neighbors, "euclidean", seed)
    stages(0.35, f"UMAP graph of {n:,} rows")
    model = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=params.min_dist,
        spread=params.spread,
        metric="euclidean",  # cosine input was scaled to unit rows
        n_epochs=0,  # umap stops after the initial layout; optimise_layout optimises it
        init="random",  # umap's start is thrown away: start_layout chooses one from the graph
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,
        precomputed_knn=knn,
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*not fully connected.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*NNDescent.*", category=UserWarning)
        model.fit(fit_data)
    return model


_UMAP_EXACT_BELOW = 4096
"""umap-learn computes exact neighbours below this many rows; from it on ``knn_graph`` does."""


def umap_epochs(n: int, metric: str = "euclidean") -> int:
    """Layout epochs for a UMAP fit on ``n`` rows with ``metric``.

    umap-learn uses 500 up to 10,000 rows and 200 above; so do we for the cosine
    metric. For the euclidean metric, past 20,000 rows we use fewer, ``4,000,000 // n``
    but at least 60: measured on 100k x 384 clustered embeddings
    (benchmarks/bench_projection.py), 60 epochs of ``optimise_layout`` after the
    spectral start keep 98% of umap-learn's neighbourhood preservation (0.043 vs
    0.044) at a third of the layout time. Not so for cosine neighbourhoods
    (benchmarks/bench_umap_quality.py, 100k x 384, k=15 by cosine distance): 60
    epochs kept 0.84x of Embedding Atlas's cosine UMAP (0.0114 vs 0.0135), 100 and
    140 epochs 0.89x, 200 epochs 0.98x (0.0132).
    """
    if n <= 10_000:
        return 500
    if n <= 20_000 or metric == "cosine":
        return 200
    return max(60, min(200, 4_000_000 // n))


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**31))


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
