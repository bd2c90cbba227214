"""The tokens of filter text: names, numbers, strings (JSON escapes), operators."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from panels_core.query.parse.build import syntax_error

__all__ = [
    "JSON_NUMBER",
    "Token",
    "describe",
    "is_name_char",
    "parse_number",
    "read_string",
    "tokenize",
]


@dataclass(frozen=True, slots=True)
class Token:
    """One token of filter text: its kind, value and offset."""

    kind: str  # "num" | "str" | "name" | "qname" | "op" | "eof"
    value: Any
    text: str
    pos: int


_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
JSON_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
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


def parse_number(literal: str, text: str, pos: int) -> int | float:
    """The int or float a number literal at ``pos`` of ``text`` gives (located errors)."""
    try:
        value: int | float = (
            int(literal) if literal.isdigit() and literal.isascii() else float(literal)
        )
    except ValueError:
        raise syntax_error(f"number `{literal[:20]}...` is too long", text, pos) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise syntax_error(f"number `{literal}` is out of range", text, pos)
    return value


def read_string(text: str, pos: int) -> tuple[str, int]:
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
                raise syntax_error("`\\u` needs four hex digits, like `\\u00e9`", text, i)
            i += 6
            if 0xD800 <= code < 0xDC00 and text.startswith("\\u", i):
                low = _hex4(text, i + 2)
                if low is not None and 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
            if 0xD800 <= code < 0xE000:
                raise syntax_error(
                    f"`\\u{code:04x}` is half of a UTF-16 surrogate pair, which is not text; "
                    "write the whole pair (`\\ud83d\\ude00`) or the character itself",
                    text,
                    i - 6,
                )
            out.append(chr(code))
        else:
            raise syntax_error(
                f"unknown escape `\\{esc}` in a string; write `\\\\` for a backslash", text, i
            )
    raise syntax_error(f"unclosed string: add the closing {quote}", text, pos)


def _hex4(text: str, start: int) -> int | None:
    digits = text[start : start + 4]
    if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return int(digits, 16)
    return None


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ch.isalpha()


def is_name_char(ch: str) -> bool:
    """Whether ``ch`` may continue a bare name."""
    return ch == "_" or ch.isalnum()


def tokenize(text: str) -> list[Token]:
    """The tokens of filter text, ending with an ``eof`` token."""
    tokens: list[Token] = []
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
            if end < n and is_name_char(text[end]):
                j = end
                while j < n and is_name_char(text[j]):
                    j += 1
                raise syntax_error(f"malformed number `{text[i:j]}`", text, i)
            literal = match.group()
            tokens.append(Token("num", parse_number(literal, text, i), literal, i))
            i = end
        elif ch in ("'", '"'):
            value, end = read_string(text, i)
            tokens.append(Token("str", value, text[i:end], i))
            i = end
        elif ch == "`":
            value, end = _read_quoted_name(text, i)
            tokens.append(Token("qname", value, text[i:end], i))
            i = end
        elif _is_name_start(ch):
            j = i + 1
            while j < n and is_name_char(text[j]):
                j += 1
            tokens.append(Token("name", text[i:j], text[i:j], i))
            i = j
        else:
            for hint_op in ("&&", "||", "<>"):
                if text.startswith(hint_op, i):
                    raise syntax_error(f"unexpected `{hint_op}`: {_HINTS[hint_op]}", text, i)
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                hint = _HINTS.get(ch)
                raise syntax_error(f"unexpected `{ch}`" + (f": {hint}" if hint else ""), text, i)
            if op == "." and i + 1 < n and "0" <= text[i + 1] <= "9":
                prev = tokens[-1] if tokens else None
                if prev is None or prev.kind not in ("name", "qname", "num"):
                    raise syntax_error(
                        "write numbers with a leading digit: `0.5`, not `.5`", text, i
                    )
            tokens.append(Token("op", op, op, i))
            i += len(op)
    tokens.append(Token("eof", None, "", n))
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
                raise syntax_error("empty column name ``", text, pos)
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise syntax_error("unclosed back-quoted name: add the closing `", text, pos)


def describe(token: Token) -> str:
    """A token as an error message names it."""
    if token.kind == "eof":
        return "the end of the filter"
    shown = token.text if len(token.text) <= 30 else token.text[:27] + "..."
    return f"`{shown}`"
