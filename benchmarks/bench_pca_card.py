"""Benchmark: the PCA card of a 1M-row embedding table against the in-process floor.

Data: ``emb.parquet``, ``--rows`` rows (default 1,000,000) of a ``--dim``-dim
(default 384) clustered float32 embedding (``bench_knn.make_clustered``) and a
10-value category, written once to a temporary folder.

Each side runs in a fresh process, in rotating order, ``--repeat`` times:

- **floor**: ``open_table`` + ``View.column_numpy("embedding")`` + ``project(..., PCA)``
  in one process (the work itself);
- **card**: what a served PCA card does: ``open_table``, the panel's fetch
  (``fetch_inputs``: the matrix and its fingerprint), the shared projector
  computing the PCA (``shared_projector().submit``: a ``ProcessProjector``, whose
  worker process is started before the clock, as a server starts it, without
  UMAP's warm-up; the panel's own warm-up, which a server runs at start, compiles
  the raster's kernels before the clock too), then drawing the result
  (``ProjectionPlot.show``: colours, the datashader raster) and serialising the
  Bokeh document sent to the browser.

Printed per side: median seconds (the card's split into its steps), peak memory
(VmHWM; for the card the server's and the worker's peaks summed, an upper bound:
pages shared by the two count twice; sampling both processes' memory while they
run slowed the card's page faults by seconds), the memory each process started
with, and the ratios card / floor (target: within 1.5x in time and peak memory).

The code measured is whatever ``panels_core`` the ``PYTHONPATH`` names, so the same
script measures another checkout (``PYTHONPATH=/other/checkout``).

Run: ``.venv/bin/python benchmarks/bench_pca_card.py`` (``--rows 200000`` for a
quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # after PYTHONPATH, so PYTHONPATH picks the code measured

MIB = 2**20


def write_table(folder: Path, rows: int, dim: int) -> Path:
    """emb.parquet: ``embedding`` (dim float32) and ``kind`` (10 values)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from bench_knn import make_clustered

    data = make_clustered(rows, dim)
    kinds = np.array([f"kind_{i}" for i in range(10)])[np.arange(rows) % 10]
    table = pa.table(
        {
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), dim),
            "kind": pa.array(kinds).dictionary_encode(),
        }
    )
    path = folder / "emb.parquet"
    pq.write_table(table, path, row_group_size=128 * 1024)
    return path


# ----------------------------------------------------------------------------- memory


def status_kib(pid: int | str, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return int(re.search(rf"{field}:\s+(\d+)", status.read()).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return 0


# ----------------------------------------------------------------------------- the sides


def floor(path: str) -> dict[str, Any]:
    """open_table + column_numpy + project(PCA) in this process."""
    from panels_core.data.sources.open import open_table
    from panels_core.projection import project
    from panels_core.view import View

    start_mib = status_kib("self", "VmRSS") / 1024
    started = time.perf_counter()
    view = View.of(open_table(path), "emb")
    values = view.column_numpy("embedding")
    fetched = time.perf_counter()
    result = project(values, {"method": "pca"})
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "steps": {"fetch": fetched - started, "project": done - fetched},
        "peak_mib": status_kib("self", "VmHWM") / 1024,
        "start_mib": start_mib,
        "points": result.n_kept,
    }


def card(path: str) -> dict[str, Any]:
    """What a served PCA card does, through the shared projector (a ProcessProjector)."""
    os.environ["PANELS_WARM_UP"] = "0"
    import panel  # noqa: F401  - loaded in a server before any page opens
    from bench_projection_render import serialise

    from panels_builtin.projection import Projection2D
    from panels_builtin.projection.inputs import fetch_inputs
    from panels_builtin.projection.plot import ProjectionPlot
    from panels_core import projection as proj
    from panels_core.data.sources.open import open_table
    from panels_core.view import View

    warm = Projection2D.warm_up()  # what a server runs at start (the raster's kernels)
    if warm is not None:
        warm.run()
    projector = proj.shared_projector()
    projector.wait_until_warm()  # the worker started and ready, as a server starts it
    worker = projector.worker_pid
    start_mib = status_kib("self", "VmRSS") / 1024
    worker_start_mib = status_kib(worker, "VmRSS") / 1024
    started = time.perf_counter()
    view = View.of(open_table(path), "emb")
    config = Projection2D.default_config(view.type).model_copy(update={"method": "pca"})
    inputs = fetch_inputs(view, config)
    fetched = time.perf_counter()
    spec = config.spec(embedding=inputs.embedding)
    future = projector.submit(("bench",), inputs.values, spec, key=inputs.key)
    result = future.result()
    projected = time.perf_counter()
    plot = ProjectionPlot(config, view, inputs)
    plot.show(result)
    serialise(plot)
    done = time.perf_counter()
    worker_peak = status_kib(worker, "VmHWM") / 1024
    server_peak = status_kib("self", "VmHWM") / 1024
    assert plot.raster is not None and result.n_kept == inputs.n, "expected a full raster"
    projector.shutdown()
    return {
        "seconds": done - started,
        "steps": {
            "fetch": fetched - started,
            "project": projected - fetched,
            "draw": done - projected,
        },
        "peak_mib": server_peak + worker_peak,
        "server_hwm_mib": server_peak,
        "worker_hwm_mib": worker_peak,
        "start_mib": start_mib + worker_start_mib,
        "points": result.n_kept,
    }


def run_side(side: str, path: Path) -> dict[str, Any]:
    """One side in a fresh process; its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--side", side, "--parquet", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(runs: dict[str, list[dict[str, Any]]]) -> None:
    def med(side: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[side])

    def steps(side: str) -> str:
        names = runs[side][0]["steps"]
        return ", ".join(
            f"{name} {statistics.median(r['steps'][name] for r in runs[side]):.1f} s"
            for name in names
        )

    print(f"  {'':8} {'median s':>9} {'peak MiB':>9} {'start MiB':>10}  steps")
    for side in ("floor", "card"):
        print(
            f"  {side:8} {med(side, 'seconds'):9.1f} {med(side, 'peak_mib'):9.0f} "
            f"{med(side, 'start_mib'):10.0f}  {steps(side)}"
        )
    print(
        f"  card peaks by process (VmHWM): server {med('card', 'server_hwm_mib'):.0f} MiB, "
        f"worker {med('card', 'worker_hwm_mib'):.0f} MiB"
    )
    time_ratio = med("card", "seconds") / med("floor", "seconds")
    memory_ratio = med("card", "peak_mib") / med("floor", "peak_mib")
    verdict = "met" if max(time_ratio, memory_ratio) <= 1.5 else "NOT met"
    print(
        f"  card / floor: time {time_ratio:.2f}x, peak memory {memory_ratio:.2f}x "
        f"(target within 1.5x: {verdict})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--side", choices=("floor", "card"), help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps((floor if args.side == "floor" else card)(args.parquet)))
        return 0
    import panels_core

    print(f"code measured: {Path(panels_core.__file__).resolve().parent.parent}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        path = write_table(Path(folder), args.rows, args.dim)
        print(
            f"PCA card over {args.rows:,} x {args.dim} ({path.stat().st_size / MIB:.0f} MiB Parquet)"
        )
        runs: dict[str, list[dict[str, Any]]] = {"floor": [], "card": []}
        for i in range(args.repeat):
            for side in ("floor", "card") if i % 2 == 0 else ("card", "floor"):
                runs[side].append(run_side(side, path))
                print(f"  run {i + 1} {side}: {runs[side][-1]['seconds']:.1f} s", flush=True)
        report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
