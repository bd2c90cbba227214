"""Small helpers shared by the built-in panels: messages, captions, colours, column picks."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field

from panels_core.query.bins import MAX_BINS, bin_span, width_bins
from panels_core.types import ComparedType, ListType, NumberType, strip_optional

__all__ = [
    "EMPTY_VIEW",
    "MAX_BINS",
    "OTHER",
    "BinRange",
    "BinWidth",
    "Bins",
    "NothingToShow",
    "bar_span",
    "category_palette",
    "check_binning",
    "engine_histogram",
    "format_count",
    "format_number",
    "heights",
    "left_out",
    "log_floor",
    "looks_like_id",
    "message",
    "number_item",
    "pick_measure",
]

OTHER = "(other)"
"""The label of the bar or series that collects values beyond the top N."""

_ID_NAME = re.compile(r"(^|[_.\s])(id|idx|index|key|uuid|row|rownum)$", re.IGNORECASE)


def message(text: str, kind: str = "info") -> Any:
    """A full-width ``pn.pane.Alert`` shown instead of a chart (empty view, no values...).

    ``text`` is Markdown: escape data in it with panels_core.escape."""
    import panel as pn

    return pn.pane.Alert(text, alert_type=kind, sizing_mode="stretch_width")


def format_count(n: int | float) -> str:
    """A count with thousands separators: ``12,345``."""
    return f"{int(n):,}"


def format_number(x: float) -> str:
    """A number short enough for an axis label or a caption (4 significant digits)."""
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e6 else f"{x:.3e}"


def left_out(parts: Mapping[str, int]) -> str:
    """``"12 nulls and 3 NaN/inf values left out"`` from {"null": 12, "NaN/inf value": 3}.

    Keys are singular nouns (an ``s`` is added when the count is not 1); zero
    counts are skipped; "" when nothing was left out.
    """
    words = [f"{format_count(n)} {noun}{'' if n == 1 else 's'}" for noun, n in parts.items() if n]
    if not words:
        return ""
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{listed} left out"


def category_palette(n: int) -> list[str]:
    """``n`` distinct colours for categories or series (Category10, Category20, then Turbo)."""
    from bokeh.palettes import Category10, Category20, turbo

    if n <= 0:
        return []
    if n <= 10:
        return list(Category10[10][:n])
    if n <= 20:
        return list(Category20[20][:n])
    return list(turbo(n))


def looks_like_id(name: str, column_type: Any) -> bool:
    """True for an integer column named like a row id (``id``, ``image_id``, ``index``)."""
    inner = strip_optional(column_type)
    return isinstance(inner, NumberType) and inner.integer and bool(_ID_NAME.search(name))


def pick_measure(chosen: str, columns: Mapping[str, Any], taken: Collection[str] = ()) -> str:
    """``chosen``, or when it looks like a row id, the first number column that does not.

    Keeps ``chosen`` when no other (untaken) number column exists, so a table
    holding only ids still gets a histogram of them.
    """
    if not looks_like_id(chosen, columns[chosen]):
        return chosen
    for name, column_type in columns.items():
        inner = strip_optional(column_type)
        if (
            name in taken
            or name == chosen
            or type(inner) is not type(strip_optional(columns[chosen]))
        ):
            continue
        if not looks_like_id(name, column_type):
            return name
    return chosen


# --------------------------------------------------------------------------- binning


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


def number_item(column_type: Any) -> NumberType | None:
    """The NumberType inside ``T``, ``optional[T]``, ``list[T]`` or ``compared[T]``, else None."""
    t = strip_optional(column_type)
    while isinstance(t, ListType | ComparedType):
        t = strip_optional(t.item)
    return t if isinstance(t, NumberType) else None


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


class NothingToShow(Exception):
    """The view has nothing to draw (no rows, or only missing values); the message says why."""


EMPTY_VIEW = "No rows to show: the view is empty (check the filter)."
