"""The engine beside idiomatic polars and bare DuckDB (the floor), at 1M, 10M and 30M rows.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--rows N ...] [--rounds R] [--repeat K]``;
``--pandas`` runs the older table against pandas instead (one size, ``--rows N``).

Side by side (the default): every operation of ``engine_sides.OPS`` runs in a process
of its own per side and round (sides in a rotating order within each round, so the
load of the shared machine falls on all of them alike); each process reports the
median of ``--repeat`` cold runs, its memory before the operation and its peak. The
table prints, per row count, the median over the rounds of each side's time, the
ratios (polars / engine: above 1 the engine is faster; engine / floor: at most 2 is
the target) with their spread over the rounds, and then the engine's seconds per
million rows at each size with the growth from the second-largest to the largest
size against linear (1.00 = linear), the engine's working memory per operation at
each size (the peak of its timed runs above the memory they start from), and the
resident memory of each side's process after opening the file and counting its rows
(before any comparison).

The pandas table:

The data (two versions of one table, ``id`` shared) is generated once and
cached under ``benchmarks/data/``. Each side runs in its own subprocess so the
peak resident memory (``VmHWM``, counted from the side's own start) belongs to
that side alone. pandas is measured twice: reading the needed columns of the
same Parquet file and then doing the operation (the like-for-like case: the
engine reads the file too),
and doing the operation on a DataFrame already in memory. The engine is
measured cold (its answer cache emptied before each run) and warm (the same
call again, answered from the cache where the engine keeps the answer), in
separate, labelled rows; the ratios of both are against the same pandas runs.
A last subprocess times plain DuckDB on the core of some operations (one scan
of the histogram's column, the page's filter scan, the scan of both files'
key and compared column): the floors the cold engine rows cannot go below;
DuckDB's bare hash join of the comparison is printed beside them. A last
line times the comparison under a new filter each run on the same engine (as when
a user edits the filter), merged against the hash join.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from engine_sides import LABELS, OPS
from timing import median_seconds, peak_mib

DATA = Path(__file__).resolve().parent / "data"
SIDES = Path(__file__).resolve().parent / "engine_sides.py"
CATEGORIES = [f"class_{i:02d}" for i in range(20)]
FILTER = "x > 0.5 and category == 'class_03'"
COMPARE_FILTER = "0.present and 1.present and abs(0.x - 1.x) > 0.1"


def paths(rows: int) -> tuple[Path, Path]:
    """The cached Parquet files (version 1 and 2) for ``rows`` rows."""
    return DATA / f"engine_{rows}_v1.parquet", DATA / f"engine_{rows}_v2.parquet"


def generate(rows: int) -> tuple[Path, Path]:
    """Write the two versions once; reuse them afterwards."""
    v1, v2 = paths(rows)
    if v1.exists() and v2.exists():
        return v1, v2
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = np.arange(rows, dtype=np.int64)
    y = rng.uniform(0, 100, rows)
    y_null = rng.random(rows) < 0.01
    table = pa.table(
        {
            "id": ids,
            "x": rng.normal(0, 1, rows),
            "y": pa.array(y, mask=y_null),
            "z": rng.integers(0, 1000, rows),
            "category": pa.array(np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), rows)]),
            "text": pc.binary_join_element_wise(
                "item-", pc.cast(pa.array(ids * 7919 % rows), pa.string()), ""
            ),
        }
    )
    pq.write_table(table, v1, row_group_size=1_000_000)
    keep = rng.random(rows) >= 0.01  # 1% of rows dropped in version 2
    changed = rng.random(rows) < 0.10  # 10% of x values changed
    x2 = np.where(
        changed, table.column("x").to_numpy() + rng.normal(0, 1, rows), table.column("x").to_numpy()
    )
    second = table.set_column(1, "x", pa.array(x2)).filter(pa.array(keep))
    extra = rows // 100  # 1% new rows
    new_rows = table.slice(0, extra).set_column(0, "id", pa.array(np.arange(rows, rows + extra)))
    pq.write_table(pa.concat_tables([second, new_rows]), v2, row_group_size=1_000_000)
    return v1, v2


def run_engine(v1: Path, v2: Path, repeat: int) -> dict[str, float]:
    from panels_core.data.table import Table
    from panels_core.query.engine import Engine
    from panels_core.query.model import Query

    def open_type() -> Any:
        table = Table.from_parquet(v1)
        return Engine({"t": table}).result_type(Query(table="t"))

    from panels_core.query.engine.pairing import warm_up

    engine = Engine({"t": Table.from_parquet(v1), "t2": Table.from_parquet(v2)})
    warm_up()
    # the process before any query: Python, pyarrow, DuckDB, the two registrations and
    # the comparison's merge kernels (numba's runtime: a fixed cost, not the data's)
    base_rss = peak_mib()
    page_q = Query(table="t", filter=FILTER, sort=["-y"])
    group_q = Query(table="t", group_by=["category"])
    compare_q = Query(
        table="t", compare_with={"table": "t2", "on": "id"}, filter=COMPARE_FILTER, sort=["id"]
    )

    def compare() -> Any:
        return engine.count(compare_q), engine.page(compare_q, limit=50)

    ops: dict[str, Callable[[], Any]] = {
        "filter + sort + page of 50": lambda: engine.page(page_q, limit=50),
        "histogram, 50 bins": lambda: engine.histogram(Query(table="t"), "x", bins=50),
        "group by category, histogram of x per group": lambda: engine.histogram(
            group_q, "x", bins=50
        ),
        "group by category, grouped() (4 numeric cols)": lambda: engine.grouped(group_q, bins=50),
        "compare 2 versions on id (count + page)": compare,
    }
    # cold: the engine's answer cache is emptied before every run (only the OS file
    # cache and DuckDB's own buffers are warm); warm: the same call again, as when a
    # card is drawn again, answered from the cache where the engine keeps the answer
    out = {"open + type": median_seconds(open_type, repeat)}
    peaks = {}  # the process's peak RSS after each step: where the peak is reached
    for name, fn in ops.items():
        out[name] = median_seconds(fn, repeat, before=engine.clear_cache)
        peaks[name] = peak_mib()
    out["_peaks"] = peaks
    for name, fn in ops.items():
        fn()
        out[f"warm: {name}"] = median_seconds(fn, repeat)
    peaks["warm runs"] = peak_mib()
    out.update(refilter(engine, repeat, peaks))
    # the answers, so the two sides can be checked against each other
    out["_check_page_ids"] = engine.page(page_q, limit=5).column("id").to_pylist()
    out["_check_compare"] = engine.count(compare_q)
    out["_base_rss_mb"] = base_rss
    return out


def refilter(engine: Any, repeat: int, peaks: dict[str, float]) -> dict[str, float]:
    """Count + page of the comparison under a new filter each run on the same engine (as
    when a user edits the filter of a compared table; the merge streams the two files
    again each time), then the same with the merge switched off (DuckDB's hash join)."""
    import panels_core.query.engine.merge as engine_module
    from panels_core.query.model import Query

    thresholds = iter(np.linspace(0.2, 0.9, 4 * repeat + 2))

    def run() -> None:
        query = Query(
            table="t",
            compare_with={"table": "t2", "on": "id"},
            filter=f"0.present and 1.present and abs(0.x - 1.x) > {next(thresholds):.4f}",
            sort=["id"],
        )
        engine.count(query)
        engine.page(query, limit=50)

    engine.clear_cache()
    run()  # the first run's one-off loads
    out = {"_refilter": median_seconds(run, repeat)}
    peaks["new filters"] = peak_mib()
    kept = engine_module.PAIR_MIN_ROWS
    engine_module.PAIR_MIN_ROWS = sys.maxsize
    try:
        out["_refilter_hash"] = median_seconds(run, repeat)
    finally:
        engine_module.PAIR_MIN_ROWS = kept
    peaks["new filters, hash join"] = peak_mib()
    return out


def duckdb_floors(v1: Path, v2: Path, repeat: int) -> dict[str, float]:
    """What plain DuckDB takes for the core of some operations: what the engine cannot beat.

    The histogram's floor is one scan summing the column; the page's is the scan
    of its filter and sort columns; the comparison's is one scan of the key and
    the compared column of both files. ``_hash join`` is DuckDB's own answer to
    the comparison (the bare join with its filter, no positions, no first page).
    """
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": 2})
    p1, p2 = str(v1), str(v2)
    queries = {
        "histogram, 50 bins": ("SELECT sum(x) FROM read_parquet($a)", {"a": p1}),
        "filter + sort + page of 50": (
            "SELECT max(y) FROM read_parquet($a) WHERE x > 0.5 AND category = 'class_03'",
            {"a": p1},
        ),
        "compare 2 versions on id (count + page)": (
            "SELECT (SELECT sum(id) + sum(x) FROM read_parquet($a)), "
            "(SELECT sum(id) + sum(x) FROM read_parquet($b))",
            {"a": p1, "b": p2},
        ),
        "_hash join": (
            "SELECT count(*) FROM read_parquet($a) AS l JOIN read_parquet($b) AS r "
            "ON l.id = r.id WHERE abs(l.x - r.x) > 0.1",
            {"a": p1, "b": p2},
        ),
    }
    return {
        name: median_seconds(lambda q=sql, p=params: con.execute(q, p).fetchall(), repeat)
        for name, (sql, params) in queries.items()
    }


def run_pandas(v1: Path, v2: Path, repeat: int, preloaded: bool) -> dict[str, float]:
    import pandas as pd

    cache: dict[tuple[str, tuple[str, ...] | None], Any] = {}

    def read(path: Path, columns: list[str] | None = None) -> Any:
        if preloaded:
            if (str(path), None) not in cache:
                cache[(str(path), None)] = pd.read_parquet(path)
            df = cache[(str(path), None)]
            return df if columns is None else df[columns]
        return pd.read_parquet(path, columns=columns)

    def open_type() -> Any:
        df = pd.read_parquet(v1)
        return df.dtypes

    def page() -> Any:
        df = read(v1)
        kept = df[(df["x"] > 0.5) & (df["category"] == "class_03")]
        return kept.sort_values("y", ascending=False, na_position="last", kind="stable").head(50)

    def hist() -> Any:
        x = read(v1, ["x"])["x"].to_numpy()
        return np.histogram(x[np.isfinite(x)], bins=50)

    def grouped_one() -> Any:
        df = read(v1, ["category", "x"])
        x = df["x"].to_numpy()
        finite = np.isfinite(x)
        edges = np.histogram_bin_edges(x[finite], bins=50)
        return (
            df[finite]
            .groupby("category")["x"]
            .apply(lambda s: np.histogram(s.to_numpy(), bins=edges)[0])
        )

    def grouped() -> Any:
        df = read(v1)
        result = {}
        for col in ("id", "x", "y", "z"):
            values = df[col].to_numpy(dtype=float, na_value=np.nan)
            finite = np.isfinite(values)
            edges = np.histogram_bin_edges(values[finite], bins=50)
            result[col] = (
                df[finite]
                .groupby("category")[col]
                .apply(lambda s, e=edges: np.histogram(s.to_numpy(dtype=float), bins=e)[0])
            )
        result["text"] = df.groupby("category")["text"].head(100)
        return result

    def compare() -> Any:
        a, b = read(v1), read(v2)
        merged = a.merge(b, on="id", how="outer", suffixes=("_0", "_1"), indicator=True)
        both = merged[merged["_merge"] == "both"]
        kept = both[(both["x_0"] - both["x_1"]).abs() > 0.1]
        return len(kept), kept.sort_values("id", kind="stable").head(50)

    if preloaded:
        read(v1)
        read(v2)
    out = {
        "open + type": median_seconds(open_type, repeat),
        "filter + sort + page of 50": median_seconds(page, repeat),
        "histogram, 50 bins": median_seconds(hist, repeat),
        "group by category, histogram of x per group": median_seconds(grouped_one, repeat),
        "group by category, grouped() (4 numeric cols)": median_seconds(grouped, repeat),
        "compare 2 versions on id (count + page)": median_seconds(compare, repeat),
    }
    out["_check_page_ids"] = page()["id"].head(5).tolist()
    out["_check_compare"] = compare()[0]
    if preloaded:
        out["_table_bytes"] = int(read(v1).memory_usage(deep=True).sum())
    return out


def _side(argv: list[str]) -> None:
    side, v1, v2, repeat = argv[0], Path(argv[1]), Path(argv[2]), int(argv[3])
    if side == "engine":
        result: dict[str, Any] = run_engine(v1, v2, repeat)
    elif side == "floors":  # a process of its own: the bare join's memory is not the engine's
        result = duckdb_floors(v1, v2, repeat)
    else:
        result = run_pandas(v1, v2, repeat, preloaded=side == "pandas-memory")
    result["_maxrss_mb"] = peak_mib()
    print(json.dumps(result))


def _run_side(side: str, v1: Path, v2: Path, repeat: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--side", side, str(v1), str(v2), str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 30_000_000])
    parser.add_argument("--rounds", type=int, default=3, help="rotated rounds (median of them)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per process (median)")
    parser.add_argument(
        "--polars-max-rows", type=int, default=10_000_000, help="polars only up to this size"
    )
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS), help="these only")
    parser.add_argument("--pandas", action="store_true", help="the pandas table instead")
    parser.add_argument("--pandas-repeat", type=int, default=3)
    parser.add_argument("--side", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        _side(args.side)
    elif args.pandas:
        pandas_table(args.rows[0], args.repeat, args.pandas_repeat)
    else:
        side_by_side(args.rows, args.rounds, args.repeat, args.polars_max_rows, args.ops)


def _op_side(side: str, op: str, v1: Path, v2: Path, repeat: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(SIDES), side, op, str(v1), str(v2), str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _spread(values: list[float]) -> str:
    """The median of ``values`` and their range, as ``1.23x (1.1-1.4)``."""
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def side_by_side(
    sizes: list[int], rounds: int, repeat: int, polars_max: int, ops: list[str]
) -> None:
    """Every operation per side, size and round in a process of its own: each round
    runs every size, so the sizes see the same load, and rotates the sides."""
    runs: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    files = {rows: generate(rows) for rows in sizes}
    sides = {
        rows: ["engine", "duckdb", *(["polars"] if rows <= polars_max else [])] for rows in sizes
    }
    for r in range(rounds):
        for rows, (v1, v2) in files.items():
            for op in ops:
                for side in (
                    sides[rows][r % len(sides[rows]) :] + sides[rows][: r % len(sides[rows])]
                ):
                    runs.setdefault((rows, op, side), []).append(_op_side(side, op, v1, v2, repeat))
    for rows in sizes:
        _print_size(rows, sides[rows], runs, rounds, repeat, ops)
    _print_growth(sizes, runs, ops)
    _print_memory(sizes, runs, ops)


def _seconds(run: dict[str, Any], op: str) -> float:
    return run[f"seconds:{op}"]


def _print_size(
    rows: int, sides: list[str], runs: dict[Any, Any], rounds: int, repeat: int, ops: list[str]
) -> None:
    print(
        f"\n{rows:,} rows: seconds, median over {rounds} rounds of the median of {repeat} "
        "cold runs; ratios: median (range over the rounds)"
    )
    print("| operation | engine s | polars s | polars / engine | floor s | engine / floor |")
    print("|---|---|---|---|---|---|")
    for op in ops:
        mine = [_seconds(run, op) for run in runs[rows, op, "engine"]]
        floor = [_seconds(run, op) for run in runs[rows, op, "duckdb"]]
        cells = [f"{statistics.median(mine):.4f}", "-", "-"]
        if "polars" in sides:
            theirs = runs[rows, op, "polars"]
            variants = [k.removeprefix("seconds:") for k in theirs[0] if k.startswith("seconds:")]
            # per round, polars' fastest idiom (for the histogram: hist or floor + group_by)
            best = [min(_seconds(run, v) for v in variants) for run in theirs]
            cells[1:] = [
                f"{statistics.median(best):.4f}",
                _spread([b / m for b, m in zip(best, mine)]),
            ]
            if len(variants) > 1:
                each = ", ".join(
                    f"{v}: {statistics.median(_seconds(run, v) for run in theirs):.4f} s"
                    for v in variants
                )
                print(f"| ({op}: polars {each}) | | | | | |")
        cells += [f"{statistics.median(floor):.4f}", _spread([m / f for m, f in zip(mine, floor)])]
        print(f"| {LABELS[op]} | {' | '.join(cells)} |")
    checked = [op for op in ("page", "grouped histogram", "compare") if op in ops]
    answers = {side: [runs[rows, op, side][0].get("answer") for op in checked] for side in sides}
    if "polars" in sides and answers["engine"] != answers["polars"]:
        print("WARNING: the engine's and polars' answers differ (page, grouped or comparison)")
    rss = ", ".join(
        f"{side} {statistics.median(run['rss_before'] for run in runs[rows, ops[0], side]):.0f}"
        for side in sides
    )
    print(f"process RSS after import, open and count (MiB): {rss}")
    if "compare" not in ops:
        return
    compare = runs[rows, "compare", "engine"]
    grown = statistics.median(run["peak"] - run["peak_before"] for run in compare)
    print(
        f"engine comparison: peak {grown:.0f} MiB above the process before it, "
        f"{grown / (rows / 1e6):.1f} MiB per million rows"
    )


def _print_growth(sizes: list[int], runs: dict[Any, Any], ops: list[str]) -> None:
    """Seconds per million rows; growth from the second-largest size to the largest
    against linear (1.00: linear), per round (both sizes ran in it) as median (range):
    the engine's, its floor's (what the machine did) and the engine's over its floor's."""
    if len(sizes) < 2:
        return
    big, last = sorted(sizes)[-2:]
    print(f"\nengine seconds per million rows; growth {big:,} -> {last:,} against linear")
    print(
        f"| operation | {' | '.join(f'{n / 1e6:g}M' for n in sizes)} | engine growth | "
        "floor's growth | engine / floor growth |"
    )
    print(f"|---|{'---|' * len(sizes)}---|---|---|")
    for op in ops:
        per = " | ".join(
            f"{statistics.median(_seconds(run, op) for run in runs[n, op, 'engine']) / (n / 1e6):.4f}"
            for n in sizes
        )
        grown = {
            side: [
                _seconds(a, op) / _seconds(b, op) / (last / big)
                for a, b in zip(runs[last, op, side], runs[big, op, side])
            ]
            for side in ("engine", "duckdb")
        }
        relative = [e / f for e, f in zip(grown["engine"], grown["duckdb"])]
        cells = [_spread(grown["engine"]), _spread(grown["duckdb"]), _spread(relative)]
        print(f"| {LABELS[op]} | {per} | {' | '.join(cells)} |")


def _print_memory(sizes: list[int], runs: dict[Any, Any], ops: list[str]) -> None:
    """The engine's working memory per operation and row count: the peak resident memory
    of the timed runs above the memory they start from (MiB, median over the rounds).
    Bounded means flat across the sizes, not growing with the rows."""
    print("\nengine working memory: peak MiB above the process before the timed runs")
    print(f"| operation | {' | '.join(f'{n / 1e6:g}M' for n in sizes)} |")
    print(f"|---|{'---|' * len(sizes)}")
    for op in ops:
        cells = [
            f"{statistics.median(run['peak'] - run['peak_before'] for run in runs[n, op, 'engine']):.0f}"
            for n in sizes
        ]
        print(f"| {LABELS[op]} | {' | '.join(cells)} |")


def pandas_table(rows: int, repeat: int, pandas_repeat: int) -> None:
    """The engine against pandas on one size (``--pandas``)."""
    args = argparse.Namespace(rows=rows, repeat=repeat, pandas_repeat=pandas_repeat)
    v1, v2 = generate(args.rows)
    print(
        f"engine benchmark: {args.rows:,} rows, {v1.stat().st_size / 2**20:.0f} MiB Parquet; "
        f"medians of {args.repeat} (engine) / {args.pandas_repeat} (pandas) runs"
    )
    engine = _run_side("engine", v1, v2, args.repeat)
    pandas_file = _run_side("pandas-file", v1, v2, args.pandas_repeat)
    pandas_mem = _run_side("pandas-memory", v1, v2, args.pandas_repeat)
    floors = _run_side("floors", v1, v2, args.repeat)
    for key in ("_check_page_ids", "_check_compare"):
        if not engine[key] == pandas_file[key] == pandas_mem[key]:
            print(
                f"WARNING: answers differ for {key}: {engine[key]} / {pandas_file[key]} / {pandas_mem[key]}"
            )
    header = (
        f"| {'operation':<58} | engine s | pandas (read+op) s | ratio | "
        f"pandas (in memory) s | ratio |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for op in (k for k in engine if not k.startswith("_")):
        base = op.removeprefix("warm: ")
        e, pf, pm = engine[op], pandas_file[base], pandas_mem[base]
        label = op if op.startswith("warm: ") else f"{op}{' (cold)' if op != 'open + type' else ''}"
        print(
            f"| {label:<58} | {e:8.3f} | {pf:18.3f} | {pf / e:4.1f}x | {pm:20.3f} | {pm / e:4.1f}x |"
        )
    floor_text = ", ".join(f"{op} {t:.3f} s" for op, t in floors.items() if op[0] != "_")
    print(f"plain DuckDB floors (the cold engine rows cannot go below these): {floor_text}")
    print(
        f"plain DuckDB hash join of the comparison (with its filter): {floors['_hash join']:.3f} s"
    )
    print(
        "compare, count + page under a new filter (merged): "
        f"{engine['_refilter']:.3f} s; with the hash join instead: {engine['_refilter_hash']:.3f} s"
    )
    peaks = ", ".join(f"{op.split(' (')[0]} {mb:.0f}" for op, mb in engine["_peaks"].items())
    print(f"engine peak RSS (MiB) after each step: {peaks}")
    print(
        f"peak RSS: engine {engine['_maxrss_mb']:.0f} MiB ({engine['_base_rss_mb']:.0f} MiB of it "
        "before any query, with numba's kernels loaded), pandas reading the file "
        f"{pandas_file['_maxrss_mb']:.0f} MiB, pandas in memory {pandas_mem['_maxrss_mb']:.0f} MiB; "
        f"the table in pandas takes {pandas_mem['_table_bytes'] / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
