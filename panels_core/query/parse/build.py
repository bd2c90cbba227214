"""Builders both parsers share: nodes, calls checked for arity, depth, located errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from panels_core.query.errors import FilterSyntaxError
from panels_core.query.expr import (
    LIST_FUNCTIONS,
    Binary,
    Call,
    In,
    IsNull,
    ListPred,
    Lit,
    Unary,
)

__all__ = [
    "ARITY",
    "MAX_DEPTH",
    "call",
    "check_depth",
    "comparison",
    "expr_depth",
    "line_column",
    "regex_problem",
    "syntax_error",
]

MAX_DEPTH = 100
"""The deepest filter (nested parentheses, calls and operator chains) that parses."""
ARITY: dict[str, tuple[int, int]] = {
    "len": (1, 1),
    "abs": (1, 1),
    "lower": (1, 1),
    "upper": (1, 1),
    "contains": (2, 2),
    "startswith": (2, 2),
    "endswith": (2, 2),
    "matches": (2, 2),
    "any": (2, 2),
    "all": (2, 2),
    "count": (1, 2),
}
_ARG_HELP = {
    "len": "len(x)",
    "abs": "abs(x)",
    "lower": "lower(x)",
    "upper": "upper(x)",
    "contains": 'contains(text, "part")',
    "startswith": 'startswith(text, "prefix")',
    "endswith": 'endswith(text, "suffix")',
    "matches": 'matches(text, "regex")',
    "any": "any(list, predicate)",
    "all": "all(list, predicate)",
    "count": "count(list) or count(list, predicate)",
}


def syntax_error(message: str, text: str = "", offset: int | None = None) -> FilterSyntaxError:
    """A FilterSyntaxError at ``offset`` of ``text`` (line and column 1-based)."""
    if not text or offset is None:
        return FilterSyntaxError(message)
    line, column = line_column(text, offset)
    return FilterSyntaxError(message, text, line, column)


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``, with lines as ``str.splitlines`` cuts them."""
    lines = text.splitlines(keepends=True)
    start = 0
    for number, line in enumerate(lines, start=1):
        body = line.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        if offset < start + len(line):
            return number, min(offset - start, len(body)) + 1
        start += len(line)
    if not lines:
        return 1, 1
    last = lines[-1].rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
    return len(lines), len(last) + 1


def comparison(op: str, left: Any, right: Any) -> Any:
    """``left op right``; ``x == null`` / ``x != null`` become ``x is (not) null``."""
    if op in ("==", "!="):
        negated = op == "!="
        if isinstance(right, Lit) and right.value is None:
            return IsNull(operand=left, negated=negated)
        if isinstance(left, Lit) and left.value is None:
            return IsNull(operand=right, negated=negated)
    return Binary(op=op, left=left, right=right)


# a lookaround `(?=`, `(?!`, `(?<=`, `(?<!` or a backreference `\1`, after an even run of backslashes
_RE2_UNSUPPORTED = re.compile(r"(?<!\\)(?:\\\\)*(?:\(\?<?[=!]|\\[1-9])")


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable regular expression (for the engine's RE2), or None."""
    if _RE2_UNSUPPORTED.search(pattern):
        return "lookarounds and backreferences are not supported"
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        return str(exc)
    return None


def call(fn: str, args: list[Any], fail: Callable[[str], FilterSyntaxError]) -> Any:
    """A Call or ListPred node after the arity check."""
    low, high = ARITY[fn]
    if not low <= len(args) <= high:
        wanted = f"{low}" if low == high else f"{low} or {high}"
        noun = "argument" if wanted == "1" else "arguments"
        raise fail(f"`{fn}` takes {wanted} {noun}, got {len(args)}: write {_ARG_HELP[fn]}")
    if fn == "matches" and isinstance(args[1], Lit) and isinstance(args[1].value, str):
        problem = regex_problem(args[1].value)
        if problem:
            raise fail(f"invalid regular expression {args[1].to_text()} in `matches`: {problem}")
    if fn in LIST_FUNCTIONS:
        return ListPred(fn=fn, list=args[0], predicate=args[1] if len(args) > 1 else None)
    return Call(fn=fn, args=tuple(args))


def _children(node: Any) -> list[Any]:
    if isinstance(node, Unary | IsNull):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, In):
        return [node.operand, *node.values]
    if isinstance(node, Call):
        return list(node.args)
    if isinstance(node, ListPred):
        return [node.list] if node.predicate is None else [node.list, node.predicate]
    return []


def expr_depth(expr: Any) -> int:
    """Depth of an AST (a leaf is 1), computed without recursion."""
    deepest = 0
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


def check_depth(expr: Any) -> Any:
    """``expr``, or a FilterSyntaxError when it nests deeper than ``MAX_DEPTH``."""
    if expr_depth(expr) > MAX_DEPTH:
        raise FilterSyntaxError(
            f"filter nested too deeply (more than {MAX_DEPTH} levels); "
            "use `x in (a, b, ...)` instead of long chains of `or`, or split the filter"
        )
    return expr
