"""The gear form: widgets chosen from the config model, changes validated in Python."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import panel as pn
import pytest
from pydantic import Field, model_validator

from panels_core.forms import NONE_LABEL, config_form
from panels_core.panel import Column, Panel, PanelConfig
from panels_core.types import (
    CategoryType,
    EmbeddingType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    TableType,
)


class Palette(enum.Enum):
    BLUES = "blues"
    VIRIDIS = "viridis"


class HistConfig(PanelConfig):
    column: Annotated[str, Column(accepts=[NumberType(), ListType(item=NumberType())])]
    by: Annotated[
        str | None, Column(accepts=CategoryType(), required=False, prefer=[CategoryType()])
    ] = None
    extra: Annotated[list[str], Column(accepts=NumberType(), required=False, multiple=True)] = []
    bins: int | Literal["auto"] = "auto"
    max_bins: int = Field(100, ge=1, description="upper bound for auto bins")
    top: int = Field(10, ge=1, le=50)
    opacity: float = Field(0.8, ge=0, le=1)
    scale: float = 1.0
    log: bool = False
    mode: Literal["count", "density"] = "count"
    palette: Palette = Palette.BLUES
    title_text: str = ""
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _range_order(self) -> HistConfig:
        if self.range is not None and self.range[0] >= self.range[1]:
            raise ValueError("range must be (low, high) with low < high")
        return self


class Hist(Panel[HistConfig]):
    kind = "hist"

    def render(self, view: Any) -> Any:
        return None


TT = TableType(
    columns={
        "score": NumberType(),
        "loss": OptionalType(inner=NumberType()),
        "label": CategoryType(),
        "text": StringType(),
        "emb": EmbeddingType(dim=3),
    }
)


def test_widgets_follow_field_types() -> None:
    form = config_form(Hist, TT)
    kinds = {name: type(w).__name__ for name, w in form.widgets.items()}
    assert kinds == {
        "column": "Select",
        "by": "Select",
        "extra": "MultiChoice",
        "bins": "TextInput",
        "max_bins": "IntInput",
        "top": "IntSlider",
        "opacity": "FloatSlider",
        "scale": "FloatInput",
        "log": "Checkbox",
        "mode": "Select",
        "palette": "Select",
        "title_text": "TextInput",
        "range": "TextInput",
    }
    w = form.widgets
    assert (w["top"].start, w["top"].end) == (1, 50)
    assert w["max_bins"].start == 1 and w["max_bins"].end is None
    assert w["max_bins"].description == "upper bound for auto bins"
    label = w["max_bins"].label if "label" in w["max_bins"].param else w["max_bins"].name
    assert label == "Max bins"
    assert w["mode"].options == {"count": "count", "density": "density"}
    assert w["palette"].value is Palette.BLUES


def test_slot_selects_list_only_assignable_columns() -> None:
    form = config_form(Hist, TT)
    assert list(form.widgets["column"].options.values()) == ["score", "loss"]
    assert list(form.widgets["column"].options) == ["score (number)", "loss (optional[number])"]
    assert form.widgets["by"].options == {NONE_LABEL: None, "label (category)": "label"}
    assert list(form.widgets["extra"].options.values()) == ["score", "loss"]
    assert form.config.model_dump()["column"] == "score"
    assert form.config.by == "label"  # the default config


def test_changing_a_field_gives_a_new_validated_config() -> None:
    seen: list[HistConfig] = []
    form = config_form(Hist, TT, {"column": "score"}, on_change=seen.append)
    assert form.config.by is None
    form.widgets["column"].value = "loss"
    form.widgets["bins"].value = "40"
    form.widgets["by"].value = "label"
    form.widgets["extra"].value = ["score"]
    form.widgets["range"].value = "[0, 2.5]"
    form.widgets["palette"].value = Palette.VIRIDIS
    form.widgets["log"].value = True
    config = form.config
    assert isinstance(config, HistConfig)
    assert (config.column, config.bins, config.by, config.extra) == ("loss", 40, "label", ["score"])
    assert config.range == (0.0, 2.5) and config.palette is Palette.VIRIDIS and config.log
    assert len(seen) == 7 and seen[-1] == config
    form.widgets["bins"].value = "auto"
    assert form.config.bins == "auto"
    form.widgets["range"].value = ""
    assert form.config.range is None
    assert form.errors == {}


def test_an_invalid_value_shows_the_message_and_keeps_the_last_valid_config() -> None:
    seen: list[HistConfig] = []
    form = config_form(Hist, TT, on_change=seen.append)
    before = form.config
    form.widgets["max_bins"].value = 0
    assert form.config is before and seen == []
    assert form.errors == {"max_bins": "Input should be greater than or equal to 1"}
    layout = pn.panel(form)
    text = [pane.object for pane in layout.select(pn.pane.Alert) if pane.visible]
    assert text == ["Input should be greater than or equal to 1"]

    form.widgets["column"].value = "text"  # a string column typed by hand
    assert (
        form.errors["column"]
        == "column `text` is string, but this slot accepts number | list[number]"
    )

    form.widgets["column"].value = "score"
    form.widgets["max_bins"].value = 7
    assert form.errors == {} and form.config.max_bins == 7 and len(seen) == 1
    assert not any(p.visible for p in layout.select(pn.pane.Alert))


def test_whole_config_errors_are_shown_at_the_top() -> None:
    form = config_form(Hist, TT)
    form.widgets["range"].value = "[3, 1]"
    assert form.errors == {"__form__": "range must be (low, high) with low < high"}
    assert form.config.range is None


def test_setting_config_updates_the_widgets() -> None:
    form = config_form(Hist, TT)
    form.config = Hist.validate_config({"column": "loss", "bins": 12, "range": [1, 2]}, TT)
    assert form.widgets["column"].value == "loss"
    assert form.widgets["bins"].value == "12"
    assert form.widgets["range"].value == "[1.0, 2.0]"
    assert form.widgets["by"].value is None


def test_a_starting_config_that_does_not_fit_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown column `nope`"):
        config_form(Hist, TT, {"column": "nope"})
