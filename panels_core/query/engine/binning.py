"""Binning in SQL: numpy.histogram's edges and counts without the values leaving DuckDB.

``Binner.bin`` bins every series (a column, or one source of a compared
column) of some rows in two scans: bounds, then counts per key and bin;
bounds, counts and quartiles of the same rows are kept for the next call.
"""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from panels_core.query.bins import MAX_AUTO_BINS, MAX_BINS, bin_span, width_bins
from panels_core.query.engine.cache import LRU, MISS
from panels_core.query.engine.execute import Runner
from panels_core.query.engine.sources import Catalog
from panels_core.query.errors import QueryError
from panels_core.query.sql import Params

__all__ = [
    "QUANTILE_SAMPLE",
    "Binned",
    "Binner",
    "Series",
    "bin_of_key",
    "check_bins",
    "edge_formula",
    "hashable",
    "numpy_edges",
    "quartiles",
]

QUANTILE_SAMPLE = 200_000
"""Auto bins take the quartiles from a reservoir sample of this many rows."""


@dataclass
class Series:
    """One numeric value to bin: a column, or one source of a compared column."""

    column: str
    source: int | None
    x: str  # SQL giving a DOUBLE
    cond: str | None  # SQL: the rows where this source is present
    raw: str = ""  # SQL of the value as stored (min/max of it may come from file statistics)


@dataclass
class Binned:
    """What ``Binner.bin`` computed: edges per column; counts per series and key."""

    edges: dict[str, np.ndarray]
    counts: list[dict[tuple[Any, ...], np.ndarray]]
    stats: list[tuple[int, int, int]]  # (nulls, nonfinite, finite) per series
    first: list[tuple[Any, ...]]  # keys by their first row (when asked for)

    def zeros(self, column: str) -> np.ndarray:
        return np.zeros(len(self.edges[column]) - 1, dtype=np.int64)


