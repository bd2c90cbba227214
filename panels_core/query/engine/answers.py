"""The shapes of the engine's aggregate answers: a Histogram and ValueCounts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Histogram", "ValueCounts"]


@dataclass(frozen=True, eq=False)
class Histogram:
    """Bins and counts computed by the engine.

    ``counts`` has shape (n,) or (groups, n) when ``groups`` is set (a ``by``
    column, a compared column: one row per source, a grouped column: one row
    per group). ``nulls`` / ``nonfinite`` count missing and NaN/inf values;
    ``outside`` counts finite values outside an explicit ``range``.
    """

    edges: np.ndarray
    counts: np.ndarray
    groups: list[str] | None = None
    nulls: int = 0
    nonfinite: int = 0
    outside: int = 0


@dataclass(frozen=True, eq=False)
class ValueCounts:
    """The ``top`` most frequent values (tuples for several columns), most frequent first.

    ``other`` counts rows with a value outside the top; ``nulls`` counts rows
    with a null (in any of the columns). For a compared column ``groups``
    names the sources and ``counts`` has one row per source (values ranked by
    their total over the sources; rows absent from a source are not counted).
    """

    values: list[Any]
    counts: np.ndarray
    other: int = 0
    nulls: int = 0
    groups: list[str] | None = None  # sources of a compared column: counts is (sources, top)
