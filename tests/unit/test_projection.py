"""2D projections: values against scikit-learn, kept/dropped rows, seeds, cache, cancel, neighbours."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from panels_core import projection
from panels_core.projection import (
    DEFAULT_MAX_FIT_POINTS,
    PCAParams,
    ProjectionCache,
    ProjectionCancelled,
    ProjectionError,
    ProjectionSpec,
    Projector,
    TSNEParams,
    UMAPParams,
    nearest_neighbors,
    neighborhood_preservation,
    numba_cache,
    project,
    project_cached,
)
from panels_core.projection import umap as umap_module

# seconds a test waits at most for a background job: a bound for a busy machine, not a timing check
WAIT = 600


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data.astype(np.float32)


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    """300 x 20: three well separated clusters."""
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 10, size=(3, 20))
    return (centers[np.arange(300) % 3] + rng.normal(0, 1, size=(300, 20))).astype(np.float32)


def assert_equal_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    for j in range(a.shape[1]):
        sign = np.sign(np.dot(a[:, j], b[:, j])) or 1.0
        np.testing.assert_allclose(a[:, j], sign * b[:, j], atol=atol)


# ----------------------------------------------------------------------------- specs


def test_spec_fills_params_of_its_method_and_round_trips():
    spec = ProjectionSpec(method="umap", params={"n_neighbors": 30})
    assert spec.params == UMAPParams(n_neighbors=30)
    assert ProjectionSpec.model_validate(spec.model_dump()) == spec
    assert ProjectionSpec.model_validate_json(spec.model_dump_json()) == spec
    assert ProjectionSpec(method="tsne").params == TSNEParams()
    assert ProjectionSpec(params=TSNEParams(perplexity=5)).method == "tsne"
    assert ProjectionSpec().params == PCAParams()
    assert ProjectionSpec(method="tsne").fit_points == DEFAULT_MAX_FIT_POINTS["tsne"] == 20_000
    assert ProjectionSpec(method="pca").fit_points == 1_000_000
    assert ProjectionSpec(method="umap", max_fit_points=500).fit_points == 500
    scaled = ProjectionSpec(method="tsne", scale="standard")
    assert ProjectionSpec.model_validate_json(scaled.model_dump_json()) == scaled
    with pytest.raises(ValidationError, match="scale"):
        ProjectionSpec(scale="minmax")


def two_scales(n: int = 2000) -> np.ndarray:
    """Independent random columns on scales 1 and 10,000."""
    rng = np.random.default_rng(17)
    return np.column_stack([rng.normal(0, 1, n), rng.normal(0, 10_000, n)]).astype(np.float32)


def pc1_loadings(points: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """The unit loadings of PC1 on ``inputs`` (PC1 is a linear map of the centred inputs)."""
    centred = inputs - inputs.mean(axis=0)
    weights = np.linalg.lstsq(centred, points[:, 0] - points[:, 0].mean(), rcond=None)[0]
    return weights / np.linalg.norm(weights)


def test_standard_scale_balances_pca_on_columns_of_different_scales():
    X = two_scales()
    assert ProjectionSpec().scale == "none"  # scripts: values as given unless asked
    raw = project(X, {"method": "pca", "scale": "none"})
    assert abs(pc1_loadings(raw.points, X)[1]) > 0.99  # PC1 is the large-unit column
    assert not any("standardized" in note for note in raw.notes)
    scaled = project(X, {"method": "pca", "scale": "standard"})
    Z = (X - X.mean(axis=0, dtype=np.float64)) / X.std(axis=0, dtype=np.float64)
    loadings = np.abs(pc1_loadings(scaled.points, Z))
    assert loadings.max() < 0.9
    np.testing.assert_allclose(loadings, [2**-0.5, 2**-0.5], atol=1e-3)
    assert_equal_up_to_sign(scaled.points, PCA(2).fit_transform(Z), atol=1e-3)
    assert scaled.notes == ("standardized the 2 input columns (mean 0, standard deviation 1)",)
    assert scaled.axis_labels[0].startswith("PC1 (5") and raw.axis_labels[0] == "PC1 (100.0%)"


def test_standard_scale_uses_one_mean_for_fitted_and_transformed_rows():
    X = two_scales(400)
    X[:, 0] += 5.0  # a mean far from 0
    constant = np.column_stack([X, np.full(len(X), 3.0, dtype=np.float32)])
    Z = np.column_stack(
        [(X - X.mean(axis=0, dtype=np.float64)) / X.std(axis=0, dtype=np.float64), np.zeros(400)]
    )
    # PCA fitted on a sample of 100 rows: every row is placed with the same mean and std
    sampled = project(constant, {"method": "pca", "scale": "standard", "max_fit_points": 100})
    assert np.isfinite(sampled.points).all() and sampled.fit_points == 100
    idx = np.sort(np.random.default_rng(0).choice(400, size=100, replace=False))
    want = PCA(2, svd_solver="covariance_eigh").fit(Z[idx]).transform(Z)
    assert_equal_up_to_sign(sampled.points, want, atol=1e-3)
    # UMAP: a sample fitted, the rest transformed, all from the standardized rows
    umap = {"method": "umap", "scale": "standard", "max_fit_points": 300, "seed": 3}
    got = project(constant, umap)
    assert np.isfinite(got.points).all() and got.fit_points == 300
    # the same rows standardized in float32 as the pipeline does, then projected unscaled
    mean, std = constant.mean(axis=0, dtype=np.float64), constant.std(axis=0, dtype=np.float64)
    std[2] = 1.0
    Z32 = (constant - mean.astype(np.float32)) / std.astype(np.float32)
    np.testing.assert_allclose(
        got.points, project(Z32, {**umap, "scale": "none"}).points, atol=1e-4
    )


def test_scale_is_part_of_the_cache_key():
    X = two_scales(300)
    cache = ProjectionCache()
    raw = project_cached(X, {"scale": "none"}, key="two-scales", cache=cache)
    scaled = project_cached(X, {"scale": "standard"}, key="two-scales", cache=cache)
    assert scaled is not raw and len(cache) == 2
    assert project_cached(X, {"scale": "standard"}, key="two-scales", cache=cache) is scaled


def test_spec_rejects_bad_parameters_with_field_names():
    with pytest.raises(ValidationError, match="n_neighbors"):
        ProjectionSpec(method="umap", params={"n_neighbors": 1})
    with pytest.raises(ValidationError, match=r"min_dist .* must not exceed spread"):
        UMAPParams(min_dist=0.9, spread=0.5)
    with pytest.raises(ValidationError, match="two different components"):
        PCAParams(components=(2, 2))
    with pytest.raises(ValidationError, match="method is 'pca'"):
        ProjectionSpec(method="pca", params=UMAPParams())
    with pytest.raises(ValidationError, match="extra"):
        ProjectionSpec(method="pca", params={"whiten": True, "perplexity": 3})
    with pytest.raises(ValidationError, match="learning_rate"):
        TSNEParams(learning_rate="fast")
    assert TSNEParams(learning_rate=200).learning_rate == 200.0


# ----------------------------------------------------------------------------- PCA


def test_pca_matches_sklearn_up_to_sign(digits):
    result = project(digits, ProjectionSpec(method="pca"))
    expected = PCA(n_components=2).fit_transform(digits.astype(np.float64))
    assert result.points.shape == (1797, 2)
    assert result.points.dtype == np.float32
    assert result.kept.all() and result.dropped == 0 and result.message is None
    assert_equal_up_to_sign(result.points, expected, atol=1e-3)
    ratio = PCA(n_components=2).fit(digits).explained_variance_ratio_
    assert result.axis_labels == (f"PC1 ({100 * ratio[0]:.1f}%)", f"PC2 ({100 * ratio[1]:.1f}%)")


def test_pca_other_components_and_whiten(digits):
    spec = ProjectionSpec(params=PCAParams(components=(3, 1), whiten=True))
    result = project(digits, spec)
    expected = PCA(n_components=3, whiten=True).fit_transform(digits.astype(np.float64))
    assert_equal_up_to_sign(result.points, expected[:, [2, 0]], atol=1e-3)
    assert result.axis_labels[0].startswith("PC3 ")
    np.testing.assert_allclose(result.points.std(axis=0, ddof=1), [1.0, 1.0], atol=1e-3)


def test_pca_on_a_sample_still_places_every_row(blobs):
    result = project(blobs, ProjectionSpec(method="pca", max_fit_points=100))
    assert result.points.shape == (300, 2)
    assert result.fit_points == 100
    full = PCA(2).fit_transform(blobs.astype(np.float64))
    # the three clusters dominate both fits: coordinates agree closely
    for j in range(2):
        assert abs(np.corrcoef(result.points[:, j], full[:, j])[0, 1]) > 0.99


def test_nan_and_infinite_rows_are_left_out_and_counted(digits):
    data = digits.copy()
    data[[3, 10, 11]] = np.nan  # rows without an embedding
    data[20, 5] = np.inf
    data[21, 0] = np.nan
    result = project(data, ProjectionSpec(method="pca"))
    expected_kept = np.ones(len(data), dtype=bool)
    expected_kept[[3, 10, 11, 20, 21]] = False
    np.testing.assert_array_equal(result.kept, expected_kept)
    assert result.dropped == 5
    assert result.points.shape == (1792, 2)
    assert result.message == (
        "3 rows without an embedding; 2 rows with missing, NaN or infinite values were left out"
    )
    clean = PCA(2).fit_transform(digits[expected_kept].astype(np.float64))
    assert_equal_up_to_sign(result.points, clean, atol=1e-3)
    np.testing.assert_array_equal(result.kept_indices, np.flatnonzero(expected_kept))
    assert not result.points.flags.writeable and not result.kept.flags.writeable


def test_ragged_and_missing_vectors_are_left_out():
    rng = np.random.default_rng(0)
    rows: list = [rng.normal(size=4).tolist() for _ in range(30)]
    rows[2] = None
    rows[5] = [1.0, 2.0]  # wrong length
    rows[7] = ["a", "b", "c", "d"]  # not numbers
    result = project(rows, {"method": "pca"})
    assert result.dropped == 3
    assert result.points.shape == (27, 2)
    assert not result.kept[[2, 5, 7]].any()
    assert result.message == (
        "1 row without an embedding; 2 rows whose values are not 4 numbers like the others "
        "were left out"
    )


def test_arrow_embedding_columns(blobs):
    pa = pytest.importorskip("pyarrow")
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(blobs.ravel()), blobs.shape[1])
    np.testing.assert_array_equal(project(fixed, {}).points, project(blobs, {}).points)
    rows = [row.tolist() for row in blobs[:50]]
    rows[4] = None
    result = project(pa.chunked_array([pa.array(rows)]), {})
    assert result.points.shape == (49, 2) and not result.kept[4]
    assert result.message == "1 row without an embedding was left out"


def test_one_dropped_row_reads_in_the_singular(blobs):
    data = blobs.copy()
    data[0] = np.nan
    assert project(data, {}).message == "1 row without an embedding was left out"


def test_numeric_columns_as_a_dataframe(blobs):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs[:, :5], columns=[f"D{i}" for i in range(1, 6)])
    frame.loc[4, "D2"] = None
    result = project(frame, {"method": "pca"})
    assert result.points.shape == (299, 2) and not result.kept[4]


# ----------------------------------------------------------------------------- degenerate input


@pytest.mark.parametrize(
    ("data", "spec", "pattern"),
    [
        (np.full((5, 3), np.nan), {}, "no rows to project: every row was left out"),
        (np.array([[1.0, 2.0], [np.nan, 1.0]]), {}, "only one row to project"),
        (np.ones((10, 4)), {}, "all 10 kept rows have identical values"),
        (np.arange(10.0).reshape(-1, 1), {}, "has 1 dimension; a 2D projection needs at least 2"),
        (np.eye(6)[:, :3], {"params": {"components": [1, 4]}}, "PCA component 4 .* only 3"),
        (np.eye(4), {"method": "umap"}, "UMAP needs at least 5 rows, got 4; use PCA"),
        (np.eye(4), {"method": "tsne"}, "t-SNE needs at least 5 rows"),
        (np.array(["a", "b"]), {}, "cannot project values of dtype"),
    ],
)
def test_degenerate_inputs_raise_a_helpful_error(data, spec, pattern):
    with pytest.raises(ProjectionError, match=pattern):
        project(data, spec)


def test_cosine_metric_leaves_out_all_zero_rows(blobs):
    data = blobs[:30].copy()
    data[[1, 2]] = 0.0
    spec = ProjectionSpec(method="tsne", params={"metric": "cosine", "n_iter": 250})
    result = project(data, spec)
    assert result.dropped == 2 and not result.kept[[1, 2]].any()
    assert "2 all-zero rows (no direction for the cosine metric)" in result.message
    assert result.points.shape == (28, 2)


# ----------------------------------------------------------------------------- t-SNE


def test_tsne_is_deterministic_and_transforms_past_the_sample(blobs):
    spec = ProjectionSpec(method="tsne", params={"n_iter": 250}, max_fit_points=200, seed=3)
    first = project(blobs, spec)
    second = project(blobs, spec)
    assert first.points.shape == (300, 2) and first.fit_points == 200
    np.testing.assert_array_equal(first.points, second.points)
    assert any("random sample of 200 of 300" in note for note in first.notes)
    # transformed rows land in the fitted space: each row sits nearest its own cluster
    labels = np.arange(300) % 3
    centroids = np.stack([first.points[labels == c].mean(axis=0) for c in range(3)])
    nearest = np.argmin(((first.points[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95
    other = project(blobs, spec.model_copy(update={"seed": 4}))
    assert not np.array_equal(first.points, other.points)


def test_tsne_perplexity_too_large_is_clamped_and_noted(blobs):
    result = project(blobs[:40], {"method": "tsne", "params": {"perplexity": 30, "n_iter": 250}})
    assert result.points.shape == (40, 2)
    assert "perplexity lowered from 30 to 13 (40 rows)" in result.notes


def test_tsne_cancel_during_optimisation(blobs):
    cancel = threading.Event()
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if message.startswith("t-SNE iteration"):
            cancel.set()

    with pytest.raises(ProjectionCancelled):
        project(blobs, {"method": "tsne"}, progress=progress, cancel=cancel)
    assert seen[-1] == "t-SNE iteration 25 of 750"


# ----------------------------------------------------------------------------- UMAP


def test_umap_deterministic_with_seed_and_sample_plus_transform(blobs):
    spec = ProjectionSpec(method="umap", max_fit_points=200, seed=7)
    first = project(blobs, spec)
    second = project(blobs, spec)
    assert first.points.shape == (300, 2) and first.fit_points == 200
    assert np.isfinite(first.points).all()
    np.testing.assert_array_equal(first.points, second.points)
    labels = np.arange(300) % 3
    centroids = np.stack([first.points[labels == c].mean(axis=0) for c in range(3)])
    nearest = np.argmin(((first.points[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95
    assert first.axis_labels == ("UMAP 1", "UMAP 2")


def test_umap_layout_is_the_same_on_one_or_two_threads_and_as_good_as_umap_learns(blobs):
    numba = pytest.importorskip("numba")
    umap = pytest.importorskip("umap")
    spec = ProjectionSpec(method="umap", seed=5)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = project(blobs, spec)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = project(blobs, spec)
    finally:
        numba.set_num_threads(threads)
    assert one.fit_points == 300 and one.notes == ()
    np.testing.assert_array_equal(one.points, two.points)
    labels = np.arange(300) % 3
    centroids = np.stack([one.points[labels == c].mean(axis=0) for c in range(3)])
    nearest = np.argmin(((one.points[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).all()
    plain = umap.UMAP(random_state=5, n_jobs=1).fit_transform(blobs)
    ours_np = neighborhood_preservation(blobs, one.points, k=15, sample=None)
    plain_np = neighborhood_preservation(blobs, plain, k=15, sample=None)
    assert ours_np >= 0.85 * plain_np, (ours_np, plain_np)


def test_umap_epochs_follow_umap_learn_up_to_20k_rows_then_shrink_to_60():
    assert [projection.umap_epochs(n) for n in (300, 10_000, 15_000, 20_000)] == [
        500,
        500,
        200,
        200,
    ]
    assert projection.umap_epochs(25_000) == 160
    assert projection.umap_epochs(50_000) == 80
    assert projection.umap_epochs(100_000) == projection.umap_epochs(1_000_000) == 60
    assert ProjectionSpec(method="umap").fit_points == DEFAULT_MAX_FIT_POINTS["umap"] == 200_000


def test_cosine_umap_keeps_umap_learns_epochs_past_20k_rows():
    """60 epochs kept 0.84x of Embedding Atlas's cosine neighbourhoods on 100k x 384
    (benchmarks/bench_umap_quality.py); umap-learn's 200 keep 0.98x."""
    sizes = (300, 10_000, 15_000, 25_000, 100_000, 1_000_000)
    assert [projection.umap_epochs(n, "cosine") for n in sizes] == [500, 500, 200, 200, 200, 200]
    assert projection.umap_epochs(100_000, "euclidean") == 60


