"""The Histogram panel: bins of a number column, or value counts of a category column.

A number column (or, after grouping, a ``list[number]`` column) is binned by
the engine (``view.histogram``); a category, boolean or string column becomes
a bar chart of its ``top`` most frequent values plus one ``(other)`` bar
(``view.value_counts``). Nothing is read from the raw column, so the panel
works the same on ten rows and on a ten-million-row Parquet file.

A grouped view gives one histogram per group; the panel shows all groups
together (their counts summed, i.e. every value of the filtered rows of the
groups kept by the query) unless ``group`` names one of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from panels_builtin.bins import (
    SELECTED_COLOR,
    BinRange,
    Bins,
    BinWidth,
    add_bin_quads,
    bar_span,
    bins_figure,
    brush_bins,
    check_binning,
    engine_histogram,
    heights,
    quad_data,
    range_of_bins,
    selected_histogram,
    why_no_bins,
)
from panels_builtin.captions import (
    EMPTY_VIEW,
    OTHER,
    NothingToShow,
    captioned_chart,
    format_count,
    format_number,
    left_out,
    other_label,
    problem_message,
    values_left_out,
)
from panels_builtin.columns import has_media, looks_like_id, number_item, pick_measure
from panels_builtin.following import chart_to_follow, keep_drawn_brush, renderer_named
from panels_builtin.selecting import selection_answer
from panels_core.escape import markdown_code
from panels_core.panel import Column, Panel, PanelConfig, columns_of, slots_of
from panels_core.query.errors import QueryError
from panels_core.types import (
    BooleanType,
    CategoryType,
    ComparedType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    describe,
    strip_optional,
)

__all__ = ["FEATURE_COLUMNS", "Bars", "BinnedValues", "Histogram", "HistogramConfig"]

NUMBER = NumberType()
FEATURE_COLUMNS = 16
"""From this many number columns a table's numbers are features, none its main measure."""
GROUPED_NUMBER = ListType(item=OptionalType(inner=NUMBER))
"""``list[number]`` (with or without nulls): a number column after grouping."""
LABELS = (CategoryType(), BooleanType(), StringType())
"""Column types drawn as value-count bars."""
BAR_COLOR = "#4c78a8"
DIMMED = 0.45
"""The alpha of the full series while a selected series is drawn over it."""


class HistogramConfig(PanelConfig):
    """Which column to count and how to bin it."""

    column: Annotated[
        str,
        Column(
            accepts=[NUMBER, GROUPED_NUMBER, *LABELS],
            prefer=[GROUPED_NUMBER, NUMBER, CategoryType(), BooleanType(), StringType()],
        ),
        Field(description="a number column (binned) or a category/string column (bars)"),
    ]
    bins: Bins = "auto"
    bin_width: BinWidth = None
    range: BinRange = None
    log_y: bool = Field(False, description="a logarithmic count axis")
    density: bool = Field(
        False,
        description="bins: count / (total x bin width), so the area is 1; bars: share of rows",
    )
    top: int = Field(20, ge=1, le=200, description="bars: the most frequent values shown")
    group: str | None = Field(
        None,
        description="grouped views: the label of the one group to show (default: all together)",
    )

    @model_validator(mode="after")
    def _few_enough_bins(self) -> HistogramConfig:
        check_binning(self.bin_width, self.range)
        return self


@dataclasses.dataclass(frozen=True, eq=False)
class BinnedValues:
    """What a number histogram draws: engine bins, raw counts and plotted heights."""

    column: str
    edges: np.ndarray
    counts: np.ndarray
    values: np.ndarray
    nulls: int
    nonfinite: int
    outside: int
    groups: list[str] | None = None  # the groups summed (grouped views)
    group: str | None = None  # the one group shown
    selected: np.ndarray | None = None  # the selected rows' counts on the same edges


