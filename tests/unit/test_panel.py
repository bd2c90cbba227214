"""The Panel contract: Column slots, config validation against a table, default configs."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from panels_core.panel import (
    API_VERSION,
    Column,
    Panel,
    PanelConfig,
    PanelDefinitionError,
    Prefer,
    check_panel_class,
    slots_of,
)
from panels_core.types import (
    AnyType,
    CategoryType,
    EmbeddingType,
    NumberType,
    OptionalType,
    StringType,
    TableType,
    UnionType,
)

NUMBER = NumberType()
TT = TableType(
    columns={
        "score": OptionalType(inner=NUMBER),
        "count": NumberType(integer=True),
        "label": CategoryType(categories=("cat", "dog")),
        "text": StringType(),
        "emb": EmbeddingType(dim=4),
    }
)


class ScatterConfig(PanelConfig):
    x: Annotated[str, Column(accepts=NUMBER)]
    y: Annotated[str, Column(accepts=NUMBER)]
    color: Annotated[str | None, Column(accepts=AnyType(), required=False, prefer=["category"])] = (
        None
    )
    size: Annotated[str | None, Column(accepts=NUMBER, required=False)] = None
    alpha: float = Field(0.5, ge=0, le=1)


class Scatter(Panel[ScatterConfig]):
    kind = "scatter"

    def render(self, view: Any) -> Any:
        return None


def test_config_model_comes_from_the_generic_parameter() -> None:
    assert Scatter.config_model is ScatterConfig
    assert Scatter.api_version == API_VERSION
    assert Scatter.title == "Scatter"
    assert Scatter.input_kind == "table"


def test_column_accepts_names_sequences_and_models() -> None:
    assert Column(accepts="number").accepts == NUMBER
    union = Column(accepts=["embedding", NUMBER]).accepts
    assert union == UnionType(members=(EmbeddingType(), NUMBER))
    assert Column().accepts == AnyType()
    assert Column(accepts=NUMBER, prefer=[NUMBER]).prefer == (Prefer(NUMBER),)


def test_column_rejects_a_preference_the_slot_does_not_accept() -> None:
    with pytest.raises(PanelDefinitionError, match="preferred type category is not accepted"):
        Column(accepts=NUMBER, prefer=[CategoryType()])
    with pytest.raises(PanelDefinitionError, match="min <= max"):
        Prefer(NUMBER, min=3, max=2)


def test_nullable_columns_fit_unless_the_slot_refuses_nulls() -> None:
    optional = OptionalType(inner=NUMBER)
    assert Column(accepts=NUMBER).fits(optional)
    assert not Column(accepts=NUMBER, nullable=False).fits(optional)
    assert Column(accepts=NUMBER, nullable=False).fits(NumberType(integer=True))


def test_slots_of_reads_shape_and_requirement() -> None:
    slots = slots_of(ScatterConfig)
    assert list(slots) == ["x", "y", "color", "size"]
    assert slots["x"].required and not slots["x"].multiple and not slots["x"].optional
    assert not slots["color"].required and slots["color"].optional


@pytest.mark.parametrize(
    ("annotation", "default", "column", "message"),
    [
        (list[str], ..., Column(), "Column\\(multiple=False\\) but the field is typed a list"),
        (
            str,
            ...,
            Column(multiple=True),
            "Column\\(multiple=True\\) but the field is typed a single",
        ),
        (str, "x", Column(), "a required slot must not have a default"),
        (str | None, ..., Column(required=False), "an optional slot needs a default"),
        (str, "x", Column(required=False), "an optional slot must be typed `str \\| None`"),
        (int, ..., Column(), "must be typed `str` or `list\\[str\\]`"),
    ],
)
def test_inconsistent_slots_are_refused(
    annotation: Any, default: Any, column: Column, message: str
) -> None:
    from pydantic import create_model

    model = create_model("Bad", __base__=PanelConfig, col=(Annotated[annotation, column], default))
    with pytest.raises(PanelDefinitionError, match=message):
        slots_of(model)


def test_validation_against_a_table_names_the_problem() -> None:
    ok = Scatter.validate_config({"x": "score", "y": "count"}, TT)
    assert (ok.x, ok.y, ok.color) == ("score", "count", None)
    with pytest.raises(ValidationError) as info:
        Scatter.validate_config({"x": "scroe", "y": "count"}, TT)
    assert info.value.errors()[0]["loc"] == ("x",)
    assert "unknown column `scroe`; the columns are `score`" in str(info.value)
    with pytest.raises(
        ValidationError, match=r"column `label` is category\(2\), but this slot accepts number"
    ):
        Scatter.validate_config({"x": "label", "y": "count"}, TT)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Scatter.validate_config({"x": "score", "y": "count", "zoom": 2}, TT)
    # without a table only the shapes are checked
    assert Scatter.validate_config({"x": "anything", "y": "else"}).x == "anything"


def test_default_config_uses_distinct_columns_and_prefers_categories() -> None:
    config = Scatter.default_config(TT)
    # integer is more specific than number, so `count` comes first
    assert config.model_dump() == {
        "x": "count",
        "y": "score",
        "color": "label",
        "size": None,  # optional without `prefer` stays empty
        "alpha": 0.5,
    }
    assert Scatter.match(TT) == 4.0  # two slots accepting `number`: 2 + 2 (optional slots add 0)


def test_a_panel_needing_two_columns_does_not_fit_one() -> None:
    one = TableType(columns={"score": NUMBER, "label": CategoryType()})
    assert Scatter.match(one) is None
    with pytest.raises(
        ValueError, match="panel `scatter` does not fit this table: it needs columns for x"
    ):
        Scatter.default_config(one)


def test_slot_assignment_backtracks() -> None:
    class PairConfig(PanelConfig):
        anything: Annotated[str, Column(accepts=AnyType())]
        number: Annotated[str, Column(accepts=NUMBER)]

    class Pair(Panel[PairConfig]):
        kind = "pair"

        def render(self, view: Any) -> Any:
            return None

    tt = TableType(columns={"n": NUMBER, "s": StringType()})
    # greedy would give `anything` the number (more specific) and leave `number` empty
    assert Pair.default_config(tt).model_dump() == {"anything": "s", "number": "n"}


def test_projection_prefers_embedding_then_numbers() -> None:
    class ProjConfig(PanelConfig):
        columns: Annotated[
            list[str],
            Column(
                accepts=[EmbeddingType(), NUMBER],
                multiple=True,
                prefer=[Prefer(EmbeddingType(), max=1), Prefer(NUMBER, min=2)],
            ),
        ]

    class Proj(Panel[ProjConfig]):
        kind = "proj"

        def render(self, view: Any) -> Any:
            return None

    two_embeddings = TableType(columns={"a": NUMBER, "e1": EmbeddingType(), "e2": EmbeddingType()})
    assert Proj.default_config(two_embeddings).columns == ["e1"]
    assert Proj.default_config(TT).columns == ["emb"]
    numbers = TableType(columns={"a": NUMBER, "t": StringType(), "b": NUMBER})
    assert Proj.default_config(numbers).columns == ["a", "b"]
    assert Proj.match(TableType(columns={"a": NUMBER})) is None
    with pytest.raises(ValidationError, match="choose at least one column"):
        Proj.validate_config({"columns": []}, numbers)
    with pytest.raises(ValidationError, match="a column is chosen twice"):
        Proj.validate_config({"columns": ["a", "a"]}, numbers)


def test_panel_instances_validate_their_config() -> None:
    panel = Scatter({"x": "a", "y": "b"}, alpha=0.9)
    assert panel.config.alpha == 0.9
    assert panel.config_dict() == {"x": "a", "y": "b", "color": None, "size": None, "alpha": 0.9}
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Scatter({"x": "a", "y": "b"}, alpha=3)
    with pytest.raises(ValidationError):
        panel.config.alpha = 0.1  # frozen


def test_check_panel_class_reports_each_contract_break() -> None:
    check_panel_class(Scatter)

    class NoKind(Panel[PanelConfig]):
        def render(self, view: Any) -> Any:
            return None

    with pytest.raises(PanelDefinitionError, match="kind must be a lower-case name"):
        check_panel_class(NoKind)

    class NoRender(Panel[PanelConfig]):
        kind = "no_render"

    with pytest.raises(PanelDefinitionError, match="must define render"):
        check_panel_class(NoRender)

    class NeedsValue(PanelConfig):
        bins: int

    class Bad(Panel[NeedsValue]):
        kind = "bad"

        def render(self, view: Any) -> Any:
            return None

    with pytest.raises(PanelDefinitionError, match=r"NeedsValue\.bins needs a default"):
        check_panel_class(Bad)

    class Loose(PanelConfig):
        model_config = ConfigDict(frozen=False)

    class LoosePanel(Panel[Loose]):
        kind = "loose"

        def render(self, view: Any) -> Any:
            return None

    with pytest.raises(PanelDefinitionError, match="must stay frozen"):
        check_panel_class(LoosePanel)

    class NotAConfig(BaseModel):
        a: int = 1

    class Wrong(Panel[PanelConfig]):
        kind = "wrong"
        config_model = NotAConfig  # type: ignore[assignment]

        def render(self, view: Any) -> Any:
            return None

    with pytest.raises(PanelDefinitionError, match="must subclass PanelConfig"):
        check_panel_class(Wrong)
    with pytest.raises(PanelDefinitionError, match=r"not a subclass of panels_core\.Panel"):
        check_panel_class(int)


def test_single_slots_are_filled_before_multiple_ones() -> None:
    class FitConfig(PanelConfig):
        features: Annotated[list[str], Column(accepts=NUMBER, multiple=True)]
        target: Annotated[str, Column(accepts=NUMBER)]

    class Fit(Panel[FitConfig]):
        kind = "fit"

        def render(self, view: Any) -> Any:
            return None

    tt = TableType(columns={"a": NUMBER, "b": NUMBER, "y": NumberType(integer=True)})
    config = Fit.default_config(tt)
    assert config.model_dump() == {"features": ["a", "b"], "target": "y"}
    assert list(Fit.default_config(tt).model_dump()) == ["features", "target"]
    assert Fit.match(TableType(columns={"a": NUMBER})) is None
