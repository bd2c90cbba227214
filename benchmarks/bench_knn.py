"""Benchmark: k-nearest-neighbour graphs for UMAP, each library in a fresh process.

UMAP's first step is the k-nearest-neighbour graph of every fitted row. pynndescent
(umap-learn's own search) is numba code whose parallel kernels recompile in every
new process, so a fresh server paid for compilation before it computed anything.
This measures, per library, the seconds of ``import + build + query every row``
for k=15 in a fresh Python process (so import and compile time count, as they do
for a server's first UMAP), and recall@15 against the exact neighbours of a
seeded 2,000-row query subset (brute force, self excluded).

Data: 100k x 384 float32, 50 Gaussian clusters of uneven size in a random 32-dim
subspace, embedded in 384 dims plus isotropic noise (seeded). Measured for the
euclidean and cosine metrics on the 384 dims, and euclidean on the 50 PCA dims
the projection pipeline actually hands to UMAP.

Libraries: pynndescent (umap-learn's settings, the baseline), usearch (HNSW),
faiss-cpu (HNSW, and IVF-Flat through
``panels_core.projection.knn``, what UMAP uses). Ratio = pynndescent seconds / library seconds.

Run: ``.venv/bin/python benchmarks/bench_knn.py`` (``--rows 20000`` for a quick run;
``--only faiss-ivf`` to measure one library beside the baseline, ``--sections cosine``
for one of the three tables).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
K = 15
QUERIES = 2000
LIBRARIES = ("pynndescent", "usearch", "faiss-hnsw", "faiss-ivf")
SECTIONS = ("euclidean", "cosine", "pca50")


def make_clustered(n: int, dim: int = 384, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Seeded Gaussian clusters of uneven size in a random 32-dim subspace of ``dim`` dims."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 32)))
    sizes = rng.dirichlet(np.full(clusters, 2.0))
    labels = rng.choice(clusters, size=n, p=sizes)
    centers = rng.normal(0.0, 3.0, size=(clusters, 32))
    spread = rng.uniform(0.5, 1.5, size=clusters)
    latent = centers[labels] + rng.normal(size=(n, 32)) * spread[labels, None]
    out = latent @ basis.T + rng.normal(0.0, 0.3, size=(n, dim))
    return out.astype(np.float32)


def exact_neighbours(data: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """The exact ``K`` nearest rows (self excluded) of each query row, by brute force."""
    values = _unit(data) if metric == "cosine" else data
    q = values[queries]
    sq = np.einsum("ij,ij->i", values, values)
    dist = sq[queries][:, None] - 2.0 * (q @ values.T) + sq[None, :]
    dist[np.arange(len(queries)), queries] = np.inf
    part = np.argpartition(dist, K, axis=1)[:, :K]
    return part


def _unit(data: np.ndarray) -> np.ndarray:
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def run_one(library: str, metric: str, path: str, queries_path: str, out: str) -> None:
    """In this fresh process: import, build and query every row; write seconds and neighbours."""
    data = np.load(path)
    n = len(data)
    started = time.perf_counter()
    if library == "pynndescent":
        from pynndescent import NNDescent

        index = NNDescent(
            data, n_neighbors=K + 1, metric=metric, random_state=0,
            n_trees=min(64, 5 + round(n**0.5 / 20.0)), n_iters=max(5, round(np.log2(n))),
            max_candidates=60, low_memory=True, n_jobs=-1, compressed=False,
        )  # fmt: skip
        indices = index.neighbor_graph[0]
    elif library == "usearch":
        from usearch.index import Index

        index = Index(
            ndim=data.shape[1],
            metric="cos" if metric == "cosine" else "l2sq",
            dtype="f32",
            connectivity=16,
            expansion_add=128,
            expansion_search=64,
        )
        index.add(np.arange(n), data, threads=0)
        indices = index.search(data, K + 1, threads=0).keys
    elif library == "faiss-ivf":
        sys.path.insert(0, str(ROOT))
        from panels_core.projection.knn import knn_graph  # faiss IVF-Flat, as UMAP runs it

        indices = knn_graph(data, K + 1, metric)[0]
    else:
        indices = _faiss_hnsw(data, metric)
    seconds = time.perf_counter() - started
    queries = np.load(queries_path)
    np.save(out, indices[queries])
    print(json.dumps({"seconds": seconds}))


def _faiss_hnsw(data: np.ndarray, metric: str) -> np.ndarray:
    sys.path.insert(0, str(ROOT))
    from panels_core.projection.knn import import_faiss  # OpenMP threads that sleep when idle

    faiss = import_faiss()

    values = np.ascontiguousarray(_unit(data) if metric == "cosine" else data)
    d = values.shape[1]
    index = faiss.IndexHNSWFlat(d, 16)
    index.hnsw.efConstruction = 64
    index.add(values)
    index.hnsw.efSearch = 64
    return index.search(values, K + 1)[1]


def recall(found: np.ndarray, exact: np.ndarray, queries: np.ndarray) -> float:
    hits = 0
    for row, got, want in zip(queries, found, exact, strict=True):
        got = [g for g in got if g != row][:K]
        hits += len(set(got) & set(want.tolist()))
    return hits / (len(queries) * K)


def measure(data: np.ndarray, metric: str, libraries: list[str], label: str, tmp: Path) -> None:
    rng = np.random.default_rng(1)
    queries = np.sort(rng.choice(len(data), size=min(QUERIES, len(data)), replace=False))
    path, qpath = tmp / f"{label}.npy", tmp / f"{label}-queries.npy"
    np.save(path, data)
    np.save(qpath, queries)
    exact = exact_neighbours(data, queries, metric)
    print(f"\n{label}: {data.shape[0]:,} x {data.shape[1]}, {metric}, k={K}", flush=True)
    print(f"  {'library':<14} {'seconds':>9} {'recall@15':>10} {'speed-up':>9}", flush=True)
    base = None
    for library in libraries:
        out = tmp / f"{label}-{library}.npy"
        cmd = [sys.executable, __file__, "--one", library, metric, str(path), str(qpath), str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"  {library:<14} failed: {result.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
        base = seconds if library == "pynndescent" else base
        ratio = f"{base / seconds:8.2f}x" if base else "       -"
        rec = recall(np.load(out), exact, queries)
        print(f"  {library:<14} {seconds:9.2f} {rec:10.3f} {ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=LIBRARIES[1:], action="append", help="beside pynndescent")
    parser.add_argument("--sections", choices=SECTIONS, nargs="+", default=list(SECTIONS))
    parser.add_argument("--one", nargs=5, metavar=("LIB", "METRIC", "DATA", "QUERIES", "OUT"))
    args = parser.parse_args()
    if args.one:
        run_one(*args.one)
        return
    libraries = ["pynndescent", *args.only] if args.only else list(LIBRARIES)
    data = make_clustered(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if "euclidean" in args.sections:
            measure(data, "euclidean", libraries, "384 dims", tmp)
        if "cosine" in args.sections:
            measure(data, "cosine", libraries, "384 dims", tmp)
        if "pca50" in args.sections:
            from sklearn.decomposition import PCA

            reduced = PCA(50, random_state=0).fit_transform(data).astype(np.float32)
            measure(reduced, "euclidean", libraries, "50 PCA dims", tmp)


if __name__ == "__main__":
    main()
