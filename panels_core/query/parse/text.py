"""Filter text -> the filter AST: a precedence-climbing parser over the tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from panels_core.query.errors import FilterSyntaxError
from panels_core.query.expr import (
    FUNCTIONS,
    LIST_FUNCTIONS,
    PRECEDENCE,
    SELECTION_FUNCTIONS,
    Binary,
    Col,
    In,
    InSelection,
    IsNull,
    Item,
    Lit,
    RowNumber,
    Unary,
)
from panels_core.query.parse.build import (
    ARITY,
    MAX_DEPTH,
    call,
    comparison,
    line_column,
    syntax_error,
)
from panels_core.query.parse.tokens import Token, describe, tokenize

__all__ = ["TextParser"]

_ALL_FUNCTIONS = ", ".join(f"`{f}`" for f in (*FUNCTIONS, *LIST_FUNCTIONS, *SELECTION_FUNCTIONS))
_RESERVED = ("and", "or", "not", "in", "is", "null", "true", "false")


# binding power of infix operators (higher binds tighter): the precedence expr.py prints with
_INFIX = {op: prec for op, prec in PRECEDENCE.items() if op not in ("not", "neg")}
_INFIX["not in"] = PRECEDENCE["in"]


class TextParser:
    """Precedence climbing over the tokens of one filter text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.nesting = 0  # open parentheses and calls
        self.item_scopes = 0  # enclosing list predicates

    # -- helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "eof":
            self.i += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> FilterSyntaxError:
        return syntax_error(message, self.text, (token or self.peek()).pos)

    def is_word(self, token: Token, word: str) -> bool:
        return token.kind == "name" and token.value.lower() == word

    def is_op(self, token: Token, op: str) -> bool:
        return token.kind == "op" and token.value == op

    def expect_op(self, op: str, message: str) -> Token:
        token = self.peek()
        if not self.is_op(token, op):
            raise self.fail(f"{message}, found {describe(token)}")
        return self.advance()

    def enter(self, token: Token) -> None:
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
                    f"expected an operator before {describe(token)}; "
                    "join conditions with `and` or `or`"
                )
            raise self.fail(f"unexpected {describe(token)}")
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
                        f"like `a < b and b < c` (at {describe(token)})",
                        token,
                    )
                compared = True
                left = self.comparison(op, token, left)
            else:
                right = self.binary(prec + 1)
                left = Binary(op=op, left=left, right=right)

    def comparison(self, op: str, token: Token, left: Any) -> Any:
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
                    f"{describe(self.peek())} (compare values with `==` or `!=`)"
                )
            self.advance()
            return IsNull(operand=left, negated=negated)
        right = self.operand_after(token, 5)
        return comparison(op, left, right)

    def operand_after(self, token: Token, min_prec: int) -> Any:
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
                    f"expected `,` or `)` in the list after `{op}`, found {describe(self.peek())}"
                )
        self.advance()
        self.nesting -= 1
        return tuple(values)

    def repeated(self, is_prefix: Callable[[Token], bool]) -> tuple[int, Token]:
        """Read a run of the same prefix operator: how many, and the last one."""
        count, last = 0, self.peek()
        while is_prefix(self.peek()):
            last = self.advance()
            count += 1
            if count > MAX_DEPTH:
                raise self.fail(f"filter nested too deeply (more than {MAX_DEPTH} levels)")
        return count, last

    def prefix(self, min_prec: int) -> Any:
        token = self.peek()
        if self.is_word(token, "not"):
            if min_prec > 3:
                raise self.fail("put `not ...` in parentheses here, like `a == (not b)`")
            count, last = self.repeated(lambda t: self.is_word(t, "not"))
            operand = self.operand_after(last, 4)
            for _ in range(count):
                operand = Unary(op="not", operand=operand)
            return operand
        if self.is_op(token, "-"):
            count, last = self.repeated(lambda t: self.is_op(t, "-"))
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

    def primary(self, previous: Token | None) -> Any:
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
                f"expected `)` to close the `(` at line {line_column(self.text, token.pos)[0]}, "
                f"column {line_column(self.text, token.pos)[1]}",
            )
            self.nesting -= 1
            return expr
        after = f" after `{previous.text}`" if previous is not None else ""
        found = "" if token.kind == "eof" else f", found {describe(token)}"
        raise self.fail(f"expected a value{after}{found}")

    def word(self, token: Token) -> Any:
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
        raise self.fail(f"expected a field name after `.`, found {describe(token)}")

    def path_rest(self, first: str | None) -> tuple[str, ...]:
        path = [first] if first is not None else []
        while self.is_op(self.peek(), "."):
            self.advance()
            path.append(self.name_segment())
        return tuple(path)

    def call(self, name: Token) -> Any:
        fn = name.value.lower()
        if fn == "row_number":
            self.advance()
            self.expect_op(")", "`row_number` takes no arguments: write `row_number()`")
            return RowNumber()
        if fn == "in_selection":
            return self.in_selection(name)
        if fn not in ARITY:
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
                    f"expected `,` or `)` in the arguments of `{fn}`, found {describe(self.peek())}"
                )
        self.advance()
        self.nesting -= 1
        return call(fn, args, lambda message: self.fail(message, name))

    def in_selection(self, name: Token) -> Any:
        """``in_selection("points", (x, y), (x, y), (x, y), ...)``: after the name."""
        usage = 'write in_selection("points", (x1, y1), (x2, y2), (x3, y3), ...)'
        self.advance()
        key = self.peek()
        if key.kind != "str":
            raise self.fail(f"`in_selection` names its points first, as a string: {usage}")
        self.advance()
        corners: list[tuple[float, float]] = []
        while self.is_op(self.peek(), ","):
            self.advance()
            self.expect_op("(", f"expected a corner `(x, y)` in `in_selection`: {usage}")
            x = self.signed_number(usage)
            self.expect_op(",", f"expected `,` between a corner's x and y: {usage}")
            y = self.signed_number(usage)
            self.expect_op(")", f"expected `)` closing a corner `(x, y)`: {usage}")
            corners.append((x, y))
        self.expect_op(")", f"expected `,` or `)` in `in_selection`: {usage}")
        if len(corners) < 3:
            raise self.fail(f"`in_selection` needs at least 3 corners, got {len(corners)}", name)
        return InSelection(points=key.value, polygon=tuple(corners))

    def signed_number(self, usage: str) -> float:
        sign = 1.0
        if self.is_op(self.peek(), "-"):
            self.advance()
            sign = -1.0
        token = self.peek()
        if token.kind != "num":
            raise self.fail(f"expected a number, found {describe(token)}: {usage}")
        self.advance()
        return sign * float(token.value)