def test_a_cosine_umap_fit_runs_the_cosine_epochs(monkeypatch):
    """run_umap asks for the epochs of the spec's metric (the layout gets them)."""
    from panels_core.projection import umap as umap_module

    asked: list[tuple[int, str]] = []
    real = umap_module.umap_epochs
    monkeypatch.setattr(
        umap_module,
        "umap_epochs",
        lambda n, metric="euclidean": asked.append((n, metric)) or real(n, metric),
    )
    data = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    project(data, {"method": "umap", "seed": 0, "params": {"metric": "cosine"}})
    assert asked[-1] == (200, "cosine")


def test_umap_fewer_rows_than_neighbours_is_clamped(blobs):
    result = project(blobs[:12], {"method": "umap", "params": {"n_neighbors": 15}})
    assert result.points.shape == (12, 2)
    assert "n_neighbors lowered from 15 to 11 (12 rows)" in result.notes


def test_vectorised_transform_init_matches_umaps_loop():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    init_graph_transform = pytest.importorskip("umap.umap_").init_graph_transform
    rng = np.random.default_rng(5)
    dense = rng.uniform(0.05, 0.9, size=(40, 25)) * (rng.uniform(size=(40, 25)) < 0.2)
    dense[3, [4, 7]] = 1.0  # exact matches: the first one wins
    dense[8] = 0.0  # no neighbours -> NaN
    graph = scipy_sparse.csr_matrix(dense)
    embedding = rng.normal(size=(25, 2)).astype(np.float32)
    ours = umap_module._graph_init(graph, embedding)
    np.testing.assert_allclose(ours, init_graph_transform(graph, embedding), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours[3], embedding[4])
    assert np.isnan(ours[8]).all()


