"""2D projections of embeddings (PCA, UMAP, t-SNE), their cache, background runs and neighbours.

One module per job: ``spec`` (what to compute and what comes back), ``rows``
(the input as a float32 matrix), ``pipeline`` (``project``: the steps, see its
docstring), ``pca``, ``umap`` with ``layout`` (its optimiser) and
``numba_cache``, ``tsne``, ``cache`` (results), ``runner`` (threads),
``worker`` (a worker process), ``shared`` (the process-wide projector) and
``neighbours``. This package re-exports their public names.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any

from panels_core.projection.cache import ProjectionCache, fingerprint, shared_cache
from panels_core.projection.cache import project_cached as _project_cached
from panels_core.projection.neighbours import nearest_neighbors, neighborhood_preservation
from panels_core.projection.numba_cache import cache_dir
from panels_core.projection.pipeline import project, warm_up
from panels_core.projection.runner import ProjectionFuture, Projector, live_projectors
from panels_core.projection.shared import shared_projector
from panels_core.projection.spec import (
    DEFAULT_MAX_FIT_POINTS,
    PCAParams,
    ProjectionCancelled,
    ProjectionError,
    ProjectionParams,
    ProjectionResult,
    ProjectionSpec,
    TSNEParams,
    UMAPParams,
)
from panels_core.projection.umap import umap_epochs

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


@functools.wraps(_project_cached)
def project_cached(X: Any, spec: Any, key: Hashable | None = None, **options: Any) -> Any:
    # cache.project_cached whose misses run this package's ``project`` unless ``compute`` is
    # given, looked up when called, so replacing ``panels_core.projection.project`` (as tests
    # do) changes what runs
    options["compute"] = options.get("compute") or project
    return _project_cached(X, spec, key, **options)
