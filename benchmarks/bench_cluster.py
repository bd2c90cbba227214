"""The engine on a Dask LocalCluster (2 workers) vs the local DuckDB engine, on a dataset.

Run: ``.venv/bin/python benchmarks/bench_cluster.py [--rows N ...] [--repeat R]``
(default: 10M and 30M rows; ``--rows 100000000`` for 100M; ``--ops compare --ops join:``
runs only the operations whose names hold one of those words, after the first calls).

The dataset (Hive partitions ``split=train|test``, files of 1M rows) is written
once, one file at a time with pyarrow (never the whole dataset in memory), and
cached under ``benchmarks/data/``. Each operation runs on the local engine and on
the cluster engine over the same files, each with an emptied answer cache:
seconds (median of ``--repeat``), rows per second, and the ratio; the first call
(a filtered count, which opens each file's engine on the workers) is timed apart, and so is
a comparison's first call (on the cluster it co-partitions both tables on the key and keeps
them on the workers; the next calls of that comparison use them). The local side
runs in a subprocess of its own, so its peak memory is its own; each worker's peak
(``VmHWM``) is read with ``client.run``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from timing import median_seconds, peak_mib

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
FILE_ROWS = 1_000_000
CATEGORIES = [f"class_{i:02d}" for i in range(20)]
FIRST = "first call (opens)"
FIRST_COMPARE = "compare: first (shuffle)"


def folder(rows: int) -> Path:
    return DATA / f"cluster_{rows}"


def generate(rows: int) -> Path:
    """The cached dataset of ``rows`` rows (written once, a file at a time)."""
    out = folder(rows)
    if (out / "_COMPLETE").exists():  # `_` files are not part of a dataset
        return out
    rng = np.random.default_rng(0)
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        ids = np.arange(start, start + n, dtype=np.int64)
        y = rng.uniform(0, 100, n)
        table = pa.table(
            {
                "id": ids,
                "x": rng.normal(0, 1, n),
                "y": pa.array(np.round(y, 1), mask=rng.random(n) < 0.01),
                "category": pa.array(np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), n)]),
            }
        )
        split = "test" if i % 5 == 0 else "train"
        part = out / f"split={split}" / f"part-{i:04d}.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, part, row_group_size=250_000)
    (out / "_COMPLETE").touch()
    return out


def operations() -> dict[str, Any]:
    """Name -> a call on an engine (the dataset is the table ``t``)."""
    from panels_core.query.model import CompareWith, JoinSpec, Query, SortKey
    from panels_core.query.parse import parse_filter

    changed = parse_filter("0.y != 1.y")
    compared_sorted = Query(
        table="t",
        compare_with=CompareWith(table="u", on="id"),
        sort=(SortKey(column="1.x", descending=True),),
    )
    joined_sorted = Query(
        table="t",
        join=JoinSpec(table="u", on="id"),
        filter=parse_filter("t.category == 'class_03'"),
        sort=(SortKey(column="u.y"),),
    )
    filtered = Query(
        table="t",
        filter=parse_filter("x > 0.5 and category == 'class_03'"),
        sort=(SortKey(column="y", descending=True),),
    )
    compared = Query(table="t", compare_with=CompareWith(table="u", on="id"))
    return {
        "count": lambda e: e.count(Query(table="t")),
        "histogram": lambda e: e.histogram(Query(table="t"), "x", bins=50),
        "filtered+sorted page": lambda e: e.page(filtered, 1000, 50),
        "value counts": lambda e: e.value_counts(Query(table="t"), "category", top=10),
        "grouped histogram": lambda e: e.histogram(Query(table="t"), "x", bins=50, by="category"),
        "groups (grouped)": lambda e: e.grouped(Query(table="t", group_by=("category",))),
        "join counts on id": lambda e: e.join_counts(
            Query(table="t", join=JoinSpec(table="u", on="id"))
        ),
        "compare: count": lambda e: e.count(compared.model_copy(update={"filter": changed})),
        "compare: sorted page": lambda e: e.page(compared_sorted, 1000, 50),
        "compare: histogram": lambda e: e.histogram(compared, "x", bins=50),
        "join: sorted page": lambda e: e.page(joined_sorted, 1000, 50),
    }


def run_side(rows: int, side: str, repeat: int, ops: list[str] | None) -> dict[str, Any]:
    """Seconds per operation on one side (``local``, or ``cluster`` on 2 workers)."""
    from panels_core.data.table import Table
    from panels_core.query.engine import Engine
    from panels_core.query.model import CompareWith, Query
    from panels_core.query.parse import parse_filter

    table = Table.from_parquet_dataset(folder(rows))
    tables = {"t": table, "u": table}
    out: dict[str, Any] = {"seconds": {}}
    client = cluster = None
    if side == "cluster":
        import distributed

        from panels_core.query.cluster import local_cluster

        cluster = local_cluster(2)  # as `--cluster local:2` starts it
        client = distributed.Client(cluster)
    engine = Engine(tables, cluster=client)
    start = time.perf_counter()  # the first call opens the files (on each worker)
    engine.count(Query(table="t", filter=parse_filter("x > 0")))
    out["seconds"][FIRST] = time.perf_counter() - start
    if ops is None or FIRST_COMPARE in ops:  # the cluster's first comparison shuffles both
        start = time.perf_counter()
        engine.count(Query(table="t", compare_with=CompareWith(table="u", on="id")))
        out["seconds"][FIRST_COMPARE] = time.perf_counter() - start
    for name, op in operations().items():
        if ops is not None and name not in ops:
            continue
        out["seconds"][name] = median_seconds(lambda op=op: op(engine), repeat, engine.clear_cache)
    out["peak_mib"] = {"client" if client else "local": round(peak_mib())}
    if client is not None:
        peaks = client.run(peak_mib)
        out["peak_mib"].update({f"worker {i}": round(v) for i, v in enumerate(peaks.values())})
        client.close()
        cluster.close()
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--ops",
        nargs="+",
        choices=[FIRST_COMPARE, *operations()],
        help="only these operations (the first call is always timed)",
    )
    parser.add_argument("--side", choices=["local", "cluster"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:  # one side, in its own process
        print(json.dumps(run_side(args.rows[0], args.side, args.repeat, args.ops)))
        return 0
    for rows in args.rows or [10_000_000, 30_000_000]:
        generate(rows)
        sides = {}
        for side in ("local", "cluster"):
            command = [sys.executable, __file__, "--rows", str(rows), "--side", side]
            command += ["--ops", *args.ops] if args.ops else []
            done = subprocess.run(
                [*command, "--repeat", str(args.repeat)], capture_output=True, text=True, check=True
            )
            sides[side] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"\n{rows:,} rows in {len(list(folder(rows).rglob('*.parquet')))} files")
        print(f"{'operation':<26}{'local s':>9}{'cluster s':>11}{'ratio':>8}{'cluster rows/s':>16}")
        for name in [
            n for n in [FIRST, FIRST_COMPARE, *operations()] if n in sides["local"]["seconds"]
        ]:
            local, remote = sides["local"]["seconds"][name], sides["cluster"]["seconds"][name]
            print(
                f"{name:<26}{local:>9.2f}{remote:>11.2f}{remote / local:>8.2f}"
                f"{rows / remote:>16,.0f}"
            )
        peaks = {**sides["local"]["peak_mib"], **sides["cluster"]["peak_mib"]}
        print("peak MiB: " + ", ".join(f"{k} {v}" for k, v in peaks.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
