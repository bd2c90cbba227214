"""The filter expression AST: frozen pydantic nodes joined on ``node``.

Both syntaxes (text and Mongo-style JSON, see the ``parse`` package) produce these
nodes; the engine compiles them to SQL with bound parameters. ``to_text()``
gives back canonical filter text, so ``parse_filter(e.to_text()) == e``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

__all__ = [
    "BINARY_OPS",
    "FUNCTIONS",
    "LIST_FUNCTIONS",
    "PRECEDENCE",
    "SELECTION_FUNCTIONS",
    "Binary",
    "Call",
    "Col",
    "Expr",
    "ExprAdapter",
    "In",
    "InSelection",
    "IsNull",
    "Item",
    "ListPred",
    "Lit",
    "Node",
    "RowNumber",
    "Unary",
    "quote_name",
    "text_problem",
    "walk",
]

BINARY_OPS = ("or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%")
# precedence for printing: higher binds tighter
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "not": 3,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "in": 4,
    "is": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
    "neg": 7,
}
FUNCTIONS = ("len", "abs", "lower", "upper", "contains", "startswith", "endswith", "matches")
LIST_FUNCTIONS = ("any", "all", "count")
SELECTION_FUNCTIONS = ("row_number", "in_selection")
KEYWORDS = (
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "true",
    "false",
    *FUNCTIONS,
    *LIST_FUNCTIONS,
    *SELECTION_FUNCTIONS,
)

_BARE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be in a filter (it holds a lone surrogate), or None.

    The answer reads after the thing's name: "the string 'a' holds ..."."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"holds \\u{ord(found.group()):04x}, half of a UTF-16 surrogate pair, which is not "
        "text; remove it, or write the whole character"
    )


def quote_name(name: str) -> str:
    """A column or field name as filter text: bare when it can be, back-quoted otherwise."""
    if _BARE_NAME.fullmatch(name) and name.lower() not in KEYWORDS and name != "_":
        return name
    return "`" + name.replace("`", "``") + "`"


def walk(node: Any) -> Iterator[Any]:
    """Every node of an expression: ``node`` first, then its children, depth first."""
    yield node
    for name in type(node).model_fields:
        value = getattr(node, name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if hasattr(child, "node"):
                yield from walk(child)


class Node(BaseModel):
    """The base of every filter node: frozen, no extra fields, printable as filter text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_text(self) -> str:
        """Canonical filter text for this node."""
        raise TypeError(f"{type(self).__name__} has no text form")

    def _prec(self) -> int:
        return 10

    def _wrap(self, child: Node, min_prec: int) -> str:
        text = child.to_text()
        return f"({text})" if child._prec() < min_prec else text


class Lit(Node):
    """A literal: number, string, boolean or null."""

    node: Literal["lit"] = "lit"
    value: bool | int | float | str | None

    @field_validator("value")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a filter number must be finite (no inf or nan)")
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            raise ValueError(f"the string {value[:40]!a} {problem}")
        return value

    def to_text(self) -> str:
        if self.value is None:
            return "null"
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return json.dumps(self.value, ensure_ascii=False)
        return repr(self.value)


class Col(Node):
    """A column, or a field inside a struct column (``path = ("pred", "score")``).

    ``source`` picks one table of a comparison (``0.score``); None means the
    column itself (in compare mode: the value of every source).
    """

    node: Literal["col"] = "col"
    path: tuple[str, ...] = Field(min_length=1)
    source: int | None = None

    def to_text(self) -> str:
        prefix = f"{self.source}." if self.source is not None else ""
        return prefix + ".".join(quote_name(p) for p in self.path)


class Item(Node):
    """A field of the current list item inside ``any/all/count(list, predicate)``.

    ``path = ()`` is the item itself (a list of numbers or strings).
    """

    node: Literal["item"] = "item"
    path: tuple[str, ...] = ()

    def to_text(self) -> str:
        return ".".join(quote_name(p) for p in self.path) if self.path else "_"


class Unary(Node):
    """``not x`` or ``-x``."""

    node: Literal["unary"] = "unary"
    op: Literal["not", "neg"]
    operand: Expr

    def _prec(self) -> int:
        return PRECEDENCE[self.op]

    def to_text(self) -> str:
        if self.op == "not":
            return "not " + self._wrap(self.operand, PRECEDENCE["not"])
        operand = self.operand
        if isinstance(operand, Lit) and isinstance(operand.value, int | float):
            # `-5` is the literal -5; the negation of the literal 5 keeps its parentheses
            return f"-({operand.to_text()})"
        return "-" + self._wrap(operand, PRECEDENCE["neg"] + 1)