def test_numba_cache_folder_is_set_only_when_the_user_did_not(monkeypatch, tmp_path):
    config = sys.modules.get("numba.core.config")
    if config is not None:
        monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("PANELS_CACHE_DIR", str(tmp_path))
    numba_cache.configure_numba_cache()
    assert (tmp_path / "numba").is_dir()
    assert numba_cache.os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")
    if config is not None:
        assert str(tmp_path / "numba") == config.CACHE_DIR
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/else")
    numba_cache.configure_numba_cache()
    assert numba_cache.os.environ["NUMBA_CACHE_DIR"] == "/somewhere/else"


def test_importing_the_module_does_not_import_the_libraries():
    code = (
        "import sys, panels_core.projection; "
        "print(sorted(m for m in ('umap', 'openTSNE', 'sklearn', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- cancel, cache


def test_cancel_set_before_start_raises(blobs):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ProjectionCancelled):
        project(blobs, {}, cancel=cancel)


def test_cache_hit_returns_the_same_object_without_recomputing(blobs, monkeypatch):
    calls = []
    real = projection.project

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(projection, "project", counting)
    cache = ProjectionCache()
    spec = ProjectionSpec(method="pca")
    first = project_cached(blobs, spec, cache=cache)
    second = project_cached(blobs.copy(), spec, cache=cache)  # same bytes, new array
    assert second is first and len(calls) == 1
    assert cache.hits == 1 and cache.misses == 1
    third = project_cached(blobs, ProjectionSpec(params={"whiten": True}), cache=cache)
    assert third is not first and len(calls) == 2
    changed = blobs.copy()
    changed[0, 0] += 1
    assert project_cached(changed, spec, cache=cache) is not first and len(calls) == 3


