"""Protocol-buffer text format (``*.pbtxt``) as nested dicts, without the message schema.

Enough of the format for TensorBoard's ``projector_config.pbtxt``: ``name: value``
fields (quoted strings with escapes, numbers, bare enum words), repeated fields
written again or as ``name: [a, b]``, nested ``name { ... }`` (or ``name: { ... }``)
messages, ``#`` comments. Every field maps to the list of its values, in order.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_DEPTH", "Message", "parse_pbtxt"]

Message = dict[str, list[Any]]
"""A parsed message: each field name to its values (a nested message is a Message)."""

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?)
      | (?P<word>[A-Za-z_][\w.]*)
      | (?P<punct>[:{}\[\],;<>])
    )""",
    re.VERBOSE,
)
MAX_DEPTH = 50
"""How deep blocks may nest (a projector config nests two)."""
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            line = text.count("\n", 0, pos) + 1
            raise ValueError(
                f"`{where}`: line {line}: cannot read {text[pos : pos + 20].strip()!r}"
            )
        pos = match.end()
        kind = match.lastgroup
        if kind is not None and kind != "comment":
            tokens.append((kind, match.group(kind)))
    return tokens


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _scalar(kind: str, token: str) -> Any:
    if kind == "string":
        return _unquote(token)
    if kind == "number":
        number = token.rstrip("fF")
        return float(number) if any(c in number for c in ".eE") else int(number)
    return {"true": True, "false": False}.get(token, token)


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.tokens = _tokens(text, where)
        self.pos = 0
        self.depth = 0
        self.where = where

    def fail(self, what: str, got: str) -> ValueError:
        return ValueError(
            f"`{self.where}` is not valid protobuf text: expected {what}, got {got!r}"
        )

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ValueError(
                f"`{self.where}` ends inside a field or block; is a closing `}}` or `]` missing?"
            )
        self.pos += 1
        return self.tokens[self.pos - 1]

    def message(self, close: str | None) -> Message:
        fields: Message = {}
        while self.peek() != close:
            kind, name = self.take()
            if kind != "word":
                raise self.fail("a field name", name)
            fields.setdefault(name, []).extend(self.values())
            if self.peek() in (",", ";"):
                self.pos += 1
        if close is not None:
            self.pos += 1
        return fields

    def values(self) -> list[Any]:
        if self.peek() == ":":
            self.pos += 1
        if self.peek() == "[":
            self.pos += 1
            items: list[Any] = []
            while self.peek() != "]":
                items.extend(self.values())
                if self.peek() == ",":
                    self.pos += 1
            self.pos += 1
            return items
        if self.peek() in ("{", "<"):
            close = "}" if self.take()[1] == "{" else ">"
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ValueError(f"`{self.where}` nests blocks more than {MAX_DEPTH} deep")
            message = self.message(close)
            self.depth -= 1
            return [message]
        kind, token = self.take()
        if kind not in ("string", "number", "word"):
            raise self.fail("a value", token)
        value = _scalar(kind, token)
        while kind == "string" and self.pos < len(self.tokens) and self.tokens[self.pos][0] == kind:
            value += _unquote(self.take()[1])  # adjacent strings are one string
        return [value]


def parse_pbtxt(text: str, where: str = "the file") -> Message:
    """The top-level message of protobuf ``text``; ValueError naming ``where`` and the token."""
    return _Parser(text, where).message(None)
