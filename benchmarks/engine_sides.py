"""The five 10M-row operations as the engine, idiomatic polars and bare DuckDB run them.

Each side is one function per operation returning a callable that does the
operation once (its answer, so the sides can be checked against each other).
``run_side`` runs one (side, operation) in the calling process: a first untimed
run (the OS file cache, DuckDB's buffers, polars' thread pool, the engine's merge
kernels warm), then ``repeat`` timed runs (ten times as many for open + type, which
takes milliseconds; the engine's answer cache emptied before each: cold figures),
and reports the median, the process's resident memory after opening the tables
(after importing the side's libraries, reading the files' schemas and counting
rows: before any comparison) and the peak (``VmHWM``) of the timed runs above the
memory they start from (the first run's one-off loads, such as the engine's merge
kernels, left out). ``bench_engine.py`` starts one
process per (rows, operation, side, round), so every peak belongs to one
operation of one side.

The DuckDB side is the floor: a bare scan of the columns the operation reads
(one aggregate over them), on one connection kept for the process.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timing import median_seconds, peak_mib

OPS = ("open + type", "page", "histogram", "grouped histogram", "compare")
"""The operations, as ``bench_engine.py`` names them."""
LABELS = {
    "open + type": "open + type (after the first table)",
    "page": "filter + sort + page of 50",
    "histogram": "histogram of x, 50 bins",
    "grouped histogram": "group by category, histogram of x per group",
    "compare": "compare 2 versions on id (count + page)",
}
BINS = 50
OPEN_RUNS = 10  # open + type takes milliseconds: ten times the runs, for a steadier median
CATEGORY = "class_03"


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024  # type: ignore[union-attr]


# ----------------------------------------------------------------- the engine


def engine_ops(v1: Path, v2: Path) -> tuple[dict[str, Callable[[], Any]], Callable[[], Any]]:
    """The engine's operations, and what to run before each timed run (empty its cache)."""
    from panels_core.data.table import Table
    from panels_core.query.engine import Engine
    from panels_core.query.model import Query

    engine = Engine({"t": Table.from_parquet(v1), "t2": Table.from_parquet(v2)})
    engine.count(Query(table="t"))
    page_q = Query(table="t", filter=f"x > 0.5 and category == '{CATEGORY}'", sort=["-y"])
    compare_q = Query(
        table="t",
        compare_with={"table": "t2", "on": "id"},
        filter="0.present and 1.present and abs(0.x - 1.x) > 0.1",
        sort=["id"],
    )

    def open_type() -> Any:
        table = Table.from_parquet(v1)
        return Engine({"t": table}).result_type(Query(table="t"))

    def histogram() -> Any:
        return engine.histogram(Query(table="t"), "x", bins=BINS).counts.tolist()

    def grouped() -> Any:
        h = engine.histogram(Query(table="t", group_by=["category"]), "x", bins=BINS)
        return sorted(zip(h.groups, h.counts.sum(axis=1).tolist()))  # in one order

    def compare() -> Any:
        return engine.count(compare_q), engine.page(compare_q, limit=50).column("id").to_pylist()

    ops = {
        "open + type": open_type,
        "page": lambda: engine.page(page_q, limit=50).column("id").to_pylist(),
        "histogram": histogram,
        "grouped histogram": grouped,
        "compare": compare,
    }
    return ops, engine.clear_cache


# ----------------------------------------------------------------- polars


