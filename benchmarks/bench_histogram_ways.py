"""Ways to bin one column of a Parquet file, beside the engine's histogram and the floor.

The engine's histogram (``Engine.histogram``) bins in one DuckDB scan: a
``GROUP BY`` of each value's exact bin, computed inline from its nearest edge
(``k * step + lo``, as numpy computes the edges), with a count only. This times, in
one process, interleaved over ``--rounds`` rounds (so the load of the shared
machine falls on every way alike), what else could bin the same values, and
checks every answer against ``numpy.histogram`` of the whole column. It prints
wall seconds and the process's CPU seconds (every thread's): on a loaded machine
the wall time favours ways that spread over more threads, while the CPU time says
what a way costs (Arrow + numpy looked 1.4x faster than the engine by wall time
and took 2-3x its CPU; in the engine, under load, it was 3-10x slower).

- ``floor``: DuckDB's bare scan of the column (``sum(x)``): nothing that reads it is faster;
- ``engine``: ``Engine.histogram`` with its answer cache emptied (cold);
- ``engine's SQL``: the engine's binning statement alone (its bin key: twice the nearest
  edge's index, less one when the value is below that edge);
- ``estimate + per-bin min/max``: the engine's statement before, a ``GROUP BY`` of the
  estimated bin with count, min and max (the min/max say which bins to count again);
- ``numpy's steps inline``: numpy's estimate and its correction against the edges
  looked up in a bound list, per row in SQL, count only;
- ``GROUP BY bin, count only``: without the per-bin min/max (not exact on its own);
- ``perfect-hash UTINYINT key``: DuckDB's array aggregate for small integer keys;
- ``histogram(x, edges)``: DuckDB's own aggregate over the edges;
- ``list(x)``: DuckDB's list aggregate of the column (no binning yet);
- ``x as Arrow``: the column fetched as Arrow batches (no binning yet);
- ``Arrow + numpy``: those batches binned exactly with numpy (numpy's estimate,
  then the values within 1e-9 of a bin edge placed again as numpy does), two threads;
- ``polars hist``: ``pl.scan_parquet(...).select(pl.col(x).hist(bin_count=))`` (a dev
  dependency; left out when it is not installed);
- ``numba kernel`` (``--numba``): the batches binned by a compiled loop; it loads
  numba's runtime into the process, and the script prints what that costs in
  resident memory and seconds (run it in a fresh process: ``--numba`` alone).

Run: ``.venv/bin/python benchmarks/bench_histogram_ways.py [--rows 10000000] [--rounds 7]
[--numba]`` (the data is ``bench_engine.py``'s, generated on demand).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from bench_engine import generate

BINS = 50
NEAR = 1e-9  # in bins: values this close to an edge are placed again exactly


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024  # type: ignore[union-attr]


def numpy_bins(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """numpy.histogram's counts of the finite values ``x`` over the edges ``e`` (whose
    ends are their min and max): numpy's estimate, and numpy's correction for the values
    near an edge only."""
    n = len(e) - 1
    f = np.subtract(x, e[0])
    f /= e[-1] - e[0]
    f *= n
    frac, whole = np.modf(f)
    idx = whole.astype(np.intp)
    counts = np.bincount(idx, minlength=n + 1)
    counts[n - 1] += counts[n]  # the last edge is in the last bin
    counts = counts[:n]
    frac -= 0.5
    near = np.abs(frac, out=frac) > 0.5 - NEAR
    if near.any():
        xs, est = x[near], np.minimum(idx[near], n - 1)
        counts -= np.bincount(est, minlength=n)
        exact = est - (xs < e[est])
        exact += (xs >= e[exact + 1]) & (exact != n - 1)
        counts += np.bincount(exact, minlength=n)
    return counts


def ways(path: str, numba: bool) -> tuple[dict[str, Callable[[], Any]], np.ndarray]:
    """The ways, each a callable returning its counts (or None: no binning), and
    numpy.histogram's counts."""
    import duckdb

    from panels_core.data.table import Table
    from panels_core.query.engine import Engine
    from panels_core.query.model import Query

    con = duckdb.connect(":memory:", config={"threads": 2})
    con.read_parquet(path).project("x").create_view("t")
    ((lo, hi),) = con.execute("SELECT min(x), max(x) FROM t").fetchall()
    e = np.linspace(lo, hi, BINS + 1)
    expected = np.histogram(con.execute("SELECT x FROM t").fetchnumpy()["x"], bins=e)[0]
    engine = Engine({"t": Table.from_parquet(path)})
    step = (hi - lo) / BINS
    bound = {"lo": lo, "span": hi - lo, "n": BINS}
    estimate = "floor((x - $lo) / $span * $n)"
    nearest = {"lo": lo, "step": step, "a": 1 / step, "c": -lo / step}
    numpy_steps = {"lo": lo, "top": hi, "span": hi - lo, "n": BINS, "last": BINS - 1}
    numpy_steps["e"] = e.tolist()
    pool = ThreadPoolExecutor(2)

    def sql(
        statement: str, params: dict[str, Any], bins: Callable[[Any], Any] | None = None
    ) -> Any:
        def run() -> Any:
            rows = con.execute(statement, params).fetchall()
            return None if bins is None else bins(rows)

        return run

    def by_key(rows: list[tuple[Any, ...]]) -> np.ndarray:
        counts = np.zeros(BINS + 1, np.int64)
        for b, c, *_ in rows:
            counts[int(b)] += c
        counts[BINS - 1] += counts[BINS]
        return counts[:BINS]

    def batches(fn: Callable[[np.ndarray, np.ndarray], Any]) -> Callable[[], Any]:
        def run() -> Any:
            reader = con.sql("SELECT x FROM t").to_arrow_reader(1 << 18)
            parts = [pool.submit(fn, b.column(0).to_numpy(), e) for b in reader]
            answers = [p.result() for p in parts]
            return None if answers[0] is None else sum(answers)

        return run

    def cold_engine() -> np.ndarray:
        engine.clear_cache()
        return engine.histogram(Query(table="t"), "x", bins=BINS).counts

    out: dict[str, Callable[[], Any]] = {
        "floor": sql("SELECT sum(x) FROM t", {}),
        "engine": cold_engine,
        "engine's SQL": sql(
            "SELECT 2 * k - CAST(x < k * $step + $lo AS DOUBLE) AS b, count(*) "
            "FROM (SELECT x, round(x * $a + $c) AS k FROM t) GROUP BY b",
            nearest,
            lambda rows: by_key([(b // 2, c) for b, c in rows]),
        ),
        "estimate + per-bin min/max": sql(
            f"SELECT {estimate} AS b, count(*), min(x), max(x) FROM t GROUP BY b", bound
        ),
        "numpy's steps inline": sql(
            "SELECT j - CAST(x < $e[j + 1] AS BIGINT) "
            "+ CAST(j < $last AND x >= $e[j + 2] AS BIGINT) AS b, count(*) FROM "
            "(SELECT x, least(CAST(trunc((x - $lo) / $span * $n) AS BIGINT), $last) AS j "
            "FROM t WHERE x >= $lo AND x <= $top) GROUP BY b",
            numpy_steps,
            by_key,
        ),
        "GROUP BY bin, count only": sql(
            f"SELECT {estimate} AS b, count(*) FROM t GROUP BY b", bound, by_key
        ),
        "perfect-hash UTINYINT key": sql(
            f"SELECT CAST({estimate} AS UTINYINT) AS b, count(*) FROM t GROUP BY b", bound, by_key
        ),
        "histogram(x, edges)": sql("SELECT histogram(x, $e) FROM t", {"e": e[1:].tolist()}),
        "list(x)": sql("SELECT len(list(x)) FROM t", {}),
        "x as Arrow": batches(lambda x, e: None),
        "Arrow + numpy": batches(numpy_bins),
    }
    try:
        import polars as pl

        out["polars hist"] = lambda: (
            pl.scan_parquet(path).select(pl.col("x").hist(bin_count=BINS)).collect()
        )
    except ImportError:
        pass
    if numba:
        out["numba kernel"] = batches(_numba_kernel())
    return out, expected


def _numba_kernel() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A compiled binning loop (numpy's estimate and correction per value); prints what
    loading numba and compiling it cost this process."""
    before, start = rss_mib(), time.perf_counter()
    import numba

    @numba.njit(nogil=True)
    def kernel(x: np.ndarray, e: np.ndarray, counts: np.ndarray) -> None:
        n = e.size - 1
        for v in x:
            i = min(int((v - e[0]) / (e[n] - e[0]) * n), n - 1)
            if v < e[i]:
                i -= 1
            elif i != n - 1 and v >= e[i + 1]:
                i += 1
            counts[i] += 1

    def bins(x: np.ndarray, e: np.ndarray) -> np.ndarray:
        counts = np.zeros(len(e) - 1, np.int64)
        kernel(x, e, counts)
        return counts

    bins(np.zeros(1), np.linspace(0.0, 1.0, 3))
    print(
        f"numba: import + compile {time.perf_counter() - start:.1f} s, "
        f"resident memory +{rss_mib() - before:.0f} MiB"
    )
    return bins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--numba", action="store_true", help="also a numba kernel (loads numba)")
    args = parser.parse_args()
    path = str(generate(args.rows)[0])
    chosen, expected = ways(path, args.numba)
    times: dict[str, list[float]] = {name: [] for name in chosen}
    cpu: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(args.rounds):
        for name, run in chosen.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            counts = run()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            if isinstance(counts, np.ndarray) and not np.array_equal(counts, expected):
                print(f"WARNING: {name} counts differ from numpy.histogram's")
    wall = {name: statistics.median(seconds) for name, seconds in times.items()}
    used = {name: statistics.median(seconds) for name, seconds in cpu.items()}
    print(f"\n{args.rows:,} rows, {BINS} bins: medians over {args.rounds} interleaved rounds")
    print("| way | wall s | wall / engine | wall / floor | CPU s | CPU / engine | CPU / floor |")
    print("|---|---|---|---|---|---|---|")
    for name in chosen:
        print(
            f"| {name} | {wall[name]:.4f} | {wall[name] / wall['engine']:.2f}x "
            f"| {wall[name] / wall['floor']:.2f}x | {used[name]:.4f} "
            f"| {used[name] / used['engine']:.2f}x | {used[name] / used['floor']:.2f}x |"
        )


if __name__ == "__main__":
    main()
