"""Benchmark: projection at scale on a Dask LocalCluster of 2 worker processes.

Data: a Parquet dataset of ``--rows`` rows (default 10M; ``--big`` adds 100M) of one
16-dim float32 embedding column, 40 clusters, written once in shards of 250k rows
(row groups of 125k) without ever holding it in memory, kept in
``cache_dir()/bench/`` for later runs.

Measured, on ``LocalCluster(n_workers=2, threads_per_worker=1)``:
  1. fit: one pass over every row group (moments + a 200k-row seeded sample), PCA fit;
  2. PCA transform of every row on the workers (the points reduced to their extent, so
     only four numbers come back): seconds and rows/s;
  3. the datashader raster (560 x 420 counts) straight from Parquet (read, transform,
     aggregate on the workers), then after ``points.persist()`` (a zoom or pan);
  4. each worker's peak resident memory;
  5. beside it, up to 30M rows, in this process: the same rows read with pyarrow and
     placed with the same fitted model (``FittedProjection.transform``), and the whole
     local pipeline ``project(X, PCA)``; ratio cluster / local;
  6. the projection card's render (``Projection2D.render``, as a served card computes it:
     fit, place every row, the first raster) on an engine with the cluster (points kept on
     the workers, ``FrameRasterLayer``) and on the local engine (the column read into this
     process, projected and rasterised here), the server process's resident memory after
     each, and the ratio; then the cluster card again with its fit kept (a new filter or
     a re-render) and with a filter keeping half the rows.

Run: ``.venv/bin/python benchmarks/bench_cluster_projection.py [--rows N] [--big]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from panels_core.data.dataset import open_dataset
from panels_core.projection import ProjectionSpec, cache_dir, project
from panels_core.projection.distributed import (
    count_image,
    drawable,
    fit_on_cluster,
    points_extent,
)
from panels_core.projection.rows import as_rows

DIM = 16
SHARD = 250_000
LOCAL_UP_TO = 30_000_000


def write_dataset(rows: int) -> Path:
    """The dataset of ``rows`` rows, written shard by shard the first time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = cache_dir() / "bench" / f"cluster-proj-{rows}"
    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(40, DIM)).astype(np.float32)
    for shard, start in enumerate(range(0, rows, SHARD)):
        n = min(SHARD, rows - start)
        values = centres[rng.integers(0, 40, n)] + rng.normal(size=(n, DIM)).astype(np.float32)
        column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), DIM)
        out = folder / f"part={shard % 4}" / f"shard-{shard:05d}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"emb": column}), out, row_group_size=SHARD // 2)
    done.touch()
    return folder


def worker_peak_mib() -> float:
    """A worker's peak resident memory (VmHWM), run on each worker by ``client.run``."""
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1)) / 1024


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench(rows: int) -> None:
    import distributed

    started = time.perf_counter()
    folder = write_dataset(rows)
    print(f"\n{rows:,} rows x {DIM} dims: data ready in {time.perf_counter() - started:.0f} s")
    dataset = open_dataset(folder)
    spec = ProjectionSpec(method="pca", seed=0)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="4GiB",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        cold = steps(client, dataset, spec, rows)  # the workers import and compile here
        warm = steps(client, dataset, spec, rows)
        peaks = client.run(worker_peak_mib)
        line = "  {:<44} {:>8.2f} s {:>12,.0f} rows/s  (first run {:.2f} s)"
        for (name, seconds), (_, first) in zip(warm.times.items(), cold.times.items(), strict=True):
            print(line.format(name, seconds, rows / seconds, first))
        print("  worker peak memory: " + ", ".join(f"{v:,.0f} MiB" for v in peaks.values()))
        if rows <= LOCAL_UP_TO:
            cards(client, dataset, rows)
    if rows <= LOCAL_UP_TO:
        local(dataset, warm.model, warm.times["PCA transform of every row (workers)"])


