"""What a projection computes and returns: the spec and its parameters, the result, the errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_MAX_FIT_POINTS",
    "MIN_ROWS_NONLINEAR",
    "PCAParams",
    "Placer",
    "ProjectionCancelled",
    "ProjectionError",
    "ProjectionParams",
    "ProjectionResult",
    "ProjectionSpec",
    "TSNEParams",
    "UMAPParams",
    "as_spec",
]

Method = Literal["pca", "umap", "tsne"]
Metric = Literal["euclidean", "cosine"]
Scale = Literal["standard", "none"]

#: Rows a method is fitted on when ``ProjectionSpec.max_fit_points`` is not set.
#: PCA: 1M rows give components indistinguishable from the full data's and fit in
#: about 1.5 s (1M x 384, 2 cores); the rest is a matrix product. UMAP: every row up
#: to 200k is fitted (100k x 384 in about 13 s on 2 cores, see ``run_umap``): fitting
#: a 20k sample and placing the rest with ``transform`` was faster but kept only half
#: of each point's 15 nearest neighbours that a full fit keeps. t-SNE: 20k rows fit in
#: tens of seconds on 2 cores; every further row is placed by ``transform``.
DEFAULT_MAX_FIT_POINTS: dict[str, int] = {"pca": 1_000_000, "umap": 200_000, "tsne": 20_000}

#: Fewest kept rows UMAP and t-SNE accept (their neighbour graphs need a few rows).
MIN_ROWS_NONLINEAR = 5


class ProjectionError(ValueError):
    """A projection that cannot run on this input; the message says what to do instead."""


class ProjectionCancelled(Exception):
    """The projection's cancel event was set (or a newer request superseded it)."""


# ----------------------------------------------------------------------------- parameters


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PCAParams(_Frozen):
    """PCA: which principal components (1-based) to plot, and whether to scale them to unit variance."""

    method: Literal["pca"] = "pca"
    components: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (1, 2)
    whiten: bool = False

    @field_validator("components")
    @classmethod
    def _distinct(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] == value[1]:
            raise ValueError(f"components must be two different components, got {value}")
        return value


class UMAPParams(_Frozen):
    """umap-learn's main parameters."""

    method: Literal["umap"] = "umap"
    n_neighbors: int = Field(15, ge=2, le=200)
    min_dist: float = Field(0.1, ge=0.0, le=0.99)
    spread: float = Field(1.0, gt=0.0, le=100.0)
    metric: Metric = "euclidean"

    @model_validator(mode="after")
    def _min_dist_le_spread(self) -> UMAPParams:
        if self.min_dist > self.spread:
            raise ValueError(
                f"min_dist ({self.min_dist}) must not exceed spread ({self.spread}); "
                "lower min_dist or raise spread"
            )
        return self


class TSNEParams(_Frozen):
    """openTSNE's main parameters; ``n_iter`` counts all iterations (a third is early exaggeration)."""

    method: Literal["tsne"] = "tsne"
    perplexity: float = Field(30.0, ge=2.0, le=100.0)
    learning_rate: Literal["auto"] | Annotated[float, Field(gt=0.0)] = "auto"
    early_exaggeration: float = Field(12.0, ge=1.0, le=100.0)
    n_iter: int = Field(750, ge=250, le=5000)
    metric: Metric = "euclidean"


ProjectionParams = Annotated[PCAParams | UMAPParams | TSNEParams, Field(discriminator="method")]
_PARAMS_BY_METHOD: dict[str, type[BaseModel]] = {
    "pca": PCAParams,
    "umap": UMAPParams,
    "tsne": TSNEParams,
}


class ProjectionSpec(_Frozen):
    """What to compute: method, its parameters, seed, fit sample size and the PCA pre-reduction.

    ``params`` defaults to the method's defaults, and a params dict without a
    ``method`` key is read as the spec's method. An integer ``seed`` makes every
    method deterministic: the same input, spec and seed give the same points on
    one machine (UMAP's neighbour search and layout run on every core either way;
    faiss's k-means may place a cell boundary differently under another BLAS, so
    another machine can give a different layout).
    ``seed=None`` draws a fresh seed per run. ``max_fit_points=None`` means
    ``DEFAULT_MAX_FIT_POINTS[method]``. ``scale="standard"`` shifts and scales each
    input dimension to mean 0 and standard deviation 1 over the kept rows before the
    method sees them (for numeric columns on different scales; a constant column is
    only shifted); the default ``"none"`` leaves the values as they are (an
    embedding's dimensions share a scale).
    """

    method: Method = "pca"
    params: ProjectionParams = Field(default_factory=PCAParams)
    seed: int | None = Field(0, ge=0, le=2**32 - 1)
    max_fit_points: int | None = Field(None, ge=10)
    pca_dims: int = Field(50, ge=2, le=1000)
    scale: Scale = "none"

    @model_validator(mode="before")
    @classmethod
    def _fill_params(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        params = data.get("params")
        method = data.get("method")
        if method is None:
            if isinstance(params, BaseModel):
                method = getattr(params, "method", None)
            elif isinstance(params, dict):
                method = params.get("method")
            data["method"] = method = method or "pca"
        if params is None:
            data["params"] = {"method": method}
        elif isinstance(params, dict) and "method" not in params:
            data["params"] = {**params, "method": method}
        return data

    @model_validator(mode="after")
    def _params_match_method(self) -> ProjectionSpec:
        if self.params.method != self.method:
            raise ValueError(
                f"params are {self.params.method} parameters but method is {self.method!r}; "
                f"pass {_PARAMS_BY_METHOD[self.method].__name__} or leave params out"
            )
        return self

    @property
    def fit_points(self) -> int:
        """Rows the method is fitted on at most (the rest are transformed)."""
        if self.max_fit_points is not None:
            return self.max_fit_points
        return DEFAULT_MAX_FIT_POINTS[self.method]


def as_spec(spec: ProjectionSpec | dict[str, Any]) -> ProjectionSpec:
    """``spec`` as a ProjectionSpec (a dict is validated)."""
    if isinstance(spec, ProjectionSpec):
        return spec
    return ProjectionSpec.model_validate(spec)


@dataclass(frozen=True, eq=False)
class ProjectionResult:
    """One 2D point per kept row; arrays are read-only because results are shared via the cache.

    ``points[i]`` belongs to row ``kept_indices[i]`` of the input.
    """

    points: np.ndarray  # float32 (n_kept, 2)
    kept: np.ndarray  # bool (n,)
    spec: ProjectionSpec
    dropped: int
    message: str | None
    notes: tuple[str, ...]
    axis_labels: tuple[str, str]
    fit_points: int
    seconds: float

    @property
    def n_kept(self) -> int:
        """Rows that got a point."""
        return int(self.points.shape[0])

    @property
    def kept_indices(self) -> np.ndarray:
        """Input row numbers of ``points``, in order."""
        return np.flatnonzero(self.kept)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (what the cache counts)."""
        return int(self.points.nbytes + self.kept.nbytes)


Placer = Callable[[np.ndarray | None], np.ndarray]
"""A fitted UMAP or t-SNE: ``place(None)`` is the fitted rows' points, ``place(rows)`` places
other rows in the same 2D space."""
