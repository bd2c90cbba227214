"""The 2D Projection panel's config: what to project, how, and how to colour, size and label."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from panels_core import projection as proj
from panels_core.panel import Column, PanelConfig, Prefer, columns_of
from panels_core.types import (
    BooleanType,
    CategoryType,
    EmbeddingType,
    ImageType,
    NumberType,
    StringType,
    TimestampType,
    strip_optional,
)

__all__ = [
    "DIM_ALPHA",
    "MAX_INLINE_THUMBNAILS",
    "MAX_SCATTER_POINTS",
    "ProjectionConfig",
    "is_number",
]

MAX_SCATTER_POINTS = 50_000
"""Above this many points the panel rasterises on the server instead of sending a scatter."""
MAX_INLINE_THUMBNAILS = 5_000
"""Up to this many points every row's hover thumbnail is sent with the scatter; above, only the
clicked row's image is fetched (beside the neighbour list)."""
Metric = Literal["euclidean", "cosine"]
DIM_ALPHA = 0.08
"""The alpha of points a search or a linked selection leaves out."""

_PARAM_FIELDS = {
    "components": "pca_x / pca_y",
    "min_dist": "umap_min_dist / umap_spread",
    "spread": "umap_spread",
    "n_neighbors": "umap_n_neighbors",
    "perplexity": "tsne_perplexity",
    "learning_rate": "tsne_learning_rate",
    "early_exaggeration": "tsne_early_exaggeration",
    "n_iter": "tsne_n_iter",
}
"""ProjectionSpec parameter -> the config field(s) named in an error."""

EMBEDDING = EmbeddingType()
NUMBER = NumberType()
_HOVER_TYPES = [NUMBER, CategoryType(), StringType(), BooleanType(), TimestampType()]


class ProjectionConfig(PanelConfig):
    """What to project, how, and how to colour, size, label and inspect the points."""

    columns: Annotated[
        list[str],
        Column(
            accepts=[EMBEDDING, NUMBER],
            multiple=True,
            prefer=[Prefer(EMBEDDING, max=1), Prefer(NUMBER, min=2)],
        ),
        Field(description="one embedding column, or two or more numeric columns"),
    ]
    method: Literal["pca", "umap", "tsne"] = Field("pca", description="the projection")
    scale: Literal["standard", "none"] = Field(
        "standard",
        description="numeric columns: standardize each (mean 0, standard deviation 1) first; "
        "an embedding column is never scaled",
    )
    pca_x: int = Field(1, ge=1, le=50, description="PCA: the component on the x axis")
    pca_y: int = Field(2, ge=1, le=50, description="PCA: the component on the y axis")
    pca_whiten: bool = Field(False, description="PCA: scale the components to unit variance")
    umap_n_neighbors: int = Field(15, ge=2, le=200, description="UMAP: neighbours per point")
    umap_min_dist: float = Field(0.1, ge=0.0, le=0.99, description="UMAP: minimum distance")
    umap_spread: float = Field(1.0, gt=0.0, le=100.0, description="UMAP: scale of the layout")
    umap_metric: Metric = Field("euclidean", description="UMAP: distance in the input space")
    tsne_perplexity: float = Field(30.0, ge=2.0, le=100.0, description="t-SNE: perplexity")
    tsne_learning_rate: Literal["auto"] | Annotated[float, Field(gt=0.0)] = Field(
        "auto", description='t-SNE: "auto" or a positive number'
    )
    tsne_early_exaggeration: float = Field(
        12.0, ge=1.0, le=100.0, description="t-SNE: early exaggeration"
    )
    tsne_n_iter: int = Field(750, ge=250, le=5000, description="t-SNE: iterations in all")
    tsne_metric: Metric = Field("euclidean", description="t-SNE: distance in the input space")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed (same seed, same layout)")
    max_fit_points: int | None = Field(
        None,
        ge=10,
        description="fit on a random sample of this many rows and place the rest with "
        "transform (default: 1,000,000 for PCA, 200,000 for UMAP, 20,000 for t-SNE)",
    )
    colour_by: Annotated[
        str | None,
        Column(
            accepts=[CategoryType(), BooleanType(), NUMBER, StringType()],
            required=False,
            prefer=[CategoryType(), BooleanType()],
        ),
        Field(description="category: a colour per value with a legend; number: a colour bar"),
    ] = None
    size_by: Annotated[
        str | None,
        Column(accepts=NUMBER, required=False),
        Field(description="a number column mapped to the point size"),
    ] = None
    image: Annotated[
        str | None,
        Column(accepts=ImageType(), required=False, prefer=[ImageType()]),
        Field(description="an image column shown as a thumbnail on hover"),
    ] = None
    label: Annotated[
        str | None,
        Column(accepts=[StringType(), CategoryType()], required=False),
        Field(
            description="the text searched and listed for neighbours "
            "(default: the colour column when it is a category)"
        ),
    ] = None
    tooltip: Annotated[
        list[str],
        Column(accepts=_HOVER_TYPES, required=False, multiple=True),
        Field(description="more columns shown on hover"),
    ] = []
    knn_k: int = Field(10, ge=1, le=100, description="neighbours listed for a clicked point")
    knn_metric: Metric = Field("cosine", description="distance of the neighbour list")
    search: str = Field("", description="highlight the points whose label contains this text")
    point_size: float = Field(6.0, ge=1.0, le=30.0, description="point size in pixels")

    @model_validator(mode="after")
    def _params_are_valid(self) -> ProjectionConfig:
        for method in ("pca", "umap", "tsne"):  # all, so a saved config stays valid on switching
            try:
                proj.ProjectionSpec(
                    method=method,
                    params={"method": method, **self._params(method)},
                    seed=self.seed,
                    max_fit_points=self.max_fit_points,
                )
            except ValidationError as exc:
                error = exc.errors()[0]
                where = _PARAM_FIELDS.get(str(error["loc"][-1]) if error["loc"] else "", method)
                text = str(error["msg"]).removeprefix("Value error, ")
                raise ValueError(f"{where}: {text}") from None
        return self

    def _params(self, method: str) -> dict[str, Any]:
        if method == "pca":
            return {"components": (self.pca_x, self.pca_y), "whiten": self.pca_whiten}
        if method == "umap":
            return {
                "n_neighbors": self.umap_n_neighbors,
                "min_dist": self.umap_min_dist,
                "spread": self.umap_spread,
                "metric": self.umap_metric,
            }
        return {
            "perplexity": self.tsne_perplexity,
            "learning_rate": self.tsne_learning_rate,
            "early_exaggeration": self.tsne_early_exaggeration,
            "n_iter": self.tsne_n_iter,
            "metric": self.tsne_metric,
        }

    def spec(self, embedding: bool = False) -> proj.ProjectionSpec:
        """The ``ProjectionSpec`` of this config (its method's parameters only); the input is
        scaled as ``scale`` says unless it is an ``embedding`` column (never scaled)."""
        return proj.ProjectionSpec(
            method=self.method,
            params={"method": self.method, **self._params(self.method)},
            seed=self.seed,
            max_fit_points=self.max_fit_points,
            scale="none" if embedding else self.scale,
        )

    def search_column(self, view_type: Any) -> str | None:
        """The column the search box and the neighbour list read: ``label``, else ``colour_by``
        when it is not a number column."""
        if self.label is not None:
            return self.label
        if self.colour_by is not None and not is_number(view_type, self.colour_by):
            return self.colour_by
        return None


def is_number(view_type: Any, column: str) -> bool:
    """True when ``column`` of the view type is a number column."""
    return isinstance(strip_optional(columns_of(view_type)[column]), NumberType)
