"""UMAP on duplicate-heavy, many-component tables: exact duplicates fitted once, the start
layout chosen from the graph (bounded spectral, else PCA), and the first-run compile status."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg

from panels_core.projection import ProjectionError, numba_cache, project, start
from panels_core.projection.rows import distinct_rows
from panels_core.projection.spec import ProjectionSpec

umap = pytest.importorskip("umap")


@pytest.fixture(scope="module")
def many_blobs() -> tuple[np.ndarray, np.ndarray]:
    """20,000 x 5 rows: 30 far-apart tight blobs of 40 distinct rows each, every distinct row
    repeated 16 or 17 times, shuffled; and each row's blob."""
    rng = np.random.default_rng(3)
    centers = rng.normal(0.0, 1.0, size=(30, 5)) * 1000.0
    distinct = (np.repeat(centers, 40, axis=0) + rng.normal(0.0, 1.0, size=(1200, 5))).astype(
        np.float32
    )
    which = rng.permutation(np.arange(20_000) % 1200)
    return distinct[which], which // 40


def test_the_spectral_solver_gets_fewer_restarts_on_bigger_graphs() -> None:
    sizes = (5, 7_000, 12_000, 53_940, 71_000, 10**6)
    assert [start.spectral_maxiter(n) for n in sizes] == [300, 300, 104, 5, 3, 3]


def test_distinct_rows_in_input_order_with_the_inverse() -> None:
    data = np.array([[1, 2], [3, 4], [1, 2], [5, 6], [3, 4], [-0.0, 1], [0.0, 1]], np.float32)
    first, inverse = distinct_rows(data)
    assert first.tolist() == [0, 1, 3, 5]
    assert inverse.tolist() == [0, 1, 0, 2, 1, 3, 3]
    np.testing.assert_array_equal(data[first][inverse], data)
    assert distinct_rows(np.eye(3, dtype=np.float32)) is None


def test_many_duplicates_and_components_get_a_pca_start_and_shared_points(
    many_blobs, monkeypatch
) -> None:
    data, blob = many_blobs
    solved: list[int] = []

    def counting_eigsh(*args, **kwargs):
        solved.append(1)
        return eigsh(*args, **kwargs)

    eigsh = scipy.sparse.linalg.eigsh
    monkeypatch.setattr(scipy.sparse.linalg, "eigsh", counting_eigsh)
    result = project(data, {"method": "umap", "seed": 0, "scale": "none"})

    assert solved == []  # no eigen solver at all, let alone one per component
    assert result.notes == (
        "18,800 duplicate rows share points",
        "start layout: PCA (graph has 30 components)",
    )
    assert result.points.shape == (20_000, 2) and np.isfinite(result.points).all()
    _, groups = np.unique(data, axis=0, return_inverse=True)
    groups = groups.ravel()
    # every copy of a row sits on the same point; distinct rows on distinct points
    representative = np.zeros((1200, 2), np.float32)
    representative[groups] = result.points
    np.testing.assert_array_equal(result.points, representative[groups])
    assert len(np.unique(result.points, axis=0)) == 1200
    # the blobs stay apart: each distinct row's 5 nearest points are of its own blob
    first = np.unique(groups, return_index=True)[1]
    points, labels = result.points[first], blob[first]
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :5]
    assert (labels[nearest] == labels[:, None]).mean() > 0.99


def test_a_connected_graph_keeps_umaps_own_spectral_start() -> None:
    data = np.random.default_rng(0).normal(size=(600, 5)).astype(np.float32)
    model = umap.UMAP(n_epochs=0, random_state=4, n_jobs=1).fit(data)  # umap's spectral start
    chosen = start.start_layout(model.graph_, data, ProjectionSpec(method="umap"), seed=4)
    assert (chosen.method, chosen.components, chosen.note) == ("spectral", 1, None)
    np.testing.assert_array_equal(chosen.points, model.embedding_)


def test_a_few_components_keep_umaps_multi_component_start() -> None:
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 50, size=(3, 6))
    data = (centers[np.arange(450) % 3] + rng.normal(0, 1, size=(450, 6))).astype(np.float32)
    model = umap.UMAP(n_epochs=0, random_state=2, n_jobs=1).fit(data)
    chosen = start.start_layout(model.graph_, data, ProjectionSpec(method="umap"), seed=2)
    assert (chosen.method, chosen.components, chosen.note) == ("spectral", 3, None)
    np.testing.assert_array_equal(chosen.points, model.embedding_)