def test_cache_key_skips_fetching_on_a_hit(blobs):
    cache = ProjectionCache()
    fetches = []

    def fetch():
        fetches.append(1)
        return blobs

    key = ("table-fingerprint", '{"table": "t"}', "embedding")
    first = project_cached(fetch, {}, key=key, cache=cache)
    messages = []
    second = project_cached(
        fetch, {}, key=key, cache=cache, progress=lambda f, m: messages.append(m)
    )
    assert second is first and len(fetches) == 1 and messages == ["from cache"]
    with pytest.raises(ProjectionError, match="pass a cache key"):
        project_cached(fetch, {}, cache=cache)


def test_cache_evicts_least_recently_used_past_its_byte_budget(blobs):
    one = project(blobs, {})
    cache = ProjectionCache(max_bytes=int(one.nbytes * 2.5))
    for name in "abc":
        cache.put(name, one)
    assert "a" not in cache and "b" in cache and "c" in cache and len(cache) == 2
    assert cache.get("b") is one
    cache.put("d", one)
    assert "c" not in cache and "b" in cache
    assert cache.nbytes == 2 * one.nbytes
    assert projection.fingerprint(blobs) == projection.fingerprint(blobs.astype(np.float64))
    assert projection.fingerprint(blobs) != projection.fingerprint(blobs[:-1])


