"""UMAP's neighbour graph from faiss (panels_core.projection.knn): recall, self first, transform,
and no pynndescent search in a fit + transform."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from panels_core.projection import ProjectionSpec, nearest_neighbors, project
from panels_core.projection.knn import NeighbourIndex, knn_graph


def clustered(n: int, dim: int = 32, clusters: int = 12, seed: int = 0) -> np.ndarray:
    """Gaussian clusters of uneven size in an 8-dim subspace of ``dim`` dims, plus noise."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 8)))
    labels = rng.choice(clusters, size=n, p=rng.dirichlet(np.full(clusters, 2.0)))
    centers = rng.normal(0.0, 4.0, size=(clusters, 8))
    latent = centers[labels] + rng.normal(size=(n, 8))
    return (latent @ basis.T + rng.normal(0.0, 0.1, size=(n, dim))).astype(np.float32)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)])
    )


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    return clustered(5000)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_graph_recall_against_exact_neighbours(table, metric):
    indices, distances, _ = knn_graph(table, 15, metric, seed=0)
    assert indices.shape == distances.shape == (5000, 15)
    rows = np.arange(0, 5000, 10)
    exact, exact_d = nearest_neighbors(table, rows, k=14, metric=metric)
    assert recall(indices[rows, 1:], exact) >= 0.9
    # each row first, at distance 0; the distances are the metric's, nearest first
    np.testing.assert_array_equal(indices[:, 0], np.arange(5000))
    assert (distances[:, 0] == 0).all() and (np.diff(distances, axis=1) >= -1e-5).all()
    hits = indices[rows, 1] == exact[:, 0]
    np.testing.assert_allclose(distances[rows, 1][hits], exact_d[hits, 0], rtol=1e-3, atol=1e-4)


def test_same_graph_for_a_seed_and_each_row_first_beside_its_duplicates():
    data = clustered(4500, seed=3)
    data[100:110] = data[100]  # ten identical rows
    first = knn_graph(data, 15, seed=4)
    second = knn_graph(data, 15, seed=4)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[0][:, 0], np.arange(4500))
    dupes = first[0][100:110]
    assert all(set(range(100, 110)) <= set(row) for row in dupes)
    assert (first[1][100:110, :10] == 0).all()


def test_index_answers_new_rows_as_umap_transform_asks(table):
    index = NeighbourIndex(table[:4000], "euclidean", seed=1)
    found, distances = index.query(table[4000:], 10, epsilon=0.12)
    assert found.dtype == np.int32 and distances.dtype == np.float32
    assert found.shape == (1000, 10)
    exact = np.argsort(
        ((table[4000:, None, :] - table[None, :4000, :]) ** 2).sum(-1), axis=1, kind="stable"
    )[:, :10]
    assert recall(found, exact) >= 0.9
    true = np.linalg.norm(table[4000:] - table[found[:, 0]], axis=1)
    np.testing.assert_allclose(distances[:, 0], true, rtol=1e-3, atol=1e-4)


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="unknown metric 'manhattan'; use 'euclidean' or 'cosine'"):
        NeighbourIndex(np.zeros((10, 3), dtype=np.float32), "manhattan")  # type: ignore[arg-type]


def test_umap_through_the_new_graph_keeps_neighbourhoods():
    from sklearn.manifold import trustworthiness

    data = clustered(6000, seed=2)
    result = project(data, ProjectionSpec(method="umap", seed=0, max_fit_points=5000))
    assert result.points.shape == (6000, 2) and np.isfinite(result.points).all()
    sample = np.arange(0, 6000, 3)
    assert trustworthiness(data[sample], result.points[sample], n_neighbors=15) >= 0.9


def test_cosine_umap_separates_directions():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(4, 24))
    labels = np.arange(4800) % 4
    scale = rng.uniform(0.5, 20.0, size=(4800, 1))  # cosine ignores length
    data = (directions[labels] + rng.normal(0, 0.15, size=(4800, 24))) * scale
    result = project(
        data.astype(np.float32),
        {"method": "umap", "seed": 1, "max_fit_points": 4400, "params": {"metric": "cosine"}},
    )
    points = result.points
    centroids = np.stack([points[labels == c].mean(axis=0) for c in range(4)])
    nearest = np.argmin(((points[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.98


def test_fit_and_transform_never_run_pynndescent():
    code = """
import json, sys
import numpy as np
from panels_core.projection import project
from panels_core.projection.numba_cache import import_umap
import_umap()
import pynndescent, umap.umap_

def refuse(*args, **kwargs):
    raise AssertionError("pynndescent was asked for neighbours")

pynndescent.NNDescent.__init__ = refuse
rng = np.random.default_rng(0)
data = rng.normal(size=(4600, 12)).astype(np.float32)
result = project(data, {"method": "umap", "seed": 0, "max_fit_points": 4200})
kernels = [name for name in ("nn_descent", "nn_descent_internal_high_memory_parallel")
           if getattr(getattr(sys.modules["pynndescent.pynndescent_"], name, None), "signatures", [])]
print(json.dumps({"points": list(result.points.shape), "fit": result.fit_points,
                  "compiled": kernels, "faiss": "faiss" in sys.modules}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"points": [4600, 2], "fit": 4200, "compiled": [], "faiss": True}


def test_umaps_own_kernels_are_cached_in_the_numba_cache_folder():
    """umap-learn makes smooth_knn_dist and compute_membership_strengths without numba's
    cache; import_umap turns it on, so a new process loads them instead of compiling."""
    from panels_core.projection.numba_cache import import_umap

    umap = import_umap()
    folder = os.environ["NUMBA_CACHE_DIR"]
    for kernel in (umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths):
        assert kernel.stats.cache_path is not None
        assert kernel.stats.cache_path.startswith(folder), (kernel, kernel.stats.cache_path)


def test_a_first_run_says_it_is_compiling(monkeypatch, tmp_path):
    from panels_core.projection.numba_cache import umap_load_message

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert umap_load_message() == "compiling UMAP (the first run on this machine: about a minute)"
    (tmp_path / "umap_0123").mkdir()
    (tmp_path / "umap_0123" / "umap_.smooth_knn_dist-144.py311.nbi").write_bytes(b"")
    assert umap_load_message() == "loading UMAP"
