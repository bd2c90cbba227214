"""Compile the filter AST (``expr.py``) to DuckDB SQL.

Every literal becomes a numbered, typed bound parameter (``CAST($3 AS
DOUBLE)``); every name is checked against the Arrow fields of the relation it
runs on and double-quoted (embedded quotes doubled). Nothing from the user is
ever pasted into the SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from panels_core.data.infer import is_list_type
from panels_core.query.errors import FilterTypeError, QueryError, UnknownColumnError
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

__all__ = [
    "Params",
    "Scope",
    "compile_expr",
    "is_nan_sql",
    "is_numeric",
    "quote_ident",
    "sql_type_of_literal",
]

_PLACEHOLDER = re.compile(r"\$(__tp_p\d+)\b")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_COMPARE_SQL = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITH_SQL = {"+": "+", "-": "-", "*": "*"}


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (embedded double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


class Params:
    """The bound parameters of a group of statements, referenced as ``$__tp_p1, ...``.

    Several statements of one engine call share one ``Params``; ``bind(sql)``
    gives each statement exactly the parameters it references (DuckDB
    refuses extra ones).
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any, sql_type: str | None = None) -> str:
        """Bind ``value``; return its placeholder (cast to ``sql_type`` when given)."""
        name = f"__tp_p{len(self.values) + 1}"
        self.values[name] = value
        return f"CAST(${name} AS {sql_type})" if sql_type else f"${name}"

    def bind(self, sql: str) -> dict[str, Any]:
        """The parameters ``sql`` references."""
        used = set(_PLACEHOLDER.findall(sql))
        return {k: v for k, v in self.values.items() if k in used}


