"""CSV and TSV files: read with pyarrow, every failure naming the file, line and column."""

from __future__ import annotations

import contextlib
import csv
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from panels_core.data.sources.common import exception_text
from panels_core.data.table import Table
from panels_core.types import (
    parse_type,
    strip_optional,
)

__all__ = ["DELIMITERS", "read_csv", "sniff_delimiter"]

DELIMITERS = (",", "\t", ";", "|")
"""The delimiters ``sniff_delimiter`` tells apart (any one character may be forced)."""

_SNIFF_LINES = 50


def _dtypes_to_csv_types(dtypes: Mapping[str, Any] | None) -> dict[str, pa.DataType]:
    """Arrow types for CSV columns whose override settles how to parse them."""
    arrow: dict[str, pa.DataType] = {}
    for name, wanted in (dtypes or {}).items():
        kind = strip_optional(wanted if hasattr(wanted, "kind") else parse_type(wanted)).kind
        if kind in ("string", "category"):
            arrow[name] = pa.string()
        elif kind == "number":
            arrow[name] = pa.float64()
    return arrow


_CONVERSION = re.compile(
    r"In CSV column #(\d+): .*?conversion error to (\w+): invalid value '(.*)'"
)


def read_csv(
    path: str | os.PathLike[str],
    *,
    dtypes: Mapping[str, Any] | None = None,
    delimiter: str | None = None,
) -> Table:
    """A CSV file as a Table; a malformed line raises naming its number.

    The delimiter is ``delimiter`` when given (one character), else sniffed from the
    first lines (``sniff_delimiter``: comma, tab, semicolon or bar).
    """
    path = Path(path)
    head = _check_text(path)
    if delimiter is None:
        delimiter = sniff_delimiter(head, default="\t" if path.suffix.lower() == ".tsv" else ",")
    elif len(delimiter) != 1 or delimiter in '\r\n"':
        raise ValueError(
            f"cannot read CSV `{path}`: the delimiter must be one character (not a quote or a "
            f"line break), got {delimiter!r}; pass e.g. delimiter=';' or delimiter='\\t'"
        )
    convert = pacsv.ConvertOptions(column_types=_dtypes_to_csv_types(dtypes))
    parse = pacsv.ParseOptions(delimiter=delimiter)
    try:
        arrow = pacsv.read_csv(path, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc, parse, convert) from exc
    for field in arrow.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise ValueError(
                f"cannot read CSV `{path}`: column `{field.name}` holds text that is not UTF-8; "
                f"{_SAVE_UTF8}"
            )
    try:
        return Table.from_arrow(arrow, dtypes=dtypes, rename=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise type(exc)(f"`{path}`: {exception_text(exc)}") from exc


_SNIFF_BYTES = 1 << 16
_SAVE_UTF8 = 'save the file as UTF-8 (a spreadsheet\'s "CSV UTF-8") and open it again'


def sniff_delimiter(head: str, default: str = ",") -> str:
    """The delimiter of CSV text from its first lines: of ``DELIMITERS``, the one that
    splits every line into the same number (> 1) of fields, the most fields winning
    (ties go to ``default``, then to the order of ``DELIMITERS``); ``default`` when
    none does (one column, or ragged lines the reader then reports)."""
    lines = head.splitlines(keepends=True)
    if len(lines) > 1 and not lines[-1].endswith(("\n", "\r")):
        lines = lines[:-1]  # cut off by the bytes read: not a whole line
    lines = [line for line in lines[:_SNIFF_LINES] if line.strip()]
    best, best_fields = default, 1
    for candidate in dict.fromkeys((default, *DELIMITERS)):
        try:
            counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        except csv.Error:
            continue
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = candidate, fields
    return best


def _check_text(path: Path) -> str:
    """The first bytes of a file as text; refuse a file whose first bytes are not UTF-8
    text (binary data, another encoding)."""
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if b"\0" in head:
        raise ValueError(
            f"cannot read CSV `{path}`: it is binary data, not text (byte {head.index(0)} is "
            "NUL); open it with the reader for its format (format=...), or export it as CSV again"
        )
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(head) == _SNIFF_BYTES and exc.start >= len(head) - 3
        if not (cut and exc.reason == "unexpected end of data"):
            raise ValueError(
                f"cannot read CSV `{path}`: it is not UTF-8 text (byte {exc.start}: "
                f"{exc.reason}); {_SAVE_UTF8}, or open a binary file with the reader for its "
                "format (format=...)"
            ) from None
        return head[: exc.start].decode("utf-8")


def _csv_error(
    path: Path, exc: pa.ArrowInvalid, parse: pacsv.ParseOptions, convert: pacsv.ConvertOptions
) -> Exception:
    """A clear error for a CSV file pyarrow could not read."""
    text = str(exc)
    if "Empty CSV file" in text:
        return ValueError(f"cannot read CSV `{path}`: the file is empty; it needs a header row")
    match = _CONVERSION.search(text)
    if match:
        names = _csv_header(path, parse.delimiter)
        index = int(match.group(1))
        column = names[index] if index < len(names) else f"#{index}"
        return ValueError(
            f"cannot read CSV `{path}`: column `{column}` cannot be read as {match.group(2)}: "
            f"it holds {match.group(3)!r}; clean the column, or pass "
            f'dtypes={{"{column}": "string"}} to read it as text'
        )
    bad: list[Any] = []

    def record(row: Any) -> str:
        bad.append(row)
        return "error"

    serial = pacsv.ParseOptions(delimiter=parse.delimiter, invalid_row_handler=record)
    with contextlib.suppress(pa.ArrowInvalid):
        pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=serial,
            convert_options=convert,
        )
    if bad:
        row = bad[0]
        where = f"line {row.number}" if row.number is not None else "a line"
        return ValueError(
            f"cannot read CSV `{path}`: {where} has {row.actual_columns} values but the header "
            f"names {row.expected_columns} columns ({row.text[:60]!r}); fix or remove that line, "
            "quote values that hold the delimiter, or pass delimiter=... if the file uses "
            "another separator"
        )
    return ValueError(f"cannot read CSV `{path}`: {text}")


def _csv_header(path: Path, delimiter: str) -> list[str]:
    """The column names of a CSV file's first line."""
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        return next(csv.reader(f, delimiter=delimiter), [])