# ----------------------------------------------------------------------------- Projector


def test_projector_delivers_a_result(blobs):
    projector = Projector(max_workers=1, cache=ProjectionCache())
    try:
        reports = []
        future = projector.submit("card", blobs, {}, lambda f, m: reports.append(f))
        result = future.result(timeout=WAIT)
        assert result.points.shape == (300, 2)
        assert reports[0] == 0.0 and reports[-1] == 1.0
    finally:
        projector.shutdown()


@pytest.mark.parametrize("block_at", [0.0, 1.0])
def test_newer_submit_supersedes_the_older_one(blobs, block_at):
    """block_at 0.0: the old job is cancelled mid-run; 1.0: it finished but is not delivered."""
    cache = ProjectionCache()
    projector = Projector(max_workers=2, cache=cache)
    started, release = threading.Event(), threading.Event()
    late_reports = []

    def old_progress(fraction: float, message: str) -> None:
        if started.is_set():
            late_reports.append(message)
        if fraction == block_at and not started.is_set():
            started.set()
            assert release.wait(WAIT)

    try:
        old = projector.submit("card", blobs, {}, old_progress)
        assert started.wait(WAIT)
        new = projector.submit("card", blobs[:100], {})
        new_result = new.result(timeout=WAIT)
        release.set()
        with pytest.raises(ProjectionCancelled, match="superseded"):
            old.result(timeout=WAIT)
        assert new_result.points.shape == (100, 2)
        assert late_reports == []
        # a result finished before the supersede was noticed still fills the cache
        assert (len(cache) == 2) == (block_at == 1.0)
    finally:
        release.set()
        projector.shutdown()


