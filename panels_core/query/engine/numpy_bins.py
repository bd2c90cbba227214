"""Binning DuckDB's Arrow batches with numpy: numpy.histogram's counts in fewer passes.

``bin_batches`` bins the columns of a stream of record batches (one column per
series) on two threads while DuckDB reads the next batches. ``bin_values`` bins
one array as ``numpy.histogram`` does over edges whose ends are the range: the
estimate ``((x - e[0]) / (e[-1] - e[0])) * n`` truncated, and numpy's correction
against the edges only for the values that are near enough to an edge for it to
apply. Which values those are follows from the edges alone (``edge_margin``):
the estimate grows with ``x``, so a value whose estimate lies further from an
integer than every edge's own estimate does is between its bin's edges.

DuckDB's ``GROUP BY`` of the estimated bin took 2-4x its bare scan of the column;
fetching the column as Arrow takes about the scan, and these passes over it run
beside DuckDB's reading (``benchmarks/bench_histogram_ways.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

__all__ = ["BATCH_ROWS", "Counted", "bin_batches", "bin_values", "edge_margin"]

BATCH_ROWS = 1 << 18
"""Rows per Arrow batch: a few MiB per series, binned while DuckDB reads the next."""

_AHEAD = 4  # batches waiting for a binning thread at most: memory stays a few batches

Counted = tuple[int, int, int]
"""(nulls, nonfinite, finite) values of a series."""


def bin_batches(
    batches: Iterable[pa.RecordBatch], edges: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[Counted]]:
    """The counts per bin of each column of ``batches`` over its ``edges``, and its
    (nulls, nonfinite, finite) values (nulls are Arrow's; NaN and inf are nonfinite;
    finite values outside the edges are counted as finite, in no bin)."""
    counts = [np.zeros(len(e) - 1, np.int64) for e in edges]
    totals = np.zeros((len(edges), 3), np.int64)
    margins = [edge_margin(e) for e in edges]

    def add(done: list[tuple[np.ndarray, int, int, int]]) -> None:
        for i, (binned, *counted) in enumerate(done):
            counts[i] += binned
            totals[i] += counted

    with ThreadPoolExecutor(2) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(_bin_batch, batch, edges, margins))
            while len(pending) > _AHEAD:
                add(pending.popleft().result())
        while pending:
            add(pending.popleft().result())
    return counts, [(int(a), int(b), int(c)) for a, b, c in totals]


def _bin_batch(
    batch: pa.RecordBatch, edges: Sequence[np.ndarray], margins: Sequence[float]
) -> list[tuple[np.ndarray, int, int, int]]:
    out = []
    for column, e, margin in zip(batch.columns, edges, margins):
        x = column.to_numpy(zero_copy_only=False)  # DOUBLE: nulls as NaN
        binned, finite = bin_values(x, e, margin)
        nulls = column.null_count
        out.append((binned, nulls, len(x) - nulls - finite, finite))
    return out


def edge_margin(e: np.ndarray) -> float:
    """How far (in bins) the estimate of an edge lies from its integer, at most, plus
    rounding: a value whose estimate is further than this from every integer is
    between the edges of the bin its estimate names (numpy corrects nothing)."""
    n = len(e) - 1
    if not e[-1] > e[0]:
        return 0.0  # no bin: see bin_values
    image = (e - e[0]) / (e[-1] - e[0]) * n  # the estimate's own operations
    return float(np.max(np.abs(image - np.arange(n + 1)))) + 1e-12


def bin_values(x: np.ndarray, e: np.ndarray, margin: float) -> tuple[np.ndarray, int]:
    """numpy.histogram's counts of ``x`` over the edges ``e`` (the last bin holds its
    upper edge; NaN, inf and values outside ``e[0] .. e[-1]`` in no bin), and how many
    values of ``x`` are finite. ``margin``: ``edge_margin(e)``."""
    n = len(e) - 1
    if not e[-1] > e[0]:  # one value too large to widen by 0.5: numpy makes no bin of it
        return np.zeros(n, np.int64), int(np.count_nonzero(np.isfinite(x)))
    finite = len(x)
    with np.errstate(invalid="ignore"):
        inside = len(x) > 0 and x.min() >= e[0] and x.max() <= e[-1]  # False with NaN
    if not inside:
        finite = int(np.count_nonzero(np.isfinite(x)))
        x = x[(x >= e[0]) & (x <= e[-1])]
    if not len(x):
        return np.zeros(n, np.int64), finite
    f = np.subtract(x, e[0])
    f /= e[-1] - e[0]
    f *= n
    frac, whole = np.modf(f)
    estimate = whole.astype(np.intp)
    counts = np.bincount(estimate, minlength=n + 1)
    counts[n - 1] += counts[n]  # the upper edge is in the last bin
    counts = counts[:n]
    frac -= 0.5
    near = np.abs(frac, out=frac) >= 0.5 - margin
    if near.any():  # numpy's correction, for these values only
        xs, guess = x[near], np.minimum(estimate[near], n - 1)
        exact = guess - (xs < e[guess])
        exact += (xs >= e[exact + 1]) & (exact != n - 1)
        counts += np.bincount(exact, minlength=n) - np.bincount(guess, minlength=n)
    return counts, finite
