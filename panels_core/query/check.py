"""Type-check a filter AST against a table's type (and its Arrow schema for nested fields).

``check_filter(expr, table_type, schema)`` resolves every name, checks every
operator and function, and returns the filter's type (true/false, maybe
optional). Unknown names raise ``UnknownColumnError`` with suggestions; wrong
types raise ``FilterTypeError`` with a message naming the column and the
types, e.g. "cannot compare string `label` with number 3".
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from panels_core.data.infer import arrow_data_type, is_list_type
from panels_core.query.errors import FilterTypeError, UnknownColumnError
from panels_core.query.expr import (
    Binary,
    Call,
    Col,
    In,
    InSelection,
    IsNull,
    Item,
    ListPred,
    Lit,
    RowNumber,
    Unary,
)
from panels_core.query.parse.build import regex_problem
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    ComparedType,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TableType,
    TimestampType,
    UnknownType,
    describe,
    strip_optional,
)

__all__ = ["check_expr", "check_filter"]

_NULL = OptionalType(inner=UnknownType())
_ARITHMETIC = ("+", "-", "*", "/", "%")


@dataclass(frozen=True)
class _Typed:
    """A value's DataType and, when known, its Arrow type (for nested fields and maps)."""

    dtype: Any
    arrow: pa.DataType | None = None


def check_filter(expr: Any, table_type: Any, schema: pa.Schema | None = None) -> Any:
    """The type of filter ``expr`` over ``table_type``; raises unless it is true/false.

    ``schema`` (the table's Arrow schema) resolves fields inside structs, maps
    and image columns that the TableType does not spell out.
    """
    result = check_expr(expr, table_type, schema)
    if not _is_boolean(result):
        raise FilterTypeError(f"a filter must be true/false; {_show(expr)} is {_a(result)}")
    return result


def check_expr(expr: Any, table_type: Any, schema: pa.Schema | None = None) -> Any:
    """The DataType of any expression (a filter or a value) over ``table_type``."""
    return _Checker(table_type, schema).check(expr, ()).dtype


# --------------------------------------------------------------------------- wording


def _kind(t: Any) -> str:
    """A short word for a type in messages: number, string, category, ..."""
    inner = strip_optional(t)
    if isinstance(inner, NumberType):
        return "number"
    if isinstance(inner, CategoryType):
        return "category"
    if isinstance(inner, UnknownType) and isinstance(t, OptionalType):
        return "null"
    return describe(inner)


def _a(t: Any) -> str:
    """The kind word with its article: "a number", "an embedding[3]", "null"."""
    word = _kind(t)
    if word == "null":
        return word
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _show(expr: Any) -> str:
    """An expression as it appears in a message: literals bare, the rest back-quoted."""
    text = expr.to_text()
    if len(text) > 60:
        text = text[:57] + "..."
    return text if isinstance(expr, Lit) else f"`{text}`"


def _what(t: Any, expr: Any) -> str:
    return f"{_kind(t)} {_show(expr)}"


# --------------------------------------------------------------------------- type predicates


def _loose(t: Any) -> bool:
    """Types we know too little about to reject (any, unknown)."""
    return isinstance(strip_optional(t), AnyType | UnknownType)


def _is_boolean(t: Any) -> bool:
    return isinstance(strip_optional(t), BooleanType) or _loose(t)


def _is_number(t: Any) -> bool:
    return isinstance(strip_optional(t), NumberType) or _loose(t)


def _is_text(t: Any) -> bool:
    return isinstance(strip_optional(t), StringType | CategoryType) or _loose(t)


def _list_item(t: Any) -> Any | None:
    """The item type of a list-like type (grouped list, ragged list, embedding), else None."""
    inner = strip_optional(t)
    if isinstance(inner, ListType):
        return inner.item
    if isinstance(inner, EmbeddingType):
        return NumberType()
    if isinstance(inner, AnyType | UnknownType):
        return AnyType()
    return None


def _maybe(t: Any, *sources: Any) -> Any:
    """``t``, made optional when any of ``sources`` may be null."""
    if any(isinstance(s, OptionalType) for s in sources) and not isinstance(t, OptionalType):
        return OptionalType(inner=t)
    return t


def _category_holds(t: Any, python_type: type) -> bool:
    cats = t.categories
    return cats is None or any(isinstance(c, python_type) for c in cats)


def _iso_time(value: str) -> bool:
    try:
        _dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _arrow_item(t: pa.DataType | None) -> pa.DataType | None:
    return t.value_type if is_list_type(t) else None


# --------------------------------------------------------------------------- the checker


