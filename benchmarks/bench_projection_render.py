"""Render time of a 1M-point 2D Projection update (cached projection) vs a plain Bokeh scatter.

Run: ``.venv/bin/python benchmarks/bench_projection_render.py [--rows N] [--dim D] [--repeat R]``.

Data: ``N`` rows (default 1,000,000) of a ``D``-dim float32 embedding, a 10-value
category and a number column, in an in-memory Table. The PCA projection is computed
once (warm-up, which also compiles datashader's kernels), so every measured render
finds it in the projection cache.

Ours: a re-render after changing ``colour_by`` (category -> number -> category),
i.e. ``Projection2D(config).render(view)`` over the same View (the input matrix and
its fingerprint are kept per View, so: projection cache hit, the colour column's
codes or values (kept per View and result after their first fetch), datashader
aggregation and shading into one RGBA image plus the per-pixel row and hover arrays)
plus building the Bokeh models (``get_root``) and serialising the document (JSON
plus binary buffers: what is sent to the browser). Baseline, in the same run: a
plain Bokeh WebGL scatter of the same 1M points coloured by the category
(ColumnDataSource + ``factor_cmap``), built and serialised the same way. Printed:
median seconds, bytes sent, and the ratio baseline / ours. Target: a cached
re-render under 1 s.

The baseline's server-side time is only part of its cost: it also ships every point
to the browser (the size column), where WebGL has to draw 1M markers on each pan
and zoom (3-4 s per interaction reported in Bokeh issue 14843); this script does not
time the browser. The rasterised update ships one 560 x 420 image and its per-pixel
row and hover arrays (about 2-3 MB) whatever N is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa


def make_view(rows: int, dim: int) -> Any:
    """A View of ``rows`` rows: ``embedding`` (dim floats), ``kind`` (category), ``score``."""
    from panels_core.data.table import Table
    from panels_core.view import View

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(10, dim)).astype(np.float32)
    labels = rng.integers(0, 10, rows)
    values = centres[labels] + rng.normal(size=(rows, dim)).astype(np.float32)
    kinds = np.array([f"kind_{i}" for i in range(10)])[labels]
    table = pa.table(
        {
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), dim),
            "kind": pa.array(kinds).dictionary_encode(),
            "score": rng.random(rows),
        }
    )
    return View.of(Table.from_arrow(table)), values, kinds


def serialise(obj: Any) -> int:
    """Bytes sent for the Bokeh document holding ``obj`` (a Panel object or a Bokeh model):
    its JSON plus the binary buffers (numpy arrays) that travel beside it."""
    import panel as pn
    from bokeh.document import Document
    from bokeh.model import Model

    doc = Document()
    doc.add_root(obj if isinstance(obj, Model) else pn.panel(obj).get_root(doc))
    serialized = doc.to_json()
    buffers = sum(len(buffer.to_bytes()) for buffer in serialized.buffers or [])
    return len(json.dumps(serialized.content, default=str)) + buffers


def median_time(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure
    from bokeh.transform import factor_cmap

    from panels_builtin.palette import category_palette
    from panels_builtin.projection import Projection2D

    view, _values, kinds = make_view(args.rows, args.dim)
    config = Projection2D.default_config(view.type)
    assert config.columns == ["embedding"] and config.colour_by == "kind", config
    start = time.perf_counter()
    first = Projection2D(config).render(view)
    serialise(first)
    print(
        f"{args.rows:,} x {args.dim} rows; first render (PCA + warm-up): "
        f"{time.perf_counter() - start:.2f} s"
    )
    assert first.raster is not None, "expected the rasterised path"
    points = first.result.points
    by_number = config.model_copy(update={"colour_by": "score"})
    for warm in (by_number, config):  # compile datashader's kernels for both aggregators
        serialise(Projection2D(warm).render(view))

    configs = [by_number, config]
    step = {"i": 0}

    def ours() -> int:
        step["i"] += 1
        plot = Projection2D(configs[step["i"] % 2]).render(view)
        assert plot.result is not None and plot.result.n_kept == args.rows
        return serialise(plot)

    factors = sorted(set(kinds.tolist()))

    def baseline() -> int:
        fig = figure(output_backend="webgl", height=480, sizing_mode="stretch_width")
        source = ColumnDataSource({"x": points[:, 0], "y": points[:, 1], "kind": kinds})
        fig.scatter(
            "x",
            "y",
            source=source,
            size=4,
            color=factor_cmap("kind", category_palette(len(factors)), factors),
        )
        return serialise(fig)

    ours_s, ours_bytes = median_time(ours, args.repeat)
    base_s, base_bytes = median_time(baseline, args.repeat)
    print(f"{'':44s} {'median s':>9s} {'sent MB':>8s}")
    print(f"{'2D Projection re-render (cached, raster)':44s} {ours_s:9.3f} {ours_bytes / 1e6:8.2f}")
    print(f"{'plain Bokeh WebGL scatter (baseline)':44s} {base_s:9.3f} {base_bytes / 1e6:8.2f}")
    print(
        f"ratio baseline / ours: {base_s / ours_s:.1f}x; target: re-render < 1 s: "
        f"{'met' if ours_s < 1.0 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
