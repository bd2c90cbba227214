"""Type inference does not scale with row count: 100k vs 10M rows, against pandas.

Run: .venv/bin/python benchmarks/bench_infer.py [--rows 10000000] [--shards 40]

For each size it times ``infer_table_type`` on an in-memory Arrow table and
``Table.from_parquet(path).type`` on a Parquet file, and as the baseline the
pandas way of deciding the same things (read the file, ``infer_dtype`` and
``nunique`` over every value). Printed: median seconds and the ratio
baseline / ours, plus ours(10M) / ours(100k), which stays near 1.

Then the same 10M rows as a Parquet dataset of ``--shards`` files, Hive partitioned
(``split=train|test/shard=NN/``): ``open_table(folder).type`` (footers and a sample of
files) against ``open_table(file).type`` on one file, and an engine histogram and a
sorted page on each, with the ratios dataset / file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from panels_core.data.sources import open_table
from panels_core.data.table import Table, infer_table_type
from panels_core.query.engine import Engine
from panels_core.query.model import Query, SortKey


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    labels = np.array([f"class_{i}" for i in range(20)])
    return pa.table(
        {
            "id": np.arange(rows),
            "score": rng.random(rows),
            "loss": rng.standard_normal(rows).astype(np.float32),
            "label": pa.array(labels[rng.integers(0, 20, rows)]),
            "name": pa.array(np.char.add("item-", np.arange(rows).astype(str))),
        }
    )


def pandas_infer(df: pd.DataFrame) -> dict[str, str]:
    """What pandas needs to tell string from category: every value scanned."""
    kinds = {}
    for name in df.columns:
        kind = pd.api.types.infer_dtype(df[name], skipna=True)
        if kind == "string":
            kind = "category" if df[name].nunique() <= 50 else "string"
        kinds[name] = kind
    return kinds


def write_shards(table: pa.Table, folder: Path, shards: int) -> None:
    """``table`` as ``shards`` files, half under split=train/, half under split=test/."""
    bounds = np.linspace(0, table.num_rows, shards + 1).astype(int)
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        out = folder / f"split={'train' if i < shards // 2 else 'test'}" / f"shard={i:03d}"
        out.mkdir(parents=True)
        pq.write_table(table.slice(start, end - start), out / "part-0.parquet")


def dataset_vs_file(table: pa.Table, folder: Path, shards: int) -> None:
    """Open+type, a histogram and a sorted page: ``shards`` files vs one file, same rows."""
    path = folder / "one.parquet"
    pq.write_table(table, path)
    write_shards(table, folder / "dataset", shards)
    sides = {"one file": path, f"{shards} files": folder / "dataset"}
    sort = Query(table="t", sort=(SortKey(column="score", descending=True),))
    times = {}
    for name, where in sides.items():
        opened = median_seconds(lambda w=where: open_table(w).type)
        engine = Engine({"t": open_table(where)}, cache_size=0)
        hist = median_seconds(lambda e=engine: e.histogram(Query(table="t"), "score", bins=50))
        page = median_seconds(lambda e=engine: e.page(sort, 0, 50), repeat=3)
        engine.close()
        times[name] = (opened, hist, page)
    print(
        f"\n{table.num_rows:,} rows: {'':>10} {'open+type':>10} {'histogram':>10} {'sorted page':>12}"
    )
    for name, (opened, hist, page) in times.items():
        print(f"{name:>22} {opened:>9.4f}s {hist:>9.3f}s {page:>11.3f}s")
    (o1, h1, p1), (o2, h2, p2) = times.values()
    print(f"{'dataset / file':>22} {o2 / o1:>9.1f}x {h2 / h1:>9.2f}x {p2 / p1:>11.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--only-dataset", action="store_true", help="only the dataset part")
    args = parser.parse_args()
    if args.only_dataset:
        with tempfile.TemporaryDirectory() as tmp:
            dataset_vs_file(make_table(args.rows), Path(tmp), args.shards)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (args.small, args.rows):
            table = make_table(rows)
            path = Path(tmp) / f"t{rows}.parquet"
            pq.write_table(table, path)
            ours_mem = median_seconds(lambda t=table: infer_table_type(t))
            ours_file = median_seconds(lambda p=path: Table.from_parquet(p).type)
            df = table.to_pandas()
            base_mem = median_seconds(lambda d=df: pandas_infer(d), repeat=1)
            base_file = median_seconds(lambda p=path: pandas_infer(pd.read_parquet(p)), repeat=1)
            results[rows] = (ours_mem, base_mem, ours_file, base_file)
            del table, df
    print(
        f"{'rows':>12} {'arrow ours':>11} {'pandas':>9} {'ratio':>7} {'parquet ours':>13} {'pandas':>9} {'ratio':>7}"
    )
    for rows, (om, bm, of, bf) in results.items():
        print(
            f"{rows:>12,} {om:>10.4f}s {bm:>8.3f}s {bm / om:>6.0f}x {of:>12.4f}s {bf:>8.3f}s {bf / of:>6.0f}x"
        )
    small, big = results[args.small], results[args.rows]
    print(
        f"scaling ours {args.rows:,} / {args.small:,} rows: in memory {big[0] / small[0]:.2f}x, "
        f"Parquet {big[2] / small[2]:.2f}x (rows grew {args.rows / args.small:.0f}x)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        dataset_vs_file(make_table(args.rows), Path(tmp), args.shards)


if __name__ == "__main__":
    main()