@dataclasses.dataclass(frozen=True, eq=False)
class Bars:
    """What a value-count bar chart draws: labels (``(other)`` last), counts, heights."""

    column: str
    labels: list[str]
    counts: np.ndarray
    values: np.ndarray
    other: int
    nulls: int
    keys: list[Any] = dataclasses.field(default_factory=list)  # each bar's value (None: other)
    selected: np.ndarray | None = None  # the selected rows' count per bar


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Histogram(Panel[HistogramConfig]):
    """Bins of a number column, or value counts of a category column, as Bokeh bars."""

    kind = "histogram"
    can_select = True
    title = "Histogram"
    description = "Distribution of one column: bins of numbers, counts of categories."

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """Beside the projection and gallery of a table with images or embeddings, when it
        has a number column that is not a row id, and not so many (``FEATURE_COLUMNS``)
        that they are features rather than measures (the 64 pixels of a digit)."""
        if not has_media(table_type):
            return None
        numbers = [
            name
            for name, t in columns_of(table_type).items()
            if isinstance(strip_optional(t), NumberType) and not looks_like_id(name, t)
        ]
        return 3 if 0 < len(numbers) < FEATURE_COLUMNS else None

    @classmethod
    def default_config(cls, view_type: Any) -> HistogramConfig:
        """The slot's best column, skipping integer columns named like row ids."""
        config = super().default_config(view_type)
        better = pick_measure(config.column, columns_of(view_type))
        if better == config.column:
            return config
        return cls.validate_config({**config.model_dump(), "column": better}, view_type)

    # -- data ---------------------------------------------------------------------------

    def data(self, view: Any) -> BinnedValues | Bars:
        """The bins or bars of ``view``; raises NothingToShow (with the reason) or QueryError."""
        cfg = self.config
        columns = columns_of(view.type)
        if cfg.column not in columns:
            raise QueryError(f"histogram: the view has no column `{cfg.column}`")
        if not slots_of(HistogramConfig)["column"].column.fits(columns[cfg.column]):
            hint = (
                "; the Multi-histogram draws one series per source"
                if isinstance(strip_optional(columns[cfg.column]), ComparedType)
                else ""
            )
            raise QueryError(
                f"`{cfg.column}` is {describe(columns[cfg.column])}, which the histogram "
                f"cannot draw{hint}"
            )
        column_type = strip_optional(columns[cfg.column])
        if isinstance(column_type, NumberType | ListType):
            return self._bins(view, column_type)
        return self._bars(view)

    def _bins(self, view: Any, column_type: Any) -> BinnedValues:
        cfg = self.config
        item = number_item(column_type)
        hist, asked = engine_histogram(
            view,
            cfg.column,
            integer=bool(item and item.integer),
            bins=cfg.bins,
            width=cfg.bin_width,
            range=cfg.range,
        )
        counts, groups, group = self._one_series(hist)
        total = int(counts.sum())
        if total == 0:
            raise NothingToShow(self._why_empty(hist, groups))
        return BinnedValues(
            column=cfg.column,
            edges=np.asarray(hist.edges, dtype=np.float64),
            counts=counts,
            values=heights(counts, hist.edges, cfg.density),
            nulls=int(hist.nulls),
            nonfinite=int(hist.nonfinite),
            outside=int(getattr(hist, "outside", 0)),
            groups=groups,
            group=group,
            selected=self._selected_bins(view, hist.edges, asked),
        )

    def _one_series(self, hist: Any) -> tuple[np.ndarray, list[str] | None, str | None]:
        """The counts shown (one group's, or all groups summed), the groups and the group."""
        cfg = self.config
        counts = np.asarray(hist.counts, dtype=np.int64)
        if counts.ndim != 2:
            return counts, None, None
        groups = list(hist.groups or [])
        if cfg.group is None:
            return counts.sum(axis=0), groups, None
        if cfg.group not in groups:
            shown = ", ".join(f"`{g}`" for g in groups[:10])
            more = f" and {len(groups) - 10} more" if len(groups) > 10 else ""
            raise NothingToShow(
                f"No group `{cfg.group}` in this view; the groups are {shown}{more}. "
                "Clear `group` to show them all together."
            )
        return counts[groups.index(cfg.group)], groups, cfg.group

    def _selected_bins(
        self, view: Any, edges: np.ndarray, asked: dict[str, Any]
    ) -> np.ndarray | None:
        """The selected rows' counts on exactly ``edges`` (None without a selection)."""
        chosen = selected_histogram(view, self.config.column, edges, **asked)
        return None if chosen is None else self._one_series(chosen)[0]

    def _why_empty(self, hist: Any, groups: list[str] | None) -> str:
        cfg = self.config
        why = why_no_bins(hist, cfg.column, cfg.range)
        if why == EMPTY_VIEW and groups is not None and cfg.group is not None:
            return f"Group `{cfg.group}` has no values of `{cfg.column}`."
        return why

    def _bars(self, view: Any) -> Bars:
        cfg = self.config
        counted = view.value_counts(cfg.column, top=cfg.top)
        labels = [_label(v) for v in counted.values]
        counts = np.asarray(counted.counts, dtype=np.int64)
        other = int(counted.other)
        if other:
            labels.append(other_label(labels))
            counts = np.append(counts, other)
        total = int(counts.sum())
        if total == 0:
            if counted.nulls:
                raise NothingToShow(
                    f"`{cfg.column}` has no values to count: "
                    f"{left_out({'null': int(counted.nulls)})}."
                )
            raise NothingToShow(EMPTY_VIEW)
        values = counts / total if cfg.density else counts.astype(np.float64)
        keys = list(counted.values) + ([None] if other else [])
        selected = self._selected_bars(view, counted.values, bool(other))
        return Bars(cfg.column, labels, counts, values, other, int(counted.nulls), keys, selected)

    def _selected_bars(self, view: Any, values: list[Any], other: bool) -> np.ndarray | None:
        """The selected rows' count for each bar (``(other)`` last), or None without a
        selection: the selected rows narrowed to the shown values are counted by value."""
        from panels_core.query.selection import Selection, ValuesBrush

        column = self.config.column
        shown = Selection(brushes=(("shown", ValuesBrush(column=column, values=tuple(values))),))

        def count(chosen: Any) -> np.ndarray:
            counted = chosen.with_selection(shown).selected().value_counts(column, top=len(values))
            by_value = dict(zip(counted.values, np.asarray(counted.counts, dtype=np.int64)))
            out = [int(by_value.get(v, 0)) for v in values]
            if other:
                every = chosen.value_counts(column, top=1)
                out.append(int(np.sum(every.counts)) + int(every.other) - sum(out))
            return np.asarray(out, dtype=np.int64)

        return selection_answer(view, count)

    # -- rendering ----------------------------------------------------------------------

    def render(self, view: Any) -> Any:
        """A caption and a Bokeh chart; an Alert when there is nothing to draw."""
        try:
            drawn = self.data(view)
        except (NothingToShow, QueryError) as exc:
            return problem_message(exc, f"Histogram of {markdown_code(self.config.column)}")
        if isinstance(drawn, Bars):
            return captioned_chart(self._bars_caption(drawn), self._bars_figure(drawn, view))
        return captioned_chart(self._bins_caption(drawn), self._bins_figure(drawn, view))

    def _bins_caption(self, drawn: BinnedValues) -> str:
        n = len(drawn.counts)
        widths = np.diff(drawn.edges)
        width = format_number(float(widths[0])) if n else "0"
        text = (
            f"{format_count(drawn.counts.sum())} values of {markdown_code(drawn.column)} in {n} "
            f"bin{'s' if n != 1 else ''} of width {width}"
        )
        if drawn.group is not None:
            text += f" (group {markdown_code(drawn.group)})"
        elif drawn.groups is not None:
            text += f" (all {len(drawn.groups)} groups together)"
        lost = values_left_out(drawn.nulls, drawn.nonfinite, drawn.outside)
        return _with_selected(f"{text}; {lost}" if lost else text, drawn.selected)

    def _bars_caption(self, drawn: Bars) -> str:
        shown = len(drawn.labels) - (1 if drawn.other else 0)
        text = (
            f"{format_count(drawn.counts.sum())} rows of {markdown_code(drawn.column)}: "
            f"the {shown} most frequent value{'s' if shown != 1 else ''}"
        )
        if drawn.other:
            text += f", {format_count(drawn.other)} rows with other values in {OTHER}"
        lost = left_out({"null": drawn.nulls})
        return _with_selected(f"{text}; {lost}" if lost else text, drawn.selected)

    def _bins_figure(self, drawn: BinnedValues, view: Any) -> Any:
        cfg = self.config
        bottom, top = bar_span(drawn.values, cfg.log_y)
        chosen = drawn.selected is not None
        fig = bins_figure(drawn.column, density=cfg.density, log_y=cfg.log_y, height=320)
        add_bin_quads(
            fig,
            drawn.edges,
            bottom,
            top,
            drawn.counts,
            drawn.values,
            "bins",
            fill_color=BAR_COLOR,
            fill_alpha=DIMMED if chosen else 1.0,
            line_color="white",
        )
        picked = self._selected_quads(drawn)
        add_bin_quads(
            fig,
            drawn.edges,
            *(picked[k] for k in ("bottom", "top", "count", "value")),
            "selected",
            fill_color=SELECTED_COLOR,
            line_color="white",
            visible=chosen,
        )
        if drawn.groups is None:  # rows of a grouped view are groups: nothing to brush
            edges = drawn.edges
            brush_bins(fig, "bins", lambda at: view.select(range_of_bins(drawn.column, edges, at)))
        return fig

    def _selected_quads(self, drawn: BinnedValues) -> dict[str, Any]:
        """The columns of the selected series' source: the selected rows' counts over the
        full bins (zero-height bars without a selection, hidden until one comes)."""
        cfg = self.config
        bottom, _ = bar_span(drawn.values, cfg.log_y)
        counts = drawn.selected if drawn.selected is not None else np.zeros_like(drawn.counts)
        values = heights(counts, drawn.edges, cfg.density, int(drawn.counts.sum()))
        low, high = bar_span(values, cfg.log_y)
        return quad_data(drawn.edges, np.minimum(bottom, low), high, counts, values)

    def _bars_figure(self, drawn: Bars, view: Any) -> Any:
        from bokeh.models import ColumnDataSource, TapTool
        from bokeh.plotting import figure

        cfg = self.config
        values = drawn.values
        bottom, top = bar_span(values, cfg.log_y)
        total = int(drawn.counts.sum())
        source = ColumnDataSource(
            {
                "label": drawn.labels,
                "bottom": bottom,
                "top": top,
                "count": drawn.counts,
                "share": drawn.counts / total,
                "value": values,
            },
            name="bars",
        )
        fig = figure(
            x_range=drawn.labels,
            height=320,
            sizing_mode="stretch_width",
            y_axis_type="log" if cfg.log_y else "linear",
            x_axis_label=drawn.column,
            y_axis_label="share of rows" if cfg.density else "count",
            tools="hover,save,reset",
            tooltips=[("value", "@label"), ("count", "@count{0,0}"), ("share", "@share{0.0%}")],
            toolbar_location="right",
        )
        chosen = drawn.selected is not None
        bars = fig.vbar(
            x="label",
            width=0.8,
            bottom="bottom",
            top="top",
            source=source,
            fill_color=BAR_COLOR,
            fill_alpha=DIMMED if chosen else 1.0,
            line_color="white",
            name="bars",
        )
        self._selected_vbar(fig, drawn, total)
        fig.add_tools(TapTool(renderers=[bars], behavior="select"))
        keys = drawn.keys
        source.selected.on_change(
            "indices", lambda _a, _o, new: view.select(_values_brush(drawn.column, keys, new))
        )
        fig.xaxis.major_label_orientation = 0.8 if len(drawn.labels) > 8 else 0
        if not cfg.log_y:
            fig.y_range.start = 0
        return fig

    def _selected_vbar(self, fig: Any, drawn: Bars, total: int) -> None:
        """The selected rows' count of each bar, drawn narrower over the bar of all rows
        (zero-height bars without a selection, hidden until one comes)."""
        from bokeh.models import ColumnDataSource

        source = ColumnDataSource(self._selected_bars_data(drawn, total), name="selected")
        fig.vbar(
            x="label",
            width=0.5,
            bottom="bottom",
            top="top",
            source=source,
            fill_color=SELECTED_COLOR,
            line_color="white",
            name="selected",
            visible=drawn.selected is not None,
        )

    def _selected_bars_data(self, drawn: Bars, total: int) -> dict[str, Any]:
        """The columns of the selected bars' source: label, bottom, top and count."""
        counts = drawn.selected if drawn.selected is not None else np.zeros_like(drawn.counts)
        values = counts / total if self.config.density else counts.astype(float)
        bottom, top = bar_span(values, self.config.log_y)
        return {"label": drawn.labels, "bottom": bottom, "top": top, "count": counts}

    # -- following a new selection in place ----------------------------------------------

    def follow_selection(self, shown: Any, view: Any) -> Callable[[], None] | None:
        """The selected series of ``view``'s new selection, asked of the engine (the full
        series comes from its answers kept), drawn into the chart ``render`` returned: the
        ``"selected"`` source's data, its visibility, the full series dimmed and the
        caption; the range dragged or bars clicked here stay while their brush stands."""
        following = chart_to_follow(shown, lambda: self.data(view))
        if following is None:
            return None  # drawn again: the card shows why
        caption, fig, drawn = following
        if isinstance(drawn, Bars):
            name, text = "bars", self._bars_caption(drawn)
            data = self._selected_bars_data(drawn, int(drawn.counts.sum()))
            keys = drawn.keys

            def brush_of(at: list[int]) -> Any:
                return _values_brush(drawn.column, keys, at)

        else:
            name, text, data = "bins", self._bins_caption(drawn), self._selected_quads(drawn)

            def brush_of(at: list[int]) -> Any:
                return range_of_bins(drawn.column, drawn.edges, at)

        full, chosen = renderer_named(fig, name), renderer_named(fig, "selected")
        if full is None or chosen is None:
            return None

        def show() -> None:
            chosen.data_source.data = data
            chosen.visible = drawn.selected is not None
            full.glyph.fill_alpha = DIMMED if drawn.selected is not None else 1.0
            keep_drawn_brush(full.data_source, view, brush_of)
            caption.object = text

        return show


def _values_brush(column: str, keys: list[Any], indices: list[int]) -> Any:
    """The ValuesBrush of the clicked bars (the ``(other)`` bar cannot be named); None when
    no named bar is clicked (clears this panel's brush)."""
    from panels_core.query.selection import ValuesBrush

    values = tuple(keys[i] for i in sorted(indices) if keys[i] is not None)
    return ValuesBrush(column=column, values=values) if values else None


def _with_selected(text: str, selected: np.ndarray | None) -> str:
    """A caption with the selected rows' count after it (when there is a selection)."""
    if selected is None:
        return text
    return f"{text}; {format_count(int(selected.sum()))} of them selected"
