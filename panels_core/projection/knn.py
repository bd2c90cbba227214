"""UMAP's k-nearest-neighbour graph from faiss (compiled code, nothing to JIT), and its index.

pynndescent, umap-learn's own search, is numba code whose parallel kernels recompile
in every new process: a fresh server spent a minute compiling before its first UMAP.
faiss's inverted-file index (IVF-Flat: k-means cells, exact distances inside the
probed cells) was chosen by measurement (``benchmarks/bench_knn.py``): on 100k
clustered rows it builds and queries every row in a fraction of pynndescent's time
in a fresh process, with recall@15 above 0.95, and its results are the same on
every run for a seed (k-means is seeded; search is exact within the probed cells).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np

__all__ = ["NeighbourIndex", "import_faiss", "knn_graph"]

_PROBES = 16
"""Cells searched per query (of about ``2 * sqrt(n)``); recall@15 >= 0.96 on clustered data."""
_KMEANS_ITERATIONS = 10
_TRAIN_ROWS_PER_CELL = 64
"""k-means on a sample of 64 rows per cell, 10 iterations (faiss: 256 and 25): the cells only
route the search, and training on every row cost more than the search itself."""


def import_faiss() -> Any:
    """The faiss module, its OpenMP threads told to sleep rather than spin when idle.

    faiss's OpenMP runtime busy-waits between parallel regions by default; beside
    numba's and BLAS's threads on a machine with few cores that spinning made the
    neighbour search 10-20x slower than alone (measured: 5,000 rows 4.7 s spinning,
    0.6 s passive). ``OMP_WAIT_POLICY`` is read when faiss's runtime loads, so it is
    set (unless the user set it) before the first import.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss

    return faiss


class NeighbourIndex:
    """Approximate nearest neighbours among the fitted rows (faiss IVF-Flat).

    ``query(rows, k)`` answers as pynndescent's ``NNDescent.query`` does, so
    umap-learn's ``transform`` places new rows through it: neighbour row numbers
    (int32) and distances (float32), nearest first. Euclidean distance, or cosine
    distance (1 - cosine similarity) for ``metric="cosine"``.
    """

    _angular_trees = False  # read by umap-learn's transform, as on an NNDescent index

    def __init__(
        self, data: np.ndarray, metric: Literal["euclidean", "cosine"] = "euclidean", seed: int = 0
    ) -> None:
        faiss = import_faiss()
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"unknown metric {metric!r}; use 'euclidean' or 'cosine'")
        self.metric = metric
        values = self._prepared(data)
        n, dim = values.shape
        cells = max(1, min(int(2 * n**0.5), n // 39))  # faiss wants 39 training rows per cell
        self._index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, cells)
        self._index.cp.seed = int(seed) % (2**31)
        self._index.cp.niter = _KMEANS_ITERATIONS
        self._index.cp.max_points_per_centroid = _TRAIN_ROWS_PER_CELL  # a seeded sample
        self._index.train(values)
        self._index.add(values)
        self._index.nprobe = min(cells, _PROBES)
        self.n_rows = n

    def _prepared(self, rows: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(rows, dtype=np.float32)
        if self.metric == "cosine":
            norms = np.linalg.norm(values, axis=1, keepdims=True)
            values = values / np.where(norms > 0, norms, 1.0)
        return values

    def query(self, rows: np.ndarray, k: int, epsilon: float | None = None) -> tuple[Any, Any]:
        """The ``k`` nearest fitted rows of each of ``rows``; ``epsilon`` is accepted and unused."""
        values = self._prepared(rows)
        k = min(k, self.n_rows)
        squared, indices = self._index.search(values, k)
        short = np.flatnonzero((indices < 0).any(axis=1))
        if len(short):  # too few rows in the probed cells: search those rows in every cell
            probes = self._index.nprobe
            self._index.nprobe = self._index.nlist
            try:
                squared[short], indices[short] = self._index.search(values[short], k)
            finally:
                self._index.nprobe = probes
        squared = np.maximum(squared, 0.0)
        distances = squared / 2.0 if self.metric == "cosine" else np.sqrt(squared)
        return indices.astype(np.int32), distances.astype(np.float32)


def knn_graph(
    data: np.ndarray,
    n_neighbors: int,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, NeighbourIndex]:
    """Each row's ``n_neighbors`` nearest rows, itself first (as umap-learn's graph has it).

    Returns ``(indices, distances, index)``, the form of umap-learn's ``precomputed_knn``;
    ``index`` places new rows later. A row whose duplicate came back ahead of it
    still gets itself first at distance 0, then its other nearest rows.
    """
    index = NeighbourIndex(data, metric, seed)
    found, distances = index.query(data, n_neighbors + 1)
    own = np.arange(len(data), dtype=found.dtype)[:, None]
    others = np.argsort(found == own, axis=1, kind="stable")[:, : n_neighbors - 1]
    indices = np.concatenate([own, np.take_along_axis(found, others, axis=1)], axis=1)
    dists = np.concatenate(
        [np.zeros_like(own, dtype=np.float32), np.take_along_axis(distances, others, axis=1)],
        axis=1,
    )
    return indices, dists, index
