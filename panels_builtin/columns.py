"""What a column holds and which one a panel picks: the item inside optional, list and
compared types, and the measure to show instead of a column named like a row id."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from panels_core.slots import looks_like_id
from panels_core.types import (
    CategoryType,
    ComparedType,
    EmbeddingType,
    ImageType,
    ListType,
    NumberType,
    TableType,
    strip_optional,
)

__all__ = [
    "has_media",
    "image_item",
    "innermost_item",
    "label_column",
    "looks_like_id",
    "number_item",
    "pick_measure",
]

_LABEL_NAME = re.compile(r"(^|[_.\s])(label|labels|class|category|target|y)$", re.IGNORECASE)


def has_media(table_type: Any) -> bool:
    """True for a plain table with an embedding or image column (what a gallery or a
    projection shows better than rows)."""
    if not isinstance(table_type, TableType):
        return False
    return any(
        isinstance(strip_optional(t), EmbeddingType | ImageType)
        for t in table_type.columns.values()
    )


def label_column(columns: Mapping[str, Any]) -> str | None:
    """The category column named like a label (``label``, ``class``, ``target``), else the
    first category column, else None."""
    categories = [c for c, t in columns.items() if isinstance(strip_optional(t), CategoryType)]
    named = [c for c in categories if _LABEL_NAME.search(c)]
    return (named or categories or [None])[0]


def innermost_item(column_type: Any) -> Any:
    """The type inside ``T``, ``optional[T]``, ``list[T]``, ``compared[T]`` and their nestings."""
    t = strip_optional(column_type)
    while isinstance(t, ListType | ComparedType):
        t = strip_optional(t.item)
    return t


def number_item(column_type: Any) -> NumberType | None:
    """The NumberType inside ``T``, ``optional[T]``, ``list[T]`` or ``compared[T]``, else None."""
    t = innermost_item(column_type)
    return t if isinstance(t, NumberType) else None


def image_item(column_type: Any) -> ImageType | None:
    """The ImageType inside ``T``, ``optional[T]``, ``list[T]`` or ``compared[T]``, else None."""
    t = innermost_item(column_type)
    return t if isinstance(t, ImageType) else None


def pick_measure(chosen: str, columns: Mapping[str, Any], taken: Collection[str] = ()) -> str:
    """``chosen``, or when it looks like a row id, the first number column that does not.

    Keeps ``chosen`` when no other (untaken) number column exists, so a table
    holding only ids still gets a histogram of them.
    """
    if not looks_like_id(chosen, columns[chosen]):
        return chosen
    for name, column_type in columns.items():
        inner = strip_optional(column_type)
        if (
            name in taken
            or name == chosen
            or type(inner) is not type(strip_optional(columns[chosen]))
        ):
            continue
        if not looks_like_id(name, column_type):
            return name
    return chosen
