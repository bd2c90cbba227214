"""Slot preferences a plugin can state: not a row id (``Prefer(not_id=True)``, ``looks_like_id``)
and free text, not a category (``Prefer(StringType(), exclude=CategoryType())``)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

import panels_core
from panels_core import Column, Panel, PanelConfig, Prefer, looks_like_id
from panels_core.panel import PanelDefinitionError
from panels_core.panel_registry import Registry
from panels_core.types import (
    CategoryType,
    EmbeddingType,
    NumberType,
    OptionalType,
    StringType,
    TableType,
)

INT = NumberType(integer=True)
FLOAT = NumberType()
TEXT = StringType()
LABEL = CategoryType()


class MeasureConfig(PanelConfig):
    # a measure, never a row id
    column: Annotated[str, Column(accepts=FLOAT, prefer=[Prefer(FLOAT, not_id=True)])]


class Measure(Panel[MeasureConfig]):
    kind = "measure"

    def render(self, view: Any) -> Any:
        return None


class MeasureOrIdConfig(PanelConfig):
    # a measure if there is one, else whatever number there is (an id too)
    column: Annotated[str, Column(accepts=FLOAT, prefer=[Prefer(FLOAT, not_id=True), FLOAT])]


class MeasureOrId(Panel[MeasureOrIdConfig]):
    kind = "measure_or_id"

    def render(self, view: Any) -> Any:
        return None


class NotesConfig(PanelConfig):
    # free text (captions, prompts), never a category
    column: Annotated[str, Column(accepts=TEXT, prefer=[Prefer(TEXT, exclude=LABEL)])]


class Notes(Panel[NotesConfig]):
    kind = "notes"

    def render(self, view: Any) -> Any:
        return None


class PlainTextConfig(PanelConfig):
    column: Annotated[str, Column(accepts=TEXT)]


class PlainText(Panel[PlainTextConfig]):
    kind = "plain_text"

    def render(self, view: Any) -> Any:
        return None


@pytest.mark.parametrize(
    ("name", "column_type", "expected"),
    [
        ("id", INT, True),
        ("image_id", INT, True),
        ("row.index", OptionalType(inner=INT), True),
        ("UUID", INT, True),
        ("id", FLOAT, False),  # a float named id is a measure
        ("id", TEXT, False),
        ("width", INT, False),
        ("valid", INT, False),  # ends in "id" but not as a word
    ],
)
def test_looks_like_id_is_public_and_says_which_columns_are_row_ids(name, column_type, expected):
    assert panels_core.looks_like_id is looks_like_id
    assert looks_like_id(name, column_type) is expected


def test_not_id_skips_row_ids_in_the_default_config():
    tt = TableType(columns={"image_id": INT, "width": INT, "score": FLOAT})
    assert Measure.default_config(tt).column == "width"  # not the first (image_id) column
    only_ids = TableType(columns={"id": INT, "row": INT})
    assert Measure.match(only_ids) is None  # nothing but ids: the panel does not fit
    assert MeasureOrId.default_config(only_ids).column == "id"  # the fallback tier takes one


def test_exclude_makes_a_slot_free_text_not_a_category():
    tt = TableType(columns={"animal": LABEL, "name": TEXT, "age": INT})
    assert PlainText.default_config(tt).column == "animal"  # a category is a string too
    assert Notes.default_config(tt).column == "name"
    only_labels = TableType(columns={"animal": LABEL, "age": INT})
    assert PlainText.match(only_labels) == 1.0  # the score of the `string` it fits
    assert Notes.match(only_labels) is None


def test_the_registry_offers_each_preference_where_it_fits():
    reg = Registry()
    for cls in (Measure, Notes, PlainText):
        reg.register(cls, distribution="tests", version="0")
    pets = TableType(columns={"id": INT, "animal": LABEL, "name": TEXT})
    offered = {m.kind: m.config.column for m in reg.compatible(pets)}
    assert offered == {"plain_text": "animal", "notes": "name"}  # no measure: only an id


def test_exclude_is_checked_like_accepts():
    with pytest.raises(PanelDefinitionError, match="not accepted by the slot"):
        Column(accepts=EmbeddingType(), prefer=[Prefer(TEXT, exclude=LABEL)])
    assert Prefer(TEXT, exclude="category").exclude == LABEL