def sql_type_of_literal(value: Any) -> str | None:
    """The DuckDB type a Python literal binds as (None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT" if _INT64_MIN <= value <= _INT64_MAX else "DOUBLE"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


@dataclass
class Scope:
    """The columns a filter may name: Arrow fields by top-level name.

    ``compared`` lists the columns that hold one value per source (a struct
    with one field per name in ``sources``); ``0.score`` picks ``sources[0]``.
    """

    fields: dict[str, pa.Field]
    compared: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    items: list[tuple[str, pa.DataType]] = field(default_factory=list)
    # the column holding the table's row numbers (None: the rows have none, e.g. a join)
    row: str | None = None
    # SQL true for the rows whose registered point (key) lies inside a polygon
    regions: Callable[[str, tuple[tuple[float, float], ...]], str] | None = None


@dataclass(frozen=True)
class Compiled:
    """One compiled expression: SQL text and its Arrow type when known."""

    sql: str
    type: pa.DataType | None
    literal: bool = False


def is_numeric(t: pa.DataType) -> bool:
    """Whether an Arrow type holds numbers (integers, floats, decimals)."""
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _timestamp_sql(t: pa.DataType | None) -> str | None:
    if t is None:
        return None
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    return None


def _describe_arrow(t: pa.DataType | None) -> str:
    return "unknown" if t is None else str(t)


def _step_into(sql: str, t: pa.DataType, name: str, shown: str, params: Params) -> Compiled:
    """Access field ``name`` of a struct, or key ``name`` of a map."""
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        if name not in names:
            raise UnknownColumnError(f"{shown}.{name}", [f"{shown}.{n}" for n in names])
        return Compiled(f"({sql}).{quote_ident(name)}", t.field(names.index(name)).type)
    if pa.types.is_map(t):
        key = params.add(name, "VARCHAR")
        return Compiled(f"({sql})[{key}]", t.item_type)
    if is_list_type(t):
        raise FilterTypeError(
            f"`{shown}` is a list; reach into its items with any/all/count, "
            f"e.g. any({shown}, {name} == ...)"
        )
    raise UnknownColumnError(f"{shown}.{name}", [])


def _resolve_col(node: Col, scope: Scope, params: Params) -> Compiled:
    name, rest = node.path[0], node.path[1:]
    if name not in scope.fields:
        raise UnknownColumnError(name, list(scope.fields))
    sql = quote_ident(name)
    t = scope.fields[name].type
    shown = name
    if node.source is not None and name in scope.compared:
        if not 0 <= node.source < len(scope.sources):
            raise QueryError(
                f"`{node.source}.{name}`: there is no source {node.source}; "
                f"the compared sources are 0..{len(scope.sources) - 1}"
            )
        source = scope.sources[node.source]
        sql = f"{sql}.{quote_ident(source)}"
        t = t.field(source).type
        shown = f"{node.source}.{name}"
    elif node.source is not None and not scope.compared:
        raise QueryError(
            f"`{node.source}.{name}` names a compared source, but the query compares nothing; "
            f"write `{name}` or add compare_with to the query"
        )
    for step in rest:
        compiled = _step_into(sql, t, step, shown, params)
        sql, t, shown = compiled.sql, compiled.type, f"{shown}.{step}"
    return Compiled(sql, t)


def _resolve_item(node: Item, scope: Scope, params: Params) -> Compiled:
    if not scope.items:
        raise QueryError(
            "a bare field name inside a filter must be a column; item fields only exist "
            "inside any/all/count(list, predicate)"
        )
    var, t = scope.items[-1]
    sql = quote_ident(var)
    shown = "item"
    for step in node.path:
        compiled = _step_into(sql, t, step, shown, params)
        sql, t, shown = compiled.sql, compiled.type, step
    return Compiled(sql, t)


def _literal(value: Any, params: Params, against: pa.DataType | None = None) -> Compiled:
    if value is None:
        return Compiled("NULL", None)
    ts = _timestamp_sql(against)
    if ts is not None and isinstance(value, str):
        return Compiled(params.add(value, ts), against)
    sql_type = sql_type_of_literal(value)
    arrow = {"BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}.get(
        sql_type or "", pa.string()
    )
    return Compiled(params.add(value, sql_type), arrow, literal=True)


def _compile(
    node: Any, scope: Scope, params: Params, against: pa.DataType | None = None
) -> Compiled:
    if isinstance(node, Lit):
        return _literal(node.value, params, against)
    if isinstance(node, Col):
        return _resolve_col(node, scope, params)
    if isinstance(node, Item):
        return _resolve_item(node, scope, params)
    if isinstance(node, Unary):
        inner = _compile(node.operand, scope, params)
        if node.op == "not":
            return Compiled(f"(NOT ({inner.sql}))", pa.bool_())
        return Compiled(f"(-({inner.sql}))", inner.type)
    if isinstance(node, Binary):
        return _binary(node, scope, params)
    if isinstance(node, RowNumber | InSelection):
        return _selection(node, scope)
    if isinstance(node, In):
        if isinstance(node.operand, RowNumber) and _int_literals(node.values):
            # any number of rows: one bound list, joined (not one parameter per row)
            rows = params.add([v.value for v in node.values], "BIGINT[]")
            sql = f"({_selection(node.operand, scope).sql} IN (SELECT unnest({rows})))"
            return Compiled(f"(NOT {sql})" if node.negated else sql, pa.bool_())
        operand = _compile(node.operand, scope, params)
        values = [_compile(v, scope, params, operand.type).sql for v in node.values]
        sql = f"(({operand.sql}) IN ({', '.join(values)}))"
        return Compiled(f"(NOT {sql})" if node.negated else sql, pa.bool_())
    if isinstance(node, IsNull):
        operand = _compile(node.operand, scope, params)
        middle = "IS NOT NULL" if node.negated else "IS NULL"
        return Compiled(f"(({operand.sql}) {middle})", pa.bool_())
    if isinstance(node, Call):
        return _call(node, scope, params)
    if isinstance(node, ListPred):
        return _list_pred(node, scope, params)
    raise QueryError(f"cannot compile filter node {type(node).__name__}")


def _int_literals(values: tuple[Any, ...]) -> bool:
    return all(
        isinstance(v, Lit) and isinstance(v.value, int) and not isinstance(v.value, bool)
        for v in values
    )


def _selection(node: RowNumber | InSelection, scope: Scope) -> Compiled:
    """``row_number()`` or ``in_selection(...)``: both need the rows' numbers."""
    what = "row_number()" if isinstance(node, RowNumber) else "in_selection()"
    if scope.row is None:
        raise QueryError(
            f"{what} works on the rows of one table, not on a comparison or a join; "
            "filter one of the tables instead"
        )
    if isinstance(node, RowNumber):
        return Compiled(quote_ident(scope.row), pa.int64())
    if scope.regions is None:
        raise QueryError("in_selection() needs the engine's registered points; none are here")
    return Compiled(scope.regions(node.points, node.polygon), pa.bool_())


def _binary(node: Binary, scope: Scope, params: Params) -> Compiled:
    op = node.op
    if op in ("and", "or"):
        left = _compile(node.left, scope, params)
        right = _compile(node.right, scope, params)
        return Compiled(f"(({left.sql}) {op.upper()} ({right.sql}))", pa.bool_())
    if op in _COMPARE_SQL:
        # `x == null` means `x is null` (SQL's `= NULL` is never true)
        for this, other in ((node.right, node.left), (node.left, node.right)):
            if isinstance(this, Lit) and this.value is None and op in ("==", "!="):
                operand = _compile(other, scope, params)
                middle = "IS NULL" if op == "==" else "IS NOT NULL"
                return Compiled(f"(({operand.sql}) {middle})", pa.bool_())
        left, right = _pair(node, scope, params)
        return _comparison(op, left, right)
    left, right = _pair(node, scope, params)
    result_type = pa.float64()
    if op in _ARITH_SQL:
        return Compiled(f"(({left.sql}) {_ARITH_SQL[op]} ({right.sql}))", left.type or right.type)
    if op == "/":  # division by zero gives null, not an error or infinity
        return Compiled(f"(({left.sql}) / NULLIF(({right.sql}), 0))", result_type)
    return Compiled(f"(({left.sql}) % NULLIF(({right.sql}), 0))", left.type or right.type)


