"""Binning shared by the histogram panels: the config fields and their bin cap, the
engine call (one bin per integer when that fits), bar heights and log-axis floors."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field

from panels_builtin.captions import EMPTY_VIEW, format_number, values_left_out
from panels_builtin.selecting import selection_answer
from panels_core.query.bins import MAX_AUTO_BINS, MAX_BINS, bin_span, width_bins
from panels_core.query.errors import QueryError

__all__ = [
    "MAX_BINS",
    "SELECTED_COLOR",
    "BinRange",
    "BinWidth",
    "Bins",
    "add_bin_quads",
    "bar_span",
    "bins_figure",
    "brush_bins",
    "check_binning",
    "engine_histogram",
    "heights",
    "log_floor",
    "on_edges",
    "quad_data",
    "range_of_bins",
    "selected_histogram",
    "why_no_bins",
]

SELECTED_COLOR = "#f58518"
"""The colour of the selected rows' series drawn over the full distribution."""


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
) -> tuple[Any, dict[str, Any]]:
    """``view.histogram(...)`` with one refinement: an integer column binned ``"auto"``
    (no width, no range) gets one bin per integer, centred on it, when its values
    span at most ``MAX_AUTO_BINS`` integers (a first one-bin call finds min and max).

    Returns the histogram and the ``width`` and ``range`` it was asked with, which
    ``selected_histogram`` needs to bin the selected rows on exactly its edges."""
    if integer and bins == "auto" and width is None and range is None:
        probe = view.histogram(column, bins=1, by=by)
        if int(np.sum(probe.counts)) == 0:
            return probe, {"width": None, "range": None}
        lo, hi = math.ceil(probe.edges[0]), math.floor(probe.edges[-1])
        if hi - lo < MAX_AUTO_BINS:
            width, range = 1.0, (lo - 0.5, hi + 0.5)
            return view.histogram(column, range=range, width=width, by=by), {
                "width": width,
                "range": range,
            }
    asked = {"width": width, "range": range}
    return view.histogram(column, bins=bins, range=range, width=width, by=by), asked


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


def why_no_bins(hist: Any, column: str, range: tuple[float, float] | None) -> str:
    """Why a histogram of ``column`` has no counts: an empty view, values outside
    ``range``, or only nulls and NaN/inf values (with how many were left out)."""
    outside = int(getattr(hist, "outside", 0))
    if not (hist.nulls or hist.nonfinite or outside):
        return EMPTY_VIEW
    lost = values_left_out(hist.nulls, hist.nonfinite, outside)
    if outside and range is not None:
        lo, hi = range
        return (
            f"No values of `{column}` fall in the range "
            f"[{format_number(lo)}, {format_number(hi)}]; {lost}."
        )
    return f"`{column}` has no finite values to bin: {lost}."


def bins_figure(
    x_label: str, *, density: bool, log_y: bool, height: int, series: bool = False
) -> Any:
    """The Bokeh figure bins are drawn on: hover tooltips (the series' ``name`` first when
    ``series``, then range, count and with ``density`` the density), x pan and zoom, a
    count (or density) axis that is logarithmic or starts at 0."""
    from bokeh.plotting import figure

    tooltips = [("series", "@name")] if series else []
    tooltips += [("range", "@left{0,0.[0000]} to @right{0,0.[0000]}"), ("count", "@count{0,0}")]
    if density:
        tooltips.append(("density", "@value{0.[0000]}"))
    fig = figure(
        height=height,
        sizing_mode="stretch_width",
        y_axis_type="log" if log_y else "linear",
        x_axis_label=x_label,
        y_axis_label="density" if density else "count",
        tools="hover,xpan,xwheel_zoom,box_zoom,reset,save",
        tooltips=tooltips,
        toolbar_location="right",
    )
    if not log_y:
        fig.y_range.start = 0
    return fig


