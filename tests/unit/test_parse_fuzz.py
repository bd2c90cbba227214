"""Fuzz the filter parser: random text and JSON give an AST or FilterSyntaxError, nothing else.

Also: every generated AST prints to text that parses back to the same AST,
and ``check_filter`` on anything that parses raises only the library's errors.
"""

from __future__ import annotations

import json
import os
import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from panels_core.query.check import check_filter
from panels_core.query.errors import FilterSyntaxError, QueryError
from panels_core.query.expr import (
    FUNCTIONS,
    Binary,
    Call,
    Col,
    In,
    IsNull,
    Item,
    ListPred,
    Lit,
    Node,
    Unary,
)
from panels_core.query.parse import MAX_DEPTH, expr_depth, parse_filter
from panels_core.types import (
    BooleanType,
    CategoryType,
    ImageType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TableType,
    TimestampType,
)

# FILTER_FUZZ_EXAMPLES raises the count for a deeper local run
FUZZ = settings(
    max_examples=int(os.environ.get("FILTER_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TABLE = TableType(
    columns={
        "a": NumberType(),
        "b": NumberType(integer=True),
        "x": OptionalType(inner=NumberType()),
        "label": CategoryType(categories=("cat", "dog")),
        "name": StringType(),
        "ok": BooleanType(),
        "ts": TimestampType(),
        "tags": ListType(item=StringType()),
        "pred": StructType(fields={"score": NumberType()}),
        "image": ImageType(box_layers=("gt",)),
    }
)


def same(a, b) -> bool:
    return a == b and repr(a) == repr(b)


def outcome(source):
    """Parse; anything but an Expr or a FilterSyntaxError fails the test."""
    try:
        expr = parse_filter(source)
    except FilterSyntaxError as exc:
        assert str(exc)  # the message (with its caret) formats
        return None
    assert isinstance(expr, Node)
    return expr


def checks_cleanly(expr) -> None:
    try:
        check_filter(expr, TABLE)
    except QueryError as exc:
        assert str(exc)


# --------------------------------------------------------------------------- random text

TOKENS = [
    *"abx_",
    "label",
    "name",
    "tags",
    "pred.score",
    "image.boxes.gt",
    "0.a",
    "1.b",
    "`my col`",
    "`a``b`",
    "`",
    "0",
    "1",
    "-3",
    "2.5",
    "1e5",
    "1e",
    ".5",
    "'cat'",
    '"dog"',
    '"x\\"y"',
    "'unclosed",
    "\\",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    ",",
    ".",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "true",
    "false",
    *FUNCTIONS,
    "any",
    "all",
    "count",
    "foo",
    "$",
    "[",
    "{",
    "}",
    ":",
    "\n",
]

grammar_text = st.lists(st.sampled_from(TOKENS), max_size=25).flatmap(
    lambda parts: st.sampled_from([" ", ""]).map(lambda sep: sep.join(parts))
)


@FUZZ
@given(st.text(max_size=80))
def test_random_text(text):
    expr = outcome(text)
    if expr is not None:
        assert same(parse_filter(expr.to_text()), expr)


@FUZZ
@given(grammar_text)
def test_random_token_text(text):
    expr = outcome(text)
    if expr is not None:
        assert same(parse_filter(expr.to_text()), expr)
        checks_cleanly(expr)


@FUZZ
@given(st.text(alphabet=string.printable, max_size=60))
def test_random_json_like_text(text):
    outcome("{" + text)
    outcome("[" + text)


# --------------------------------------------------------------------------- random JSON

MONGO_KEYS = [
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$and",
    "$or",
    "$not",
    "$nor",
    "$in",
    "$nin",
    "$size",
    "$filter",
    "$regexMatch",
    "$add",
    "$subtract",
    "$multiply",
    "$divide",
    "$mod",
    "$abs",
    "$toLower",
    "$toUpper",
    "$strLenCP",
    "$regex",
    "$foo",
    "input",
    "as",
    "cond",
    "regex",
    "a",
    "0.a",
    "",
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["$a", "$0.a", "$pred.score", "$$this", "$$box.c", "$", "$$", "cat", "(", "box"]
    ),
    st.text(max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(MONGO_KEYS) | st.text(max_size=4), children, max_size=3),
    ),
    max_leaves=25,
)


@FUZZ
@given(json_values)
def test_random_json(value):
    from_value = outcome(value)
    from_text = outcome(json.dumps(value))
    if from_value is not None and isinstance(value, dict | list):  # a bare str is filter text
        assert from_text is not None and same(from_text, from_value)
        assert same(parse_filter(from_value.to_text()), from_value)
        checks_cleanly(from_value)


# --------------------------------------------------------------------------- generated ASTs round-trip

names = st.one_of(
    st.sampled_from(
        ["a", "score", "my col", "and", "Len", "count", "_", "a`b", "größe", "x.y", "0", "`"]
    ),
    st.text(min_size=1, max_size=6),
)
paths = st.lists(names, min_size=1, max_size=3).map(tuple)
literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
).map(lambda v: Lit(value=v))
sourced = st.builds(Col, path=paths, source=st.integers(min_value=0, max_value=3))


def _leaves(in_predicate: bool):
    named = (
        st.builds(Item, path=st.lists(names, max_size=2).map(tuple))
        if in_predicate
        else st.builds(Col, path=paths)
    )
    return st.one_of(literals, named, sourced)


def _not_null_compare(node) -> bool:
    if isinstance(node, Binary) and node.op in ("==", "!="):
        return not any(isinstance(s, Lit) and s.value is None for s in (node.left, node.right))
    return True


def _compound(children, predicates):
    arity = {"len": 1, "abs": 1, "lower": 1, "upper": 1}
    calls = st.sampled_from(FUNCTIONS).flatmap(
        lambda fn: st.lists(children, min_size=arity.get(fn, 2), max_size=arity.get(fn, 2)).map(
            lambda args: Call(fn=fn, args=tuple(args))
        )
    )
    return st.one_of(
        st.builds(Unary, op=st.sampled_from(["not", "neg"]), operand=children),
        st.builds(
            Binary,
            op=st.sampled_from(
                ["or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]
            ),
            left=children,
            right=children,
        ).filter(_not_null_compare),
        st.builds(
            In,
            operand=children,
            values=st.lists(children, max_size=3).map(tuple),
            negated=st.booleans(),
        ),
        st.builds(IsNull, operand=children, negated=st.booleans()),
        calls.filter(
            lambda c: (
                c.fn != "matches"
                or not (isinstance(c.args[1], Lit) and isinstance(c.args[1].value, str))
            )
        ),
        st.builds(
            ListPred,
            fn=st.sampled_from(["any", "all", "count"]),
            list=children,
            predicate=predicates,
        ),
        st.builds(ListPred, fn=st.just("count"), list=children),
    )


outer_exprs = st.deferred(lambda: st.one_of(_leaves(False), _compound(outer_exprs, inner_exprs)))
inner_exprs = st.deferred(lambda: st.one_of(_leaves(True), _compound(inner_exprs, inner_exprs)))


@FUZZ
@given(outer_exprs)
def test_generated_asts_round_trip_through_text(expr):
    assume(expr_depth(expr) <= MAX_DEPTH)
    text = expr.to_text()
    assert same(parse_filter(text), expr), text


@FUZZ
@given(outer_exprs)
def test_generated_asts_round_trip_through_json_dump(expr):
    assume(expr_depth(expr) <= MAX_DEPTH)
    assert same(parse_filter(expr.model_dump()), expr)
    checks_cleanly(expr)
