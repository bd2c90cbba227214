"""t-SNE: openTSNE's fit with progress and cancel, and its transform for the rows not fitted."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from panels_core.projection.progress import Stages
from panels_core.projection.spec import Placer, ProjectionSpec, TSNEParams

__all__ = ["run_tsne"]


def run_tsne(
    fit_data: np.ndarray, spec: ProjectionSpec, stages: Stages, n_rest: int
) -> tuple[Placer, tuple[str, ...]]:
    """Fit openTSNE on ``fit_data``; ``n_rest`` rows will be placed with its transform."""
    from openTSNE import TSNE

    params = spec.params
    assert isinstance(params, TSNEParams)
    notes: list[str] = []
    n = len(fit_data)
    perplexity = params.perplexity
    if 3 * perplexity > n - 1:
        perplexity = (n - 1) / 3
        notes.append(
            f"perplexity lowered from {params.perplexity:g} to {perplexity:.3g} ({n} rows)"
        )
    early = params.n_iter // 3
    watcher = _TSNEProgress(stages, early, params.n_iter)
    stages(0.1, f"t-SNE affinities of {n:,} rows")
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        learning_rate=params.learning_rate,
        early_exaggeration=params.early_exaggeration,
        early_exaggeration_iter=early,
        n_iter=params.n_iter - early,
        metric="euclidean",  # cosine input was scaled to unit rows
        random_state=spec.seed,
        n_jobs=_tsne_jobs(),
        callbacks=watcher,
        callbacks_every_iters=25,
        verbose=False,
    )
    embedding = tsne.fit(fit_data)
    watcher.fitting = False
    stages(0.7, "t-SNE fitted")

    def place(rows: np.ndarray | None) -> np.ndarray:
        if rows is None:
            # transform() re-centres the reference embedding in place: read it last.
            return np.asarray(embedding, dtype=np.float32)
        return np.asarray(embedding.transform(rows), dtype=np.float32)

    return place, tuple(notes)


def _tsne_jobs() -> int:
    """openTSNE threads (its results for a seed do not depend on the thread count)."""
    return max(1, min(os.cpu_count() or 1, 8))


class _TSNEProgress:
    """openTSNE callback: reports fit progress and raises ProjectionCancelled when asked to stop."""

    def __init__(self, stages: Stages, early: int, total: int) -> None:
        self.stages = stages
        self.early = early
        self.total = total
        self.phase = 0
        self.fitting = True

    def optimization_about_to_start(self) -> None:
        self.phase += 1
        self.stages.check()

    def __call__(self, iteration: int, error: float, embedding: Any) -> bool:
        if not self.fitting:
            self.stages.check()
            return False
        done = min(iteration + (self.early if self.phase > 1 else 0), self.total)
        self.stages(0.15 + 0.55 * done / self.total, f"t-SNE iteration {done} of {self.total}")
        return False
