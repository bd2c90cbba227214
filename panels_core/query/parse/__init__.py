"""Filter text and Mongo-style JSON -> the filter AST (``expr.py``), never eval.

Text: a hand-written tokenizer and a precedence-climbing parser::

    score > 0.5 and label in ("cat", "dog")
    count(image.boxes.ground_truth, class_id == 13) >= 1
    0.score > 1.score            # compare mode: source 0 and source 1

Mongo-style JSON (a dict, a list of conditions, or text starting with ``{``
or ``[``; unquoted keys and single quotes are accepted, as W&B wrote them)::

    {$gte: [{$size: {$filter: {input: '$0.pred_mask.boxes.ground_truth',
             as: 'box', cond: {$eq: ['$$box.class_id', 13]}}}}, 1]}

Both forms build nodes through the same helpers, so equivalent filters give
equal ASTs. Every error is a ``FilterSyntaxError`` that says where and what
was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from panels_core.query.errors import FilterSyntaxError
from panels_core.query.expr import ExprAdapter, Node, text_problem
from panels_core.query.parse.build import (
    MAX_DEPTH,
    check_depth,
    expr_depth,
    regex_problem,
    syntax_error,
)
from panels_core.query.parse.mongo import MongoConverter
from panels_core.query.parse.relaxed_json import RelaxedJson
from panels_core.query.parse.text import TextParser

__all__ = ["MAX_DEPTH", "expr_depth", "parse_filter", "regex_problem"]

_AST_NODES = (
    "lit",
    "col",
    "item",
    "unary",
    "binary",
    "in",
    "is_null",
    "call",
    "list_pred",
    "row_number",
    "in_selection",
)


def parse_filter(source: Any) -> Any:
    """Parse filter text, Mongo-style JSON (dict, list or text) or an AST dict into an Expr.

    Raises ``FilterSyntaxError`` (a ``QueryError``) for anything that does not parse.
    """
    try:
        return check_depth(_parse(source))
    except ValidationError as exc:  # a node refused its value, e.g. a string that is not text
        raise FilterSyntaxError(f"not a valid filter: {_validation_text(exc)}") from None


def _parse(source: Any) -> Any:
    if isinstance(source, Node):
        return source
    if isinstance(source, Mapping) and source.get("node") in _AST_NODES:
        return _from_ast_dict(source)
    if isinstance(source, Mapping | list | tuple):
        return MongoConverter(None, {}).convert_top(source)
    if not isinstance(source, str):
        raise FilterSyntaxError(
            f"a filter is text or Mongo-style JSON, not {type(source).__name__}"
        )
    problem = text_problem(source)
    if problem:
        found = next(i for i, ch in enumerate(source) if text_problem(ch))
        shown = "".join("\ufffd" if text_problem(ch) else ch for ch in source)
        raise syntax_error(f"the filter {problem}", shown, found)
    stripped = source.lstrip()
    if stripped.startswith(("{", "[")):
        value, positions = RelaxedJson(source).parse()
        return MongoConverter(source, positions).convert_top(value)
    return TextParser(source).parse()


def _validation_text(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``where: what``."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    what = error["msg"].removeprefix("Value error, ")
    return f"{where}: {what}" if where else what


def _from_ast_dict(data: Mapping[str, Any]) -> Any:
    try:
        return ExprAdapter.validate_python(data)
    except ValidationError as exc:
        raise FilterSyntaxError(f"not a valid filter AST: {_validation_text(exc)}") from None
    except (RecursionError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()
        detail = first[1] if len(first) > 1 else (first[0] if first else "")
        raise FilterSyntaxError(f"not a valid filter AST: {detail.strip()}") from None
