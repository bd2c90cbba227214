"""The rows to project, as one float32 matrix plus why rows are unusable (the worker's transport too).

``as_rows`` reads any input (2-D array, DataFrame, Arrow column, a sequence of
vectors or None); ``Rows`` is what the pipeline and the worker process pass
around (the worker rebuilds one from shared memory); ``finite_rows``,
``check_varies``, ``distinct_rows`` and ``sample_rows`` are the checks, the exact
duplicates and the seeded sample the methods share; ``standardize`` scales each
dimension to mean 0 and standard deviation 1, ``unit_rows`` each row to length 1 (the
cosine metric).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from panels_core.projection.spec import ProjectionError

__all__ = [
    "Rows",
    "as_rows",
    "check_varies",
    "distinct_rows",
    "finite_rows",
    "sample_rows",
    "standardize",
    "unit_rows",
]


@dataclass(frozen=True, eq=False)
class Rows:
    """The input as a float32 matrix plus why rows are unusable (bad rows hold NaN)."""

    values: np.ndarray  # float32 (n, d), C-contiguous
    missing: np.ndarray  # bool (n,): no value at all (null / all NaN)
    ragged: np.ndarray  # bool (n,): a vector of the wrong length or not numeric
    expected_dim: int

    @property
    def n(self) -> int:
        return int(self.values.shape[0])


def as_rows(X: Any) -> Rows:
    """Read ``X`` (2-D array, DataFrame, or a sequence of vectors/None) as float32 rows."""
    if isinstance(X, Rows):
        return X
    if type(X).__module__.startswith("pyarrow"):
        X = _from_arrow(X)
    if hasattr(X, "to_numpy") and getattr(X, "ndim", 2) == 2:
        try:
            X = X.to_numpy(dtype="float32", na_value=np.nan)
        except (TypeError, ValueError) as error:
            raise ProjectionError(
                f"the columns to project must all be numeric ({error}); choose numeric columns"
            ) from error
    if isinstance(X, np.ma.MaskedArray):
        X = X.astype(np.float32).filled(np.nan)
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.dtype.kind not in "biuf":
            raise ProjectionError(
                f"cannot project values of dtype {X.dtype}; pass numbers (an embedding column "
                "or numeric columns)"
            )
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2:
            raise ProjectionError(f"expected a 2-D (rows x dims) array, got shape {X.shape}")
        values = np.ascontiguousarray(X, dtype=np.float32)
        n = values.shape[0]
        ragged = np.zeros(n, dtype=bool)
        missing = np.zeros(n, dtype=bool)
        if values.shape[1] and n:
            missing = np.isnan(values).all(axis=1) if values.shape[1] <= 4 else _all_nan(values)
        return Rows(values, missing, ragged, values.shape[1])
    return _rows_of_vectors(list(X))


def _from_arrow(array: Any) -> Any:
    """A fixed-size-list Arrow column without nulls as a 2-D array; anything else as Python rows."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array, pa.FixedSizeListArray) and array.null_count == 0:
        flat = array.flatten()
        numeric = pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)
        if numeric and flat.null_count == 0:
            return flat.to_numpy(zero_copy_only=False).reshape(len(array), -1)
    if isinstance(array, pa.Table):
        return array.to_pandas()
    return array.to_pylist()


def _all_nan(values: np.ndarray) -> np.ndarray:
    """Rows that are all NaN, checked on the first column first (cheap for big inputs)."""
    out = np.isnan(values[:, 0])
    if out.any():
        rows = np.flatnonzero(out)
        out[rows] = np.isnan(values[rows]).all(axis=1)
    return out


