"""Relaxed JSON (unquoted keys, single quotes, trailing commas) with each value's offset."""

from __future__ import annotations

from typing import Any

from panels_core.query.errors import FilterSyntaxError
from panels_core.query.parse.build import MAX_DEPTH, syntax_error
from panels_core.query.parse.tokens import JSON_NUMBER, is_name_char, parse_number, read_string

__all__ = ["RelaxedJson"]


class RelaxedJson:
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
        return syntax_error(message, self.text, self.i if offset is None else offset)

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
            value, self.i = read_string(self.text, self.i)
            return value
        if ch == "-" or "0" <= ch <= "9":
            match = JSON_NUMBER.match(self.text, self.i)
            if match is None:
                raise self.fail("expected a number after `-`")
            start, self.i = self.i, match.end()
            literal = match.group()
            digits = literal.lstrip("-")
            if digits.isdigit():
                number = parse_number(digits, self.text, start)
                return -number if literal.startswith("-") else number
            return parse_number(literal, self.text, start)
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
            is_name_char(self.text[self.i]) or self.text[self.i] == "$"
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
            key, self.i = read_string(self.text, self.i)
            return key
        word = self.bare_word()
        if not word:
            raise self.fail(f"expected a key (like `$gt` or 'input'), found `{ch}`")
        return word
