"""Linked selection: brushes from cards, combined into one predicate over a table's rows.

A panel publishes its brush (a range of a column, a set of values, table rows, a
region of a projection); a ``Selection`` holds one brush per source (a card) and
combines them with AND (or OR). It is a predicate, not a list of rows: its
``as_filter()`` is a filter AST the engine evaluates like any filter, and its
``as_filter_text()`` is readable filter text that parses back to the same rows::

    price >= 10 and price < 20
    label in ("cat", "dog")
    row_number() in (3, 17, 42)
    in_selection("projection", (0.1, 0.2), (0.5, 0.2), (0.5, 0.9))
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from functools import reduce
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer

from panels_core.query.expr import Binary, Col, In, InSelection, IsNull, Lit, RowNumber

__all__ = [
    "Brush",
    "RangeBrush",
    "RegionBrush",
    "RowsBrush",
    "Selection",
    "ValuesBrush",
    "combine",
]


class _Brush(BaseModel, ABC):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_serializer(mode="wrap")
    def _keep_kind(self, handler: Any) -> Any:
        # ``kind`` tells the brushes apart: written even where defaults are left out
        data = handler(self)
        return {"kind": getattr(self, "kind", None), **data} if isinstance(data, dict) else data

    @abstractmethod
    def as_filter(self) -> Any:
        """This brush as a filter AST (each brush kind says how)."""


class RangeBrush(_Brush):
    """Rows with ``low <= column < high`` (``<= high`` when ``closed_high``); an open end
    is None. Timestamps are ISO strings. NaN and null are never inside a range."""

    kind: Literal["range"] = "range"
    column: str = Field(min_length=1)
    low: float | str | None = None
    high: float | str | None = None
    closed_high: bool = False

    @field_validator("low", "high")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a range's ends must be finite numbers (leave an end out instead)")
        return value

    def as_filter(self) -> Any:
        col = Col(path=(self.column,))
        parts = []
        if self.low is not None:
            parts.append(Binary(op=">=", left=col, right=Lit(value=self.low)))
        if self.high is not None:
            op = "<=" if self.closed_high else "<"
            parts.append(Binary(op=op, left=col, right=Lit(value=self.high)))
        if not parts:
            return IsNull(operand=col, negated=True)
        return reduce(lambda a, b: Binary(op="and", left=a, right=b), parts)


class ValuesBrush(_Brush):
    """Rows whose ``column`` is one of ``values`` (None stands for null)."""

    kind: Literal["values"] = "values"
    column: str = Field(min_length=1)
    values: tuple[bool | int | float | str | None, ...]

    def as_filter(self) -> Any:
        col = Col(path=(self.column,))
        present = tuple(Lit(value=v) for v in self.values if v is not None)
        parts: list[Any] = [In(operand=col, values=present)] if present else []
        if None in self.values:
            parts.append(IsNull(operand=col))
        if not parts:
            return Lit(value=False)
        return reduce(lambda a, b: Binary(op="or", left=a, right=b), parts)


class RowsBrush(_Brush):
    """Rows by their table row number (``View.row_numbers``; the table panel's rows)."""

    kind: Literal["rows"] = "rows"
    rows: tuple[int, ...]

    def as_filter(self) -> Any:
        if not self.rows:
            return Lit(value=False)
        return In(operand=RowNumber(), values=tuple(Lit(value=int(r)) for r in self.rows))


class RegionBrush(_Brush):
    """Rows whose projected point lies inside ``polygon`` (a box: its 4 corners; a lasso:
    its vertices); ``points`` is the key the projection registered its points under
    (``View.register_points``)."""

    kind: Literal["region"] = "region"
    points: str = Field(min_length=1)
    polygon: tuple[tuple[float, float], ...] = Field(min_length=3)

    def as_filter(self) -> Any:
        return InSelection(points=self.points, polygon=self.polygon)


Brush = Annotated[
    Union[RangeBrush, ValuesBrush, RowsBrush, RegionBrush],  # noqa: UP007
    Field(discriminator="kind"),
]


def combine(parts: list[Any], mode: str) -> Any:
    """Filter ASTs joined with ``and`` or ``or`` (None when there are none)."""
    if not parts:
        return None
    return reduce(lambda a, b: Binary(op=mode, left=a, right=b), parts)


class Selection(BaseModel):
    """One brush per source (a card id), combined with AND (default) or OR."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brushes: tuple[tuple[str, Brush], ...] = ()
    mode: Literal["and", "or"] = "and"

    def with_brush(self, source: str, brush: Brush) -> Selection:
        """This selection with ``source``'s brush replaced (added when it had none)."""
        kept = tuple((s, b) for s, b in self.brushes if s != source)
        return self.model_copy(update={"brushes": (*kept, (source, brush))})

    def without(self, source: str) -> Selection:
        """This selection without ``source``'s brush."""
        return self.model_copy(
            update={"brushes": tuple((s, b) for s, b in self.brushes if s != source)}
        )

    def brush_of(self, source: str) -> Any:
        """``source``'s brush, or None."""
        return next((b for s, b in self.brushes if s == source), None)

    @property
    def is_empty(self) -> bool:
        """No brush at all (``View.selected()`` is then the whole view)."""
        return not self.brushes

    def as_filter(self) -> Any:
        """The selection as one filter AST (None when empty)."""
        return combine([brush.as_filter() for _, brush in self.brushes], self.mode)

    def as_filter_text(self) -> str:
        """Readable filter text with the same rows ("" when empty); parses back as a filter."""
        expr = self.as_filter()
        return "" if expr is None else expr.to_text()