def polars_ops(v1: Path, v2: Path) -> tuple[dict[str, Callable[[], Any]], None]:
    """Idiomatic lazy polars (``scan_parquet ... collect``) for each operation.

    The histogram is run both ways (``hist(bin_count=)``, and min/max then a
    floor + group_by over the same edges); ``histogram`` is the faster of them,
    the other is reported beside it."""
    import polars as pl

    p1, p2 = str(v1), str(v2)
    pl.scan_parquet(p1).collect_schema()

    def page() -> Any:
        kept = pl.scan_parquet(p1).filter((pl.col("x") > 0.5) & (pl.col("category") == CATEGORY))
        rows = kept.sort("y", descending=True, nulls_last=True, maintain_order=True).head(50)
        return rows.collect()["id"].to_list()

    def hist() -> Any:
        return pl.scan_parquet(p1).select(pl.col("x").hist(bin_count=BINS)).collect()

    def binned(keys: list[str]) -> Any:
        scan = pl.scan_parquet(p1).filter(pl.col("x").is_finite())
        lo, hi = (
            scan.select(pl.col("x").min().alias("lo"), pl.col("x").max().alias("hi"))
            .collect()
            .row(0)
        )
        b = ((pl.col("x") - lo) / (hi - lo) * BINS).floor().cast(pl.Int32).clip(0, BINS - 1)
        return scan.group_by([*keys, b.alias("b")]).len().collect()

    def cut() -> Any:
        return binned([])

    def grouped() -> Any:
        counts = binned(["category"]).group_by("category").agg(pl.col("len").sum())
        return sorted(counts.iter_rows())  # group_by gives no order

    def compare() -> Any:
        joined = pl.scan_parquet(p1).join(pl.scan_parquet(p2), on="id", how="inner")
        kept = joined.filter((pl.col("x") - pl.col("x_right")).abs() > 0.1)
        count, first = pl.collect_all([kept.select(pl.len()), kept.sort("id").head(50)])
        return count.item(), first["id"].to_list()

    ops = {
        "open + type": lambda: pl.scan_parquet(p1).collect_schema(),
        "page": page,
        "histogram": hist,
        "histogram (floor + group_by)": cut,
        "grouped histogram": grouped,
        "compare": compare,
    }
    return ops, None


# ----------------------------------------------------------------- the floor


def floor_ops(v1: Path, v2: Path) -> tuple[dict[str, Callable[[], Any]], None]:
    """Bare DuckDB: one scan of the columns each operation reads (its floor)."""
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": 2})
    a, b = str(v1), str(v2)

    def scan(sql: str, **files: str) -> Callable[[], Any]:
        return lambda: con.execute(sql, files).fetchall()

    con.execute("SELECT count(*) FROM read_parquet($a)", {"a": a}).fetchall()
    ops = {
        "open + type": scan("DESCRIBE SELECT * FROM read_parquet($a)", a=a),
        "page": scan(
            f"SELECT max(y) FROM read_parquet($a) WHERE x > 0.5 AND category = '{CATEGORY}'", a=a
        ),
        "histogram": scan("SELECT sum(x) FROM read_parquet($a)", a=a),
        "grouped histogram": scan("SELECT max(category), sum(x) FROM read_parquet($a)", a=a),
        "compare": scan(
            "SELECT (SELECT sum(id) + sum(x) FROM read_parquet($a)), "
            "(SELECT sum(id) + sum(x) FROM read_parquet($b))",
            a=a,
            b=b,
        ),
    }
    return ops, None


SIDES = {"engine": engine_ops, "polars": polars_ops, "duckdb": floor_ops}


def run_side(side: str, op: str, v1: Path, v2: Path, repeat: int) -> dict[str, Any]:
    """One side's operation ``op`` (and its variants, for polars' histogram) in this process."""
    ops, before = SIDES[side](v1, v2)
    chosen = {name: fn for name, fn in ops.items() if name == op or name.startswith(f"{op} (")}
    out: dict[str, Any] = {"rss_before": rss_mib()}
    for name, fn in chosen.items():
        start = time.perf_counter()
        answer = fn()  # untimed: caches, buffers and kernels warm
        out[f"first:{name}"] = time.perf_counter() - start
        if name == op:
            out["answer"] = repr(answer)
    # the peak counts from here: the timed runs' working memory, not the first run's
    # one-off loads (the engine's merge kernels: numba's runtime)
    out["peak_before"] = reset_peak()
    runs = repeat * OPEN_RUNS if op == "open + type" else repeat
    for name, fn in chosen.items():
        out[f"seconds:{name}"] = median_seconds(fn, runs, before=before)
    out["peak"] = peak_mib()
    return out


def reset_peak() -> float:
    """Start this process's peak resident memory (``VmHWM``) again from now (Linux's
    ``clear_refs``); the resident memory now, in MiB."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return rss_mib()


if __name__ == "__main__":
    # a process of its own per (side, operation): only this side's libraries are loaded
    side, op, first, second, repeat = sys.argv[1:6]
    print(json.dumps(run_side(side, op, Path(first), Path(second), int(repeat))))
