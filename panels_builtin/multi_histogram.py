"""The Multi-histogram panel: one coloured histogram per source or per group, on shared bins.

Its series come from one engine call (``view.histogram``), so every series
shares the same bin edges:

- a ``compared[number]`` column (two tables compared on a key): one series
  per source, each counting the rows present in that source;
- a ``compared[list[number]]`` column (compared, then grouped): one series per
  source, all groups together;
- a ``list[number]`` column (a grouped view): one series per group;
- a number column split ``by`` a category (or boolean) column: one series
  per value of it (``by=``).

Series beyond ``max_series`` (the smallest ones) are merged into ``(other)``.
Series are overlaid (translucent) or stacked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from panels_builtin.bins import (
    SELECTED_COLOR,
    BinRange,
    Bins,
    BinWidth,
    add_bin_quads,
    bins_figure,
    brush_bins,
    check_binning,
    engine_histogram,
    heights,
    log_floor,
    quad_data,
    range_of_bins,
    selected_histogram,
    why_no_bins,
)
from panels_builtin.captions import (
    OTHER,
    NothingToShow,
    captioned_chart,
    format_count,
    format_number,
    other_label,
    problem_message,
    values_left_out,
)
from panels_builtin.columns import number_item, pick_measure
from panels_builtin.following import chart_to_follow, keep_drawn_brush, renderer_named
from panels_builtin.palette import category_palette
from panels_core.escape import markdown_code
from panels_core.panel import Column, Panel, PanelConfig, columns_of, specificity
from panels_core.query.errors import QueryError
from panels_core.types import (
    BooleanType,
    CategoryType,
    ComparedType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    is_assignable,
    strip_optional,
)

__all__ = ["MultiBins", "MultiHistogram", "MultiHistogramConfig"]

_NUMBER = OptionalType(inner=NumberType())
COMPARED_NUMBER = ComparedType(item=_NUMBER)
"""``compared[number]``: one value per compared source (nulls allowed)."""
COMPARED_GROUPED = ComparedType(item=ListType(item=_NUMBER))
"""``compared[list[number]]``: compared, then grouped."""
GROUPED_NUMBER = ListType(item=_NUMBER)
"""``list[number]``: a number column after grouping."""
OVERLAY_ALPHA = 0.45
SELECTED_UNDER = 0.25
"""The series' fill while each has its selected rows drawn over it."""
Split = Literal["source", "group", "by", "none"]
"""What splits a column into series."""


class MultiHistogramConfig(PanelConfig):
    """Which column to bin, what splits it into series, and how to draw them."""

    column: Annotated[
        str,
        Column(
            accepts=[COMPARED_NUMBER, COMPARED_GROUPED, GROUPED_NUMBER, NumberType()],
            prefer=[COMPARED_NUMBER, COMPARED_GROUPED, GROUPED_NUMBER, NumberType()],
        ),
        Field(
            description="a compared number column (one series per source), a grouped number "
            "column (one per group), or a number column split by `by`"
        ),
    ]
    by: Annotated[
        str | None,
        Column(
            accepts=[StringType(), BooleanType()],
            required=False,
            prefer=[CategoryType(), BooleanType()],
        ),
        Field(description="a category column whose values split a plain number column"),
    ] = None
    bins: Bins = "auto"
    bin_width: BinWidth = None
    range: BinRange = None
    mode: Literal["overlay", "stack"] = Field(
        "overlay", description="overlay: translucent series over each other; stack: piled up"
    )
    density: bool = Field(
        False,
        description="overlay: each series' area is 1; stack: the whole stack's area is 1",
    )
    log_y: bool = Field(False, description="a logarithmic count axis")
    max_series: int = Field(
        10, ge=2, le=40, description="the largest series shown; the rest are merged into (other)"
    )

    @model_validator(mode="after")
    def _few_enough_bins(self) -> MultiHistogramConfig:
        check_binning(self.bin_width, self.range)
        return self


@dataclasses.dataclass(frozen=True, eq=False)
class MultiBins:
    """What the panel draws: shared edges, one row of counts and heights per series."""

    column: str
    split: Split
    names: list[str]
    edges: np.ndarray
    counts: np.ndarray  # (series, bins), raw counts from the engine
    values: np.ndarray  # (series, bins), plotted heights (counts or densities)
    bottoms: np.ndarray  # (series, bins), where each bar starts (stacking, log axis)
    tops: np.ndarray  # (series, bins), where each bar ends
    nulls: int
    nonfinite: int
    outside: int
    merged: int = 0  # series merged into (other)
    selected: np.ndarray | None = None  # (series, bins): the selected rows' counts, or None