class Binner:
    """Bins series of rows in SQL, keeping each scan's answer for the same rows."""

    def __init__(self, catalog: Catalog, runner: Runner, cache: LRU) -> None:
        self.catalog = catalog
        self.runner = runner
        self.cache = cache

    def bin(
        self,
        cur: Any,
        params: Params,
        rows: str,
        keys: Sequence[str],
        series: Sequence[Series],
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
        order: str | None = None,
    ) -> Binned:
        """Bin every series of ``rows`` in two scans: stats, then counts per key and bin.

        With ``order`` (a row-order column of ``rows``) and ``keys``, ``first`` maps
        each key tuple to the first row holding it.

        Edges follow numpy.histogram (``linspace`` over the finite min..max, or
        ``range``); each value's exact bin is computed in the SQL from its nearest
        edge (``k * step + lo``, as numpy computes the edges), or by numpy's own steps
        where the magnitudes are too large for that, so counts match ``numpy.histogram``
        and the ``GROUP BY`` only counts.
        """
        # the bounds, counts and quartiles of the same rows and columns are kept: a card
        # drawn again with other bins (or a range) skips those scans
        kept = (self.catalog.call.stamp, rows, repr(params.bind(rows)))
        kept += (tuple((s.x, s.cond, s.raw) for s in series),)
        edges, counted = self._edges_and_counts(cur, params, rows, series, kept, bins, range, width)
        key_names = [f"__tp_k{i}" for i in builtins.range(len(keys))]
        bounded = (width, range is not None or width is not None)
        estimates = [
            _estimate(params, rows, keys, key_names, s, edges[s.column], bounded, order, i == 0)
            for i, s in enumerate(series)
        ]
        # one aggregate per series: cheaper than GROUPING SETS over the same rows
        branches = [_branch(i, e, key_names, order) for i, e in enumerate(estimates)]
        result = self.runner.fetch(cur, " UNION ALL ".join(branches), params, "histogram")
        counts = _tally(result, series, edges, len(keys))
        if counted is MISS:
            # the binning pass saw every value: nulls have no bin key, NaN and inf a
            # non-finite one, finite values a finite one (unless one far outside an
            # explicit range overflowed the estimate: only a count of its own tells)
            counted = _counts_from_bins(result, len(keys), len(series), range is not None)
            if counted is None:
                counted = self.counts(cur, params, rows, series)
            self.cache.put(("counts", *kept), counted)
        first = _first_keys(result, len(keys)) if order is not None else []
        return Binned(edges, counts, list(counted), first)

    def _edges_and_counts(
        self,
        cur: Any,
        params: Params,
        rows: str,
        series: Sequence[Series],
        kept: tuple[Any, ...],
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
    ) -> tuple[dict[str, np.ndarray], Any]:
        """The edges per column, and the (nulls, nonfinite, finite) counts per series
        when they were needed for them (else ``MISS``); ``kept`` keys the kept scans."""
        bounds: Any = [(None, None)] * len(series)
        if range is None:
            bounds = self._kept(("bounds", *kept), lambda: self.bounds(cur, params, rows, series))
        counted = self.cache.get(("counts", *kept))
        if counted is MISS and ((bins == "auto" and width is None) or any(s.cond for s in series)):
            # the finite count sets the auto bin count; a compared source's nulls are
            # its present rows without a value (absent rows have none either)
            counted = self.counts(cur, params, rows, series)
            self.cache.put(("counts", *kept), counted)
        columns = list(dict.fromkeys(s.column for s in series))
        quartiles: dict[str, tuple[float, float]] = {}
        if bins == "auto" and width is None:
            quartiles = self._kept(
                ("quartiles", *kept, tuple(columns)),
                lambda: self.sample_quartiles(cur, params, rows, series, columns),
            )
        edges: dict[str, np.ndarray] = {}
        for column in columns:
            mine = [i for i, s in enumerate(series) if s.column == column]
            n_finite = 0 if counted is MISS else sum(counted[i][2] for i in mine)
            shown = (column, quartiles.get(column), n_finite)
            edges[column] = numpy_edges(shown, [bounds[i] for i in mine], bins, range, width)
        return edges, counted

    def _kept(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """The answer kept for ``key``, or ``compute()`` kept."""
        value = self.cache.get(key)
        if value is MISS:
            value = compute()
            self.cache.put(key, value)
        return value

    def bounds(
        self, cur: Any, params: Params, rows: str, series: Sequence[Series]
    ) -> list[tuple[float | None, float | None]]:
        """(finite min, finite max) of each series (None, None when it has no finite value).

        Plain min/max first: over a Parquet file they come from its statistics,
        without a scan. Only a series whose min or max is NaN or infinite is
        scanned again with finite-only filters (file statistics leave NaN out,
        so they never say whether NaN is there; the counts do that).
        """
        select = []
        for s in series:
            where = f" FILTER (WHERE {s.cond})" if s.cond else ""
            raw = s.raw or s.x
            select += [f"CAST(min({raw}){where} AS DOUBLE)", f"CAST(max({raw}){where} AS DOUBLE)"]
        ((*flat,),) = self.runner.fetch(
            cur, f"SELECT {', '.join(select)} FROM ({rows}) AS __tp_v", params, "histogram"
        )
        out: list[tuple[float | None, float | None]] = []
        for i, s in enumerate(series):
            lo, hi = flat[2 * i], flat[2 * i + 1]
            if lo is not None and not (math.isfinite(lo) and math.isfinite(hi)):
                cond = f"({s.cond}) AND " if s.cond else ""
                fin = f"isfinite({s.x})"
                sql = (
                    f"SELECT min({s.x}) FILTER (WHERE {cond}{fin}), "
                    f"max({s.x}) FILTER (WHERE {cond}{fin}) FROM ({rows}) AS __tp_v"
                )
                ((lo, hi),) = self.runner.fetch(cur, sql, params, "histogram")
            out.append((lo, hi))
        return out

    def counts(
        self, cur: Any, params: Params, rows: str, series: Sequence[Series]
    ) -> list[tuple[int, int, int]]:
        """(nulls, nonfinite, finite) values of each series, in one scan."""
        select = []
        for s in series:
            cond = f"({s.cond}) AND " if s.cond else ""
            where = f" FILTER (WHERE {s.cond})" if s.cond else ""
            select += [
                f"count(*){where}",
                f"count({s.raw or s.x}){where}",
                f"count(*) FILTER (WHERE {cond}isfinite({s.x}))",
            ]
        ((*flat,),) = self.runner.fetch(
            cur, f"SELECT {', '.join(select)} FROM ({rows}) AS __tp_v", params, "histogram"
        )
        out = []
        for i in builtins.range(len(series)):
            total, present, finite = (int(v) for v in flat[3 * i : 3 * i + 3])
            out.append((total - present, present - finite, finite))
        return out

    def sample_quartiles(
        self, cur: Any, params: Params, rows: str, series: Sequence[Series], columns: list[str]
    ) -> dict[str, tuple[float, float]]:
        """Quartiles of each column from one reservoir sample of the rows (exact when small)."""
        return quartiles(self.sample(cur, params, rows, series, columns))

    def sample(
        self,
        cur: Any,
        params: Params,
        rows: str,
        series: Sequence[Series],
        columns: list[str],
        size: int = QUANTILE_SAMPLE,
    ) -> dict[str, np.ndarray]:
        """The finite values of each column in one reservoir sample of ``size`` rows."""
        chosen = [s for s in series if s.column in columns]
        select = ", ".join(
            f"CASE WHEN {s.cond} THEN {s.x} END AS __tp_q{i}" if s.cond else f"{s.x} AS __tp_q{i}"
            for i, s in enumerate(chosen)
        )
        sql = (
            f"SELECT {select} FROM ({rows}) AS __tp_s "
            f"USING SAMPLE reservoir({int(size)} ROWS) REPEATABLE (7)"
        )
        sample = self.runner.arrow(cur, sql, params, "histogram")
        out = {}
        for column in columns:
            parts = [
                sample.column(i).to_numpy(zero_copy_only=False).astype(np.float64)
                for i, s in enumerate(chosen)
                if s.column == column
            ]
            values = np.concatenate(parts) if parts else np.array([])
            out[column] = values[np.isfinite(values)]
        return out


def _tally(
    result: Sequence[tuple[Any, ...]],
    series: Sequence[Series],
    edges: dict[str, np.ndarray],
    k: int,
) -> list[dict[tuple[Any, ...], np.ndarray]]:
    """Counts per series, key and bin from the binning rows (see ``_branch``; ``k`` keys)."""
    counts: list[dict[tuple[Any, ...], np.ndarray]] = [{} for _ in series]
    for row in result:
        i, c = row[0], int(row[k + 2])
        n = len(edges[series[i].column]) - 1
        key = hashable(tuple(row[1 : k + 1]))
        target = counts[i].get(key)
        if target is None:  # a key with no value in a bin still gets its row of zeros
            target = counts[i][key] = np.zeros(n, np.int64)
        b = bin_of_key(row[k + 1], n)
        if b is not None:
            target[b] += c
    return counts


def quartiles(samples: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """The first and third quartiles of each column's sampled values (none when empty)."""
    out = {}
    for column, values in samples.items():
        if len(values):
            q1, q3 = np.quantile(values, [0.25, 0.75])
            out[column] = (float(q1), float(q3))
    return out


def numpy_edges(
    shown: tuple[str, tuple[float, float] | None, int],
    bounds: Sequence[tuple[float | None, float | None]],
    bins: int | Literal["auto"],
    range: tuple[float, float] | None,
    width: float | None,
) -> np.ndarray:
    """numpy.histogram's edges of one column (``shown``: its name, quartiles and finite
    count), over ``range`` or the finite min..max of its series' ``bounds``."""
    column, quartiles, n_finite = shown
    lows = [lo for lo, _ in bounds if lo is not None]
    highs = [hi for _, hi in bounds if hi is not None]
    if range is not None:
        lo, hi = float(range[0]), float(range[1])
    elif lows:
        lo, hi = float(min(lows)), float(max(highs))
    else:
        lo, hi = 0.0, 1.0
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    what = "the range" if range is not None else f"the range of `{column}`"
    bin_span(lo, hi, what)
    if width is not None:
        n = width_bins(lo, hi, width, what)
        return np.arange(n + 1, dtype=np.float64) * width + lo
    n = bins if isinstance(bins, int) else _auto_count(quartiles, lo, hi, n_finite)
    return np.linspace(lo, hi, n + 1)


EDGE_FORMULA_LIMIT = 2.0**40
"""The edges are recomputed in SQL as ``k * step + lo`` (and each value's bin taken
from its nearest edge) only while ``max(|lo|, |hi|) / step`` is at most this: the
rounding of the estimate and of the edges then stays below 1/4000 of a bin."""


def edge_formula(e: np.ndarray, width: float | None) -> tuple[float, float] | None:
    """(lo, step) when ``e[k] == k * step + lo`` for every edge but the last (as numpy's
    ``linspace`` and the ``width`` edges make them) and the magnitudes let SQL place each
    value from its nearest edge exactly; None otherwise."""
    n = len(e) - 1
    lo, top = float(e[0]), float(e[-1])
    step = float(width) if width is not None else (top - lo) / n
    with np.errstate(all="ignore"):
        far = max(abs(lo), abs(top)) + 2 * step
        fits = step > 0 and math.isfinite(1.0 / step) and far / step <= EDGE_FORMULA_LIMIT
    if not fits or not np.array_equal(np.arange(n, dtype=np.float64) * step + lo, e[:n]):
        return None
    return lo, step


def _estimate(
    params: Params,
    rows: str,
    keys: Sequence[str],
    key_names: Sequence[str],
    s: Series,
    e: np.ndarray,
    bounded: tuple[float | None, bool],
    order: str | None,
    first: bool,
) -> str:
    """SQL of each row's keys and bin key ``b`` for the edges ``e`` (and its row order
    ``__tp_o`` for the ``first`` series when ``order`` is given); ``bounded``: the
    ``width`` of the edges, and whether values can lie outside them.

    ``b`` is twice the value's bin, or one less when it sits just below the bin's upper
    edge (see ``bin_of_key``): null for null, NaN or infinite for NaN and infinities,
    and outside ``0 .. 2n`` for a finite value outside ``e[0] .. e[-1]`` (infinite when
    it is so far outside an explicit range that the estimate overflows).
    """
    x = s.x if s.cond is None else f"CASE WHEN {s.cond} THEN {s.x} END"
    inner = [*(f"{k} AS {name}" for k, name in zip(keys, key_names)), f"{x} AS x"]
    outer = list(key_names)
    if order is not None and first:  # every row is in the first series' pass
        inner, outer = [*inner, f"{order} AS __tp_o"], [*outer, "__tp_o"]
    width, outside = bounded
    formula = edge_formula(e, width)
    n = len(e) - 1
    p_far = params.add(4.0 * n)
    if formula is None:
        return _numpy_key(params, ", ".join(outer), ", ".join(inner), rows, e, p_far)
    lo, step = formula
    p_lo, p_step = params.add(lo), params.add(step)
    p_a, p_c = params.add(1.0 / step), params.add(-lo / step)
    # a finite value above the last edge lands beyond 4n (its nearest edge may be the last)
    far = f" + {p_far} * CAST(x > {params.add(float(e[-1]))} AS DOUBLE)" if outside else ""
    # k: the edge nearest the value; the value is in bin k, or in k - 1 when it is below
    # edge k, computed in SQL exactly as numpy computed the edges (k * step + lo)
    middle = [*outer, "x", f"round(x * {p_a} + {p_c}) AS k"]
    b = f"2 * k - CAST(x < k * {p_step} + {p_lo} AS DOUBLE){far} AS b"
    return (
        f"SELECT {', '.join([*outer, b])} "
        f"FROM (SELECT {', '.join(middle)} FROM (SELECT {', '.join(inner)} "
        f"FROM ({rows}) AS __tp_r) AS __tp_x) AS __tp_k"
    )


def _numpy_key(
    params: Params, outer: str, inner: str, rows: str, e: np.ndarray, p_far: str
) -> str:
    """SQL of the bin key (as ``_estimate``'s) by numpy.histogram's own steps: its
    estimate, then one edge below and one above looked up in the bound edges."""
    n = len(e) - 1
    p_lo, p_top = params.add(float(e[0])), params.add(float(e[-1]))
    p_denom, p_n = params.add(float(e[-1] - e[0])), params.add(n)
    p_edges, p_last = params.add([float(v) for v in e]), params.add(n - 1)
    estimate = f"least(TRY_CAST(trunc((x - {p_lo}) / {p_denom} * {p_n}) AS BIGINT), {p_last})"
    exact = (
        f"j - CAST(x < {p_edges}[j + 1] AS BIGINT) "
        f"+ CAST(j < {p_last} AND x >= {p_edges}[j + 2] AS BIGINT)"
    )
    prefix = f"{outer}, " if outer else ""
    return (
        f"SELECT {prefix}CASE WHEN x >= {p_lo} AND x <= {p_top} THEN 2 * ({exact}) "
        f"ELSE (x - x) + {p_far} END AS b "
        f"FROM (SELECT {prefix}x, {estimate} AS j FROM (SELECT {inner} FROM ({rows}) "
        "AS __tp_r) AS __tp_x) AS __tp_j"
    )


def bin_of_key(b: float | None, n: int) -> int | None:
    """The bin of a bin key ``b`` (``_estimate``'s) among ``n`` bins; None when the value
    is null, not finite or outside the edges (the last edge is in the last bin)."""
    if b is None or not 0 <= b <= 2 * n:
        return None
    return min(int(b) // 2, n - 1)


def _branch(i: int, estimate: str, key_names: Sequence[str], order: str | None) -> str:
    """SQL of series ``i``'s binning rows: (series, keys, bin key, count), and the first
    row of each key (series 0) when ``order`` is given."""
    group = ", ".join([*key_names, "b"])
    first = ", min(__tp_o)" if order is not None and i == 0 else ""
    if order is not None and i != 0:
        first = ", NULL"
    return f"SELECT {i} AS s, {group}, count(*) AS c{first} FROM ({estimate}) AS __tp_e GROUP BY {group}"


def _first_keys(result: Sequence[tuple[Any, ...]], k: int) -> list[tuple[Any, ...]]:
    """The key tuples of the binning rows (``k`` keys), by the first row holding them."""
    first_rows: dict[tuple[Any, ...], Any] = {}
    for row in result:
        if row[0] == 0:
            key = tuple(row[1 : k + 1])
            seen_at = first_rows.get(hashable(key))
            if seen_at is None or row[k + 3] < seen_at[0]:
                first_rows[hashable(key)] = (row[k + 3], key)
    return [key for _, key in sorted(first_rows.values(), key=lambda pair: pair[0])]


def _counts_from_bins(
    result: Sequence[tuple[Any, ...]], k: int, n_series: int, ranged: bool
) -> list[tuple[int, int, int]] | None:
    """(nulls, nonfinite, finite) of each series from its binning rows (series index,
    ``k`` keys, bin key, count): the bin key is null, non-finite or finite with the value;
    None when the edges are a given range (``ranged``) and a bin key is infinite, which
    a finite value far outside the range gives too."""
    out = [[0, 0, 0] for _ in builtins.range(n_series)]
    for row in result:
        i, b, c = row[0], row[k + 1], int(row[k + 2])
        if ranged and b is not None and math.isinf(b):
            return None
        out[i][0 if b is None else 2 if math.isfinite(b) else 1] += c
    return [(a, b, c) for a, b, c in out]


def check_bins(bins: Any, range: tuple[float, float] | None, width: float | None) -> None:
    """QueryError for bins, a range or a width that cannot bin."""
    if bins != "auto" and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 1):
        raise QueryError(f"histogram(): bins must be a positive integer or 'auto', got {bins!r}")
    if bins != "auto" and bins > MAX_BINS:
        raise QueryError(f"histogram(): {bins:,} bins asked for; the most is {MAX_BINS:,}")
    if width is not None and not (width > 0 and math.isfinite(width)):
        raise QueryError(f"histogram(): width must be a finite number > 0, got {width!r}")
    if range is not None:
        lo, hi = float(range[0]), float(range[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise QueryError(f"histogram(): range must be two finite numbers lo <= hi, got {range}")
        bin_span(lo, hi)
        if width is not None:
            width_bins(lo, hi, width)


def _auto_count(quartiles: tuple[float, float] | None, lo: float, hi: float, n: int) -> int:
    """Freedman-Diaconis (bin width 2 IQR / n^(1/3)), else sqrt(n); clamped to [1, 200]."""
    if n <= 1:
        return 1
    iqr = quartiles[1] - quartiles[0] if quartiles else 0.0
    if iqr > 0:
        count = math.ceil((hi - lo) / (2.0 * iqr / n ** (1 / 3)))
    else:
        count = math.ceil(math.sqrt(n))
    return int(min(max(count, 1), MAX_AUTO_BINS))


def hashable(value: Any) -> Any:
    """A value with its lists and dicts as tuples (to key a dict with)."""
    if isinstance(value, list | tuple):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, hashable(v)) for k, v in value.items())
    return value