class Binary(Node):
    """``left op right`` for logic, comparison and arithmetic."""

    node: Literal["binary"] = "binary"
    op: Literal["or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]
    left: Expr
    right: Expr

    def _prec(self) -> int:
        return PRECEDENCE[self.op]

    def to_text(self) -> str:
        prec = self._prec()
        # comparisons do not chain; left-assoc for the others
        left_min = prec + 1 if prec == 4 else prec
        return f"{self._wrap(self.left, left_min)} {self.op} {self._wrap(self.right, prec + 1)}"


class In(Node):
    """``x in (a, b, c)`` (``negated``: ``x not in (a, b, c)``)."""

    node: Literal["in"] = "in"
    operand: Expr
    values: tuple[Expr, ...]
    negated: bool = False

    def _prec(self) -> int:
        return PRECEDENCE["in"]

    def to_text(self) -> str:
        items = ", ".join(v.to_text() for v in self.values)
        if len(self.values) == 1:
            items += ","
        middle = "not in" if self.negated else "in"
        return f"{self._wrap(self.operand, PRECEDENCE['in'] + 1)} {middle} ({items})"


class IsNull(Node):
    """``x is null`` / ``x is not null``."""

    node: Literal["is_null"] = "is_null"
    operand: Expr
    negated: bool = False

    def _prec(self) -> int:
        return PRECEDENCE["is"]

    def to_text(self) -> str:
        middle = "is not null" if self.negated else "is null"
        return f"{self._wrap(self.operand, PRECEDENCE['is'] + 1)} {middle}"


class Call(Node):
    """A scalar function: len, abs, lower, upper, contains, startswith, endswith, matches."""

    node: Literal["call"] = "call"
    fn: Literal["len", "abs", "lower", "upper", "contains", "startswith", "endswith", "matches"]
    args: tuple[Expr, ...]

    def to_text(self) -> str:
        return f"{self.fn}({', '.join(a.to_text() for a in self.args)})"


class ListPred(Node):
    """``any(list, pred)``, ``all(list, pred)``, ``count(list, pred)``.

    Inside ``predicate``, ``Item`` nodes name fields of each list item.
    ``count(list)`` with no predicate counts the items.
    """

    node: Literal["list_pred"] = "list_pred"
    fn: Literal["any", "all", "count"]
    list: Expr
    predicate: Expr | None = None

    def to_text(self) -> str:
        if self.predicate is None:
            return f"{self.fn}({self.list.to_text()})"
        return f"{self.fn}({self.list.to_text()}, {self.predicate.to_text()})"


class RowNumber(Node):
    """``row_number()``: the row's number in its table (0 first), as the table panel
    and ``View.row_numbers`` count them; only plain tables have one."""

    node: Literal["row_number"] = "row_number"

    def to_text(self) -> str:
        return "row_number()"


class InSelection(Node):
    """``in_selection("points", (x, y), ...)``: the row's projected point lies inside the
    polygon, where ``points`` names points a projection registered with the engine
    (``View.register_points``); a box is its four corners."""

    node: Literal["in_selection"] = "in_selection"
    points: str = Field(min_length=1)
    polygon: tuple[tuple[float, float], ...] = Field(min_length=3)

    @field_validator("polygon")
    @classmethod
    def _finite_points(cls, value: Any) -> Any:
        if not all(math.isfinite(c) for point in value for c in point):
            raise ValueError("a selection polygon's corners must be finite numbers")
        return value

    def to_text(self) -> str:
        corners = ", ".join(f"({x!r}, {y!r})" for x, y in self.polygon)
        return f"in_selection({json.dumps(self.points, ensure_ascii=False)}, {corners})"


Expr = Annotated[
    Union[Lit, Col, Item, Unary, Binary, In, IsNull, Call, ListPred, RowNumber, InSelection],  # noqa: UP007
    Field(discriminator="node"),
]

for _model in (Unary, Binary, In, IsNull, Call, ListPred):
    _model.model_rebuild()

ExprAdapter: TypeAdapter[Any] = TypeAdapter(Expr)
