"""A Parquet dataset as projection input, piece by piece: its row groups, a seeded sample plan,
a piece's vectors and the moments that standardize them.

These functions run inside Dask tasks on the workers (``distributed``) as well as in
tests: they take plain values (paths, numbers, arrays), never a connection or a client.
A *piece* is one row group of one file: the unit a worker reads, so a task's memory is
bounded by the writer's row-group size, not by the file's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from panels_core.projection.rows import Rows, as_rows, finite_rows
from panels_core.projection.spec import ProjectionError

__all__ = [
    "Moments",
    "Piece",
    "PieceScan",
    "dataset_pieces",
    "kept_rows",
    "piece_row",
    "read_piece",
    "sample_plan",
    "scan_piece",
]


@dataclass(frozen=True)
class Piece:
    """One row group of one file: where it is and which dataset rows it holds."""

    path: str
    row_group: int
    first: int
    """The dataset row number of the piece's first row (file offset + rows before it)."""
    rows: int
    columns: tuple[str, ...]
    """The projected columns this file holds (the others read as missing)."""


def dataset_pieces(dataset: Any, columns: Sequence[str]) -> list[Piece]:
    """The non-empty row groups of a ``ParquetDataset``, in row order, from its footers."""
    pieces = []
    for path, meta, offset in zip(dataset.files, dataset.metas, dataset.offsets, strict=True):
        names = set(meta.schema.to_arrow_schema().names)
        present = tuple(c for c in columns if c in names)
        first = offset
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            if rows:
                pieces.append(Piece(str(path), group, first, rows, present))
            first += rows
    if not pieces:
        raise ProjectionError(f"the dataset `{dataset.name}` has no rows to project")
    return pieces


def sample_plan(rows: Sequence[int], size: int, seed: int | None) -> list[np.ndarray]:
    """Sorted row numbers within each file for a seeded sample of ``size`` rows in all.

    Each file gets a share proportional to its rows (largest remainders round), and its
    rows are drawn by a generator seeded with ``(seed, file number)``: the same seed
    gives the same rows, and a file's rows do not depend on the other files' draws.
    Every row is taken when the files hold no more than ``size`` rows.
    """
    counts = np.asarray(rows, dtype=np.int64)
    total = int(counts.sum())
    if total <= size:
        return [np.arange(n, dtype=np.int64) for n in counts]
    quota = counts * (size / total)
    share = np.floor(quota).astype(np.int64)
    extra = np.argsort(-(quota - share), kind="stable")[: size - int(share.sum())]
    share[extra] += 1
    entropy = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    return [
        np.sort(np.random.default_rng([entropy, i]).choice(n, k, replace=False)).astype(np.int64)
        for i, (n, k) in enumerate(zip(counts.tolist(), share.tolist(), strict=True))
    ]


def read_piece(piece: Piece, columns: Sequence[str]) -> Rows:
    """The piece's rows of ``columns``: one embedding column, or numeric columns stacked
    (a column the file lacks, and a null, read as NaN, so the row is left out)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with pq.ParquetFile(piece.path) as file:
        table = file.read_row_group(piece.row_group, columns=list(piece.columns))
    if len(columns) == 1 and piece.columns:
        column = table.column(columns[0])
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return as_rows(column)
    matrix = np.full((piece.rows, len(columns)), np.nan, dtype=np.float32)
    for j, name in enumerate(columns):
        if name in piece.columns:
            values = pc.cast(table.column(name), pa.float32(), safe=False)
            matrix[:, j] = values.to_numpy(zero_copy_only=False)
    return as_rows(matrix)


def kept_rows(rows: Rows, cosine: bool) -> np.ndarray:
    """The rows the local pipeline keeps: every value finite, and not all zero for cosine."""
    kept = finite_rows(rows.values) & ~rows.ragged & ~rows.missing
    if cosine and rows.values.shape[1]:
        kept &= np.einsum("ij,ij->i", rows.values, rows.values, dtype=np.float64) > 0
    return kept


@dataclass(frozen=True)
class Moments:
    """Count, mean and summed squared deviations per dimension (float64), combinable."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        mean = values.mean(axis=0, dtype=np.float64) if len(values) else np.zeros(values.shape[1])
        m2 = values.var(axis=0, dtype=np.float64) * len(values) if len(values) else mean * 0
        return cls(len(values), mean, m2)

    def __add__(self, other: Moments) -> Moments:
        """Chan's pairwise combination: the moments of both sets of rows together."""
        count = self.count + other.count
        if not count:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return Moments(count, mean, m2)

    @property
    def std(self) -> np.ndarray:
        """The population standard deviation, 1 where a dimension is constant (as
        ``rows.standardize`` divides)."""
        std = np.sqrt(self.m2 / max(self.count, 1))
        std[~(std > 0)] = 1.0
        return std


@dataclass(frozen=True)
class PieceScan:
    """What one pass over a piece gives the fit: moments, dropped rows, the sampled rows."""

    moments: Moments
    dropped: int
    sample: np.ndarray
    """float32 (k, d): the kept sampled rows, raw (not standardized)."""
    sample_rows: np.ndarray
    """int64 (k,): their dataset row numbers."""


def scan_piece(piece: Piece, columns: Sequence[str], picks: np.ndarray, cosine: bool) -> PieceScan:
    """Read a piece once: the moments of its kept rows and its kept rows among ``picks``
    (row numbers within the piece)."""
    rows = read_piece(piece, columns)
    kept = kept_rows(rows, cosine)
    values = rows.values[kept]
    picked = picks[kept[picks]]
    return PieceScan(
        Moments.of(values),
        rows.n - int(kept.sum()),
        np.ascontiguousarray(rows.values[picked]),
        picked + piece.first,
    )


def piece_row(piece: Piece, columns: Sequence[str], row: int, cosine: bool) -> np.ndarray | None:
    """Dataset row ``row``'s raw values (it is in ``piece``), or None when it is left out."""
    rows = read_piece(piece, columns)
    inside = row - piece.first
    return rows.values[inside] if kept_rows(rows, cosine)[inside] else None
