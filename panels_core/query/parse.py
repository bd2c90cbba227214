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

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from panels_core.query.errors import FilterSyntaxError
from panels_core.query.expr import (
    FUNCTIONS,
    LIST_FUNCTIONS,
    PRECEDENCE,
    Binary,
    Call,
    Col,
    ExprAdapter,
    In,
    IsNull,
    Item,
    ListPred,
    Lit,
    Node,
    Unary,
    text_problem,
)

__all__ = ["MAX_DEPTH", "expr_depth", "parse_filter", "regex_problem"]

MAX_DEPTH = 100
"""The deepest filter (nested parentheses, calls and operator chains) that parses."""

_AST_NODES = ("lit", "col", "item", "unary", "binary", "in", "is_null", "call", "list_pred")
_ARITY: dict[str, tuple[int, int]] = {
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
_ALL_FUNCTIONS = ", ".join(f"`{f}`" for f in (*FUNCTIONS, *LIST_FUNCTIONS))
_RESERVED = ("and", "or", "not", "in", "is", "null", "true", "false")


# --------------------------------------------------------------------------- shared builders


def _error(message: str, text: str = "", offset: int | None = None) -> FilterSyntaxError:
    """A FilterSyntaxError at ``offset`` of ``text`` (line and column 1-based)."""
    if not text or offset is None:
        return FilterSyntaxError(message)
    line, column = _line_column(text, offset)
    return FilterSyntaxError(message, text, line, column)


def _line_column(text: str, offset: int) -> tuple[int, int]:
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


def _compare(op: str, left: Any, right: Any) -> Any:
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


def _call(fn: str, args: list[Any], fail: Callable[[str], FilterSyntaxError]) -> Any:
    """A Call or ListPred node after the arity check."""
    low, high = _ARITY[fn]
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


def _check_depth(expr: Any) -> Any:
    if expr_depth(expr) > MAX_DEPTH:
        raise FilterSyntaxError(
            f"filter nested too deeply (more than {MAX_DEPTH} levels); "
            "use `x in (a, b, ...)` instead of long chains of `or`, or split the filter"
        )
    return expr


# --------------------------------------------------------------------------- entry point


def parse_filter(source: Any) -> Any:
    """Parse filter text, Mongo-style JSON (dict, list or text) or an AST dict into an Expr.

    Raises ``FilterSyntaxError`` (a ``QueryError``) for anything that does not parse.
    """
    try:
        return _check_depth(_parse(source))
    except ValidationError as exc:  # a node refused its value, e.g. a string that is not text
        raise FilterSyntaxError(f"not a valid filter: {_validation_text(exc)}") from None


def _parse(source: Any) -> Any:
    if isinstance(source, Node):
        return source
    if isinstance(source, Mapping) and source.get("node") in _AST_NODES:
        return _from_ast_dict(source)
    if isinstance(source, Mapping | list | tuple):
        return _MongoConverter(None, {}).convert_top(source)
    if not isinstance(source, str):
        raise FilterSyntaxError(
            f"a filter is text or Mongo-style JSON, not {type(source).__name__}"
        )
    problem = text_problem(source)
    if problem:
        found = next(i for i, ch in enumerate(source) if text_problem(ch))
        shown = "".join("\ufffd" if text_problem(ch) else ch for ch in source)
        raise _error(f"the filter {problem}", shown, found)
    stripped = source.lstrip()
    if stripped.startswith(("{", "[")):
        value, positions = _RelaxedJson(source).parse()
        return _MongoConverter(source, positions).convert_top(value)
    return _TextParser(source).parse()


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


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num" | "str" | "name" | "qname" | "op" | "eof"
    value: Any
    text: str
    pos: int


_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_JSON_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "/": "/"}
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", ".")
_HINTS = {
    "=": "use `==` to compare (a single `=` is not an operator)",
    "&&": "use `and` to join conditions",
    "&": "use `and` to join conditions",
    "||": "use `or` to join conditions",
    "|": "use `or` to join conditions",
    "!": "use `not` to negate a condition",
    "<>": "use `!=` for 'not equal'",
    "[": "lists are written in parentheses: `x in (1, 2)`",
    "]": "lists are written in parentheses: `x in (1, 2)`",
}


