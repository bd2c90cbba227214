"""Linked selection: from a brush to every linked card's answers, on 1M and 10M rows.

Run: ``.venv/bin/python benchmarks/bench_selection.py [--rows N ...] [--repeat R]``.

A Parquet table (score, label with 20 classes, a projection's x and y) is written
to a temporary folder; the projection's points are registered with the engine
(``View.register_points``). For each brush (a histogram range, a set of
categories, a projection box and a 40-corner lasso) the timed step is what the
workspace asks when a brush changes: for the linked cards, the histogram of the
selected rows on the full histogram's bins, the selected count, the first page
of the table with the selected rows first, and the summary's category breakdown.
Before each run the answer cache is emptied and the unselected answers drawn
again (as in a workspace, where they were drawn before the brush), so no
selected answer comes from the cache. The baseline is the same four answers for the same
predicate written as the query's filter, in the same run (ratio = selection /
filter). A last table compares the two ways of finding the points inside a
polygon: numpy over the registered points, sorted by y once (what the engine
does), and the crossing-number test in SQL over the points as a DuckDB table.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from panels_core.data.table import Table
from panels_core.query.selection import (
    RangeBrush,
    RegionBrush,
    Selection,
    ValuesBrush,
)
from panels_core.view import View

LABELS = [f"class_{i:02d}" for i in range(20)]
BINS = 40


def write_table(folder: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    centers = rng.uniform(-10, 10, (len(LABELS), 2))
    label = rng.integers(0, len(LABELS), rows)
    xy = centers[label] + rng.normal(0, 1.5, (rows, 2))
    table = pa.table(
        {
            "score": rng.random(rows),
            "label": pa.array(np.array(LABELS)[label]).dictionary_encode(),
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )
    path = folder / f"selection_{rows}.parquet"
    pq.write_table(table, path, row_group_size=1_000_000)
    return path


def box(shift: float) -> tuple[tuple[float, float], ...]:
    return ((-4 + shift, -4), (4 + shift, -4), (4 + shift, 4), (-4 + shift, 4))


def lasso(shift: float, corners: int = 40) -> tuple[tuple[float, float], ...]:
    """A star-shaped (concave) lasso around the middle of the projection."""
    out = []
    for i in range(corners):
        angle = 2 * math.pi * i / corners
        radius = 6 + 2 * math.sin(5 * angle)
        out.append((radius * math.cos(angle) + shift, radius * math.sin(angle)))
    return tuple(out)


def brushes() -> dict[str, Callable[[float], Any]]:
    """Each brush kind, made new for every run from a small shift."""
    return {
        "histogram range": lambda s: RangeBrush(column="score", low=0.2 + s, high=0.6),
        "categories": lambda s: ValuesBrush(
            column="label", values=tuple(LABELS[: 3 + int(s * 1e4) % 5])
        ),
        "projection box": lambda s: RegionBrush(points="proj", polygon=box(s)),
        "projection lasso": lambda s: RegionBrush(points="proj", polygon=lasso(s)),
    }


def linked_answers(selected: View, first: View, edges: np.ndarray) -> None:
    """What the linked cards ask after a brush (see the module docstring)."""
    selected.histogram("score", bins=BINS, range=(float(edges[0]), float(edges[-1])))
    selected.count()
    first.page(0, 50)
    selected.value_counts("label", top=5)


def bench(rows: int, folder: Path, repeat: int) -> list[tuple[str, float, float]]:
    view = View.of(Table.from_parquet(write_table(folder, rows)), "t")
    start = time.perf_counter()
    xy = np.column_stack([view.column_numpy("x"), view.column_numpy("y")])
    view.register_points("proj", view.row_numbers(), xy)
    print(f"  {rows:,} rows: points registered in {time.perf_counter() - start:.2f} s")

    def drawn_before() -> np.ndarray:
        """Empty the answer cache but for the unselected answers, drawn before a brush."""
        view.engine.clear_cache()
        view.count()
        view.value_counts("label", top=5)
        return view.histogram("score", bins=BINS).edges

    edges = drawn_before()
    shifts = itertools.count(1)
    out = []
    for name, make in brushes().items():

        def selection_step(make: Callable[[float], Any] = make) -> None:
            selection = Selection().with_brush("card-0", make(next(shifts) * 1e-5))
            linked = view.with_selection(selection)
            linked_answers(linked.selected(), linked.selected_first(), edges)

        def filter_step(make: Callable[[float], Any] = make) -> None:
            text = Selection().with_brush("card-0", make(next(shifts) * 1e-5)).as_filter_text()
            filtered = view.with_query(filter=text)
            linked_answers(filtered, filtered, edges)

        selection_step()  # the first run of each kind loads what DuckDB caches
        selected = median_seconds(selection_step, repeat, before=drawn_before)
        filtered = median_seconds(filter_step, repeat, before=drawn_before)
        out.append((name, selected, filtered))
    return out


def polygon_methods(rows: int, repeat: int) -> list[tuple[str, float, float]]:
    """Points inside a polygon: numpy (the engine's way) against SQL over the points."""
    import duckdb

    from panels_core.query.engine.points import SortedPoints

    rng = np.random.default_rng(1)
    xy = rng.normal(0, 5, (rows, 2))
    points = pa.table({"r": np.arange(rows), "x": xy[:, 0], "y": xy[:, 1]})
    con = duckdb.connect()
    con.register("points", points)
    start = time.perf_counter()
    ready = SortedPoints(np.arange(rows), xy)  # once per registration
    out = [("sorting the points by y (once)", time.perf_counter() - start, float("nan"))]
    for name, polygon in (("box", box(0.0)), ("lasso, 40 corners", lasso(0.0))):
        corners = list(polygon)
        terms, params = [], {}
        for i, ((ax, ay), (bx, by)) in enumerate(zip(corners, corners[1:] + corners[:1])):
            params.update({f"ax{i}": ax, f"ay{i}": ay, f"bx{i}": bx, f"by{i}": by})
            terms.append(
                f"(($ay{i} > y) <> ($by{i} > y) AND "
                f"x < $ax{i} + (y - $ay{i}) * ($bx{i} - $ax{i}) / NULLIF($by{i} - $ay{i}, 0))::INT"
            )
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        params.update({"x0": min(xs), "x1": max(xs), "y0": min(ys), "y1": max(ys)})
        sql = (
            "SELECT count(*) FROM points WHERE x BETWEEN $x0 AND $x1 AND y BETWEEN $y0 AND $y1 "
            f"AND ({' + '.join(terms)}) % 2 = 1"
        )
        in_sql = con.execute(sql, params).fetchone()[0]
        in_numpy = len(ready.inside(polygon))
        assert in_sql == in_numpy, (in_sql, in_numpy)
        numpy_s = median_seconds(lambda p=polygon: ready.inside(p), repeat)
        sql_s = median_seconds(lambda s=sql, p=params: con.execute(s, p).fetchone(), repeat)
        out.append((f"{name} ({in_numpy:,} inside)", numpy_s, sql_s))
    con.close()
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-selection-") as folder:
        for rows in args.rows:
            results = bench(rows, Path(folder), args.repeat)
            print(f"\n{rows:,} rows: brush -> linked answers (hist + count + page + breakdown)")
            print(f"  {'brush':<20} {'selection':>10} {'as filter':>10} {'ratio':>7}")
            for name, selected, filtered in results:
                print(
                    f"  {name:<20} {selected:>9.3f}s {filtered:>9.3f}s {selected / filtered:>6.2f}x"
                )
            print(f"\n{rows:,} points: inside a polygon (median of {args.repeat})")
            print(f"  {'polygon':<36} {'numpy':>8} {'SQL':>8}")
            for name, numpy_s, sql_s in polygon_methods(rows, args.repeat):
                print(f"  {name:<36} {numpy_s:>7.3f}s {sql_s:>7.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
