"""Exact nearest neighbours in the original space, and how well a 2D layout keeps them."""

from __future__ import annotations

from typing import Any

import numpy as np

from panels_core.projection.blas import single_thread_blas
from panels_core.projection.rows import as_rows, finite_rows, sample_rows
from panels_core.projection.spec import Metric, ProjectionError

__all__ = ["nearest_neighbors", "neighborhood_preservation"]


def nearest_neighbors(
    X: Any,
    index: int | np.ndarray | list[int],
    k: int = 10,
    metric: Metric = "cosine",
    *,
    max_block: int = 16_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``X`` to row(s) ``index`` (itself excluded), nearest first.

    Exact brute force in the original space, in blocks of rows so memory stays
    bounded; candidates are ranked in float32 and their distances recomputed in
    float64. Rows with missing or non-finite values are never neighbours.
    Cosine distance is 1 - cosine similarity. Returns ``(indices, distances)``,
    1-D for a scalar ``index``, else shaped (len(index), k); fewer than ``k``
    columns when fewer other rows are usable. Ties are broken by row number.
    """
    with single_thread_blas():
        return _nearest_neighbors(X, index, k, metric, max_block)


def _nearest_neighbors(
    X: Any, index: Any, k: int, metric: str, max_block: int
) -> tuple[np.ndarray, np.ndarray]:
    if metric not in ("cosine", "euclidean"):
        raise ProjectionError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")
    if k < 1:
        raise ProjectionError(f"k must be at least 1, got {k}")
    values = as_rows(X).values
    n = values.shape[0]
    scalar = np.ndim(index) == 0
    usable = finite_rows(values)
    queries = _query_rows(index, usable)
    k_eff = min(k, int(usable.sum()) - 1)
    if k_eff < 1 or len(queries) == 0:
        empty_i = np.empty((len(queries), 0), dtype=np.int64)
        empty_d = np.empty((len(queries), 0), dtype=np.float64)
        return (empty_i[0], empty_d[0]) if scalar else (empty_i, empty_d)

    norms = np.sqrt(np.einsum("ij,ij->i", values, values, dtype=np.float64))
    width = min(k_eff + 1 + 8, n)
    best_idx, best_d = _candidates(values, norms, usable, queries, metric, width, max_block)
    exact = _exact_distances(values, norms, queries, best_idx, metric)
    exact[~np.isfinite(best_d)] = np.inf
    order = np.lexsort((best_idx, exact), axis=1)[:, :k_eff]
    indices = np.take_along_axis(best_idx, order, axis=1)
    distances = np.take_along_axis(exact, order, axis=1)
    if scalar:
        return indices[0], distances[0]
    return indices, distances


def _query_rows(index: Any, usable: np.ndarray) -> np.ndarray:
    """The asked row numbers as int64, each checked to exist and to have finite values."""
    n = len(usable)
    queries = np.atleast_1d(np.asarray(index))
    if queries.dtype.kind not in "iu":
        raise ProjectionError(f"row numbers must be integers, got {queries.dtype}")
    queries = queries.astype(np.int64)
    if len(queries) and (queries.min() < 0 or queries.max() >= n):
        bad = int(queries[(queries < 0) | (queries >= n)][0])
        raise ProjectionError(f"row {bad} does not exist; the input has {n:,} rows")
    if not usable[queries].all():
        bad = int(queries[~usable[queries]][0])
        raise ProjectionError(
            f"row {bad} has missing or non-finite values, so it has no neighbours; pick another row"
        )
    return queries


def _candidates(
    values: np.ndarray,
    norms: np.ndarray,
    usable: np.ndarray,
    queries: np.ndarray,
    metric: str,
    width: int,
    max_block: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``width`` nearest usable rows (not itself) of each query ranked in float32, scanned in
    blocks of rows: their row numbers and float32 distances (inf where fewer rows qualify)."""
    n = values.shape[0]
    query_vecs = values[queries].astype(np.float32)
    if metric == "cosine":
        qn = norms[queries]
        query_vecs = query_vecs / np.where(qn > 0, qn, 1.0).astype(np.float32)[:, None]
    else:
        qsq = (norms[queries] ** 2).astype(np.float32)
    best_idx = np.empty((len(queries), 0), dtype=np.int64)
    best_d = np.empty((len(queries), 0), dtype=np.float32)
    block = max(256, max_block // max(len(queries), 1))
    for start in range(0, n, block):
        chunk = values[start : start + block]
        dots = query_vecs @ chunk.T  # (q, rows)
        if metric == "cosine":
            cn = norms[start : start + block]
            dist = 1.0 - dots / np.where(cn > 0, cn, np.inf).astype(np.float32)
        else:
            csq = (norms[start : start + block] ** 2).astype(np.float32)
            dist = qsq[:, None] - 2.0 * dots + csq[None, :]
        dist[:, ~usable[start : start + block]] = np.inf
        own = (queries >= start) & (queries < start + len(chunk))
        dist[np.flatnonzero(own), queries[own] - start] = np.inf
        dist = np.nan_to_num(dist, nan=np.inf, posinf=np.inf)
        take = min(width, dist.shape[1])
        part = np.argpartition(dist, take - 1, axis=1)[:, :take]
        cand_d = np.take_along_axis(dist, part, axis=1)
        best_idx = np.concatenate([best_idx, part + start], axis=1)
        best_d = np.concatenate([best_d, cand_d], axis=1)
        if best_idx.shape[1] > width:
            keep = np.argpartition(best_d, width - 1, axis=1)[:, :width]
            best_idx = np.take_along_axis(best_idx, keep, axis=1)
            best_d = np.take_along_axis(best_d, keep, axis=1)
    return best_idx, best_d


def _exact_distances(
    values: np.ndarray, norms: np.ndarray, queries: np.ndarray, cands: np.ndarray, metric: str
) -> np.ndarray:
    """float64 distances from each query to its candidate rows, in query batches."""
    out = np.empty(cands.shape, dtype=np.float64)
    batch = max(1, 4_000_000 // max(cands.shape[1] * values.shape[1], 1))
    for start in range(0, len(queries), batch):
        q = values[queries[start : start + batch]].astype(np.float64)
        c = values[cands[start : start + batch]].astype(np.float64)
        if metric == "cosine":
            dots = np.einsum("qd,qkd->qk", q, c)
            denom = (
                norms[queries[start : start + batch]][:, None] * norms[cands[start : start + batch]]
            )
            sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
            out[start : start + batch] = 1.0 - sim
        else:
            diff = c - q[:, None, :]
            out[start : start + batch] = np.sqrt(np.einsum("qkd,qkd->qk", diff, diff))
    return out


def neighborhood_preservation(
    X_high: Any,
    Y_2d: Any,
    k: int = 15,
    sample: int | None = 2000,
    *,
    metric: Metric = "euclidean",
    seed: int = 0,
) -> float:
    """Mean fraction of each point's ``k`` nearest neighbours in ``X_high`` also among its ``k``
    nearest in ``Y_2d`` (1.0 = every neighbourhood kept), over a seeded sample of points.
    """
    high = as_rows(X_high).values
    low = as_rows(Y_2d).values
    if high.shape[0] != low.shape[0]:
        raise ProjectionError(
            f"X_high has {high.shape[0]:,} rows but Y_2d has {low.shape[0]:,}; pass the kept rows "
            "of both"
        )
    n = high.shape[0]
    if n <= k:
        raise ProjectionError(f"need more than k={k} rows, got {n}")
    points = np.arange(n) if sample is None or sample >= n else sample_rows(n, sample, seed)
    assert points is not None
    hi, _ = nearest_neighbors(high, points, k=k, metric=metric)
    lo, _ = nearest_neighbors(low, points, k=k, metric="euclidean")
    shared = (hi[:, :, None] == lo[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(shared / k))
