"""Binning shared by the histogram panels: the config fields and their bin cap, the
engine call (one bin per integer when that fits), bar heights and log-axis floors."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field

from panels_core.query.bins import MAX_BINS, bin_span, width_bins

__all__ = [
    "MAX_BINS",
    "BinRange",
    "BinWidth",
    "Bins",
    "bar_span",
    "check_binning",
    "engine_histogram",
    "heights",
    "log_floor",
]


def _check_range(value: tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"range must be two finite numbers with min < max, got [{lo}, {hi}]")
    bin_span(lo, hi)
    return (lo, hi)


def check_binning(bin_width: float | None, range: tuple[float, float] | None) -> None:
    """Raise a ValueError when ``bin_width`` over ``range`` (both set) makes more than
    ``MAX_BINS`` bins; a config's model validator calls it (without a range it depends
    on the data, and the engine checks it when drawing)."""
    if bin_width is not None and range is not None:
        width_bins(range[0], range[1], bin_width)


Bins = Annotated[
    Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_BINS, strict=True)],
    Field(
        description='"auto" (Freedman-Diaconis; one bin per integer for integer columns) '
        "or a number of bins"
    ),
]
BinWidth = Annotated[
    float | None,
    Field(gt=0, allow_inf_nan=False, description="the width of each bin; overrides bins"),
]
BinRange = Annotated[
    tuple[float, float] | None,
    AfterValidator(_check_range),
    Field(description="(min, max) of the bins; values outside are left out and counted"),
]


def engine_histogram(
    view: Any,
    column: str,
    *,
    integer: bool = False,
    bins: int | str = "auto",
    width: float | None = None,
    range: tuple[float, float] | None = None,
    by: str | None = None,
) -> Any:
    """``view.histogram(...)`` with one refinement: an integer column binned ``"auto"``
    (no width, no range) gets one bin per integer, centred on it, when its values
    span at most ``MAX_AUTO_BINS`` integers (a first one-bin call finds min and max)."""
    from panels_core.query.engine import MAX_AUTO_BINS

    if integer and bins == "auto" and width is None and range is None:
        probe = view.histogram(column, bins=1, by=by)
        if int(np.sum(probe.counts)) == 0:
            return probe
        lo, hi = math.ceil(probe.edges[0]), math.floor(probe.edges[-1])
        if hi - lo < MAX_AUTO_BINS:
            return view.histogram(column, range=(lo - 0.5, hi + 0.5), width=1.0, by=by)
    return view.histogram(column, bins=bins, range=range, width=width, by=by)


def heights(
    counts: np.ndarray, edges: np.ndarray, density: bool, total: int | None = None
) -> np.ndarray:
    """What a bar shows: the counts, or with ``density`` ``counts / (total * bin width)``
    (numpy's ``density=True`` when ``total`` is the counts' own sum)."""
    counts = np.asarray(counts, dtype=np.float64)
    if not density:
        return counts
    total = int(counts.sum()) if total is None else total
    if total == 0:
        return np.zeros_like(counts)
    return counts / (total * np.diff(np.asarray(edges, dtype=np.float64)))


def log_floor(values: np.ndarray) -> float:
    """The bottom of bars on a log axis: half the smallest positive height (1 when none)."""
    positive = np.asarray(values, dtype=np.float64)
    positive = positive[positive > 0]
    return float(positive.min()) / 2 if positive.size else 1.0


def bar_span(values: np.ndarray, log_y: bool) -> tuple[np.ndarray, np.ndarray]:
    """(bottom, top) of bars of the given heights; on a log axis bars start at
    ``log_floor`` and an empty bar has top == bottom (nothing drawn)."""
    values = np.asarray(values, dtype=np.float64)
    if not log_y:
        return np.zeros(len(values)), values
    floor = log_floor(values)
    return np.full(len(values), floor), np.maximum(values, floor)
