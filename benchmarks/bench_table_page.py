"""The Table panel on a 10M-row Parquet file: first page, a page deep in, a sorted page.

Run: ``.venv/bin/python benchmarks/bench_table_page.py [--rows N] [--repeat R]``.

Ours: ``TablePanel(page_size=50).build(View.of(Table.from_parquet(path)))`` (count +
one page + the typed cells and Tabulator), then ``last()`` (a page at the end) and a
header sort (``apply_sorters``: top 50 by one column). Baseline, in the same run:
pandas reading the same columns of the file and slicing / sorting (``nlargest``) the
same page, which is what a table widget that loads its data has to do. Printed: median
seconds of each and the ratio baseline / ours.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from timing import median_seconds


def write(path: Path, rows: int) -> None:
    """``rows`` rows: an id, two floats and a category."""
    rng = np.random.default_rng(0)
    labels = np.array([f"class_{i:02d}" for i in range(20)])
    pq.write_table(
        pa.table(
            {
                "id": np.arange(rows, dtype=np.int64),
                "x": rng.random(rows),
                "y": rng.normal(size=rows),
                "label": labels[rng.integers(0, 20, rows)],
            }
        ),
        path,
        row_group_size=1 << 20,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import pandas as pd

    from panels_builtin.table import TablePanel
    from panels_core import Table, View

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.parquet"
        write(path, args.rows)
        TablePanel(page_size=50).build(View.of(Table.from_parquet(path)))  # imports, warm cache

        def ours_first() -> object:
            return TablePanel(page_size=50).build(View.of(Table.from_parquet(path))).frame

        paged = TablePanel(page_size=50).build(View.of(Table.from_parquet(path)))

        def ours_sorted() -> object:
            paged.apply_sorters([{"field": "x", "dir": "desc"}])
            return paged.frame

        def pandas_first() -> object:
            return pd.read_parquet(path).iloc[:50]

        def pandas_last() -> object:
            df = pd.read_parquet(path)
            return df.iloc[(len(df) - 1) // 50 * 50 :]

        def pandas_sorted() -> object:
            return pd.read_parquet(path).nlargest(50, "x")

        cases = [
            ("first page", ours_first, pandas_first),
            ("last page", paged.last, pandas_last),
            ("sorted page", ours_sorted, pandas_sorted),
        ]
        print(f"rows: {args.rows:,}, page size 50, median of {args.repeat}")
        print(f"{'case':<12} {'ours s':>8} {'pandas s':>9} {'pandas/ours':>12}")
        for name, ours, base in cases:
            t_ours = median_seconds(ours, args.repeat)
            t_base = median_seconds(base, args.repeat)
            print(f"{name:<12} {t_ours:>8.3f} {t_base:>9.3f} {t_base / t_ours:>11.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