def test_projector_cancel_slot(blobs):
    projector = Projector(max_workers=1, cache=ProjectionCache())
    started, release = threading.Event(), threading.Event()

    def progress(fraction: float, message: str) -> None:
        if not started.is_set():
            started.set()
            release.wait(WAIT)

    try:
        future = projector.submit("card", blobs, {}, progress)
        assert started.wait(WAIT)
        assert projector.cancel("card") is True
        assert projector.cancel("card") is False
        release.set()
        with pytest.raises(ProjectionCancelled):
            future.result(timeout=WAIT)
    finally:
        release.set()
        projector.shutdown()


def held_projector(heed_cancel: bool = True) -> tuple[Projector, threading.Event, threading.Event]:
    """A Projector on one thread whose jobs, once started, wait for ``release`` or (if they
    heed it, unlike UMAP's fit) for their cancel event."""
    started, release = threading.Event(), threading.Event()

    def held(rows, spec, *, progress=None, cancel=None):
        started.set()
        while not (release.is_set() or (heed_cancel and cancel.is_set())):
            release.wait(0.05)
        if heed_cancel and cancel.is_set():
            raise ProjectionCancelled("stopped")
        return project(rows, spec)

    return Projector(1, cache=ProjectionCache(), compute=held), started, release


@pytest.mark.parametrize("wait", ["result", "exception"])
def test_a_wait_that_times_out_cancels_the_job(blobs, wait):
    projector, started, release = held_projector()
    try:
        future = projector.submit("card", blobs, {})
        assert started.wait(WAIT)
        with pytest.raises(TimeoutError):
            getattr(future, wait)(0)  # the caller gives up
        with pytest.raises(ProjectionCancelled, match=r"^its caller stopped waiting$"):
            future.result(WAIT)
        assert projector.cancel("card") is False  # the slot has no live request left
        assert projector.cancel_all() == []
    finally:
        release.set()
        projector.shutdown()


