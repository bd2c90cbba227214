"""Mongo-style JSON (as W&B wrote it) -> the filter AST, through the text parser's builders."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from panels_core.query.errors import FilterSyntaxError
from panels_core.query.expr import (
    Binary,
    Call,
    Col,
    In,
    Item,
    ListPred,
    Lit,
    Unary,
)
from panels_core.query.parse.build import MAX_DEPTH, call, comparison, syntax_error

__all__ = ["MongoConverter"]

_MONGO_COMPARE = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_MONGO_ARITH = {"$add": "+", "$subtract": "-", "$multiply": "*", "$divide": "/", "$mod": "%"}
_MONGO_NARY = ("$and", "$or", "$add", "$multiply")
_MONGO_UNARY_FN = {"$abs": "abs", "$toLower": "lower", "$toUpper": "upper", "$strLenCP": "len"}
_MONGO_OPERATORS = (
    *_MONGO_COMPARE,
    "$and",
    "$or",
    "$not",
    "$nor",
    "$in",
    "$nin",
    "$size",
    "$filter",
    "$regexMatch",
    *_MONGO_ARITH,
    *_MONGO_UNARY_FN,
)
_QUERY_OPERATORS = (*_MONGO_COMPARE, "$in", "$nin", "$regex", "$size", "$not")


@dataclass(frozen=True)
class _Filtered:
    """The value of ``$filter``: a list and a predicate; only ``$size`` takes it."""

    list: Any
    predicate: Any


class MongoConverter:
    """Mongo-style JSON values -> AST, with errors naming the JSON path (and line/column)."""

    def __init__(self, text: str | None, positions: dict[int, int]) -> None:
        self.text = text
        self.positions = positions
        self.depth = 0

    def fail(self, message: str, where: str, container: Any = None) -> FilterSyntaxError:
        full = f"{message} (at {where})" if where else message
        if self.text is not None:
            offset = self.positions.get(id(container)) if container is not None else None
            return syntax_error(full, self.text, offset if offset is not None else 0)
        return FilterSyntaxError(full)

    def unknown(
        self, kind: str, op: str, known: Sequence[str], where: str, container: Any
    ) -> FilterSyntaxError:
        """The error for an operator of ``kind`` that is not one of ``known``."""
        names = ", ".join(f"`{o}`" for o in known)
        return self.fail(f"unknown {kind} `{op}`; the {kind}s are {names}", where, container)

    def convert_top(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if not value:
                raise self.fail("an empty list of conditions: give at least one", "", value)
            return self.chain("and", [self.expr(v, f"[{i}]", ()) for i, v in enumerate(value)])
        expr = self.expr(value, "", ())
        if isinstance(expr, _Filtered):
            raise self.fail("`$filter` gives a list: wrap it in `$size`", "$filter", value)
        return expr

    @staticmethod
    def chain(op: str, items: list[Any]) -> Any:
        result = items[0]
        for item in items[1:]:
            result = Binary(op=op, left=result, right=item)
        return result

    def expr(self, value: Any, where: str, scopes: tuple[str, ...]) -> Any:
        """Any JSON value as an expression (or a _Filtered inside $size)."""
        if isinstance(value, bool) or value is None:
            return Lit(value=value)
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise self.fail("numbers must be finite (no NaN or Infinity)", where)
            return Lit(value=value)
        if isinstance(value, str):
            return self.string(value, where, scopes)
        if isinstance(value, Mapping):
            self.depth += 1
            if self.depth > MAX_DEPTH + 10:
                raise self.fail(f"filter nested too deeply (more than {MAX_DEPTH} levels)", where)
            try:
                return self.mapping(value, where, scopes)
            finally:
                self.depth -= 1
        if isinstance(value, list | tuple):
            raise self.fail(
                "a list is allowed only as the values of `$in` (`{$in: ['$x', [1, 2]]}`) "
                "or as the arguments of an operator",
                where,
                value,
            )
        raise self.fail(f"unsupported value of type {type(value).__name__}", where)

    def string(self, value: str, where: str, scopes: tuple[str, ...]) -> Any:
        if value.startswith("$$"):
            head, _, rest = value[2:].partition(".")
            if not scopes:
                raise self.fail(
                    f"`{value}` names a `$filter` variable, but there is no `$filter` here", where
                )
            if head != scopes[-1]:
                known = f"`$${scopes[-1]}`"
                if head in scopes:
                    raise self.fail(
                        f"`{value}` names an outer `$filter` item; only the innermost "
                        f"({known}) can be used here",
                        where,
                    )
                raise self.fail(f"unknown variable `{value}`: the `$filter` item is {known}", where)
            return Item(path=self.split_path(rest, value, where) if rest else ())
        if value.startswith("$"):
            col = self.column(value[1:], value, where)
            if scopes and col.source is None:
                raise self.fail(
                    f"inside `$filter`'s `cond`, name fields of the item as "
                    f"`$${scopes[-1]}.field`; the row's `{value}` can't be used there",
                    where,
                )
            return col
        return Lit(value=value)

    def split_path(self, dotted: str, original: str, where: str) -> tuple[str, ...]:
        parts = tuple(dotted.split("."))
        if any(not p for p in parts):
            raise self.fail(f"empty field name in `{original}`", where)
        return parts

    def column(self, dotted: str, original: str, where: str) -> Col:
        parts = self.split_path(dotted, original, where) if dotted else ()
        if not parts:
            raise self.fail("`$` alone names no column: write `$score`", where)
        if len(parts) > 1 and parts[0].isdigit() and parts[0].isascii():
            return Col(path=parts[1:], source=int(parts[0]))
        return Col(path=parts)

    def args(self, op: str, value: Any, where: str, count: int | None) -> list[Any]:
        if not isinstance(value, list | tuple):
            if count == 1:
                return [value]
            raise self.fail(f"`{op}` takes a list of values, like `{{{op}: [a, b]}}`", where)
        if count is not None and len(value) != count:
            noun = "value" if count == 1 else "values"
            raise self.fail(f"`{op}` takes {count} {noun}, got {len(value)}", where, value)
        if count is None and not value:
            raise self.fail(f"`{op}` needs at least one value", where, value)
        return list(value)

    def mapping(self, value: Mapping[str, Any], where: str, scopes: tuple[str, ...]) -> Any:
        """One object: an operator (``{$op: ...}``) or a query form (``{field: condition}``)."""
        keys = list(value)
        if not keys:
            raise self.fail(
                "an empty object: write an operator like `{$gt: ['$x', 1]}`", where, value
            )
        if not all(isinstance(k, str) for k in keys):
            raise self.fail("object keys must be strings", where, value)
        operators = [k for k in keys if k.startswith("$")]
        if operators and len(keys) > 1:
            raise self.fail(
                f"one operator per object, found {', '.join(f'`{k}`' for k in keys)}: "
                "combine conditions with `$and`",
                where,
                value,
            )
        if not operators:
            return self.query_form(value, where, scopes)
        op = keys[0]
        here = f"{where}.{op}" if where else op
        if op not in _MONGO_OPERATORS:
            raise self.unknown("operator", op, _MONGO_OPERATORS, where, value)
        return self.operator(op, value[op], here, value, scopes)

    def operator(
        self, op: str, arg: Any, here: str, value: Mapping[str, Any], scopes: tuple[str, ...]
    ) -> Any:
        """``{op: arg}`` (``value``, at ``here``) as a node."""
        if op == "$filter":
            return self.filter(arg, here, scopes)
        if op == "$regexMatch":
            if not isinstance(arg, Mapping) or set(arg) != {"input", "regex"}:
                raise self.fail("`$regexMatch` takes `{input: ..., regex: ...}`", here, value)
            args = [self.value(arg["input"], f"{here}.input", scopes)]
            args.append(self.value(arg["regex"], f"{here}.regex", scopes))
            return call("matches", args, lambda m: self.fail(m, here, value))
        if op == "$size":
            if isinstance(arg, list | tuple) and len(arg) == 1:
                arg = arg[0]
            inner = self.expr(arg, here, scopes)
            if isinstance(inner, _Filtered):
                return ListPred(fn="count", list=inner.list, predicate=inner.predicate)
            return ListPred(fn="count", list=inner)
        if op in _MONGO_UNARY_FN:
            (item,) = self.args(op, arg, here, 1)
            return Call(fn=_MONGO_UNARY_FN[op], args=(self.value(item, f"{here}[0]", scopes),))
        if op in ("$not",):
            (item,) = self.args(op, arg, here, 1)
            return Unary(op="not", operand=self.value(item, here, scopes))
        if op in ("$in", "$nin"):
            return self.membership(op, arg, here, scopes)
        count = None if op in (*_MONGO_NARY, "$nor") else 2
        items = [
            self.value(v, f"{here}[{i}]", scopes)
            for i, v in enumerate(self.args(op, arg, here, count))
        ]
        if op in _MONGO_COMPARE:
            return comparison(_MONGO_COMPARE[op], items[0], items[1])
        if op == "$nor":
            return Unary(op="not", operand=self.chain("or", items))
        if op in ("$and", "$or"):
            return self.chain(op[1:], items)
        return self.chain(_MONGO_ARITH[op], items)

    def membership(self, op: str, arg: Any, here: str, scopes: tuple[str, ...]) -> Any:
        """``{$in: [x, [values]]}`` (or ``$nin``) as an In node."""
        operand, options = self.args(op, arg, here, 2)
        if not isinstance(options, list | tuple):
            raise self.fail(
                f"`{op}`'s second value must be a list: `{{{op}: ['$x', [1, 2]]}}`", here, arg
            )
        return In(
            operand=self.value(operand, f"{here}[0]", scopes),
            values=tuple(self.value(v, f"{here}[1][{i}]", scopes) for i, v in enumerate(options)),
            negated=op == "$nin",
        )

    def value(self, value: Any, where: str, scopes: tuple[str, ...]) -> Any:
        expr = self.expr(value, where, scopes)
        if isinstance(expr, _Filtered):
            raise self.fail("`$filter` gives a list: use it inside `$size`", where, value)
        return expr

    def filter(self, arg: Any, where: str, scopes: tuple[str, ...]) -> _Filtered:
        if not isinstance(arg, Mapping) or "input" not in arg or "cond" not in arg:
            raise self.fail(
                "`$filter` takes `{input: '$list', as: 'item', cond: {...}}`", where, arg
            )
        extra = set(arg) - {"input", "as", "cond"}
        if extra:
            raise self.fail(
                f"`$filter` takes only input, as and cond, not {', '.join(sorted(extra))}",
                where,
                arg,
            )
        name = arg.get("as", "this")
        if not isinstance(name, str) or not name or "." in name or name.startswith("$"):
            raise self.fail("`as` must be a plain name like 'box'", where, arg)
        source = self.value(arg["input"], f"{where}.input", scopes)
        cond = self.value(arg["cond"], f"{where}.cond", (*scopes, name))
        return _Filtered(list=source, predicate=cond)

    def query_form(self, value: Mapping[str, Any], where: str, scopes: tuple[str, ...]) -> Any:
        """``{"score": {"$gt": 0.5}, "label": "cat"}``: every field condition must hold."""
        conditions = []
        for key, condition in value.items():
            here = f"{where}.{key}" if where else key
            if scopes:
                raise self.fail(
                    f"the field form `{{{key}: ...}}` can't be used inside `$filter`; "
                    "use `{$eq: ['$$item.field', value]}`",
                    here,
                    value,
                )
            col = self.column(key, key, here)
            if (
                isinstance(condition, Mapping)
                and condition
                and all(isinstance(k, str) and k.startswith("$") for k in condition)
            ):
                for op, operand in condition.items():
                    conditions.append(
                        self.field_condition(col, op, operand, f"{here}.{op}", condition)
                    )
            else:
                conditions.append(comparison("==", col, self.value(condition, here, scopes)))
        return self.chain("and", conditions)

    def field_condition(self, col: Col, op: str, operand: Any, where: str, container: Any) -> Any:
        if op not in _QUERY_OPERATORS:
            raise self.unknown("field operator", op, _QUERY_OPERATORS, where, container)
        if op in _MONGO_COMPARE:
            return comparison(_MONGO_COMPARE[op], col, self.value(operand, where, ()))
        if op in ("$in", "$nin"):
            if not isinstance(operand, list | tuple):
                raise self.fail(f"`{op}` takes a list of values", where, container)
            return In(
                operand=col,
                values=tuple(self.value(v, f"{where}[{i}]", ()) for i, v in enumerate(operand)),
                negated=op == "$nin",
            )
        if op == "$regex":
            return call(
                "matches", [col, self.value(operand, where, ())], lambda m: self.fail(m, where)
            )
        if op == "$size":
            return comparison("==", ListPred(fn="count", list=col), self.value(operand, where, ()))
        if not isinstance(operand, Mapping):
            raise self.fail("`$not` takes an object of field operators, like `{$gt: 1}`", where)
        self.depth += 1
        if self.depth > MAX_DEPTH + 10:
            raise self.fail(f"filter nested too deeply (more than {MAX_DEPTH} levels)", where)
        parts = [
            self.field_condition(col, k, v, f"{where}.{k}", operand) for k, v in operand.items()
        ]
        self.depth -= 1
        if not parts:
            raise self.fail("`$not` needs at least one operator", where)
        return Unary(op="not", operand=self.chain("and", parts))
