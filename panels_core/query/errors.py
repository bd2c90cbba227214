"""The errors a query can raise; every message says what is wrong and what to do."""

from __future__ import annotations

__all__ = [
    "FilterSyntaxError",
    "FilterTypeError",
    "PointsNotRegistered",
    "QueryError",
    "UnknownColumnError",
]


class QueryError(ValueError):
    """Base of every query error; never a raw engine exception."""


class PointsNotRegistered(QueryError):
    """``in_selection`` over points no projection has registered (yet): ``key`` names them."""

    def __init__(self, message: str, key: str) -> None:
        self.key = key
        super().__init__(message)


class FilterSyntaxError(QueryError):
    """Filter text or JSON that does not parse; carries the position when known."""

    def __init__(self, message: str, text: str = "", line: int = 0, column: int = 0) -> None:
        self.text = text
        self.line = line
        self.column = column
        self.reason = message
        if text and line:
            lines = text.splitlines()
            source_line = lines[line - 1] if 0 < line <= len(lines) else ""
            at = column
            start = max(0, column - 60)  # show at most 80 characters around the spot
            if start or len(source_line) > 80:
                tail = "..." if len(source_line) > start + 80 else ""
                source_line = ("..." if start else "") + source_line[start : start + 80] + tail
                at = column - start + (3 if start else 0)
            caret = " " * max(at - 1, 0) + "^"
            message = f"{message} (line {line}, column {column})\n  {source_line}\n  {caret}"
        super().__init__(message)


class UnknownColumnError(QueryError):
    """A name that is not a column (or field) of the table."""

    def __init__(self, name: str, candidates: list[str] | tuple[str, ...] = ()) -> None:
        import difflib

        self.name = name
        self.suggestions = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
        message = f"unknown column `{name}`"
        if self.suggestions:
            message += ": did you mean " + " or ".join(f"`{s}`" for s in self.suggestions) + "?"
        elif candidates:
            shown = ", ".join(f"`{c}`" for c in list(candidates)[:12])
            message += f"; the columns are {shown}"
        super().__init__(message)


class FilterTypeError(QueryError):
    """An operation on values of the wrong type, e.g. a string compared with a number."""