def test_cancel_all_stops_queued_and_running_jobs(blobs):
    projector, started, release = held_projector()
    try:
        running = projector.submit("a", blobs, {})
        assert started.wait(WAIT)
        queued = projector.submit("b", blobs[:100], {})
        futures = projector.cancel_all("tidying up")
        assert set(futures) == {running, queued}
        for future in futures:
            with pytest.raises(ProjectionCancelled, match=r"^tidying up$"):
                future.result(WAIT)
        assert projector.cancel_all() == []
    finally:
        release.set()
        projector.shutdown()


def test_shutdown_ends_the_futures_of_jobs_that_never_started(blobs):
    projector, started, release = held_projector(heed_cancel=False)
    running = projector.submit("a", blobs, {})
    assert started.wait(WAIT)
    queued = projector.submit("b", blobs[:100], {})
    projector.shutdown(wait=False)
    assert queued.cancelled()  # done: nobody waits for it forever
    release.set()  # the running one finishes, and is not delivered
    with pytest.raises(ProjectionCancelled, match=r"^the projector was shut down$"):
        running.result(WAIT)
    assert projector not in projection.live_projectors()


# ----------------------------------------------------------------------------- neighbours


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbors_match_sklearn_brute_force(digits, metric):
    queries = np.array([0, 17, 500, 1796])
    ref = NearestNeighbors(n_neighbors=11, metric=metric, algorithm="brute")
    ref.fit(digits.astype(np.float64))
    ref_d, ref_i = ref.kneighbors(digits[queries].astype(np.float64))
    # small blocks exercise the chunked merge
    idx, dist = nearest_neighbors(digits, queries, k=10, metric=metric, max_block=1000)
    assert idx.shape == (4, 10)
    for row, query in enumerate(queries):
        expected = ref_i[row][ref_i[row] != query][:10]
        expected_d = ref_d[row][ref_i[row] != query][:10]
        np.testing.assert_allclose(dist[row], expected_d, rtol=1e-6, atol=1e-9)
        # equal distances may be ordered differently; compare as sets per distance
        assert set(idx[row]) == set(expected) or np.allclose(
            np.sort(dist[row]), np.sort(expected_d)
        )
        assert query not in idx[row]
    one_i, _ = nearest_neighbors(digits, 17, k=10, metric=metric)
    np.testing.assert_array_equal(one_i, idx[1])


def test_nearest_neighbors_skip_missing_rows_and_check_the_index():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(50, 6)).astype(np.float32)
    data[3] = np.nan
    data[9, 2] = np.inf
    idx, dist = nearest_neighbors(data, 0, k=48, metric="euclidean")
    assert len(idx) == 47 and not {0, 3, 9} & set(idx.tolist())
    brute = np.sqrt(((data.astype(np.float64) - data[0]) ** 2).sum(axis=1))
    np.testing.assert_allclose(dist, brute[idx])
    assert np.all(np.diff(dist) >= 0)
    with pytest.raises(ProjectionError, match="row 3 has missing or non-finite values"):
        nearest_neighbors(data, 3)
    with pytest.raises(ProjectionError, match="row 50 does not exist; the input has 50 rows"):
        nearest_neighbors(data, 50)


def test_neighborhood_preservation_bounds():
    rng = np.random.default_rng(3)
    plane = rng.normal(size=(500, 2))
    high = np.hstack([plane, np.zeros((500, 3))])
    assert neighborhood_preservation(high, plane, k=10, sample=200) == 1.0
    shuffled = plane[rng.permutation(500)]
    assert neighborhood_preservation(high, shuffled, k=10, sample=200) < 0.1
    with pytest.raises(ProjectionError, match="500 rows but Y_2d has 499"):
        neighborhood_preservation(high, plane[:-1])