class Steps:
    """The seconds of each cluster step, and the fitted model."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.model = None

    def time(self, name: str, fn):
        seconds, out = timed(fn)
        self.times[name] = seconds
        return out


def steps(client, dataset, spec, rows: int) -> Steps:
    import distributed

    out = Steps()
    projection = out.time(
        "fit: scan + 200k sample + PCA fit", lambda: fit_on_cluster(client, dataset, ["emb"], spec)
    )
    out.model = projection.model
    points = projection.points
    extent = out.time("PCA transform of every row (workers)", lambda: points_extent(points))
    window = tuple((lo - 0.5, hi + 0.5) for lo, hi in extent)
    image = out.time(
        "datashader raster from Parquet (workers)",
        lambda: count_image(points, *window, width=560, height=420),
    )
    assert int(image.values.sum()) == rows

    def persisted():
        held = drawable(client, points, rows).persist()  # as the card keeps them
        distributed.wait(held)
        return held

    held = out.time("persist the points on the workers", persisted)
    out.time(
        "datashader raster of persisted points",
        lambda: count_image(held, *window, width=560, height=420),
    )
    return out


def rss_mib() -> float:
    """This process's resident memory now (VmRSS)."""
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024


def card_render(dataset, cluster, where: str = "") -> tuple[float, object]:
    """Seconds of one projection card render (PCA of ``emb``) over ``dataset``, and the card."""
    from panels_builtin.projection import Projection2D
    from panels_core.data.table import Table
    from panels_core.query.engine import Engine
    from panels_core.query.model import Query
    from panels_core.view import View

    engine = Engine({"preds": Table.from_parquet_dataset(dataset)}, cluster=cluster)
    view = View(engine, Query(table="preds", filter=where or None))
    config = Projection2D.validate_config({"columns": ["emb"], "method": "pca"}, view.type)
    seconds, plot = timed(lambda: Projection2D(config).render(view))
    assert plot.error is None, plot.error
    engine.close()
    return seconds, plot


def cards(client, dataset, rows: int) -> None:
    """The card's render on the cluster, then in this process, each a second time with
    nothing kept (the first compiles datashader's reductions, on the workers or here), and
    the ratio of the second renders."""
    from panels_builtin.projection.on_cluster import forget_fits
    from panels_core.projection.cache import shared_cache

    line = "  {:<46} {:>8.2f} s {:>12,.0f} rows/s  (server RSS {:,.0f} MiB)"
    cold, _ = card_render(dataset, client)
    print(line.format("card on the cluster, first (compiles)", cold, rows / cold, rss_mib()))
    forget_fits()
    first, plot = card_render(dataset, client)
    assert type(plot.raster).__name__ == "FrameRasterLayer" and len(plot.raster.points) == 0
    print(line.format("card on the cluster: fit + place + raster", first, rows / first, rss_mib()))
    again, _ = card_render(dataset, client)
    print(
        line.format("card on the cluster, fit kept: place + raster", again, rows / again, rss_mib())
    )
    half, _ = card_render(dataset, client, "part < 2")
    print(line.format("card on the cluster, half the rows (filter)", half, rows / half, rss_mib()))
    del plot
    cold, _ = card_render(dataset, None)
    print(line.format("card in this process, first (compiles)", cold, rows / cold, rss_mib()))
    shared_cache().clear()
    here, plot = card_render(dataset, None)
    assert type(plot.raster).__name__ == "RasterLayer"
    print(
        line.format("card in this process: read + project + raster", here, rows / here, rss_mib())
    )
    print(f"  ratio card on the cluster / card in this process: {first / here:.2f}x")


def local(dataset, model, cluster_s: float) -> None:
    """The same rows in this process: read + the same model's transform, and ``project``."""
    read_s, table = timed(lambda: dataset.read())
    values = as_rows(table.column("emb")).values
    del table
    place_s, _ = timed(lambda: model.transform(values))
    project_s, _ = timed(lambda: project(values, ProjectionSpec(method="pca", seed=0)))
    rows = len(values)
    line = "  {:<46} {:>8.2f} s {:>12,.0f} rows/s"
    print(line.format("local: read every row with pyarrow", read_s, rows / read_s))
    print(line.format("local: transform with the same model", place_s, rows / place_s))
    print(line.format("local: project(X, PCA) (fit + transform)", project_s, rows / project_s))
    print(
        f"  ratio cluster transform / local read + transform: {cluster_s / (read_s + place_s):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--big", action="store_true", help="also 100M rows")
    args = parser.parse_args()
    for rows in (args.rows, 100_000_000) if args.big else (args.rows,):
        bench(rows)


if __name__ == "__main__":
    main()