def _number(literal: str, text: str, pos: int) -> int | float:
    try:
        value: int | float = (
            int(literal) if literal.isdigit() and literal.isascii() else float(literal)
        )
    except ValueError:
        raise _error(f"number `{literal[:20]}...` is too long", text, pos) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(f"number `{literal}` is out of range", text, pos)
    return value


def _read_string(text: str, pos: int) -> tuple[str, int]:
    """The string literal starting at the quote at ``pos``; returns (value, end offset)."""
    quote = text[pos]
    out: list[str] = []
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            break
        esc = text[i + 1]
        if esc in ("\\", "'", '"', "`"):
            out.append(esc)
            i += 2
        elif esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == "u":
            code = _hex4(text, i + 2)
            if code is None:
                raise _error("`\\u` needs four hex digits, like `\\u00e9`", text, i)
            i += 6
            if 0xD800 <= code < 0xDC00 and text.startswith("\\u", i):
                low = _hex4(text, i + 2)
                if low is not None and 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
            if 0xD800 <= code < 0xE000:
                raise _error(
                    f"`\\u{code:04x}` is half of a UTF-16 surrogate pair, which is not text; "
                    "write the whole pair (`\\ud83d\\ude00`) or the character itself",
                    text,
                    i - 6,
                )
            out.append(chr(code))
        else:
            raise _error(
                f"unknown escape `\\{esc}` in a string; write `\\\\` for a backslash", text, i
            )
    raise _error(f"unclosed string: add the closing {quote}", text, pos)


def _hex4(text: str, start: int) -> int | None:
    digits = text[start : start + 4]
    if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return int(digits, 16)
    return None


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ch.isalpha()


