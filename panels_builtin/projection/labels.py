"""The points' labels (one column's display strings, factorised) and their colouring."""

from __future__ import annotations

from typing import Any

import numpy as np

from panels_builtin.captions import OTHER
from panels_builtin.palette import category_palette
from panels_builtin.projection.config import ProjectionConfig, is_number

__all__ = [
    "MAX_CATEGORIES",
    "NULL_LABEL",
    "OTHER_COLOUR",
    "Colouring",
    "Labels",
    "category_colouring",
    "colouring_for",
    "label_text",
]

MAX_CATEGORIES = 50
"""Categories coloured one by one; beyond, the most frequent ``MAX_CATEGORIES - 1`` keep their
colour and the rest share ``(other)`` (as TensorBoard's projector caps colour-by at 50)."""
NULL_LABEL = "(null)"
OTHER_COLOUR = "#bbbbbb"


class Labels:
    """Display strings of one column's points, factorised: ``names[codes[i]]`` is point i's.

    Nulls read ``(null)``, booleans ``true``/``false``. Searching and colouring work
    on the distinct names, so a million points cost one pass over integer codes.
    """

    def __init__(self, codes: np.ndarray, names: list[str]) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        self.names = list(names)

    @classmethod
    def of(cls, values: np.ndarray) -> Labels:
        """Factorise one column's values (object array, nulls as None)."""
        import pandas as pd

        codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
        names = [label_text(v) for v in uniques.tolist()]
        if (codes < 0).any():
            if NULL_LABEL in names:
                codes = np.where(codes < 0, names.index(NULL_LABEL), codes)
            else:
                codes = np.where(codes < 0, len(names), codes)
                names.append(NULL_LABEL)
        return cls(codes, names)

    @classmethod
    def of_column(cls, view: Any, column: str, kept: np.ndarray) -> Labels:
        """The labels of the kept rows of a category, string or boolean column, read as one
        Arrow column (``view.page``) and dictionary-encoded there, so no Python string per row."""
        import pyarrow as pa
        import pyarrow.compute as pc

        values = view.page(0, len(kept), columns=[column]).column(0)
        if pa.types.is_boolean(values.type):
            values = pc.if_else(values, "true", "false")
        if not pa.types.is_dictionary(values.type):
            values = pc.dictionary_encode(values)
        if isinstance(values, pa.ChunkedArray):
            values = values.unify_dictionaries().combine_chunks()
        indices = values.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        names = [label_text(v) for v in values.dictionary.to_pylist()]
        codes = indices[kept]
        if (codes < 0).any():
            codes = np.where(codes < 0, len(names), codes)
            names.append(NULL_LABEL)
        used = np.zeros(len(names), dtype=bool)
        used[codes] = True
        if not used.all():  # values of rows left out (or unused dictionary entries)
            names = [name for name, keep in zip(names, used) if keep]
            codes = (np.cumsum(used) - 1)[codes]
        return cls(codes, names)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, point: int) -> str:
        return self.names[self.codes[point]]

    @property
    def values(self) -> np.ndarray:
        """One string per point (object array)."""
        return np.asarray(self.names, dtype=object)[self.codes]

    def containing(self, text: str) -> np.ndarray:
        """A bool per point: its label contains ``text``, ignoring case."""
        needle = text.lower()
        hit = np.array([needle in name.lower() for name in self.names], dtype=bool)
        return hit[self.codes] if len(hit) else np.zeros(len(self.codes), dtype=bool)


def label_text(value: Any) -> str:
    """A value as the points' labels show it: ``(null)``, ``true``/``false``, else its text."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NULL_LABEL
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


class Colouring:
    """How points are coloured: ``kind`` is ``"none"``, ``"category"`` or ``"number"``.

    Numbers: ``values`` holds one float per kept point. Categories: ``values``
    holds each point's index into ``factors`` (sorted names, ``(other)`` last when
    values were merged), and ``palette[i]`` is the colour of ``factors[i]``.
    """

    def __init__(
        self,
        kind: str,
        column: str | None = None,
        values: np.ndarray | None = None,
        factors: list[str] | None = None,
        palette: list[str] | None = None,
        merged: int = 0,
    ) -> None:
        self.kind = kind
        self.column = column
        self.values = values
        self.factors = factors or []
        self.palette = palette or []
        self.merged = merged  # categories folded into (other)

    @property
    def colour_of(self) -> dict[str, str]:
        """Category -> colour."""
        return dict(zip(self.factors, self.palette))

    @property
    def labels(self) -> np.ndarray:
        """Categories: each point's category name (object array)."""
        assert self.values is not None
        return np.asarray(self.factors, dtype=object)[self.values]


def colouring_for(view: Any, config: ProjectionConfig, kept: np.ndarray) -> Colouring:
    """How the kept points are coloured by ``config.colour_by`` (categories beyond
    ``MAX_CATEGORIES - 1`` share ``(other)``)."""
    column = config.colour_by
    if column is None:
        return Colouring("none")
    if is_number(view.type, column):
        values = np.asarray(view.column_numpy(column), dtype=np.float64)
        return Colouring("number", column, values[kept])
    labels = Labels.of_column(view, column, kept)
    counts = np.bincount(labels.codes, minlength=len(labels.names))
    colouring, remap = category_colouring(column, labels.names, counts)
    colouring.values = remap[labels.codes]
    return colouring


def category_colouring(
    column: str, names: list[str], counts: np.ndarray
) -> tuple[Colouring, np.ndarray]:
    """The colouring of a category column whose points hold the labels ``names`` (``counts``
    points each): the sorted factors (the ``MAX_CATEGORIES - 1`` most frequent, then
    ``(other)``), their palette, and the factor index of each of ``names`` (``values`` is
    left for the caller: the points' factor indices, wherever they are)."""
    labels = np.asarray(names, dtype=object)
    merged = 0
    if len(labels) > MAX_CATEGORIES:
        order = np.argsort(-np.asarray(counts), kind="stable")
        keep = sorted(labels[order[: MAX_CATEGORIES - 1]].tolist())
        merged = len(labels) - len(keep)
        other = OTHER if OTHER not in keep else f"{OTHER} rest"
        factors = [*keep, other]
        position = {name: i for i, name in enumerate(keep)}
        remap = np.array([position.get(name, len(keep)) for name in labels], dtype=np.int64)
        palette = [*category_palette(len(keep)), OTHER_COLOUR]
    else:
        order = np.argsort(labels.astype(str), kind="stable")
        factors = labels[order].tolist()
        remap = np.empty(len(labels), dtype=np.int64)
        remap[order] = np.arange(len(labels))
        palette = category_palette(len(factors))
    return Colouring("category", column, None, factors, palette, merged), remap