class _Checker:
    def __init__(self, table_type: Any, schema: pa.Schema | None) -> None:
        self.schema = schema
        if isinstance(table_type, JoinedTableType):
            self.columns: dict[str, Any] = {
                table_type.left_name: StructType(fields=dict(table_type.left.columns)),
                table_type.right_name: StructType(fields=dict(table_type.right.columns)),
            }
            self.joined = True
        elif isinstance(table_type, TableType):
            self.columns = dict(table_type.columns)
            self.joined = False
        else:
            raise TypeError(
                f"check_filter needs a TableType or JoinedTableType, not {type(table_type).__name__}"
            )
        self.compare_mode = any(
            isinstance(strip_optional(t), ComparedType) for t in self.columns.values()
        )

    # -- dispatch
    def check(self, expr: Any, items: tuple[_Typed, ...]) -> _Typed:
        match expr:
            case Lit():
                return _Typed(self.literal_type(expr.value))
            case Col():
                return self.column(expr)
            case Item():
                return self.item(expr, items)
            case Unary():
                return self.unary(expr, items)
            case Binary():
                return self.binary(expr, items)
            case In():
                return self.membership(expr, items)
            case IsNull():
                self.check(expr.operand, items)
                return _Typed(BooleanType())
            case Call():
                return self.call(expr, items)
            case ListPred():
                return self.list_predicate(expr, items)
            case RowNumber():
                return _Typed(NumberType(integer=True))
            case InSelection():
                return _Typed(BooleanType())
        raise FilterTypeError(f"not a filter expression: {type(expr).__name__}")

    @staticmethod
    def literal_type(value: Any) -> Any:
        if value is None:
            return _NULL
        if isinstance(value, bool):
            return BooleanType()
        if isinstance(value, int):
            return NumberType(integer=True)
        if isinstance(value, float):
            return NumberType()
        return StringType()

    # -- names
    def top_candidates(self) -> list[str]:
        if not self.joined:
            return list(self.columns)
        names = []
        for side, struct in self.columns.items():
            names += [f"{side}.{c}" for c in struct.fields]
        return names + list(self.columns)

    def column(self, col: Col) -> _Typed:
        head = col.path[0]
        if head not in self.columns:
            raise UnknownColumnError(
                ".".join(col.path) if self.joined else head, self.top_candidates()
            )
        dtype = self.columns[head]
        shown = col.to_text()
        inner = strip_optional(dtype)
        if isinstance(inner, ComparedType):
            if col.source is None:
                name = ".".join(col.path)
                raise FilterTypeError(f"in compare mode name a source: `0.{name}` or `1.{name}`")
            count = len(inner.sources) or 2
            if not 0 <= col.source < count:
                names = inner.sources or ("0", "1")
                listed = " and ".join(f"{i} (`{n}`)" for i, n in enumerate(names))
                raise FilterTypeError(
                    f"`{shown}`: there is no source {col.source}; the sources are {listed}"
                )
            dtype = _maybe(inner.item, dtype)
        elif col.source is not None:
            plain = ".".join(col.path)
            if self.compare_mode:
                raise FilterTypeError(
                    f"`{plain}` is not compared (a join key, or a column of one source only): "
                    f"write `{plain}`"
                )
            raise FilterTypeError(
                f"`{shown}` names a compared source, but this table is not a comparison: write `{plain}`"
            )
        arrow = None
        if self.schema is not None and head in self.schema.names:
            arrow = self.schema.field(head).type
            if col.source is not None:  # a compared column is a struct with one field per source
                fits = pa.types.is_struct(arrow) and col.source < arrow.num_fields
                arrow = arrow.field(col.source).type if fits else None
        typed = _Typed(dtype, arrow)
        for depth, name in enumerate(col.path[1:], start=1):
            typed = self.field(typed, name, col.path[:depth])
        return typed

    def item(self, item: Item, items: tuple[_Typed, ...]) -> _Typed:
        if not items:
            raise FilterTypeError(
                f"{_show(item)} names a list item; use it only inside any/all/count(list, ...)"
            )
        typed = items[-1]
        for depth, name in enumerate(item.path):
            typed = self.field(typed, name, item.path[:depth], item_field=True)
        return typed

    def field(
        self, parent: _Typed, name: str, parent_path: tuple[str, ...], item_field: bool = False
    ) -> _Typed:
        """The field ``name`` of a value of type ``parent`` (struct, image, map)."""
        dotted = ".".join(parent_path)
        inner = strip_optional(parent.dtype)
        arrow = parent.arrow
        if arrow is None and isinstance(inner, ImageType):
            from panels_core.data.media import image_arrow_type

            arrow = image_arrow_type(inner.box_layers, inner.mask_layers)
        if arrow is not None and pa.types.is_map(arrow):
            value = arrow_data_type(arrow.item_type)
            return _Typed(OptionalType(inner=value), arrow.item_type)
        if arrow is not None and pa.types.is_struct(arrow):
            index = arrow.get_field_index(name)
            if index < 0:
                names = [arrow.field(i).name for i in range(arrow.num_fields)]
                raise self.unknown_field(parent_path, name, names)
            child_arrow = arrow.field(index).type
            if isinstance(inner, StructType) and name in inner.fields:
                child = inner.fields[name]
            else:
                child = arrow_data_type(child_arrow)
            return _Typed(_maybe(child, parent.dtype), child_arrow)
        if isinstance(inner, StructType):
            if name not in inner.fields:
                raise self.unknown_field(parent_path, name, list(inner.fields))
            return _Typed(_maybe(inner.fields[name], parent.dtype))
        if isinstance(inner, AnyType | UnknownType):
            return _Typed(AnyType())
        if _list_item(inner) is not None:
            raise FilterTypeError(
                f"`{dotted}` is a list: look inside it with any/all/count, "
                f"like `any({dotted}, {name} ...)`"
            )
        what = "item" if item_field and not parent_path else f"`{dotted}`"
        raise FilterTypeError(f"{what} is {_a(parent.dtype)}; it has no field `{name}`")

    def unknown_field(
        self, parent_path: tuple[str, ...], name: str, names: list[str]
    ) -> UnknownColumnError:
        prefix = ".".join(parent_path) + "." if parent_path else ""
        return UnknownColumnError(prefix + name, [prefix + n for n in names])

    # -- operators
    def unary(self, expr: Unary, items: tuple[_Typed, ...]) -> _Typed:
        operand = self.check(expr.operand, items).dtype
        if expr.op == "not":
            if not _is_boolean(operand):
                raise FilterTypeError(
                    f"`not` needs true/false; {_what(operand, expr.operand)} is not"
                )
            return _Typed(_maybe(BooleanType(), operand))
        if not _is_number(operand):
            raise FilterTypeError(f"`-` needs a number; {_what(operand, expr.operand)} is not")
        return _Typed(
            _maybe(strip_optional(operand) if not _loose(operand) else NumberType(), operand)
        )

    def binary(self, expr: Binary, items: tuple[_Typed, ...]) -> _Typed:
        left = self.check(expr.left, items).dtype
        right = self.check(expr.right, items).dtype
        op = expr.op
        if op in ("and", "or"):
            for side, expr_side in ((left, expr.left), (right, expr.right)):
                if not _is_boolean(side):
                    raise FilterTypeError(
                        f"`{op}` needs true/false on both sides; {_show(expr_side)} is {_a(side)}"
                    )
            return _Typed(_maybe(BooleanType(), left, right))
        if op in _ARITHMETIC:
            for side, expr_side in ((left, expr.left), (right, expr.right)):
                if not _is_number(side):
                    raise FilterTypeError(
                        f"`{op}` needs numbers on both sides; {_show(expr_side)} is {_a(side)}"
                    )
            integer = all(
                isinstance(strip_optional(s), NumberType) and strip_optional(s).integer
                for s in (left, right)
            )
            return _Typed(_maybe(NumberType(integer=integer and op != "/"), left, right))
        self.comparable(op, left, expr.left, right, expr.right)
        return _Typed(_maybe(BooleanType(), left, right))

    def comparable(self, op: str, left: Any, left_expr: Any, right: Any, right_expr: Any) -> None:
        """Raise unless values of ``left`` and ``right`` can be compared with ``op``."""
        for side_expr, other_expr in ((left_expr, right_expr), (right_expr, left_expr)):
            if isinstance(side_expr, Lit) and side_expr.value is None:
                raise FilterTypeError(
                    f"comparing with null matches no row: write `{other_expr.to_text()} is null` "
                    f"or `{other_expr.to_text()} is not null`"
                )
        if _loose(left) or _loose(right):
            return
        a, b = strip_optional(left), strip_optional(right)
        if self.compatible(a, b, left_expr, right_expr):
            return
        message = f"cannot compare {_what(left, left_expr)} with {_what(right, right_expr)}"
        for side, side_expr in ((a, left_expr), (b, right_expr)):
            if _list_item(side) is not None and not isinstance(side, AnyType):
                message += (
                    f"; {_show(side_expr)} is a list: test its items with "
                    f"any/all/count({side_expr.to_text()}, _ {op} ...)"
                )
                break
        for stamp, stamp_expr, text_expr in (
            (a, left_expr, right_expr),
            (b, right_expr, left_expr),
        ):
            if (
                isinstance(stamp, TimestampType)
                and isinstance(text_expr, Lit)
                and isinstance(text_expr.value, str)
            ):
                message = (
                    f"{_show(stamp_expr)} is a timestamp and {_show(text_expr)} is not an ISO "
                    'date or time like "2024-01-31" or "2024-01-31T12:00:00"'
                )
                break
        raise FilterTypeError(message)

    @staticmethod
    def compatible(a: Any, b: Any, a_expr: Any, b_expr: Any) -> bool:
        """True when a value of type ``a`` may be compared with one of type ``b``."""
        for x, y, y_expr in ((a, b, b_expr), (b, a, a_expr)):
            if isinstance(x, NumberType) and isinstance(y, NumberType):
                return True
            if isinstance(x, StringType) and isinstance(y, StringType):
                return True
            if isinstance(x, CategoryType):
                if isinstance(y, CategoryType):
                    return True
                if isinstance(y, StringType):
                    return _category_holds(x, str)
                if isinstance(y, NumberType):
                    return _category_holds(x, int)
            if isinstance(x, TimestampType):
                if isinstance(y, TimestampType):
                    return True
                if isinstance(y, StringType):
                    return not isinstance(y_expr, Lit) or _iso_time(str(y_expr.value))
            if isinstance(x, BooleanType) and isinstance(y, BooleanType):
                return True
        return False

    def membership(self, expr: In, items: tuple[_Typed, ...]) -> _Typed:
        operand = self.check(expr.operand, items).dtype
        for value in expr.values:
            value_type = self.check(value, items).dtype
            self.comparable("==", operand, expr.operand, value_type, value)
        return _Typed(_maybe(BooleanType(), operand))

    # -- functions
    def call(self, expr: Call, items: tuple[_Typed, ...]) -> _Typed:
        args = [self.check(a, items).dtype for a in expr.args]
        fn = expr.fn
        first, first_expr = args[0], expr.args[0]
        if fn == "len":
            if not (_is_text(first) or _list_item(first) is not None):
                raise FilterTypeError(
                    f"`len` takes a string or a list, not {_what(first, first_expr)}"
                )
            return _Typed(_maybe(NumberType(integer=True), first))
        if fn == "abs":
            if not _is_number(first):
                raise FilterTypeError(f"`abs` takes a number, not {_what(first, first_expr)}")
            kept = (
                strip_optional(first)
                if isinstance(strip_optional(first), NumberType)
                else NumberType()
            )
            return _Typed(_maybe(kept, first))
        if fn in ("lower", "upper"):
            if not _is_text(first):
                raise FilterTypeError(f"`{fn}` takes a string, not {_what(first, first_expr)}")
            return _Typed(_maybe(StringType(), first))
        second, second_expr = args[1], expr.args[1]
        if fn == "contains" and not _loose(first) and _list_item(first) is not None:
            item = strip_optional(_list_item(first))
            if not (
                _loose(second) or self.compatible(item, strip_optional(second), Item(), second_expr)
            ):
                raise FilterTypeError(
                    f"`contains` looks for {_a(item)} in {_what(first, first_expr)}, "
                    f"not for {_what(second, second_expr)}"
                )
            return _Typed(_maybe(BooleanType(), first))
        for arg, arg_expr, role in ((first, first_expr, "first"), (second, second_expr, "second")):
            if not _is_text(arg):
                takes = (
                    "a string (or a list)" if fn == "contains" and role == "first" else "strings"
                )
                raise FilterTypeError(f"`{fn}` takes {takes}, not {_what(arg, arg_expr)}")
        if fn == "matches" and isinstance(second_expr, Lit) and isinstance(second_expr.value, str):
            problem = regex_problem(second_expr.value)
            if problem:
                raise FilterTypeError(
                    f"invalid regular expression {second_expr.to_text()} in `matches`: {problem}"
                )
        return _Typed(_maybe(BooleanType(), first, second))

    def list_predicate(self, expr: ListPred, items: tuple[_Typed, ...]) -> _Typed:
        source = self.check(expr.list, items)
        item_type = _list_item(source.dtype)
        if item_type is None:
            raise FilterTypeError(f"`{expr.fn}` takes a list, not {_what(source.dtype, expr.list)}")
        item = _Typed(item_type, _arrow_item(source.arrow))
        result: Any = NumberType(integer=True) if expr.fn == "count" else BooleanType()
        if expr.predicate is None:
            if expr.fn != "count" and not _is_boolean(item_type):
                raise FilterTypeError(
                    f"`{expr.fn}({expr.list.to_text()})` needs a list of true/false; "
                    f"add a predicate: `{expr.fn}({expr.list.to_text()}, _ > 0)`"
                )
            return _Typed(_maybe(result, source.dtype))
        predicate = self.check(expr.predicate, (*items, item)).dtype
        if not _is_boolean(predicate):
            raise FilterTypeError(
                f"the predicate of `{expr.fn}` must be true/false; {_show(expr.predicate)} is {_a(predicate)}"
            )
        return _Typed(_maybe(result, source.dtype))
