"""What the panel reads from a View: the matrix to project, kept between renders of that View
while its data is unchanged (with colourings and labels derived from it), and image thumbnails."""

from __future__ import annotations

import base64
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from panels_builtin.projection.config import ProjectionConfig
from panels_core import projection as proj
from panels_core.panel import columns_of
from panels_core.query.errors import QueryError
from panels_core.types import EmbeddingType, NumberType, describe, strip_optional

__all__ = ["Inputs", "fetch_inputs", "is_embedding", "remembered", "thumbnails"]

THUMBNAIL_SIZE = 64


class Inputs:
    """The matrix to project, its cache key, the view's row count, and whether the matrix is
    one embedding column (``embedding``) rather than numeric columns stacked."""

    def __init__(self, values: np.ndarray, columns: Sequence[str], embedding: bool = False) -> None:
        self.values = values
        self.columns = tuple(columns)
        self.embedding = embedding
        self._key: tuple[Any, ...] | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """The projection cache key: the columns and a fingerprint of the rows."""
        if self._key is None:
            self._key = ("rows", self.columns, proj.fingerprint(self.values))
        return self._key

    @property
    def n(self) -> int:
        return int(self.values.shape[0])


class _ViewMemo:
    """What the panel fetched from one View, kept between renders (a colour change re-renders
    over the same View): the input matrix with its fingerprint, and colourings and labels
    per (column, projection result). Valid while the engine holds the same table objects,
    their Parquet files keep their size and modification time, and the view its row
    count; one input matrix per View is kept."""

    def __init__(self, token: tuple[Any, ...], tables: tuple[Any, ...]) -> None:
        self.token = token
        self.tables = tables  # held, so a replaced table is never mistaken for a new one
        self.inputs: dict[tuple[str, ...], Inputs] = {}
        self.derived: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def matches(self, token: tuple[Any, ...], tables: tuple[Any, ...]) -> bool:
        """Same token and the very same table objects."""
        same = len(tables) == len(self.tables) and all(a is b for a, b in zip(tables, self.tables))
        return same and token == self.token


_MEMOS: weakref.WeakKeyDictionary[Any, _ViewMemo] = weakref.WeakKeyDictionary()
_MEMO_LOCK = threading.Lock()


def _data_token(view: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """What a View's rows depend on: (query, row count, each table's name and Parquet file
    size and modification time), and the registered table objects."""
    engine = view.engine
    parts: list[Any] = [view.query.model_dump_json(), view.count()]
    tables = []
    for name in engine.table_names():
        table = engine.table(name)
        path = getattr(table, "parquet_path", None)
        stat = os.stat(path) if path is not None and os.path.exists(path) else None
        parts.append((name, (stat.st_size, stat.st_mtime_ns) if stat else None))
        tables.append(table)
    return tuple(parts), tuple(tables)


def _memo(view: Any) -> _ViewMemo | None:
    """The View's memo (a fresh one when its data changed); None when the view cannot be
    weakly referenced or has no engine."""
    try:
        token, tables = _data_token(view)
    except (AttributeError, TypeError, QueryError):
        return None
    with _MEMO_LOCK:
        try:
            memo = _MEMOS.get(view)
            if memo is None or not memo.matches(token, tables):
                memo = _MEMOS[view] = _ViewMemo(token, tables)
        except TypeError:
            return None
    return memo


def remembered(view: Any, key: tuple[Any, ...], anchor: Any, compute: Any) -> Any:
    """``compute()`` kept in the View's memo under ``key`` while ``anchor`` (the projection
    result's kept mask) is the same object; the last 8 such values are kept."""
    memo = _memo(view)
    if memo is None:
        return compute()
    found = memo.derived.get(key)
    if found is not None and found[0] is anchor:
        return found[1]
    value = compute()
    memo.derived[key] = (anchor, value)
    while len(memo.derived) > 8:
        memo.derived.pop(next(iter(memo.derived)))
    return value


def fetch_inputs(view: Any, config: ProjectionConfig) -> Inputs:
    """The configured columns as one float32 (n, d) matrix (bad rows keep their NaN), kept
    between renders of the same View while its data is unchanged."""
    memo = _memo(view)
    columns = tuple(config.columns)
    if memo is not None and columns in memo.inputs:
        return memo.inputs[columns]
    inputs = _read_inputs(view, config)
    if memo is not None:
        memo.inputs = {columns: inputs}
        inputs.key  # noqa: B018 - fingerprint once, kept with the matrix
    return inputs


def is_embedding(view: Any, config: ProjectionConfig) -> bool:
    """Whether the configured input is one embedding column (else two or more numeric
    columns); a ``QueryError`` saying what to choose when it is neither."""
    columns = columns_of(view.type)
    for name in config.columns:
        if name not in columns:
            raise QueryError(f"2D projection: the view has no column `{name}`")
    kinds = [strip_optional(columns[c]) for c in config.columns]
    embeddings = [c for c, t in zip(config.columns, kinds) if isinstance(t, EmbeddingType)]
    if embeddings and len(config.columns) > 1:
        raise QueryError(
            f"2D projection: `{embeddings[0]}` is an embedding; project one embedding column "
            "or several numeric columns, not both"
        )
    if embeddings:
        return True
    for name, kind in zip(config.columns, kinds):
        if not isinstance(kind, NumberType):
            raise QueryError(
                f"2D projection: `{name}` is {describe(columns[name])}; choose an embedding "
                "column or numeric columns"
            )
    if len(config.columns) < 2:
        raise QueryError(
            f"2D projection: one numeric column (`{config.columns[0]}`) has one dimension; "
            "choose two or more numeric columns, or an embedding column"
        )
    return False


def _read_inputs(view: Any, config: ProjectionConfig) -> Inputs:
    if is_embedding(view, config):
        values = np.asarray(view.column_numpy(config.columns[0]), dtype=np.float32)
        if values.ndim != 2:
            values = values.reshape(len(values), -1)
        return Inputs(np.ascontiguousarray(values), config.columns, embedding=True)
    stacked = np.empty((view.count(), len(config.columns)), dtype=np.float32)
    for j, name in enumerate(config.columns):
        column = np.asarray(view.column_numpy(name), dtype=np.float32)
        if j == 0 and len(column) != len(stacked):
            stacked = np.empty((len(column), len(config.columns)), dtype=np.float32)
        stacked[:, j] = column
    return Inputs(stacked, config.columns)


def thumbnails(view: Any, column: str, rows: np.ndarray) -> list[str]:
    """Data-URI PNG thumbnails of ``rows`` of an image column ("" where there is none)."""
    from panels_core.data.media import thumbnail_png

    if len(rows) == 0:
        return []
    lo, hi = int(rows.min()), int(rows.max())
    table = view.page(lo, hi - lo + 1, columns=[column])
    cells = table.column(0).to_pylist()
    out: list[str] = []
    for row in rows.tolist():
        cell = cells[row - lo]
        data = cell.get("data") if isinstance(cell, dict) else cell
        if not data:
            out.append("")
            continue
        try:
            png = thumbnail_png(bytes(data), THUMBNAIL_SIZE)
        except (OSError, ValueError):
            out.append("")
            continue
        out.append("data:image/png;base64," + base64.b64encode(png).decode("ascii"))
    return out
