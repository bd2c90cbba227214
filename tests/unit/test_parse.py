"""parse_filter: text and Mongo-style JSON to the AST, round trips and error messages."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from panels_core.query.errors import FilterSyntaxError, QueryError
from panels_core.query.expr import Binary, Call, Col, In, IsNull, Item, ListPred, Lit, Unary
from panels_core.query.model import Query
from panels_core.query.parse import MAX_DEPTH, expr_depth, parse_filter


def col(*path: str, source: int | None = None) -> Col:
    return Col(path=path, source=source)


def lit(value) -> Lit:
    return Lit(value=value)


def b(op: str, left, right) -> Binary:
    return Binary(op=op, left=left, right=right)


def same(a, b) -> bool:
    """Equal ASTs, also telling 1 from 1.0 and True (pydantic's == does not)."""
    return a == b and repr(a) == repr(b)


def syntax_error(source) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(source)
    assert isinstance(info.value, QueryError)
    return info.value


# --------------------------------------------------------------------------- text: every operator

TEXT_CASES = [
    # literals and names
    ("ok", col("ok")),
    ("x == 3", b("==", col("x"), lit(3))),
    ("x == 3.5", b("==", col("x"), lit(3.5))),
    ("x == 1e3", b("==", col("x"), lit(1000.0))),
    ("x == 2.5E-2", b("==", col("x"), lit(0.025))),
    ("x == -7", b("==", col("x"), lit(-7))),
    ("x == 'single'", b("==", col("x"), lit("single"))),
    ('x == "dou\\"ble"', b("==", col("x"), lit('dou"ble'))),
    ('x == "tab\\tnew\\nline \\u00e9 \\\\"', b("==", col("x"), lit("tab\tnew\nline é \\"))),
    ("x == 'it\\'s'", b("==", col("x"), lit("it's"))),
    ('x == "\\ud83d\\ude00"', b("==", col("x"), lit("\U0001f600"))),
    ("x == true", b("==", col("x"), lit(True))),
    ("x == FALSE", b("==", col("x"), lit(False))),
    ("`my col` > 1", b(">", col("my col"), lit(1))),
    ("`a``b` > 1", b(">", col("a`b"), lit(1))),
    ("`größe` > 1", b(">", col("größe"), lit(1))),
    ("größe > 1", b(">", col("größe"), lit(1))),
    ("`and` > 1", b(">", col("and"), lit(1))),
    ("pred.score > 0.5", b(">", col("pred", "score"), lit(0.5))),
    ("pred.`the score`.v > 0", b(">", col("pred", "the score", "v"), lit(0))),
    ("pred.count > 0", b(">", col("pred", "count"), lit(0))),
    ("count > 0", b(">", col("count"), lit(0))),
    ("0.score > 1.score", b(">", col("score", source=0), col("score", source=1))),
    ("0.pred.score < 1", b("<", col("pred", "score", source=0), lit(1))),
    ("1.`my col` >= 0", b(">=", col("my col", source=1), lit(0))),
    # comparisons
    ("a != 1", b("!=", col("a"), lit(1))),
    ("a < 1", b("<", col("a"), lit(1))),
    ("a <= 1", b("<=", col("a"), lit(1))),
    ("a > 1", b(">", col("a"), lit(1))),
    ("a >= 1", b(">=", col("a"), lit(1))),
    # logic, precedence
    ("a and b", b("and", col("a"), col("b"))),
    ("a or b", b("or", col("a"), col("b"))),
    ("a or b and c", b("or", col("a"), b("and", col("b"), col("c")))),
    ("(a or b) and c", b("and", b("or", col("a"), col("b")), col("c"))),
    ("a and b and c", b("and", b("and", col("a"), col("b")), col("c"))),
    ("a AND b OR c", b("or", b("and", col("a"), col("b")), col("c"))),
    ("not a", Unary(op="not", operand=col("a"))),
    ("not not a", Unary(op="not", operand=Unary(op="not", operand=col("a")))),
    ("not a == 1", Unary(op="not", operand=b("==", col("a"), lit(1)))),
    ("not a and b", b("and", Unary(op="not", operand=col("a")), col("b"))),
    ("a and not b", b("and", col("a"), Unary(op="not", operand=col("b")))),
    # arithmetic
    ("a + b * c > 0", b(">", b("+", col("a"), b("*", col("b"), col("c"))), lit(0))),
    ("(a + b) * c > 0", b(">", b("*", b("+", col("a"), col("b")), col("c")), lit(0))),
    ("a - b - c > 0", b(">", b("-", b("-", col("a"), col("b")), col("c")), lit(0))),
    ("a / b % 2 == 0", b("==", b("%", b("/", col("a"), col("b")), lit(2)), lit(0))),
    ("-a > 0", b(">", Unary(op="neg", operand=col("a")), lit(0))),
    ("-(5) > 0", b(">", Unary(op="neg", operand=lit(5)), lit(0))),
    ("- -5 > 0", b(">", Unary(op="neg", operand=lit(-5)), lit(0))),
    ("a - -5 > 0", b(">", b("-", col("a"), lit(-5)), lit(0))),
    ("-a * b > 0", b(">", b("*", Unary(op="neg", operand=col("a")), col("b")), lit(0))),
    ("-0.score > 0", b(">", Unary(op="neg", operand=col("score", source=0)), lit(0))),
    # in, is null
    ('label in ("cat", "dog")', In(operand=col("label"), values=(lit("cat"), lit("dog")))),
    ("n in (1,)", In(operand=col("n"), values=(lit(1),))),
    ("n in ()", In(operand=col("n"), values=())),
    ("n not in (1, 2)", In(operand=col("n"), values=(lit(1), lit(2)), negated=True)),
    ("not n in (1, 2)", Unary(op="not", operand=In(operand=col("n"), values=(lit(1), lit(2))))),
    ("a + 1 in (2, 3)", In(operand=b("+", col("a"), lit(1)), values=(lit(2), lit(3)))),
    ("x is null", IsNull(operand=col("x"))),
    ("x is not null", IsNull(operand=col("x"), negated=True)),
    ("x IS NOT NULL", IsNull(operand=col("x"), negated=True)),
    ("x == null", IsNull(operand=col("x"))),
    ("null != x", IsNull(operand=col("x"), negated=True)),
    # functions
    ("len(name) > 3", b(">", Call(fn="len", args=(col("name"),)), lit(3))),
    ("abs(x) < 1", b("<", Call(fn="abs", args=(col("x"),)), lit(1))),
    ('lower(name) == "a"', b("==", Call(fn="lower", args=(col("name"),)), lit("a"))),
    ('UPPER(name) == "A"', b("==", Call(fn="upper", args=(col("name"),)), lit("A"))),
    ('contains(name, "ab")', Call(fn="contains", args=(col("name"), lit("ab")))),
    ('startswith(name, "ab")', Call(fn="startswith", args=(col("name"), lit("ab")))),
    ('endswith(name, "ab")', Call(fn="endswith", args=(col("name"), lit("ab")))),
    ('matches(name, "^a.*z$")', Call(fn="matches", args=(col("name"), lit("^a.*z$")))),
    # list predicates
    (
        "any(boxes, class_id == 13)",
        ListPred(fn="any", list=col("boxes"), predicate=b("==", Item(path=("class_id",)), lit(13))),
    ),
    (
        "all(boxes, score.v > 0.5)",
        ListPred(
            fn="all", list=col("boxes"), predicate=b(">", Item(path=("score", "v")), lit(0.5))
        ),
    ),
    (
        "count(image.boxes.ground_truth, class_id == 13) >= 1",
        b(
            ">=",
            ListPred(
                fn="count",
                list=col("image", "boxes", "ground_truth"),
                predicate=b("==", Item(path=("class_id",)), lit(13)),
            ),
            lit(1),
        ),
    ),
    ("count(tags) > 2", b(">", ListPred(fn="count", list=col("tags")), lit(2))),
    (
        'any(tags, _ == "cat")',
        ListPred(fn="any", list=col("tags"), predicate=b("==", Item(), lit("cat"))),
    ),
    (
        "any(xs, `_` > 1)",
        ListPred(fn="any", list=col("xs"), predicate=b(">", Item(path=("_",)), lit(1))),
    ),
    (
        "any(boxes, score > 0.score)",
        ListPred(
            fn="any",
            list=col("boxes"),
            predicate=b(">", Item(path=("score",)), col("score", source=0)),
        ),
    ),
    (
        "any(a, any(sub, _ > 1))",
        ListPred(
            fn="any",
            list=col("a"),
            predicate=ListPred(
                fn="any", list=Item(path=("sub",)), predicate=b(">", Item(), lit(1))
            ),
        ),
    ),
    ("len(name)\n  > 3", b(">", Call(fn="len", args=(col("name"),)), lit(3))),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_parses_to_the_expected_ast(text, expected):
    parsed = parse_filter(text)
    assert same(parsed, expected)
    assert same(parse_filter(parsed.to_text()), parsed)


def test_injection_text_is_a_plain_string_literal():
    expr = parse_filter('label == "x\'); drop table t; --"')
    assert same(expr, b("==", col("label"), lit("x'); drop table t; --")))
    expr = parse_filter("label == 'x\"); drop table t; --'")
    assert same(expr, b("==", col("label"), lit('x"); drop table t; --')))


def test_canonical_text():
    cases = {
        "a or b and c": "a or b and c",
        "(a or b) and c": "(a or b) and c",
        "x == null": "x is null",
        "`my col` in ('a')": '`my col` in ("a",)',
        "not (x in (1))": "not x in (1,)",
        "-(5)": "-(5)",
        "(a < b) == c": "(a < b) == c",
        "a - (b - c) > 0": "a - (b - c) > 0",
        "a * -b > 0": "a * -b > 0",
        "1e20 > x": "1e+20 > x",
        "`_` > 1": "`_` > 1",
        "`len` > 1": "`len` > 1",
    }
    for text, canonical in cases.items():
        assert parse_filter(text).to_text() == canonical


# --------------------------------------------------------------------------- Mongo-style JSON

PAIRS = [
    ({"$gt": ["$0.road", 0.05]}, "0.road > 0.05"),
    ({"$gt": ["$road", 0.05]}, "road > 0.05"),
    ({"$eq": ["$label", "cat"]}, 'label == "cat"'),
    ({"$ne": ["$label", "cat"]}, 'label != "cat"'),
    ({"$lt": ["$a.b", 1]}, "a.b < 1"),
    ({"$lte": ["$a", -1]}, "a <= -1"),
    ({"$gte": ["$a", 1.5]}, "a >= 1.5"),
    ({"$eq": ["$a", True]}, "a == true"),
    ({"$eq": ["$a", None]}, "a is null"),
    ({"$ne": ["$a", None]}, "a is not null"),
    ({"$and": [{"$gt": ["$a", 1]}, {"$lt": ["$a", 5]}]}, "a > 1 and a < 5"),
    ({"$and": [{"$gt": ["$a", 1]}, "$ok", "$ok2"]}, "a > 1 and ok and ok2"),
    ({"$or": [{"$gt": ["$a", 1]}, {"$lt": ["$a", 5]}]}, "a > 1 or a < 5"),
    ({"$and": ["$ok"]}, "ok"),
    ({"$not": {"$gt": ["$a", 1]}}, "not a > 1"),
    ({"$not": [{"$gt": ["$a", 1]}]}, "not a > 1"),
    ({"$nor": ["$a", "$b"]}, "not (a or b)"),
    ({"$in": ["$label", ["cat", "dog"]]}, 'label in ("cat", "dog")'),
    ({"$nin": ["$n", [1]]}, "n not in (1,)"),
    ({"$size": "$tags"}, "count(tags)"),
    ({"$gt": [{"$size": "$tags"}, 2]}, "count(tags) > 2"),
    ({"$gt": [{"$add": ["$a", "$b", 1]}, 0]}, "a + b + 1 > 0"),
    ({"$gt": [{"$subtract": ["$a", "$b"]}, 0]}, "a - b > 0"),
    ({"$gt": [{"$multiply": ["$a", 2]}, 0]}, "a * 2 > 0"),
    ({"$gt": [{"$divide": ["$a", 2]}, 0]}, "a / 2 > 0"),
    ({"$eq": [{"$mod": ["$a", 2]}, 0]}, "a % 2 == 0"),
    ({"$lt": [{"$abs": "$a"}, 1]}, "abs(a) < 1"),
    ({"$eq": [{"$toLower": "$name"}, "a"]}, 'lower(name) == "a"'),
    ({"$eq": [{"$toUpper": ["$name"]}, "A"]}, 'upper(name) == "A"'),
    ({"$gt": [{"$strLenCP": "$name"}, 3]}, "len(name) > 3"),
    ({"$regexMatch": {"input": "$name", "regex": "^a"}}, 'matches(name, "^a")'),
    ({"$eq": ["$a", "plain $ text"]}, 'a == "plain $ text"'),
    (
        {
            "$gte": [
                {
                    "$size": {
                        "$filter": {
                            "input": "$0.pred_mask.boxes.ground_truth",
                            "as": "box",
                            "cond": {"$eq": ["$$box.class_id", 13]},
                        }
                    }
                },
                1,
            ]
        },
        "count(0.pred_mask.boxes.ground_truth, class_id == 13) >= 1",
    ),
    (
        {"$size": {"$filter": {"input": "$tags", "cond": {"$eq": ["$$this", "x"]}}}},
        'count(tags, _ == "x")',
    ),
    (
        {"$size": {"$filter": {"input": "$b", "as": "x", "cond": {"$gt": ["$$x.s", "$0.t"]}}}},
        "count(b, s > 0.t)",
    ),
    # the field ("query") form
    ({"score": {"$gt": 0.5}}, "score > 0.5"),
    (
        {"score": {"$gt": 0.5, "$lte": 1}, "label": "cat"},
        'score > 0.5 and score <= 1 and label == "cat"',
    ),
    ({"0.road": {"$in": [1, 2]}}, "0.road in (1, 2)"),
    ({"label": {"$nin": ["a"]}}, 'label not in ("a",)'),
    ({"name": {"$regex": "^a"}}, 'matches(name, "^a")'),
    ({"tags": {"$size": 2}}, "count(tags) == 2"),
    ({"score": {"$not": {"$gt": 1}}}, "not score > 1"),
    ({"score": None}, "score is null"),
    # a list: every condition holds
    ([{"$gt": ["$a", 1]}, {"b": 2}], "a > 1 and b == 2"),
]


@pytest.mark.parametrize(("mongo", "text"), PAIRS, ids=[p[1] for p in PAIRS])
def test_mongo_json_equals_text(mongo, text):
    expected = parse_filter(text)
    assert same(parse_filter(mongo), expected)
    assert same(parse_filter(json.dumps(mongo)), expected)


def test_wandb_relaxed_json_form():
    wandb = """{
  $gte: [
    {$size:
      {$filter:
        {input: '$0.pred_mask.boxes.ground_truth',
          as: 'box',
          cond: {$eq: ['$$box.class_id', 13]}
        }
      }
    },
  1]
}"""
    expected = parse_filter("count(0.pred_mask.boxes.ground_truth, class_id == 13) >= 1")
    assert same(parse_filter(wandb), expected)
    assert same(parse_filter("{$gt: ['$0.road', 0.05]}"), parse_filter("0.road > 0.05"))
    assert same(parse_filter("{$gt: ['$x', -1.5e2,],}"), parse_filter("x > -150.0"))
    assert same(parse_filter('{"$eq": ["$s", "\\u00e9\\n"]}'), b("==", col("s"), lit("é\n")))


def test_an_ast_dict_parses_back():
    expr = parse_filter("any(boxes, class_id == 13) and not x is null")
    assert same(parse_filter(expr.model_dump()), expr)
    assert parse_filter(expr) is expr
    error = syntax_error({"node": "binary", "op": "??"})
    assert "not a valid filter AST" in str(error)


def test_query_stores_the_ast_and_serializes_text():
    query = Query(table="t", filter={"$gt": ["$score", 0.5]})
    assert same(query.filter, b(">", col("score"), lit(0.5)))
    dumped = query.model_dump()
    assert dumped["filter"] == "score > 0.5"
    assert Query.model_validate(dumped) == query
    listed = Query(table="t", filter=[{"$gt": ["$a", 1]}, {"b": 2}])
    assert listed.model_dump()["filter"] == "a > 1 and b == 2"
    assert Query(table="t", filter=listed.filter.model_dump()).filter == listed.filter


# --------------------------------------------------------------------------- errors


def test_error_positions_and_caret():
    error = syntax_error("score > ")
    assert error.reason == "expected a value after `>`"
    assert (error.line, error.column) == (1, 9)
    assert str(error).splitlines() == [
        "expected a value after `>` (line 1, column 9)",
        "  score > ",
        "          ^",
    ]
    error = syntax_error("a > 1 and\n  b >= 'x")
    assert error.reason == "unclosed string: add the closing '"
    assert (error.line, error.column) == (2, 8)
    assert str(error).splitlines()[1:] == ["    b >= 'x", "         ^"]


TEXT_ERRORS = [
    ("", "the filter is empty: write a condition like `score > 0.5`", 0, 0),
    ("   ", "the filter is empty: write a condition like `score > 0.5`", 1, 4),
    ("x = 3", "unexpected `=`: use `==` to compare (a single `=` is not an operator)", 1, 3),
    ("a && b", "unexpected `&&`: use `and` to join conditions", 1, 3),
    ("a || b", "unexpected `||`: use `or` to join conditions", 1, 3),
    ("!a", "unexpected `!`: use `not` to negate a condition", 1, 1),
    ("a <> 1", "unexpected `<>`: use `!=` for 'not equal'", 1, 3),
    ("x in [1, 2]", "unexpected `[`: lists are written in parentheses: `x in (1, 2)`", 1, 6),
    ("x > .5", "write numbers with a leading digit: `0.5`, not `.5`", 1, 5),
    ("x > 12ab", "malformed number `12ab`", 1, 5),
    ("x > 1e999", "number `1e999` is out of range", 1, 5),
    ("x == 'abc", "unclosed string: add the closing '", 1, 6),
    ('x == "a\\qb"', "unknown escape `\\q` in a string; write `\\\\` for a backslash", 1, 8),
    ('x == "\\u12"', "`\\u` needs four hex digits, like `\\u00e9`", 1, 7),
    ("`my col > 1", "unclosed back-quoted name: add the closing `", 1, 1),
    ("`` > 1", "empty column name ``", 1, 1),
    ("x >", "expected a value after `>`", 1, 4),
    ("x > )", "expected a value after `>`, found `)`", 1, 5),
    ("x > and y", "expected a value after `>`, found `and`", 1, 5),
    ("and x", "expected a value, found `and`", 1, 1),
    ("a and", "expected a value after `and`", 1, 6),
    ("not", "expected a value after `not`", 1, 4),
    (
        "a < b < c",
        "comparisons do not chain: join them with `and`, like `a < b and b < c` (at `<`)",
        1,
        7,
    ),
    (
        "a == b is null",
        "comparisons do not chain: join them with `and`, like `a < b and b < c` (at `is`)",
        1,
        8,
    ),
    (
        "(x > 1",
        "expected `)` to close the `(` at line 1, column 1, found the end of the filter",
        1,
        7,
    ),
    ("x > 1)", "unexpected `)`: it closes no `(`", 1, 6),
    ("x > 1 y", "expected an operator before `y`; join conditions with `and` or `or`", 1, 7),
    ("x > 1.5 .", "unexpected `.`", 1, 9),
    ("x is 3", "expected `null` after `is`, found `3` (compare values with `==` or `!=`)", 1, 6),
    (
        "x is not 3",
        "expected `null` after `is not`, found `3` (compare values with `==` or `!=`)",
        1,
        10,
    ),
    ("x in 1", "expected `(` after `in`, like `x in (1, 2)`, found `1`", 1, 6),
    ("x not in (1 2)", "expected `,` or `)` in the list after `not in`, found `2`", 1, 13),
    ("a == not b", "put `not ...` in parentheses here, like `a == (not b)`", 1, 6),
    ("pred. > 1", "expected a field name after `.`, found `>`", 1, 7),
    ("3. > 1", "expected a field name after `.`, found `>`", 1, 4),
    (
        "foo(x) > 1",
        "unknown function `foo`: the functions are `len`, `abs`, `lower`, `upper`, `contains`, "
        "`startswith`, `endswith`, `matches`, `any`, `all`, `count`, "
        "`row_number`, `in_selection`",
        1,
        1,
    ),
    ("len(a, b) > 1", "`len` takes 1 argument, got 2: write len(x)", 1, 1),
    ("len() > 1", "`len` takes 1 argument, got 0: write len(x)", 1, 1),
    ("contains(a) ", '`contains` takes 2 arguments, got 1: write contains(text, "part")', 1, 1),
    ("any(boxes)", "`any` takes 2 arguments, got 1: write any(list, predicate)", 1, 1),
    (
        "count(a, b, c) > 1",
        "`count` takes 1 or 2 arguments, got 3: write count(list) or count(list, predicate)",
        1,
        1,
    ),
    ("len(a b)", "expected `,` or `)` in the arguments of `len`, found `b`", 1, 7),
    ("len(a,)", "expected a value after `,`", 1, 7),
    ("len(", "expected `)` to close `len(`", 1, 5),
    (
        'matches(a, "(")',
        'invalid regular expression "(" in `matches`: missing ), unterminated subpattern at position 0',
        1,
        1,
    ),
    (
        r'matches(a, "(a)\\1")',
        r'invalid regular expression "(a)\\1" in `matches`: '
        "lookarounds and backreferences are not supported",
        1,
        1,
    ),
    (
        'matches(a, "(?=x)")',
        'invalid regular expression "(?=x)" in `matches`: lookarounds and backreferences are not supported',
        1,
        1,
    ),
    (
        "_ > 1",
        '`_` names the list item and works only inside any/all/count, like `any(tags, _ == "cat")`',
        1,
        1,
    ),
    ("x > 1 # note", "unexpected `#`", 1, 7),
]


@pytest.mark.parametrize(
    ("text", "reason", "line", "column"), TEXT_ERRORS, ids=[e[0] or "empty" for e in TEXT_ERRORS]
)
def test_text_error_messages(text, reason, line, column):
    error = syntax_error(text)
    assert error.reason == reason
    assert (error.line, error.column) == (line, column)


JSON_ERRORS = [
    ("{$gt: [1, }", "expected a value, found `}` (line 1, column 11)"),
    ("{$gt: [1, 2]", "unclosed `{`: add `}` (line 1, column 1)"),
    ("{$gt [1, 2]}", "expected `:` after the key `$gt` (line 1, column 6)"),
    ("{$gt: [1 2]}", "expected `,` or `]`, found `2` (line 1, column 10)"),
    (
        "{$gt: [x, 2]}",
        "unexpected `x`: put strings in quotes, like '$score' or 'cat' (line 1, column 8)",
    ),
    ("{$gt: [1, 2]} x", "unexpected `x` after the end of the JSON filter (line 1, column 15)"),
    ("{a: 1, a: 2}", "the key `a` appears twice in one object (line 1, column 8)"),
    ("{: 1}", "expected a key (like `$gt` or 'input'), found `:` (line 1, column 2)"),
    ("{$gt: ['$a', 'b}", "unclosed string: add the closing ' (line 1, column 14)"),
    (
        "{\n  $gte: [{$size: {$foo: 1}}, 1]\n}",
        "unknown operator `$foo`; the operators are `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, "
        "`$and`, `$or`, `$not`, `$nor`, `$in`, `$nin`, `$size`, `$filter`, `$regexMatch`, `$add`, "
        "`$subtract`, `$multiply`, `$divide`, `$mod`, `$abs`, `$toLower`, `$toUpper`, `$strLenCP` "
        "(at $gte[0].$size) (line 2, column 18)",
    ),
    ("{$gt: ['$a', 1, 2]}", "`$gt` takes 2 values, got 3 (at $gt) (line 1, column 7)"),
    (
        "{$gt: '$a'}",
        "`$gt` takes a list of values, like `{$gt: [a, b]}` (at $gt) (line 1, column 1)",
    ),
]


@pytest.mark.parametrize(("text", "first_line"), JSON_ERRORS, ids=[e[0] for e in JSON_ERRORS])
def test_json_text_error_messages(text, first_line):
    assert str(syntax_error(text)).splitlines()[0] == first_line


DICT_ERRORS = [
    ({}, "an empty object: write an operator like `{$gt: ['$x', 1]}`"),
    ([], "an empty list of conditions: give at least one"),
    (
        {"$gt": ["$a", 1], "$lt": ["$a", 2]},
        "one operator per object, found `$gt`, `$lt`: combine conditions with `$and`",
    ),
    ({"$and": []}, "`$and` needs at least one value (at $and)"),
    ({"$not": ["$a", "$b"]}, "`$not` takes 1 value, got 2 (at $not)"),
    ({"$in": ["$a", 1]}, "`$in`'s second value must be a list: `{$in: ['$x', [1, 2]]}` (at $in)"),
    (
        {"$eq": ["$a", [1, 2]]},
        "a list is allowed only as the values of `$in` (`{$in: ['$x', [1, 2]]}`) or as the arguments of an operator (at $eq[1])",
    ),
    ({"$eq": ["$a", float("nan")]}, "numbers must be finite (no NaN or Infinity) (at $eq[1])"),
    ({"$eq": ["$a", {1, 2}]}, "unsupported value of type set (at $eq[1])"),
    ({"$eq": ["$", 1]}, "`$` alone names no column: write `$score` (at $eq[0])"),
    ({"$eq": ["$a..b", 1]}, "empty field name in `$a..b` (at $eq[0])"),
    (
        {"$eq": ["$$box.x", 1]},
        "`$$box.x` names a `$filter` variable, but there is no `$filter` here (at $eq[0])",
    ),
    (
        {"$size": {"$filter": {"input": "$b", "as": "box", "cond": {"$eq": ["$$bx.c", 1]}}}},
        "unknown variable `$$bx.c`: the `$filter` item is `$$box` (at $size.$filter.cond.$eq[0])",
    ),
    (
        {"$size": {"$filter": {"input": "$b", "as": "box", "cond": {"$eq": ["$c", 1]}}}},
        "inside `$filter`'s `cond`, name fields of the item as `$$box.field`; the row's `$c` can't be used there (at $size.$filter.cond.$eq[0])",
    ),
    (
        {
            "$size": {
                "$filter": {
                    "input": "$b",
                    "as": "o",
                    "cond": {
                        "$gt": [
                            {
                                "$size": {
                                    "$filter": {
                                        "input": "$$o.s",
                                        "as": "i",
                                        "cond": {"$eq": ["$$o.k", 1]},
                                    }
                                }
                            },
                            0,
                        ]
                    },
                }
            }
        },
        "`$$o.k` names an outer `$filter` item; only the innermost (`$$i`) can be used here (at $size.$filter.cond.$gt[0].$size.$filter.cond.$eq[0])",
    ),
    (
        {"$filter": {"input": "$b", "cond": True}},
        "`$filter` gives a list: wrap it in `$size` (at $filter)",
    ),
    (
        {"$gt": [{"$filter": {"input": "$b", "cond": True}}, 1]},
        "`$filter` gives a list: use it inside `$size` (at $gt[0])",
    ),
    (
        {"$size": {"$filter": {"input": "$b"}}},
        "`$filter` takes `{input: '$list', as: 'item', cond: {...}}` (at $size.$filter)",
    ),
    (
        {"$size": {"$filter": {"input": "$b", "cond": True, "limit": 1}}},
        "`$filter` takes only input, as and cond, not limit (at $size.$filter)",
    ),
    (
        {"$size": {"$filter": {"input": "$b", "cond": True, "as": "$x"}}},
        "`as` must be a plain name like 'box' (at $size.$filter)",
    ),
    (
        {"$regexMatch": {"input": "$a"}},
        "`$regexMatch` takes `{input: ..., regex: ...}` (at $regexMatch)",
    ),
    (
        {"$regexMatch": {"input": "$a", "regex": "["}},
        'invalid regular expression "[" in `matches`: unterminated character set at position 0 (at $regexMatch)',
    ),
    (
        {"a": {"$foo": 1}},
        "unknown field operator `$foo`; the field operators are `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$regex`, `$size`, `$not` (at a.$foo)",
    ),
    ({"a": {"$in": 1}}, "`$in` takes a list of values (at a.$in)"),
    ({1: 2}, "object keys must be strings"),
    (42, "a filter is text or Mongo-style JSON, not int"),
]


@pytest.mark.parametrize(("source", "message"), DICT_ERRORS, ids=[m for _, m in DICT_ERRORS])
def test_json_value_error_messages(source, message):
    assert str(syntax_error(source)) == message


# --------------------------------------------------------------------------- depth


def test_nesting_limit():
    deep_ok = "(" * (MAX_DEPTH - 2) + "x" + ")" * (MAX_DEPTH - 2)
    assert same(parse_filter(deep_ok), col("x"))
    for text in (
        "(" * 1000 + "x" + ")" * 1000,
        "not " * 1000 + "x",
        "-" * 1000 + "x",
        " or ".join(["a"] * 500),
        "len(" * 500 + "x" + ")" * 500,
        "x in (" * 500 + "1" + ")" * 500,
    ):
        assert "filter nested too deeply" in str(syntax_error(text))
    nested = {"$not": True}
    for _ in range(1000):
        nested = {"$not": nested}
    assert "filter nested too deeply" in str(syntax_error(nested))
    assert "filter nested too deeply" in str(syntax_error("{$not: " * 1000 + "true" + "}" * 1000))
    assert "filter nested too deeply" in str(syntax_error("[" * 5000))
    cyclic: dict = {}
    cyclic["$not"] = cyclic
    assert "filter nested too deeply" in str(syntax_error(cyclic))
    field_form: dict = {"$gt": 1}
    for _ in range(1000):
        field_form = {"$not": field_form}
    assert "filter nested too deeply" in str(syntax_error({"a": field_form}))


def test_expr_depth():
    assert expr_depth(parse_filter("x")) == 1
    assert expr_depth(parse_filter("a > 1 and b")) == 3
    assert expr_depth(parse_filter("any(xs, _ > len(y))")) == 4


# --------------------------------------------------------------------------- docs/query.md

DOC = Path(__file__).resolve().parents[2] / "docs" / "query.md"
DOC_BLOCK = re.compile(r"```python\n(.*?)```(?:\n\nprints\n\n```\n(.*?)```)?", re.S)


@pytest.mark.parametrize(
    ("code", "expected"),
    DOC_BLOCK.findall(DOC.read_text(encoding="utf-8")) if DOC.exists() else [],
)
def test_query_doc_examples_print_what_the_doc_says(code, expected):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/query.md", "exec"), {"__name__": "__doc_example__"})  # our own doc
    assert out.getvalue().strip() == expected.strip()


def test_query_doc_error_table_matches_the_parser():
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("What the parser says") : doc.index("Then `check_filter(")]
    checked = 0
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        text, message = line[3:].removesuffix(" |").split("` | ", 1)
        first_line = str(syntax_error(text)).splitlines()[0]
        assert first_line.startswith(message.split("...")[0]), (text, first_line)
        checked += 1
    assert checked == 15


# --------------------------------------------------------------------------- strings that are not text


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ('label == "\ud800"', "the filter holds \\ud800"),  # the character itself
        ('label == "\\udc00"', "`\\udc00` is half of a UTF-16 surrogate pair"),  # an escape
        ('label == "\\ud83d x"', "`\\ud83d` is half of a UTF-16 surrogate pair"),  # half a pair
        ("{label: '\ud800'}", "the filter holds \\ud800"),
        ({"label": "\udfff"}, "the string '\\udfff' holds \\udfff"),
        ({"node": "lit", "value": "a\ud800"}, "lit.value: the string 'a\\ud800' holds \\ud800"),
    ],
)
def test_a_lone_surrogate_is_a_filter_error(source: object, where: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(source)
    message = str(info.value)
    assert where in message
    assert "surrogate pair, which is not text" in message
    message.encode("utf-8")  # the message itself is text: it can be shown and saved


def test_a_whole_surrogate_pair_escape_is_one_character() -> None:
    assert parse_filter('label == "\\ud83d\\ude00"') == Binary(
        op="==", left=Col(path=("label",)), right=Lit(value="\U0001f600")
    )
