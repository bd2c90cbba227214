"""UMAP's start layout, chosen from its graph: a bounded spectral layout, else PCA of the data.

umap-learn's spectral start runs ARPACK ``eigsh`` on the graph's Laplacian, and on a graph
of many connected components ``multi_component_layout`` runs it once per component, each
time slicing the whole graph: on a duplicate-heavy table (diamonds, 54k rows) that took
minutes to hours. Here the components are counted first, and:

- a graph of at most ``MAX_SPECTRAL_COMPONENTS`` components gets umap's spectral layout
  (the same points as ``UMAP(init="spectral")``), its eigen solver bounded: ``eigsh``
  with at most ``spectral_maxiter(rows)`` restarts (umap-learn allows 5 x the rows);
- a graph of more components, or a solver that does not converge within its bound,
  gets PCA of the data, as umap's ``init="pca"`` does.

Either start is scaled as umap scales its own (largest coordinate 10, a little seeded
noise, then each axis to a 10-wide box).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from panels_core.projection.blas import single_thread_blas
from panels_core.projection.pca import fit_pca, transform_pca
from panels_core.projection.spec import ProjectionSpec

__all__ = [
    "MAX_SPECTRAL_COMPONENTS",
    "SPECTRAL_WORK",
    "Start",
    "spectral_maxiter",
    "start_layout",
]

MAX_SPECTRAL_COMPONENTS = 8
"""The most connected components a graph may have for the spectral start (umap solves one
eigenproblem per component)."""

SPECTRAL_WORK = 15_000_000_000
"""ARPACK restarts x rows squared that ``eigsh`` may spend: it keeps sqrt(rows) Lanczos
vectors, so one restart costs about rows squared multiply-adds, several times over (a
connected graph of 54k rows: about 7 CPU seconds a restart)."""


def spectral_maxiter(rows: int) -> int:
    """The ARPACK restarts ``eigsh`` may take on ``rows`` rows: ``SPECTRAL_WORK`` / rows
    squared, between 3 and 300 (300 up to 7k rows, 5 at 54k, 3 from 71k)."""
    return int(min(300, max(3, SPECTRAL_WORK // max(rows, 1) ** 2)))


@dataclass(frozen=True)
class Start:
    """A start layout: ``points`` (n x 2 float32, NaN for a row without edges), how it
    was made (``"spectral"`` or ``"PCA"``), the graph's connected
    components, and a note for the card when the start is not umap's usual one."""

    points: np.ndarray
    method: str
    components: int
    note: str | None


def start_layout(graph: Any, data: np.ndarray, spec: ProjectionSpec, seed: int) -> Start:
    """The start layout of ``data``'s UMAP ``graph`` (umap's ``graph_``), for ``seed``."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.utils import check_random_state
    from umap.umap_ import noisy_scale_coords

    pruned = prune_like_umap(graph)
    components, labels = connected_components(pruned)
    random_state = check_random_state(seed)
    method, note, layout = "PCA", None, None
    if components <= MAX_SPECTRAL_COMPONENTS:
        method = "spectral"
        layout = _bounded_spectral(data, pruned, (components, labels), random_state)
        if layout is None:
            note = "start layout: PCA (the spectral layout did not converge within its bound)"
            method = "PCA"
    else:
        note = f"start layout: PCA (graph has {components:,} components)"
    if layout is None:
        with single_thread_blas():
            pca, _ = fit_pca(data, 2, spec)
            layout = transform_pca(pca, data)
    layout = noisy_scale_coords(layout, random_state, max_coord=10, noise=0.0001)
    low, high = layout.min(axis=0), layout.max(axis=0)
    points = (10.0 * (layout - low) / np.where(high > low, high - low, 1.0)).astype(np.float32)
    points[np.asarray(graph.sum(axis=1)).ravel() == 0] = np.nan  # as umap marks them
    return Start(np.ascontiguousarray(points), method, int(components), note)


def prune_like_umap(graph: Any) -> Any:
    """The graph umap's ``UMAP(n_epochs=0)`` lays out: edges below max / default epochs
    (500 up to 10,000 rows, else 200) dropped."""
    pruned = graph.tocoo(copy=True)
    pruned.sum_duplicates()
    if pruned.nnz:
        epochs = 500 if pruned.shape[0] <= 10_000 else 200
        pruned.data[pruned.data < pruned.data.max() / float(epochs)] = 0.0
        pruned.eliminate_zeros()
    return pruned


def _bounded_spectral(
    data: np.ndarray, graph: Any, parts: tuple[int, np.ndarray], random_state: Any
) -> np.ndarray | None:
    """umap's spectral layout with its solver bounded; None if it fails to converge.

    A graph of several components goes to umap's ``multi_component_layout`` directly, as
    ``spectral_layout`` would send it, but with the bound (which that path drops).
    """
    from umap.spectral import multi_component_layout, spectral_layout

    components, labels = parts
    maxiter = spectral_maxiter(len(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if components > 1:
            layout = multi_component_layout(
                data, graph, components, labels, 2, random_state, maxiter=maxiter
            )
        else:
            layout = spectral_layout(data, graph, 2, random_state, maxiter=maxiter)
    if any("initialisation failed" in str(warning.message) for warning in caught):
        return None  # umap fell back to a random start: PCA is better
    layout = np.asarray(layout)
    return layout if np.isfinite(layout).all() else None