def _is_name_char(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if "0" <= ch <= "9":
            match = _NUMBER.match(text, i)
            assert match is not None  # a digit always matches
            end = match.end()
            if end < n and _is_name_char(text[end]):
                j = end
                while j < n and _is_name_char(text[j]):
                    j += 1
                raise _error(f"malformed number `{text[i:j]}`", text, i)
            literal = match.group()
            tokens.append(_Token("num", _number(literal, text, i), literal, i))
            i = end
        elif ch in ("'", '"'):
            value, end = _read_string(text, i)
            tokens.append(_Token("str", value, text[i:end], i))
            i = end
        elif ch == "`":
            value, end = _read_quoted_name(text, i)
            tokens.append(_Token("qname", value, text[i:end], i))
            i = end
        elif _is_name_start(ch):
            j = i + 1
            while j < n and _is_name_char(text[j]):
                j += 1
            tokens.append(_Token("name", text[i:j], text[i:j], i))
            i = j
        else:
            for hint_op in ("&&", "||", "<>"):
                if text.startswith(hint_op, i):
                    raise _error(f"unexpected `{hint_op}`: {_HINTS[hint_op]}", text, i)
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                hint = _HINTS.get(ch)
                raise _error(f"unexpected `{ch}`" + (f": {hint}" if hint else ""), text, i)
            if op == "." and i + 1 < n and "0" <= text[i + 1] <= "9":
                prev = tokens[-1] if tokens else None
                if prev is None or prev.kind not in ("name", "qname", "num"):
                    raise _error("write numbers with a leading digit: `0.5`, not `.5`", text, i)
            tokens.append(_Token("op", op, op, i))
            i += len(op)
    tokens.append(_Token("eof", None, "", n))
    return tokens


def _read_quoted_name(text: str, pos: int) -> tuple[str, int]:
    """A back-quoted name at ``pos`` (a doubled backquote is one backquote)."""
    out: list[str] = []
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "`":
            if i + 1 < n and text[i + 1] == "`":
                out.append("`")
                i += 2
                continue
            if not out:
                raise _error("empty column name ``", text, pos)
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise _error("unclosed back-quoted name: add the closing `", text, pos)


def _describe(token: _Token) -> str:
    if token.kind == "eof":
        return "the end of the filter"
    shown = token.text if len(token.text) <= 30 else token.text[:27] + "..."
    return f"`{shown}`"


# --------------------------------------------------------------------------- text parser

# binding power of infix operators (higher binds tighter): the precedence expr.py prints with
_INFIX = {op: prec for op, prec in PRECEDENCE.items() if op not in ("not", "neg")}
_INFIX["not in"] = PRECEDENCE["in"]


class _TextParser:
    """Precedence climbing over the tokens of one filter text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.nesting = 0  # open parentheses and calls
        self.item_scopes = 0  # enclosing list predicates

    # -- helpers
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "eof":
            self.i += 1
        return token

    def fail(self, message: str, token: _Token | None = None) -> FilterSyntaxError:
        return _error(message, self.text, (token or self.peek()).pos)

    def is_word(self, token: _Token, word: str) -> bool:
        return token.kind == "name" and token.value.lower() == word

    def is_op(self, token: _Token, op: str) -> bool:
        return token.kind == "op" and token.value == op

    def expect_op(self, op: str, message: str) -> _Token:
        token = self.peek()
        if not self.is_op(token, op):
            raise self.fail(f"{message}, found {_describe(token)}")
        return self.advance()

    def enter(self, token: _Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.fail(f"filter nested too deeply (more than {MAX_DEPTH} levels)", token)

    def infix(self) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.value in _INFIX:
            return token.value
        if token.kind == "name":
            word = token.value.lower()
            if word in ("or", "and", "in", "is"):
                return word
            if word == "not" and self.is_word(self.peek(1), "in"):
                return "not in"
        return None

    # -- grammar
    def parse(self) -> Any:
        if self.peek().kind == "eof":
            raise self.fail("the filter is empty: write a condition like `score > 0.5`")
        expr = self.binary(0)
        token = self.peek()
        if token.kind != "eof":
            if self.is_op(token, ")"):
                raise self.fail("unexpected `)`: it closes no `(`")
            if token.kind in ("name", "qname", "num", "str") or self.is_op(token, "("):
                raise self.fail(
                    f"expected an operator before {_describe(token)}; "
                    "join conditions with `and` or `or`"
                )
            raise self.fail(f"unexpected {_describe(token)}")
        return expr

    def binary(self, min_prec: int) -> Any:
        left = self.prefix(min_prec)
        compared = False
        while True:
            op = self.infix()
            if op is None or _INFIX[op] < min_prec:
                return left
            token = self.advance()
            if op == "not in":
                self.advance()
            prec = _INFIX[op]
            if prec == 4:
                if compared:
                    raise self.fail(
                        f"comparisons do not chain: join them with `and`, "
                        f"like `a < b and b < c` (at {_describe(token)})",
                        token,
                    )
                compared = True
                left = self.comparison(op, token, left)
            else:
                right = self.binary(prec + 1)
                left = Binary(op=op, left=left, right=right)

    def comparison(self, op: str, token: _Token, left: Any) -> Any:
        if op in ("in", "not in"):
            return In(operand=left, values=self.value_list(op), negated=op == "not in")
        if op == "is":
            negated = False
            if self.is_word(self.peek(), "not"):
                self.advance()
                negated = True
            if not self.is_word(self.peek(), "null"):
                raise self.fail(
                    f"expected `null` after `is{' not' if negated else ''}`, found "
                    f"{_describe(self.peek())} (compare values with `==` or `!=`)"
                )
            self.advance()
            return IsNull(operand=left, negated=negated)
        right = self.operand_after(token, 5)
        return _compare(op, left, right)

    def operand_after(self, token: _Token, min_prec: int) -> Any:
        if self.peek().kind == "eof":
            raise self.fail(f"expected a value after `{token.text}`")
        return self.binary(min_prec)

    def value_list(self, op: str) -> tuple[Any, ...]:
        opening = self.peek()
        self.expect_op("(", f"expected `(` after `{op}`, like `x {op} (1, 2)`")
        self.enter(opening)
        values: list[Any] = []
        while not self.is_op(self.peek(), ")"):
            values.append(self.binary(0))
            if self.is_op(self.peek(), ","):
                self.advance()
            elif not self.is_op(self.peek(), ")"):
                raise self.fail(
                    f"expected `,` or `)` in the list after `{op}`, found {_describe(self.peek())}"
                )
        self.advance()
        self.nesting -= 1
        return tuple(values)

    def prefix(self, min_prec: int) -> Any:
        token = self.peek()
        if self.is_word(token, "not"):
            if min_prec > 3:
                raise self.fail("put `not ...` in parentheses here, like `a == (not b)`")
            count = 0
            while self.is_word(self.peek(), "not"):
                last = self.advance()
                count += 1
                if count > MAX_DEPTH:
                    raise self.fail(f"filter nested too deeply (more than {MAX_DEPTH} levels)")
            operand = self.operand_after(last, 4)
            for _ in range(count):
                operand = Unary(op="not", operand=operand)
            return operand
        if self.is_op(token, "-"):
            count = 0
            while self.is_op(self.peek(), "-"):
                last = self.advance()
                count += 1
                if count > MAX_DEPTH:
                    raise self.fail(f"filter nested too deeply (more than {MAX_DEPTH} levels)")
            start = self.i
            operand = self.primary(last)
            if (
                isinstance(operand, Lit)
                and self.tokens[start].kind == "num"
                and self.i == start + 1
            ):
                operand = Lit(value=-operand.value)  # `-5` is the literal -5
                count -= 1
            for _ in range(count):
                operand = Unary(op="neg", operand=operand)
            return operand
        previous = self.tokens[self.i - 1] if self.i > 0 else None
        return self.primary(previous)

    def primary(self, previous: _Token | None) -> Any:
        token = self.peek()
        if token.kind == "num":
            self.advance()
            if self.is_op(self.peek(), ".") and token.text.isdigit():
                self.advance()
                return Col(path=self.path_rest(self.name_segment()), source=int(token.value))
            return Lit(value=token.value)
        if token.kind == "str":
            self.advance()
            return Lit(value=token.value)
        if token.kind == "qname":
            self.advance()
            return self.name_ref(token.value)
        if token.kind == "name" and token.value.lower() not in _RESERVED[:5]:
            return self.word(token)
        if self.is_op(token, "("):
            self.advance()
            self.enter(token)
            expr = self.binary(0)
            self.expect_op(
                ")",
                f"expected `)` to close the `(` at line {_line_column(self.text, token.pos)[0]}, "
                f"column {_line_column(self.text, token.pos)[1]}",
            )
            self.nesting -= 1
            return expr
        after = f" after `{previous.text}`" if previous is not None else ""
        found = "" if token.kind == "eof" else f", found {_describe(token)}"
        raise self.fail(f"expected a value{after}{found}")

    def word(self, token: _Token) -> Any:
        word = token.value.lower()
        if word in ("true", "false", "null"):
            self.advance()
            return Lit(value={"true": True, "false": False, "null": None}[word])
        self.advance()
        if self.is_op(self.peek(), "("):
            return self.call(token)
        if token.value == "_":
            if not self.item_scopes:
                raise self.fail(
                    "`_` names the list item and works only inside any/all/count, "
                    'like `any(tags, _ == "cat")`',
                    token,
                )
            return Item(path=self.path_rest(None))
        return self.name_ref(token.value)

    def name_ref(self, name: str) -> Any:
        path = self.path_rest(name)
        return Item(path=path) if self.item_scopes else Col(path=path)

    def name_segment(self) -> str:
        token = self.peek()
        if token.kind in ("name", "qname"):
            self.advance()
            return token.value
        raise self.fail(f"expected a field name after `.`, found {_describe(token)}")

    def path_rest(self, first: str | None) -> tuple[str, ...]:
        path = [first] if first is not None else []
        while self.is_op(self.peek(), "."):
            self.advance()
            path.append(self.name_segment())
        return tuple(path)

    def call(self, name: _Token) -> Any:
        fn = name.value.lower()
        if fn not in _ARITY:
            raise self.fail(
                f"unknown function `{name.value}`: the functions are {_ALL_FUNCTIONS}", name
            )
        opening = self.advance()
        self.enter(opening)
        args: list[Any] = []
        while not self.is_op(self.peek(), ")"):
            in_predicate = fn in LIST_FUNCTIONS and len(args) >= 1
            self.item_scopes += in_predicate
            if self.peek().kind == "eof":
                raise self.fail(f"expected `)` to close `{name.value}(`")
            args.append(self.binary(0))
            self.item_scopes -= in_predicate
            if self.is_op(self.peek(), ","):
                comma = self.advance()
                if self.is_op(self.peek(), ")"):
                    raise self.fail(f"expected a value after `{comma.text}`")
            elif not self.is_op(self.peek(), ")"):
                raise self.fail(
                    f"expected `,` or `)` in the arguments of `{fn}`, found {_describe(self.peek())}"
                )
        self.advance()
        self.nesting -= 1
        return _call(fn, args, lambda message: self.fail(message, name))


# --------------------------------------------------------------------------- relaxed JSON


class _RelaxedJson:
    """JSON plus unquoted keys, single-quoted strings and trailing commas (no eval).

    ``parse`` returns the value and a map from ``id()`` of every dict and list
    to its offset, so later errors can point at the spot.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.positions: dict[int, int] = {}
        self.depth = 0

    def fail(self, message: str, offset: int | None = None) -> FilterSyntaxError:
        return _error(message, self.text, self.i if offset is None else offset)

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def parse(self) -> tuple[Any, dict[int, int]]:
        value = self.value()
        self.skip()
        if self.i < len(self.text):
            raise self.fail(f"unexpected `{self.text[self.i]}` after the end of the JSON filter")
        return value, self.positions

    def value(self) -> Any:
        self.skip()
        if self.i >= len(self.text):
            raise self.fail("unexpected end of the JSON filter: expected a value")
        ch = self.text[self.i]
        if ch in "{[":
            self.depth += 1
            if self.depth > 2 * MAX_DEPTH + 10:
                raise self.fail(f"filter nested too deeply (more than {MAX_DEPTH} levels)")
            result = self.container(ch)
            self.depth -= 1
            return result
        if ch in "'\"":
            value, self.i = _read_string(self.text, self.i)
            return value
        if ch == "-" or "0" <= ch <= "9":
            match = _JSON_NUMBER.match(self.text, self.i)
            if match is None:
                raise self.fail("expected a number after `-`")
            start, self.i = self.i, match.end()
            literal = match.group()
            digits = literal.lstrip("-")
            if digits.isdigit():
                number = _number(digits, self.text, start)
                return -number if literal.startswith("-") else number
            return _number(literal, self.text, start)
        start = self.i
        word = self.bare_word()
        if word in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[word]
        if not word:
            raise self.fail(f"expected a value, found `{ch}`")
        raise self.fail(
            f"unexpected `{word}`: put strings in quotes, like '$score' or 'cat'", start
        )

    def bare_word(self) -> str:
        start = self.i
        while self.i < len(self.text) and (
            _is_name_char(self.text[self.i]) or self.text[self.i] == "$"
        ):
            self.i += 1
        return self.text[start : self.i]

    def container(self, opening: str) -> Any:
        start = self.i
        closing = "}" if opening == "{" else "]"
        self.i += 1
        result: Any = {} if opening == "{" else []
        self.positions[id(result)] = start
        while True:
            self.skip()
            if self.i >= len(self.text):
                raise self.fail(f"unclosed `{opening}`: add `{closing}`", start)
            if self.text[self.i] == closing:
                self.i += 1
                return result
            if opening == "{":
                key_at = self.i
                key = self.key()
                self.skip()
                if self.i >= len(self.text) or self.text[self.i] != ":":
                    raise self.fail(f"expected `:` after the key `{key}`")
                self.i += 1
                if key in result:
                    raise self.fail(f"the key `{key}` appears twice in one object", key_at)
                result[key] = self.value()
            else:
                result.append(self.value())
            self.skip()
            if self.i < len(self.text) and self.text[self.i] == ",":
                self.i += 1
            elif self.i < len(self.text) and self.text[self.i] != closing:
                raise self.fail(f"expected `,` or `{closing}`, found `{self.text[self.i]}`")

    def key(self) -> str:
        ch = self.text[self.i]
        if ch in "'\"":
            key, self.i = _read_string(self.text, self.i)
            return key
        word = self.bare_word()
        if not word:
            raise self.fail(f"expected a key (like `$gt` or 'input'), found `{ch}`")
        return word


# --------------------------------------------------------------------------- Mongo-style -> AST

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


class _MongoConverter:
    """Mongo-style JSON values -> AST, with errors naming the JSON path (and line/column)."""

    def __init__(self, text: str | None, positions: dict[int, int]) -> None:
        self.text = text
        self.positions = positions
        self.depth = 0

    def fail(self, message: str, where: str, container: Any = None) -> FilterSyntaxError:
        full = f"{message} (at {where})" if where else message
        if self.text is not None:
            offset = self.positions.get(id(container)) if container is not None else None
            return _error(full, self.text, offset if offset is not None else 0)
        return FilterSyntaxError(full)

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
        arg = value[op]
        here = f"{where}.{op}" if where else op
        if op not in _MONGO_OPERATORS:
            raise self.fail(
                f"unknown operator `{op}`; the operators are "
                + ", ".join(f"`{o}`" for o in _MONGO_OPERATORS),
                where,
                value,
            )
        if op == "$filter":
            return self.filter(arg, here, scopes)
        if op == "$regexMatch":
            if not isinstance(arg, Mapping) or set(arg) != {"input", "regex"}:
                raise self.fail("`$regexMatch` takes `{input: ..., regex: ...}`", here, value)
            args = [self.value(arg["input"], f"{here}.input", scopes)]
            args.append(self.value(arg["regex"], f"{here}.regex", scopes))
            return _call("matches", args, lambda m: self.fail(m, here, value))
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
            operand, options = self.args(op, arg, here, 2)
            if not isinstance(options, list | tuple):
                raise self.fail(
                    f"`{op}`'s second value must be a list: `{{{op}: ['$x', [1, 2]]}}`", here, arg
                )
            return In(
                operand=self.value(operand, f"{here}[0]", scopes),
                values=tuple(
                    self.value(v, f"{here}[1][{i}]", scopes) for i, v in enumerate(options)
                ),
                negated=op == "$nin",
            )
        count = None if op in (*_MONGO_NARY, "$nor") else 2
        items = [
            self.value(v, f"{here}[{i}]", scopes)
            for i, v in enumerate(self.args(op, arg, here, count))
        ]
        if op in _MONGO_COMPARE:
            return _compare(_MONGO_COMPARE[op], items[0], items[1])
        if op == "$nor":
            return Unary(op="not", operand=self.chain("or", items))
        if op in ("$and", "$or"):
            return self.chain(op[1:], items)
        return self.chain(_MONGO_ARITH[op], items)

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
                conditions.append(_compare("==", col, self.value(condition, here, scopes)))
        return self.chain("and", conditions)

    def field_condition(self, col: Col, op: str, operand: Any, where: str, container: Any) -> Any:
        if op not in _QUERY_OPERATORS:
            raise self.fail(
                f"unknown field operator `{op}`; the field operators are "
                + ", ".join(f"`{o}`" for o in _QUERY_OPERATORS),
                where,
                container,
            )
        if op in _MONGO_COMPARE:
            return _compare(_MONGO_COMPARE[op], col, self.value(operand, where, ()))
        if op in ("$in", "$nin"):
            if not isinstance(operand, list | tuple):
                raise self.fail(f"`{op}` takes a list of values", where, container)
            return In(
                operand=col,
                values=tuple(self.value(v, f"{where}[{i}]", ()) for i, v in enumerate(operand)),
                negated=op == "$nin",
            )
        if op == "$regex":
            return _call(
                "matches", [col, self.value(operand, where, ())], lambda m: self.fail(m, where)
            )
        if op == "$size":
            return _compare("==", ListPred(fn="count", list=col), self.value(operand, where, ()))
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