def test_a_spectral_solver_out_of_iterations_falls_back_to_pca(monkeypatch) -> None:
    data = np.random.default_rng(0).normal(size=(600, 5)).astype(np.float32)
    model = umap.UMAP(n_epochs=0, random_state=4, n_jobs=1, init="random").fit(data)
    monkeypatch.setattr(start, "spectral_maxiter", lambda rows: 1)
    chosen = start.start_layout(model.graph_, data, ProjectionSpec(method="umap"), seed=4)
    assert chosen.method == "PCA"
    assert chosen.note == (
        "start layout: PCA (the spectral layout did not converge within its bound)"
    )
    pca_model = umap.UMAP(n_epochs=0, random_state=4, n_jobs=1, init="pca").fit(data)
    # the same start as umap's init="pca" (the PCA's sign may differ per axis)
    for axis in range(2):
        ours, theirs = chosen.points[:, axis], pca_model.embedding_[:, axis]
        if np.corrcoef(ours, theirs)[0, 1] < 0:
            theirs = 10.0 - theirs
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_too_few_distinct_rows_for_umap_say_so() -> None:
    data = np.repeat(np.array([[0, 1], [2, 3], [4, 7]], np.float32), 40, axis=0)
    with pytest.raises(ProjectionError) as error:
        project(data, {"method": "umap"})
    assert str(error.value) == "UMAP needs at least 5 distinct rows, got 3 among 120 rows; use PCA"


def test_tsne_gives_duplicates_one_point_too() -> None:
    rng = np.random.default_rng(2)
    data = np.repeat(rng.normal(size=(60, 4)).astype(np.float32), 3, axis=0)
    result = project(data, {"method": "tsne", "seed": 1, "params": {"n_iter": 250}})
    assert result.notes[0] == "120 duplicate rows share points"
    np.testing.assert_array_equal(result.points[0::3], result.points[1::3])
    np.testing.assert_array_equal(result.points[0::3], result.points[2::3])
    assert len(np.unique(result.points, axis=0)) == 60


# ----------------------------------------------------------------------------- first run


def numba_folder(root: Path, source: Path) -> Path:
    """Where numba keeps the cache of the modules in ``source`` (its own naming rule)."""
    from numba.core.caching import _CacheLocator

    return root / _CacheLocator.get_suitable_cache_subpath(str(source / "x.py"))


def test_kernels_are_ready_once_numba_cached_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numba_cache, "_COMPILED_HERE", [])
    assert not numba_cache.umap_kernels_ready()
    pynndescent = Path(__import__("pynndescent").__file__).parent
    ours = Path(numba_cache.__file__).parent
    numba_folder(tmp_path, pynndescent).mkdir()
    (numba_folder(tmp_path, pynndescent) / "rp_trees.make_tree-1.py311.nbi").touch()
    assert not numba_cache.umap_kernels_ready()  # our layout kernel is not compiled yet
    numba_folder(tmp_path, ours).mkdir()
    (numba_folder(tmp_path, ours) / "layout._layout_epochs-69.py311.nbi").touch()
    assert numba_cache.umap_kernels_ready()
    assert numba_folder(tmp_path, ours).name.endswith(
        hashlib.sha1(str(ours).encode(), usedforsecurity=False).hexdigest()
    )
    monkeypatch.delenv("NUMBA_CACHE_DIR")  # back to the in-memory rule: compiled here
    monkeypatch.setattr(numba_cache, "configure_numba_cache", lambda: None)
    monkeypatch.setattr(numba_cache, "_COMPILED_HERE", [True])
    assert numba_cache.umap_kernels_ready()


def test_the_status_says_compiling_only_while_kernels_compile(monkeypatch) -> None:
    """A first run says so, then compiles (a small UMAP), then runs its own stages."""
    from panels_core.projection import pipeline

    data = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    spec = {"method": "umap", "seed": 0, "params": {"n_neighbors": 5}}
    compiled_after: list[str] = []
    said: list[str] = []
    monkeypatch.setattr(pipeline, "_compile_umap", lambda stages: compiled_after.append(said[-1]))
    for ready in (False, True):
        monkeypatch.setattr(pipeline, "umap_kernels_ready", lambda ready=ready: ready)
        said.clear()
        project(data, spec, progress=lambda fraction, message: said.append(message))
        compiling = [m for m in said if m == "compiling UMAP kernels (first run on this machine)"]
        assert len(compiling) == (0 if ready else 1)
        if not ready:  # said first, while compiling; the stages follow as usual
            assert said[1:3] == [compiling[0], "loading UMAP"]
    assert compiled_after == ["compiling UMAP kernels (first run on this machine)"]


def test_warm_up_compiles_with_a_small_umap_fit_and_transform(monkeypatch) -> None:
    from panels_core.projection import pipeline

    fitted: list[tuple[int, int, int]] = []

    def fake_fit_and_place(data, spec, stages):
        fitted.append((len(data), data.shape[1], spec.fit_points))
        return np.zeros((len(data), 2), np.float32), spec.fit_points, []

    monkeypatch.setattr(pipeline, "_fit_and_place", fake_fit_and_place)
    assert pipeline.warm_up() >= 0
    assert fitted == [(4500, 8, 4200)]  # past 4,096 rows (NN-descent) and a transform