def _fits(t: Any, accepts: Any) -> bool:
    return is_assignable(strip_optional(t), accepts)


def _merge(counts: np.ndarray, kept: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """The kept rows of ``counts``, then the rest summed as one row (when there is a rest)."""
    if not len(rest):
        return counts[kept]
    return np.vstack([counts[kept], counts[rest].sum(axis=0, keepdims=True)])


def _merge_names(names: list[str], kept: np.ndarray) -> list[str]:
    """The kept series' names, then (other) when some were merged."""
    shown = [names[i] for i in kept]
    return shown if len(shown) == len(names) else [*shown, other_label(names)]


class MultiHistogram(Panel[MultiHistogramConfig]):
    """Overlaid or stacked histograms, one colour per compared source or group."""

    kind = "multi_histogram"
    can_select = True
    title = "Multi-histogram"
    description = "One histogram per compared table or per group, on shared bins."

    @classmethod
    def match(cls, view_type: Any) -> float | None:
        """Ranks above the Histogram for compared number columns; below it for a number
        column that could only be split by a category (or a grouped number column)."""
        if not cls.accepts_input(view_type):
            return None
        columns = columns_of(view_type)
        compared = [
            specificity(strip_optional(t))
            for t in columns.values()
            if _fits(t, COMPARED_NUMBER) or _fits(t, COMPARED_GROUPED)
        ]
        if compared:
            return max(compared) + 0.5
        below = specificity(NumberType()) - 0.5
        if any(_fits(t, GROUPED_NUMBER) for t in columns.values()):
            return below
        has_number = any(_fits(t, NumberType()) for t in columns.values())
        has_split = any(
            isinstance(strip_optional(t), CategoryType | BooleanType) for t in columns.values()
        )
        return below if has_number and has_split else None

    @classmethod
    def default_config(cls, view_type: Any) -> MultiHistogramConfig:
        """The most specific column; ``by`` only for a plain number column."""
        config = super().default_config(view_type)
        columns = columns_of(view_type)
        column_type = strip_optional(columns[config.column])
        update: dict[str, Any] = {}
        if isinstance(column_type, ComparedType | ListType):
            update["by"] = None
        else:
            taken = [config.by] if config.by else []
            update["column"] = pick_measure(config.column, columns, taken)
        data = {**config.model_dump(), **update}
        return cls.validate_config(data, view_type)

    # -- data ---------------------------------------------------------------------------

    def data(self, view: Any) -> MultiBins:
        """The series of ``view``; raises NothingToShow (with the reason) or QueryError."""
        cfg = self.config
        columns = columns_of(view.type)
        if cfg.column not in columns:
            raise QueryError(f"multi-histogram: the view has no column `{cfg.column}`")
        column_type = strip_optional(columns[cfg.column])
        item = number_item(column_type)
        if item is None:
            raise QueryError(f"multi-histogram: `{cfg.column}` does not hold numbers")
        if cfg.by is not None and isinstance(column_type, ComparedType | ListType):
            what = "compared" if isinstance(column_type, ComparedType) else "grouped"
            raise NothingToShow(
                f"`{cfg.column}` is a {what} column, already split into series; "
                "clear `by` (it splits plain number columns only)."
            )
        hist, asked = engine_histogram(
            view,
            cfg.column,
            integer=item.integer,
            bins=cfg.bins,
            width=cfg.bin_width,
            range=cfg.range,
            by=cfg.by,
        )
        split, counts, names = self._series(hist, column_type)
        total = int(counts.sum())
        if total == 0:
            raise NothingToShow(why_no_bins(hist, cfg.column, cfg.range))
        kept, rest = self._largest(counts)
        chosen = self._selected(view, split, hist.edges, asked, names)
        counts, names, merged = _merge(counts, kept, rest), _merge_names(names, kept), len(rest)
        values, bottoms, tops = self._heights(counts, hist.edges)
        return MultiBins(
            column=cfg.column,
            split=split,
            names=names,
            edges=np.asarray(hist.edges, dtype=np.float64),
            counts=counts,
            values=values,
            bottoms=bottoms,
            tops=tops,
            nulls=int(hist.nulls),
            nonfinite=int(hist.nonfinite),
            outside=int(getattr(hist, "outside", 0)),
            merged=merged,
            selected=None if chosen is None else _merge(chosen, kept, rest),
        )

    def _selected(
        self, view: Any, split: Split, edges: np.ndarray, asked: dict[str, Any], names: list[str]
    ) -> np.ndarray | None:
        """The selected rows' counts (series, bins) on exactly ``edges``, one row per series
        of ``names`` (plain number columns; None without a selection)."""
        if split not in ("by", "none"):
            return None
        cfg = self.config
        chosen = selected_histogram(view, cfg.column, edges, **asked, by=cfg.by)
        if chosen is None:
            return None
        counts = np.atleast_2d(np.asarray(chosen.counts, dtype=np.int64))
        found = list(chosen.groups) if chosen.groups is not None else [cfg.column]
        rows = dict(zip(found, counts))
        zeros = np.zeros(len(edges) - 1, dtype=np.int64)
        return np.vstack([rows.get(name, zeros) for name in names])

    def _series(self, hist: Any, column_type: Any) -> tuple[Split, np.ndarray, list[str]]:
        """What splits the engine's histogram into series, its counts (series, bins) and
        the series' names (a compared-then-grouped column's groups summed per source)."""
        counts = np.atleast_2d(np.asarray(hist.counts, dtype=np.int64))
        names = list(hist.groups) if hist.groups is not None else [self.config.column]
        if isinstance(column_type, ComparedType):
            sources = list(column_type.sources) or names[: counts.shape[0]]
            if isinstance(strip_optional(column_type.item), ListType):
                # rows are (group, source) pairs, group-major: all groups together
                counts = counts.reshape(-1, len(sources), counts.shape[1]).sum(axis=0)
                names = sources
            return "source", counts, names
        if isinstance(column_type, ListType):
            return "group", counts, names
        return ("by" if self.config.by is not None else "none"), counts, names

    def _largest(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The series kept (at most ``max_series``: the largest, in their order) and the
        rest, merged into (other); no rest when there are few enough."""
        limit, n = self.config.max_series, counts.shape[0]
        if n <= limit:
            return np.arange(n), np.arange(0)
        order = np.argsort(-counts.sum(axis=1), kind="stable")
        return np.sort(order[: limit - 1]), np.sort(order[limit - 1 :])

    def _heights(
        self, counts: np.ndarray, edges: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(heights, bottoms, tops) per series: stacked on the series before, or all from
        the axis; on a log axis nothing starts below ``log_floor``."""
        cfg = self.config
        stack = cfg.mode == "stack"
        grand = int(counts.sum())
        values = np.vstack(
            [heights(row, edges, cfg.density, grand if stack else None) for row in counts]
        )
        floor = log_floor(values) if cfg.log_y else 0.0
        below = np.zeros_like(values)
        if stack:
            below[1:] = np.cumsum(values, axis=0)[:-1]
        bottoms = np.maximum(below, floor)
        tops = np.maximum(below + values, bottoms)
        return values, bottoms, tops

    # -- rendering ----------------------------------------------------------------------

    def render(self, view: Any) -> Any:
        """A caption and a Bokeh chart with a legend; an Alert when there is nothing to draw."""
        try:
            drawn = self.data(view)
        except (NothingToShow, QueryError) as exc:
            return problem_message(exc, f"Multi-histogram of {markdown_code(self.config.column)}")
        return captioned_chart(self._caption(drawn), self._figure(drawn, view))

    def _caption(self, drawn: MultiBins) -> str:
        what = {
            "source": "compared source",
            "group": "group",
            "by": f"value of {markdown_code(self.config.by)}",
            "none": "series",
        }[drawn.split]
        n = len(drawn.names)
        bins = len(drawn.edges) - 1
        parts = [
            f"{format_count(drawn.counts.sum())} values of {markdown_code(drawn.column)}, one series per "
            f"{what} ({n} shown), {bins} shared bins of width "
            f"{format_number(float(drawn.edges[1] - drawn.edges[0]))}, "
            f"{'stacked' if self.config.mode == 'stack' else 'overlaid'}"
        ]
        if drawn.merged:
            parts.append(f"{drawn.merged} smaller series merged into {OTHER}")
        if drawn.split == "none":
            parts.append("choose a `by` column to split it")
        lost = values_left_out(drawn.nulls, drawn.nonfinite, drawn.outside)
        if lost:
            parts.append(lost)
        if drawn.selected is not None:
            parts.append(f"{format_count(int(drawn.selected.sum()))} of them selected")
        return "; ".join(parts)

    def _figure(self, drawn: MultiBins, view: Any) -> Any:
        cfg = self.config
        fig = bins_figure(
            drawn.column, density=cfg.density, log_y=cfg.log_y, height=340, series=True
        )
        colors = category_palette(len(drawn.names))
        n_bins = len(drawn.edges) - 1
        for i, name in enumerate(drawn.names):
            add_bin_quads(
                fig,
                drawn.edges,
                drawn.bottoms[i],
                drawn.tops[i],
                drawn.counts[i],
                drawn.values[i],
                f"series:{name}",
                names=[name] * n_bins,
                fill_color=colors[i],
                fill_alpha=self._alpha(drawn),
                line_color=colors[i] if cfg.mode != "stack" else "white",
                line_alpha=0.9,
                legend_label=name,
            )
        if drawn.split in ("by", "none"):
            self._selected_series(fig, drawn, colors)
        legend = fig.legend[0]
        legend.click_policy = "hide"
        legend.title = {"source": "source", "group": "group", "by": self.config.by}.get(drawn.split)
        fig.add_layout(legend, "right")  # beside the plot, never over the bars
        if drawn.split in ("by", "none"):
            self._brush(fig, drawn, view)
        return fig

    def _alpha(self, drawn: MultiBins) -> float:
        """The series' fill: paler while a selected series is drawn over each."""
        if drawn.selected is not None:
            return SELECTED_UNDER
        return 0.85 if self.config.mode == "stack" else OVERLAY_ALPHA

    def _selected_series(self, fig: Any, drawn: MultiBins, colors: list[str]) -> None:
        """Over each series, its selected rows' counts in its colour, outlined in the
        selection's colour (hidden, at zero height, until there is a selection)."""
        for i, name in enumerate(drawn.names):
            data = self._selected_quads(drawn, i)
            add_bin_quads(
                fig,
                drawn.edges,
                *(data[k] for k in ("bottom", "top", "count", "value")),
                f"selected:{name}",
                names=data["name"],
                fill_color=colors[i],
                fill_alpha=0.95,
                line_color=SELECTED_COLOR,
                line_width=1.5,
                visible=drawn.selected is not None,
            )

    def _selected_quads(self, drawn: MultiBins, i: int) -> dict[str, Any]:
        """The columns of series ``i``'s selected source: its selected rows' heights, from
        the series' own bottom (stacked: on the series below), as a part of the series."""
        cfg = self.config
        counts = drawn.selected[i] if drawn.selected is not None else np.zeros_like(drawn.counts[i])
        total = int(drawn.counts.sum() if cfg.mode == "stack" else drawn.counts[i].sum())
        values = heights(counts, drawn.edges, cfg.density, total)
        bottom = drawn.bottoms[i]
        top = np.maximum(bottom + values if cfg.mode == "stack" else values, bottom)
        names = [f"{drawn.names[i]} (selected)"] * len(counts)
        return quad_data(drawn.edges, bottom, top, counts, values, names)

    def follow_selection(self, shown: Any, view: Any) -> Callable[[], None] | None:
        """The selected series of ``view``'s new selection, asked of the engine (the full
        series come from its answers kept), drawn into the chart ``render`` returned: each
        ``"selected:<series>"`` source, the series' fill and the caption; the range
        dragged here stays while its brush stands."""
        following = chart_to_follow(shown, lambda: self.data(view))
        if following is None:
            return None  # drawn again: the card shows why
        caption, fig, drawn = following
        if drawn.split not in ("by", "none"):
            return None
        names = [f"selected:{name}" for name in drawn.names]
        chosen = [renderer_named(fig, name) for name in names]
        series = [renderer_named(fig, f"series:{name}") for name in drawn.names]
        brush = renderer_named(fig, "brush")
        if any(r is None for r in [*chosen, *series, brush]):
            return None
        data = [self._selected_quads(drawn, i) for i in range(len(names))]
        text, alpha, edges = self._caption(drawn), self._alpha(drawn), drawn.edges

        def show() -> None:
            for renderer, columns, full in zip(chosen, data, series):
                renderer.data_source.data = columns
                renderer.visible = drawn.selected is not None
                full.glyph.fill_alpha = alpha
            keep_drawn_brush(
                brush.data_source, view, lambda at: range_of_bins(drawn.column, edges, at)
            )
            caption.object = text

        return show

    def _brush(self, fig: Any, drawn: MultiBins, view: Any) -> None:
        """A horizontal box select over the bins (an undrawn quad per bin, as tall as the
        highest bar) that publishes the brushed bins' RangeBrush."""
        from bokeh.models import HoverTool

        hover = fig.select_one({"type": HoverTool})
        hover.renderers = list(fig.renderers)  # the series, not the brush layer
        edges, n_bins = drawn.edges, len(drawn.edges) - 1
        low, top, zeros = drawn.bottoms.min(axis=0), drawn.tops.max(axis=0), np.zeros(n_bins)
        add_bin_quads(fig, edges, low, top, zeros, zeros, "brush", fill_alpha=0, line_alpha=0)
        brush_bins(fig, "brush", lambda at: view.select(range_of_bins(drawn.column, edges, at)))