def quad_data(
    edges: np.ndarray,
    bottom: np.ndarray,
    top: np.ndarray,
    counts: np.ndarray,
    values: np.ndarray,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """The columns of a source of one quad per bin: left, right, bottom, top, count, value,
    and ``name`` per bin when ``names`` is set."""
    data = {
        "left": edges[:-1],
        "right": edges[1:],
        "bottom": bottom,
        "top": top,
        "count": counts,
        "value": values,
    }
    if names is not None:
        data["name"] = names
    return data


def add_bin_quads(
    fig: Any,
    edges: np.ndarray,
    bottom: np.ndarray,
    top: np.ndarray,
    counts: np.ndarray,
    values: np.ndarray,
    name: str,
    *,
    names: list[str] | None = None,
    **style: Any,
) -> Any:
    """Draw one quad per bin on ``fig`` from a ColumnDataSource named ``name`` (the columns
    of ``quad_data``); ``style`` goes to ``fig.quad`` (colours, alpha, legend, visible).
    Returns the glyph renderer."""
    from bokeh.models import ColumnDataSource

    source = ColumnDataSource(quad_data(edges, bottom, top, counts, values, names), name=name)
    return fig.quad(
        left="left", right="right", bottom="bottom", top="top", source=source, name=name, **style
    )


def selected_histogram(
    view: Any,
    column: str,
    edges: np.ndarray,
    *,
    width: float | None = None,
    range: tuple[float, float] | None = None,
    by: str | None = None,
) -> Any:
    """The selected rows' histogram of ``column`` on exactly ``edges`` (the engine's
    ``view.selected()``), or None when the view has no selection.

    ``width`` and ``range`` are what the full histogram was asked with
    (``engine_histogram`` returns them). Edges of a bin width are asked for again with
    that width, so the engine computes the very same floats (``bins=n`` over the span
    would round differently and could move a value on an edge to the next bin); edges
    of a number of bins are ``bins=n`` over their own span, as they were made."""
    edges = np.asarray(edges, dtype=np.float64)
    n = len(edges) - 1
    span = (float(edges[0]), float(edges[-1]))

    def ask(chosen: Any) -> Any:
        if width is None:
            return chosen.histogram(column, bins=n, range=span, by=by)
        hist = chosen.histogram(column, width=width, range=range or span, by=by)
        return on_edges(hist, edges)

    return selection_answer(view, ask)


def on_edges(hist: Any, edges: np.ndarray) -> Any:
    """``hist`` (asked with a bin width over a span ending on ``edges[-1]``) on ``edges``:
    when float rounding made the engine add one more bin, that bin holds only values on
    ``edges[-1]``, which the last of ``edges``' bins (closed) holds; a QueryError if the
    engine's edges are not ``edges``."""
    n = len(edges) - 1
    got = np.asarray(hist.edges, dtype=np.float64)
    if not np.array_equal(got[: n + 1], edges):
        raise QueryError("the selected rows could not be binned on the histogram's own edges")
    counts = np.asarray(hist.counts, dtype=np.int64)
    if counts.shape[-1] > n:
        counts = counts.copy()
        counts[..., n - 1] += counts[..., n:].sum(axis=-1)
        counts = counts[..., :n]
    return dataclasses.replace(hist, edges=edges, counts=counts)


def range_of_bins(column: str, edges: np.ndarray, indices: Any) -> Any:
    """The RangeBrush of the bins at ``indices``: from the first one's left edge to the
    last one's right edge (closed when it is the last bin); None for no bins."""
    from panels_core.query.selection import RangeBrush

    if not len(indices):
        return None
    first, last = int(min(indices)), int(max(indices))
    return RangeBrush(
        column=column,
        low=float(edges[first]),
        high=float(edges[last + 1]),
        closed_high=last == len(edges) - 2,
    )


def brush_bins(fig: Any, name: str, on_indices: Any) -> Any:
    """Let the user brush the glyph named ``name`` on ``fig`` with Bokeh's horizontal box
    select; ``on_indices(indices)`` gets the selected bars' indices (``[]`` when cleared).
    Returns the glyph's ColumnDataSource."""
    from bokeh.models import BoxSelectTool, GlyphRenderer

    renderer = fig.select_one({"name": name, "type": GlyphRenderer})
    tool = BoxSelectTool(dimensions="width", renderers=[renderer], continuous=False)
    fig.add_tools(tool)
    fig.toolbar.active_drag = tool
    source = renderer.data_source
    source.selected.on_change("indices", lambda _attr, _old, new: on_indices(list(new)))
    return source
