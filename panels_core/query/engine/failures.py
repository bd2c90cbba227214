"""DuckDB failures and unknown names as QueryErrors that say what to do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from panels_core.query.errors import QueryError, UnknownColumnError

__all__ = ["READ_ERRORS", "first_line", "unknown_column", "unknown_table", "wrap"]

# what DuckDB raises when a file's data does not read (besides a bare duckdb.Error)
READ_ERRORS = (
    duckdb.IOException,
    duckdb.InvalidInputException,
    duckdb.InternalException,
    duckdb.SerializationException,
)


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def wrap(exc: duckdb.Error, what: str) -> QueryError:
    """The QueryError for a statement that failed: its first line and a hint."""
    message = first_line(exc)
    hint = "check the filter's columns and value types"
    if "Conversion Error" in message or "Could not convert" in message:
        hint = "a value has the wrong type for its column; compare numbers with numbers, text with text"
    elif "Out of Memory" in message:
        hint = "the query needs more memory than allowed; filter rows or select fewer columns"
    return QueryError(f"{what}: the query could not run ({message}); {hint}")


def unknown_column(name: str, fields: Mapping[str, Any], what: str) -> QueryError:
    """An UnknownColumnError naming where the column was asked for (``what``)."""
    error = UnknownColumnError(name, list(fields))
    error.args = (f"{what}: {error.args[0]}",)
    return error


def unknown_table(name: str, names: list[str]) -> QueryError:
    """A QueryError for an unknown table, with the closest name or the known ones."""
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    hint = (
        f"did you mean `{close[0]}`?"
        if close
        else "the tables are " + ", ".join(f"`{n}`" for n in names)
    )
    return QueryError(f"unknown table `{name}`; {hint}")
