"""Linked selection: brushes (a range, a set of values, rows, a region of projected points)
and the Selection that combines them, as frozen, serializable data.

Stand-in for the selection API (replaced by sel-core's at merge): the names and
signatures are the agreed ones; ``predicate`` turns a selection into the filter AST
the engine already compiles (rows and regions as the engine's row-number column).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from panels_core.query.expr import Binary, Col, In, IsNull, Lit, Unary

__all__ = [
    "Brush",
    "RangeBrush",
    "RegionBrush",
    "RowsBrush",
    "Selection",
    "ValuesBrush",
    "inside_polygon",
    "outside",
    "predicate",
    "predicate_of",
]


class BrushModel(BaseModel):
    """The base of every brush: frozen, no extra fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RangeBrush(BrushModel):
    """Rows with ``low <= column < high`` (``<= high`` when ``closed_high``); None: open."""

    kind: Literal["range"] = "range"
    column: str
    low: float | str | None
    high: float | str | None
    closed_high: bool = False


class ValuesBrush(BrushModel):
    """Rows whose ``column`` is one of ``values`` (None: null)."""

    kind: Literal["values"] = "values"
    column: str
    values: tuple[Any, ...]


class RowsBrush(BrushModel):
    """Rows by their table row number."""

    kind: Literal["rows"] = "rows"
    rows: tuple[int, ...]


class RegionBrush(BrushModel):
    """Rows whose projected point lies inside ``polygon`` (points registered under ``points``)."""

    kind: Literal["region"] = "region"
    points: str
    polygon: tuple[tuple[float, float], ...]


Brush = Annotated[
    Union[RangeBrush, ValuesBrush, RowsBrush, RegionBrush],  # noqa: UP007
    Field(discriminator="kind"),
]


class Selection(BrushModel):
    """One brush per source (a card id), combined with AND (default) or OR."""

    brushes: tuple[tuple[str, Brush], ...] = ()
    mode: Literal["and", "or"] = "and"

    def with_brush(self, source: str, brush: Any) -> Selection:
        """This selection with ``source``'s brush replaced by ``brush``."""
        kept = tuple((s, b) for s, b in self.brushes if s != source)
        return self.model_copy(update={"brushes": (*kept, (source, brush))})

    def without(self, source: str) -> Selection:
        """This selection without ``source``'s brush."""
        return self.model_copy(update={"brushes": tuple(p for p in self.brushes if p[0] != source)})

    @property
    def is_empty(self) -> bool:
        """True when no source brushes anything."""
        return not self.brushes

    def as_filter_text(self) -> str:
        """Readable filter text of the selection."""
        join = f" {self.mode} "
        return join.join(f"({_brush_text(b)})" for _, b in self.brushes)


def _brush_text(brush: Any) -> str:
    if isinstance(brush, RangeBrush | ValuesBrush):
        return predicate_of(brush, lambda b: np.empty(0, dtype=np.int64), "").to_text()
    if isinstance(brush, RowsBrush):
        return f"row_number() in {list(brush.rows)}"
    points = [list(p) for p in brush.polygon]
    return f"in_selection({json.dumps(brush.points)}, {points})"


def inside_polygon(xy: np.ndarray, polygon: Any) -> np.ndarray:
    """A bool per (x, y) row of ``xy``: inside ``polygon`` (even-odd ray casting)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(xy), dtype=bool)
    x, y = xy[:, 0], xy[:, 1]
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < at)
    return inside


def predicate_of(brush: Any, region_rows: Callable[[Any], np.ndarray], row: str) -> Any:
    """One brush as a filter expression; ``region_rows`` gives a region's row numbers and
    ``row`` names the engine's row-number column."""
    if isinstance(brush, RangeBrush):
        col = Col(path=(brush.column,))
        parts = []
        if brush.low is not None:
            parts.append(Binary(op=">=", left=col, right=Lit(value=brush.low)))
        if brush.high is not None:
            op = "<=" if brush.closed_high else "<"
            parts.append(Binary(op=op, left=col, right=Lit(value=brush.high)))
        return _all(parts, "and") if parts else IsNull(operand=col, negated=True)
    if isinstance(brush, ValuesBrush):
        col = Col(path=(brush.column,))
        values = tuple(Lit(value=v) for v in brush.values if v is not None)
        parts = [In(operand=col, values=values)] if values else []
        if any(v is None for v in brush.values):
            parts.append(IsNull(operand=col))
        return _all(parts, "or") if parts else Lit(value=False)
    rows = brush.rows if isinstance(brush, RowsBrush) else region_rows(brush)
    if not len(rows):
        return Lit(value=False)
    return In(operand=Col(path=(row,)), values=tuple(Lit(value=int(r)) for r in rows))


def _all(parts: list[Any], op: str) -> Any:
    out = parts[0]
    for part in parts[1:]:
        out = Binary(op=op, left=out, right=part)
    return out


def predicate(selection: Selection, region_rows: Callable[[Any], np.ndarray], row: str) -> Any:
    """The selection as one filter expression (None when it brushes nothing)."""
    parts = [predicate_of(b, region_rows, row) for _, b in selection.brushes]
    return _all(parts, selection.mode) if parts else None


def outside(expr: Any) -> Any:
    """The rows ``expr`` does not keep: false or null."""
    return Binary(op="or", left=Unary(op="not", operand=expr), right=IsNull(operand=expr))