def _rows_of_vectors(rows: list[Any]) -> Rows:
    vectors: list[np.ndarray | None] = []
    ragged_flags: list[bool] = []
    for row in rows:
        if row is None:
            vectors.append(None)
            ragged_flags.append(False)
            continue
        try:
            vec = np.asarray(row, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            vectors.append(None)
            ragged_flags.append(True)
            continue
        vectors.append(vec)
        ragged_flags.append(False)
    lengths = Counter(len(v) for v in vectors if v is not None)
    dim = lengths.most_common(1)[0][0] if lengths else 0
    n = len(rows)
    values = np.full((n, dim), np.nan, dtype=np.float32)
    missing = np.zeros(n, dtype=bool)
    ragged = np.array(ragged_flags, dtype=bool)
    for i, vec in enumerate(vectors):
        if vec is None:
            missing[i] = not ragged[i]
        elif len(vec) != dim:
            ragged[i] = True
        else:
            values[i] = vec
    if dim:
        missing |= ~ragged & np.isnan(values).all(axis=1)
    else:
        missing = ~ragged
    return Rows(values, missing, ragged, dim)


def finite_rows(values: np.ndarray) -> np.ndarray:
    """Rows without NaN or infinity (one float64 pass, no (n, d) temporary)."""
    if values.shape[1] == 0:
        return np.zeros(values.shape[0], dtype=bool)
    return np.isfinite(values.sum(axis=1, dtype=np.float64))


# ----------------------------------------------------------------------------- progress


def check_varies(data: np.ndarray, total: int) -> None:
    """ProjectionError when every row of ``data`` is the same (a leading slice is tried first)."""
    head = data[:4096]
    if np.any(head.max(axis=0) != head.min(axis=0)):
        return
    if not np.any(data.max(axis=0) != data.min(axis=0)):
        raise ProjectionError(
            f"all {total:,} kept rows have identical values, so there is nothing to project; "
            "check the column (or filter) feeding the projection"
        )


def distinct_rows(data: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact duplicate rows: ``(first, inverse)`` with ``data[first]`` the distinct rows in
    input order (each at its first occurrence) and ``data[first][inverse] == data``; None
    when no two rows are equal."""
    if len(data) < 2:
        return None
    rows = np.ascontiguousarray(data)
    rows = rows + np.zeros((), dtype=rows.dtype)  # -0.0 -> 0.0, so equal rows have equal bytes
    hashes = _row_hashes(rows)
    if hashes is not None and len(np.unique(hashes)) == len(rows):
        return None  # equal rows have equal hashes: no two rows are equal
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if len(first) == len(data):
        return None
    order = np.argsort(first)  # distinct rows in input order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def _row_hashes(rows: np.ndarray, chunk: int = 4096) -> np.ndarray | None:
    """A 64-bit hash of each row's bytes (the sum of its 32-bit words times fixed odd numbers,
    exact integer arithmetic), or None when a row is not whole 32-bit words. Equal rows get
    equal hashes; sorting 100k hashes takes milliseconds where sorting the rows took seconds."""
    if rows.ndim != 2 or rows.dtype.itemsize % 4:
        return None
    words = rows.view(np.uint32)
    weights = np.random.default_rng(0).integers(1, 2**63, size=words.shape[1], dtype=np.uint64)
    weights |= np.uint64(1)
    hashes = np.empty(len(words), dtype=np.uint64)
    for start in range(0, len(words), chunk):
        part = words[start : start + chunk].astype(np.uint64)
        hashes[start : start + chunk] = (part * weights).sum(axis=1, dtype=np.uint64)
    return hashes


def sample_rows(n: int, size: int, seed: int | None) -> np.ndarray | None:
    """Sorted indices of a seeded random sample, or None when every row fits."""
    if n <= size:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False))


def standardize(data: np.ndarray) -> np.ndarray:
    """``data`` with each column shifted to mean 0 and divided by its standard deviation
    (float64 sums, float32 out); a constant column is divided by 1, so it becomes all zeros.

    Every row (the fitted sample and the rows placed with ``transform``) uses the same mean
    and standard deviation, those of all of ``data``.
    """
    mean = data.mean(axis=0, dtype=np.float64)
    std = data.std(axis=0, dtype=np.float64)
    std[~(std > 0)] = 1.0
    out = (data - mean.astype(np.float32)) / std.astype(np.float32)
    return np.ascontiguousarray(out, dtype=np.float32)


def unit_rows(data: np.ndarray) -> np.ndarray:
    """``data`` with each row scaled to length 1, so euclidean distance ranks as cosine does
    (a row at the origin, which only standardizing can leave there, stays there)."""
    norms = np.sqrt(np.einsum("ij,ij->i", data, data, dtype=np.float64)).astype(np.float32)
    norms[norms == 0] = 1.0
    return data / norms[:, None]
