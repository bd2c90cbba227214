"""Matching and ranking: which panels fit which table types, in which order, with which config.

The panels here are test-only stand-ins shaped like the built-ins (table,
histogram, multi-histogram, 2D projection, joined table, image gallery).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from panels_core.panel import Column, Panel, PanelConfig, Prefer, columns_of, specificity
from panels_core.panel_registry import Registry
from panels_core.types import (
    AnyType,
    CategoryType,
    ComparedType,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    TableType,
)

NUMBER = NumberType()
CATEGORY = CategoryType()


class TablePanel(Panel[PanelConfig]):
    kind = "table"

    def render(self, view: Any) -> Any:
        return None


class HistogramConfig(PanelConfig):
    column: Annotated[str, Column(accepts=[NUMBER, ListType(item=NUMBER)])]
    bins: int | Literal["auto"] = "auto"


class Histogram(Panel[HistogramConfig]):
    kind = "histogram"

    def render(self, view: Any) -> Any:
        return None


class MultiHistogramConfig(PanelConfig):
    column: Annotated[str, Column(accepts=[ComparedType(item=NUMBER), NUMBER])]
    by: Annotated[str | None, Column(accepts=CATEGORY, required=False, prefer=[CATEGORY])] = None


class MultiHistogram(Panel[MultiHistogramConfig]):
    """compared[number], or number split by a category: a custom match."""

    kind = "multi_histogram"

    @classmethod
    def match(cls, view_type: Any) -> float | None:
        columns = columns_of(view_type)
        kinds = [getattr(t, "inner", t) for t in columns.values()]
        if any(isinstance(t, ComparedType) and isinstance(t.item, NumberType) for t in kinds):
            return specificity(ComparedType(item=NUMBER))
        if any(isinstance(t, NumberType) for t in kinds) and any(
            isinstance(t, CategoryType) for t in kinds
        ):
            return specificity(NUMBER) + specificity(CATEGORY)
        return None

    @classmethod
    def default_config(cls, view_type: Any) -> Any:
        config = super().default_config(view_type)
        if isinstance(columns_of(view_type)[config.column], ComparedType):
            return config.model_copy(update={"by": None})
        return config

    def render(self, view: Any) -> Any:
        return None


class ProjectionConfig(PanelConfig):
    columns: Annotated[
        list[str],
        Column(
            accepts=[EmbeddingType(), NUMBER],
            multiple=True,
            prefer=[Prefer(EmbeddingType(), max=1), Prefer(NUMBER, min=2)],
        ),
    ]
    color_by: Annotated[
        str | None, Column(accepts=AnyType(), required=False, prefer=[CATEGORY])
    ] = None
    method: Literal["pca", "umap", "tsne"] = "pca"
    perplexity: float = Field(30.0, ge=2, le=100)


class Projection(Panel[ProjectionConfig]):
    kind = "projection"

    def render(self, view: Any) -> Any:
        return None


class JoinedTablePanel(Panel[PanelConfig]):
    kind = "joined_table"
    input_kind = "joined_table"

    def render(self, view: Any) -> Any:
        return None


class GalleryConfig(PanelConfig):
    image: Annotated[str, Column(accepts=ImageType())]
    caption: Annotated[
        str | None, Column(accepts=StringType(), required=False, prefer=[CATEGORY])
    ] = None


class ImageGallery(Panel[GalleryConfig]):
    kind = "image_gallery"

    def render(self, view: Any) -> Any:
        return None


BUILTINS = [TablePanel, Histogram, MultiHistogram, Projection, JoinedTablePanel, ImageGallery]


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    for cls in BUILTINS:
        registry.register(cls)
    return registry


def table(**columns: Any) -> TableType:
    return TableType(columns=columns)


JOINED = JoinedTableType(
    left=table(id=NumberType(integer=True), img=ImageType()),
    right=table(id=NumberType(integer=True), pred=CATEGORY),
    left_key="id",
    right_key="id",
    left_name="gt",
    right_name="preds",
)

CASES = {
    "number": (table(x=NUMBER), ["histogram", "table"]),
    "category": (table(label=CATEGORY), ["table"]),
    "string": (table(text=StringType()), ["table"]),
    "embedding": (table(emb=EmbeddingType(dim=8)), ["projection", "table"]),
    "image": (table(img=ImageType()), ["image_gallery", "table"]),
    "several numbers": (
        table(a=NUMBER, b=OptionalType(inner=NUMBER), c=NumberType(integer=True)),
        ["histogram", "projection", "table"],
    ),
    "number and category": (
        table(score=NUMBER, label=CATEGORY),
        ["multi_histogram", "histogram", "table"],
    ),
    "grouped list[number]": (
        table(label=CATEGORY, score=ListType(item=NUMBER)),
        ["histogram", "table"],
    ),
    "compared[number]": (
        table(id=StringType(), score=ComparedType(item=NUMBER, sources=("0", "1"))),
        ["multi_histogram", "table"],
    ),
    "grouped and compared": (
        table(label=CATEGORY, score=ComparedType(item=ListType(item=NUMBER))),
        ["table"],
    ),
    "joined": (
        JOINED,
        ["joined_table", "image_gallery", "multi_histogram", "histogram", "projection", "table"],
    ),
    "ml predictions": (
        table(
            id=StringType(),
            img=ImageType(box_layers=("ground_truth",)),
            emb=EmbeddingType(dim=64),
            score=OptionalType(inner=NUMBER),
            label=CATEGORY,
        ),
        ["image_gallery", "projection", "multi_histogram", "histogram", "table"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ranking(reg: Registry, case: str) -> None:
    view_type, expected = CASES[case]
    matches = reg.compatible(view_type)
    assert [m.kind for m in matches] == expected
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert matches[-1].kind == "table" and matches[-1].score == 0.0
    assert reg.default(view_type).kind == expected[0]


def test_permissive_slot_scores_far_below_a_specific_one() -> None:
    assert specificity(AnyType()) == 0
    assert specificity(EmbeddingType()) - specificity(AnyType()) >= 5
    order = [AnyType(), StringType(), NUMBER, ListType(item=NUMBER)]
    order += [ComparedType(item=NUMBER), EmbeddingType(), ImageType(), JOINED]
    values = [specificity(t) for t in order]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert specificity(OptionalType(inner=CATEGORY)) == specificity(CATEGORY) == 3
    assert specificity(EmbeddingType(dim=8)) > specificity(EmbeddingType())
    assert specificity(NumberType(integer=True)) > specificity(NUMBER)


def test_ties_keep_registration_order_then_kind() -> None:
    reg = Registry()
    reg.register(Projection)
    reg.register(Histogram)
    view_type = table(a=NUMBER, b=NUMBER)
    assert [(m.kind, m.score) for m in reg.compatible(view_type)] == [
        ("projection", 2.0),
        ("histogram", 2.0),
    ]


def test_default_configs_fill_slots(reg: Registry) -> None:
    configs = {m.kind: m.config for m in reg.compatible(CASES["ml predictions"][0])}
    assert configs["projection"].columns == ["emb"]
    assert configs["projection"].color_by == "label"
    assert configs["projection"].method == "pca"
    assert configs["image_gallery"].image == "img"
    assert configs["image_gallery"].caption == "label"
    assert configs["histogram"].column == "score"
    assert configs["multi_histogram"].model_dump() == {"column": "score", "by": "label"}

    numbers = {m.kind: m.config for m in reg.compatible(CASES["several numbers"][0])}
    assert numbers["projection"].columns == ["a", "b", "c"]
    assert numbers["projection"].color_by is None
    # the most specific member first: an integer column fits `number` at 2, a list at 3
    grouped = reg.default(table(n=NUMBER, s=ListType(item=NUMBER)))
    assert grouped.kind == "histogram" and grouped.config.column == "s"


def test_joined_table_columns_are_side_prefixed(reg: Registry) -> None:
    configs = {m.kind: m.config for m in reg.compatible(JOINED)}
    assert configs["image_gallery"].image == "gt.img"
    assert configs["image_gallery"].caption == "preds.pred"
    assert configs["projection"].columns == ["gt.id", "preds.id"]
    assert configs["joined_table"].model_dump() == {}


def test_joined_table_panel_needs_a_join(reg: Registry) -> None:
    assert JoinedTablePanel.match(table(x=NUMBER)) is None
    assert JoinedTablePanel.match(JOINED) == specificity(JOINED) == 10


def test_compared_default_leaves_by_empty(reg: Registry) -> None:
    match = reg.compatible(CASES["compared[number]"][0])[0]
    assert match.config.model_dump() == {"column": "score", "by": None}
