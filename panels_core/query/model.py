"""The Query: what a card asks of a table, as frozen, serializable data."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from panels_core.query.expr import Expr
from panels_core.query.selection import Selection

__all__ = ["CompareWith", "JoinSpec", "Query", "SortKey"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SortKey(_Spec):
    """One sort key; nulls always sort last."""

    column: str
    descending: bool = False


class CompareWith(_Spec):
    """Compare the query's table with another table (or version).

    ``on`` names the join key (one name, or a (left, right) pair); None joins
    on row position. ``names`` label the two sources (default ``0`` and ``1``).
    """

    table: str
    on: str | tuple[str, str] | None = None
    names: tuple[str, str] = ("0", "1")


class JoinSpec(_Spec):
    """Join the query's table with another on a key."""

    table: str
    on: str | tuple[str, str]
    how: Literal["inner", "left", "outer"] = "inner"
    names: tuple[str, str] | None = None


class Query(_Spec):
    """A query of one table: filter, sort, group, compare, join, page.

        ``selection`` is the table's linked selection, carried (and saved) with the
        query for the panels to show; it does not narrow the query's rows (that is
        ``View.selected()``); ``selected_first`` puts the selected rows first (then
    the sort). ``filter`` accepts filter text, Mongo-style JSON or an AST; it is stored as
        the AST and serialized as canonical filter text, so a saved query stays
        readable and round-trips unchanged.
    """

    table: str
    filter: Expr | None = None
    sort: tuple[SortKey, ...] = ()
    group_by: tuple[str, ...] = ()
    compare_with: CompareWith | None = None
    join: JoinSpec | None = None
    limit: int | None = Field(default=None, ge=0)
    offset: int = Field(default=0, ge=0)
    selection: Selection | None = None
    selected_first: bool = False

    @field_validator("filter", mode="before")
    @classmethod
    def _parse_filter(cls, value: Any) -> Any:
        from panels_core.query.parse import parse_filter

        if value is None or value == "":
            return None
        if isinstance(value, str | list) or (isinstance(value, dict) and "node" not in value):
            return parse_filter(value)
        return value

    @field_validator("sort", mode="before")
    @classmethod
    def _parse_sort(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        keys = []
        for key in value or ():
            if isinstance(key, str):  # "score" or "-score" (descending)
                keys.append({"column": key.lstrip("-"), "descending": key.startswith("-")})
            else:
                keys.append(key)
        return keys

    @field_serializer("filter")
    def _filter_text(self, value: Any) -> str | None:
        return None if value is None else value.to_text()
