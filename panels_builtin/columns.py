"""What a column holds and which one a panel picks: the item inside optional, list and
compared types, and the measure to show instead of a column named like a row id."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from panels_core.slots import looks_like_id
from panels_core.types import ComparedType, ImageType, ListType, NumberType, strip_optional

__all__ = ["image_item", "innermost_item", "looks_like_id", "number_item", "pick_measure"]


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
