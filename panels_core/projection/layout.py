"""UMAP's layout optimiser: umap-learn's gradients, parallel and deterministic for a seed (numba)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from panels_core.projection.numba_cache import configure_numba_cache
from panels_core.projection.progress import Stages

__all__ = ["optimise_layout"]

_LAYOUT_CHUNK = 10  # epochs per kernel call; progress and cancel are checked between calls


def optimise_layout(model: Any, n_epochs: int, seed: int, stages: Stages) -> np.ndarray:
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
    """Epochs ``start`` to ``stop`` of ``optimise_layout`` (compiled by numba in ``_layout_kernel``)."""
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
        configure_numba_cache()
        import numba

        globals()["_prange"] = numba.prange  # read when numba compiles _layout_epochs
        kernel = numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)(_layout_epochs)
        _KERNELS["layout"] = kernel
    return kernel
