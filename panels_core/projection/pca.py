"""PCA: the plotted components, and the pre-reduction of UMAP and t-SNE inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from panels_core.projection.blas import single_thread_blas
from panels_core.projection.progress import Stages
from panels_core.projection.rows import check_varies, sample_rows
from panels_core.projection.spec import DEFAULT_MAX_FIT_POINTS, PCAParams, ProjectionSpec

__all__ = ["fit_pca", "pca_labels", "pca_solver", "run_pca", "transform_pca"]


def pca_solver(n: int, d: int) -> str:
    """scikit-learn's solver for a fit on ``n`` rows of ``d`` dims: "covariance_eigh" (one
    X^T X pass, then a d x d eigendecomposition; fastest for n >> d, and it neither copies
    nor writes the rows) up to 1000 dims, else "full" (an SVD of a centred copy)."""
    return "covariance_eigh" if d <= 1000 and n >= d else "full"


def fit_pca(data: np.ndarray, n_components: int, spec: ProjectionSpec, whiten: bool = False):
    """A scikit-learn PCA fitted on at most DEFAULT_MAX_FIT_POINTS['pca'] sampled rows."""
    from sklearn.decomposition import PCA

    limit = spec.fit_points if spec.method == "pca" else DEFAULT_MAX_FIT_POINTS["pca"]
    idx = sample_rows(len(data), limit, spec.seed)
    fit_data = data if idx is None else data[idx]
    n, d = fit_data.shape
    solver = pca_solver(n, d)
    pca = PCA(n_components=n_components, svd_solver=solver, whiten=whiten, random_state=0)
    from sklearn import config_context

    check_varies(fit_data, len(data))
    with config_context(assume_finite=True):  # rows were checked; skip another full pass
        pca.fit(fit_data)
    return pca, n


def transform_pca(pca: Any, data: np.ndarray) -> np.ndarray:
    """``data`` in a fitted PCA's components, as float32."""
    from sklearn import config_context

    with config_context(assume_finite=True):
        return np.asarray(pca.transform(data), dtype=np.float32)


def run_pca(
    data: np.ndarray, spec: ProjectionSpec, params: PCAParams, stages: Stages
) -> tuple[np.ndarray, tuple[str, str], int]:
    """The chosen two components of every row, their axis labels (with the explained variance)
    and the rows fitted on."""
    first, second = params.components
    stages(0.1, f"PCA of {len(data):,} rows x {data.shape[1]} dims")
    with single_thread_blas():
        pca, fit_n = fit_pca(data, max(first, second), spec, whiten=params.whiten)
        stages(0.6, "placing the rows")
        coords = transform_pca(pca, data)
    points = coords[:, [first - 1, second - 1]]
    return points, pca_labels(pca, params.components), fit_n


def pca_labels(pca: Any, components: tuple[int, int]) -> tuple[str, str]:
    """The axis labels of two components of a fitted PCA, with their explained variance."""
    ratio = pca.explained_variance_ratio_
    first, second = components
    return (
        f"PC{first} ({100 * ratio[first - 1]:.1f}%)",
        f"PC{second} ({100 * ratio[second - 1]:.1f}%)",
    )
