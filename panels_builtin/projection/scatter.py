"""The scatter of a projection up to ``MAX_SCATTER_POINTS``: a Bokeh WebGL figure with hover
values (and thumbnails up to ``MAX_INLINE_THUMBNAILS`` rows); a mixin of ``ProjectionPlot``."""

from __future__ import annotations

from typing import Any

import numpy as np

from panels_builtin.projection.config import MAX_INLINE_THUMBNAILS, is_number
from panels_builtin.projection.inputs import thumbnails
from panels_builtin.projection.labels import OTHER_COLOUR, Labels
from panels_core import projection as proj
from panels_core.escape import tooltip_text

__all__ = ["ScatterDrawing"]


class ScatterDrawing:
    """``ProjectionPlot``'s scatter: the figure, point sizes, hover values, and a click."""

    def _scatter(self, result: proj.ProjectionResult) -> Any:
        from bokeh.models import ColumnDataSource, HoverTool, TapTool
        from bokeh.plotting import figure

        cfg = self.config
        n = result.n_kept
        data: dict[str, Any] = {
            "x": result.points[:, 0],
            "y": result.points[:, 1],
            "row": self.rows,
            "alpha": self.base_alpha(),
            "size": self._sizes(result.kept),
        }
        hover = self._hover_columns()
        for i, name in enumerate(hover):
            data[f"c{i}"] = self._hover_values(name, result.kept)
        colouring = self.colouring
        if colouring.kind == "category":
            data["colour"] = colouring.labels
        elif colouring.kind == "number":
            data["colour"] = colouring.values
        thumbs = cfg.image is not None and n <= MAX_INLINE_THUMBNAILS
        if thumbs:
            data["thumb"] = thumbnails(self.view, cfg.image, self.rows)
        source = ColumnDataSource(data, name="points")
        fig = figure(
            height=480,
            sizing_mode="stretch_width",
            output_backend="webgl",
            x_axis_label=result.axis_labels[0],
            y_axis_label=result.axis_labels[1],
            tools="pan,wheel_zoom,box_zoom,reset,save",
            toolbar_location="right",
            match_aspect=True,
        )
        kwargs = self._scatter_colours(fig)
        renderer = fig.scatter(
            "x",
            "y",
            source=source,
            size="size",
            fill_alpha="alpha",
            line_alpha="alpha",
            name="points",
            **kwargs,
        )
        fig.add_tools(
            HoverTool(renderers=[renderer], tooltips=self._tooltip(hover, thumbs)),
            TapTool(renderers=[renderer]),
        )
        self.add_select_tools(fig, [renderer])
        source.selected.on_change("indices", self._on_tap)
        self.source, self.figure = source, fig
        return fig

    def _scatter_colours(self, fig: Any) -> dict[str, Any]:
        """The scatter's colour arguments, with the legend or colour bar added to ``fig``."""
        from bokeh.models import ColorBar, Legend
        from bokeh.transform import factor_cmap, linear_cmap

        colouring = self.colouring
        kwargs: dict[str, Any] = {}
        if colouring.kind == "category":
            kwargs["color"] = factor_cmap("colour", colouring.palette, colouring.factors)
            kwargs["legend_field"] = "colour"
            fig.add_layout(Legend(title=colouring.column, click_policy="hide"), "right")
        elif colouring.kind == "number":
            finite = colouring.values[np.isfinite(colouring.values)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            mapper = linear_cmap("colour", "Viridis256", low, high, nan_color=OTHER_COLOUR)
            kwargs["color"] = mapper
            fig.add_layout(ColorBar(color_mapper=mapper.transform, title=colouring.column), "right")
        else:
            kwargs["color"] = "#4c78a8"
        return kwargs

    def _sizes(self, kept: np.ndarray) -> np.ndarray:
        base = float(self.config.point_size)
        n = int(kept.sum())
        if self.config.size_by is None:
            return np.full(n, base)
        values = np.asarray(self.view.column_numpy(self.config.size_by), dtype=np.float64)[kept]
        finite = np.isfinite(values)
        out = np.full(n, base / 2)
        if finite.any():
            lo, hi = values[finite].min(), values[finite].max()
            span = hi - lo if hi > lo else 1.0
            out[finite] = base / 2 + (values[finite] - lo) / span * base * 2
        return out

    def _hover_values(self, name: str, kept: np.ndarray) -> Any:
        raw = np.asarray(self.view.column_numpy(name))
        if is_number(self.view.type, name):
            return raw.astype(np.float64)[kept]
        return Labels.of(raw[kept]).values

    def _tooltip(self, hover: list[str], thumbs: bool) -> str:
        lines = ['<div style="font-size:12px">']
        if thumbs:
            lines.append(
                '<img src="@thumb" style="width:64px;height:64px;image-rendering:pixelated;'
                'display:block;margin-bottom:4px" alt="">'
            )
        lines.append("<div><b>row</b>: @row</div>")
        for i, name in enumerate(hover):
            fmt = "{0.[000]}" if is_number(self.view.type, name) else ""
            lines.append(f"<div><b>{tooltip_text(name)}</b>: @c{i}{fmt}</div>")
        lines.append("</div>")
        return "".join(lines)

    def _on_tap(self, attr: str, old: list[int], new: list[int]) -> None:
        if self._syncing or len(new) != 1:  # a box or lasso selects several: not a click
            return
        self.select(int(self.rows[new[0]]))
