"""Benchmark: UMAP with the cosine metric, ours against Embedding Atlas's, on 100k x 384.

Both sides project the same matrix (``bench_knn.make_clustered``: 100,000 rows, 50
Gaussian clusters of uneven size in a random 32-dim subspace of 384 dims plus noise,
seeded), each in a fresh process of its own, warmed first on a 3,000-row slice so
numba's compilation is not timed (the first-run cost is ``bench_first_screen.py``'s):

- ours: ``project(X, ProjectionSpec(method="umap", params={"metric": "cosine"}))``;
- Embedding Atlas: ``embedding_atlas.projection._run_umap(X)`` (its cosine UMAP:
  umap-learn's nearest neighbours on every dimension, then ``UMAP(metric="cosine")``),
  run by the Python of a separate environment that has ``embedding-atlas`` installed
  (``--atlas-python``, or ``$PANELS_ATLAS_PYTHON``); without one that side is skipped
  with a message and ours is measured alone.

Printed: seconds of the projection, and neighbourhood preservation at k=15 (the mean
fraction of a point's 15 nearest rows by cosine distance in 384 dims that are among
its 15 nearest points in 2D, over a seeded sample of 5,000 points), then Atlas's
seconds / ours (the speed ratio; target >= 1.5) and our preservation / Atlas's
(target >= 0.95).

Run: ``.venv/bin/python benchmarks/bench_umap_quality.py --atlas-python
/path/to/atlas-venv/bin/python`` (``--rows 20000`` for a quick run). Make the other
environment with ``python3 -m venv atlas-venv && atlas-venv/bin/pip install
embedding-atlas``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # after PYTHONPATH, so PYTHONPATH picks the code measured

from bench_knn import make_clustered  # noqa: E402

K = 15
SAMPLE = 5000
WARM_ROWS = 3000
ATLAS_ENV = "PANELS_ATLAS_PYTHON"

OURS = """
import json, sys, time
import numpy as np
from panels_core.projection import ProjectionSpec, project
data = np.load(sys.argv[1])
spec = ProjectionSpec(method="umap", params={"metric": "cosine"}, seed=0)
project(data[:WARM_ROWS], spec)
started = time.perf_counter()
points = project(data, spec).points
seconds = time.perf_counter() - started
np.save(sys.argv[2], points)
print(json.dumps({"seconds": seconds}))
"""

ATLAS = """
import json, sys, time
import numpy as np
from embedding_atlas.projection import _run_umap
data = np.load(sys.argv[1])
_run_umap(data[:WARM_ROWS])
started = time.perf_counter()
points = _run_umap(data).projection
seconds = time.perf_counter() - started
np.save(sys.argv[2], np.asarray(points, dtype=np.float32))
print(json.dumps({"seconds": seconds}))
"""


def run_side(python: str, code: str, data_path: Path, out: Path, env: dict[str, str]) -> float:
    """Seconds one side took to project ``data_path`` (its points saved to ``out``)."""
    script = code.replace("WARM_ROWS", str(WARM_ROWS))
    done = subprocess.run(
        [python, "-c", script, str(data_path), str(out)],
        env=env,
        cwd=data_path.parent,  # `python -c` puts the working folder first: not a checkout's code
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def preservation(data: np.ndarray, points: np.ndarray) -> float:
    """Neighbourhood preservation at k=15 by cosine distance, on a seeded 5,000-point sample."""
    from panels_core.projection import neighborhood_preservation

    return neighborhood_preservation(data, points, k=K, sample=SAMPLE, metric="cosine", seed=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--atlas-python",
        default=os.environ.get(ATLAS_ENV),
        help=f"Python of an environment with embedding-atlas installed (or ${ATLAS_ENV})",
    )
    args = parser.parse_args()
    import panels_core

    code = Path(panels_core.__file__).resolve().parent.parent
    data = make_clustered(args.rows)
    print(f"cosine UMAP of {args.rows:,} x {data.shape[1]} (code measured: {code})", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        data_path = tmp / "data.npy"
        np.save(data_path, data)
        ours_env = {**os.environ, "PYTHONPATH": str(code)}
        ours_s = run_side(sys.executable, OURS, data_path, tmp / "ours.npy", ours_env)
        ours_np = preservation(data, np.load(tmp / "ours.npy"))
        print(f"  {'ours':<16} {ours_s:8.1f} s   preservation@{K} {ours_np:.4f}", flush=True)
        if not args.atlas_python:
            print(
                f"  Embedding Atlas: skipped (no --atlas-python or ${ATLAS_ENV}: the Python "
                "of a separate environment with embedding-atlas installed)"
            )
            return
        atlas_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        atlas_s = run_side(args.atlas_python, ATLAS, data_path, tmp / "atlas.npy", atlas_env)
        atlas_np = preservation(data, np.load(tmp / "atlas.npy"))
        print(f"  {'Embedding Atlas':<16} {atlas_s:8.1f} s   preservation@{K} {atlas_np:.4f}")
        speed, quality = atlas_s / ours_s, ours_np / atlas_np
        met = "met" if speed >= 1.5 and quality >= 0.95 else "NOT met"
        print(f"  speed: Atlas's seconds / ours = {speed:.2f}x (target >= 1.5)")
        print(f"  preservation: ours / Atlas's = {quality:.3f} (target >= 0.95)")
        print(f"  => target {met}")


if __name__ == "__main__":
    main()