def is_nan_sql(sql: str) -> str:
    """SQL true where the float ``sql`` is NaN. Not ``isnan``: DuckDB (2.0.1) folds
    ``isnan(x)`` to false when a Parquet file's statistics give x a finite min and max
    (they leave NaN out), so NaN rows passed ``x > 0.5``; ``isfinite`` is not folded."""
    return f"(NOT isfinite({sql}) AND NOT isinf({sql}))"


def _comparison(op: str, left: Compiled, right: Compiled) -> Compiled:
    """``left op right`` where NaN compares as numpy and pandas do: every comparison
    with NaN is false except ``!=``, which is true (DuckDB orders NaN above every
    number and calls it equal to itself, so float operands are checked for NaN)."""
    sql = f"(({left.sql}) {_COMPARE_SQL[op]} ({right.sql}))"
    nans = [
        is_nan_sql(side.sql)
        for side in (left, right)
        if not side.literal and side.type is not None and pa.types.is_floating(side.type)
    ]
    if not nans:
        return Compiled(sql, pa.bool_())
    if op == "!=":
        return Compiled(f"({sql} OR {' OR '.join(nans)})", pa.bool_())
    return Compiled(f"({sql} AND NOT ({' OR '.join(nans)}))", pa.bool_())


def _pair(node: Binary, scope: Scope, params: Params) -> tuple[Compiled, Compiled]:
    """Compile both sides; a string literal next to a timestamp binds as a timestamp."""
    if isinstance(node.left, Lit):
        right = _compile(node.right, scope, params)
        return _compile(node.left, scope, params, right.type), right
    left = _compile(node.left, scope, params)
    return left, _compile(node.right, scope, params, left.type)


def _call(node: Call, scope: Scope, params: Params) -> Compiled:
    fn = node.fn
    expected = 1 if fn in ("len", "abs", "lower", "upper") else 2
    if len(node.args) != expected:
        raise QueryError(
            f"{fn}() takes {expected} argument{'s' * (expected > 1)}, got {len(node.args)}"
        )
    first = _compile(node.args[0], scope, params)
    if fn == "len":
        if is_list_type(first.type):
            return Compiled(f"len({first.sql})", pa.int64())
        if first.type is not None and pa.types.is_map(first.type):
            return Compiled(f"cardinality({first.sql})", pa.int64())
        return Compiled(f"length({first.sql})", pa.int64())
    if fn == "abs":
        return Compiled(f"abs({first.sql})", first.type)
    if fn in ("lower", "upper"):
        return Compiled(f"{fn}(CAST({first.sql} AS VARCHAR))", pa.string())
    second_node = node.args[1]
    if fn == "contains" and is_list_type(first.type):
        item = first.type.value_type
        second = _compile(second_node, scope, params, item)
        return Compiled(f"list_contains({first.sql}, {second.sql})", pa.bool_())
    second = _compile(second_node, scope, params)
    text = f"CAST({first.sql} AS VARCHAR)"
    if fn == "contains":
        return Compiled(f"contains({text}, {second.sql})", pa.bool_())
    if fn == "startswith":
        return Compiled(f"starts_with({text}, {second.sql})", pa.bool_())
    if fn == "endswith":
        return Compiled(f"suffix({text}, {second.sql})", pa.bool_())
    return Compiled(f"regexp_matches({text}, {second.sql})", pa.bool_())


def _list_pred(node: ListPred, scope: Scope, params: Params) -> Compiled:
    target = _compile(node.list, scope, params)
    if target.type is not None and not is_list_type(target.type):
        raise FilterTypeError(
            f"{node.fn}() needs a list as its first argument; "
            f"`{node.list.to_text()}` is {_describe_arrow(target.type)}"
        )
    lst = target.sql
    if node.predicate is None:
        if node.fn == "count":
            return Compiled(f"coalesce(len({lst}), 0)", pa.int64())
        item_type = target.type.value_type if target.type is not None else None
        if item_type is not None and pa.types.is_boolean(item_type):
            agg = "list_bool_or" if node.fn == "any" else "list_bool_and"
            default = "false" if node.fn == "any" else "true"
            return Compiled(f"coalesce({agg}({lst}), {default})", pa.bool_())
        if node.fn == "any":
            return Compiled(f"coalesce(len({lst}) > 0, false)", pa.bool_())
        return Compiled("true", pa.bool_())
    var = f"__tp_item{len(scope.items)}"
    item_type = target.type.value_type if target.type is not None else pa.null()
    scope.items.append((var, item_type))
    try:
        pred = _compile(node.predicate, scope, params)
    finally:
        scope.items.pop()
    kept = f"len(list_filter({lst}, lambda {quote_ident(var)}: ({pred.sql})))"
    if node.fn == "any":
        return Compiled(f"coalesce({kept} > 0, false)", pa.bool_())
    if node.fn == "all":
        return Compiled(f"coalesce({kept} = len({lst}), true)", pa.bool_())
    return Compiled(f"coalesce({kept}, 0)", pa.int64())


def compile_expr(expr: Any, scope: Scope, params: Params) -> Compiled:
    """Compile a filter AST node to SQL over ``scope``, binding literals into ``params``."""
    return _compile(expr, scope, params)
