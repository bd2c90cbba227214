"""The sidebar's table entries: rows, columns, types, versions, and a tiny summary of each
column (a histogram of a number column, the top values of a category or boolean one).

The summaries are asked from the engine lazily: the entry shows at once with the
types, and ``fill_summaries`` computes the bars in the background lane after the
cards (``run_off_loop(after_load=True)``), so they never hold up the first screen.
Every name and value from data reaches the page through ``panels_core.escape``.

The bars brush the table's linked selection: the column list is a small browser
component (``SummaryBars``) that says which bar was clicked, and a click publishes
``summary_brush``'s range (a bin) or values (a top value) under the source
``sidebar:<column>`` through the workspace's ``Linking``; the same bar again clears it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import panel as pn
import param
from panel.custom import JSComponent

from panels_core.escape import html_attr, html_text, markdown_code, markdown_text
from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.query.selection import RangeBrush, ValuesBrush
from panels_core.types import (
    BooleanType,
    CategoryType,
    JoinedTableType,
    NumberType,
    describe,
    strip_optional,
)
from panels_core.view import View
from panels_core.workspace.background import Failed, run_off_loop

__all__ = [
    "SUMMARY_BINS",
    "SUMMARY_TOP",
    "ColumnSummary",
    "SummaryBars",
    "active_bars",
    "click_bar",
    "column_summaries",
    "summary_brush",
    "summary_svg",
    "table_entry",
]

SUMMARY_BINS = 12
"""Bins of a number column's sparkline histogram."""
SUMMARY_TOP = 5
"""Values of a category or boolean column's top-values bar."""
MAX_COLUMNS = 40
"""Columns an entry lists (the rest are counted)."""
_W, _H = 80, 16
_COLUMNS_HEAD = (
    '<table class="column-list" style="font-size:12px;width:100%;table-layout:fixed;'
    'overflow-wrap:anywhere"><colgroup><col style="width:38%"><col>'
    f'<col style="width:{_W + 6}px"></colgroup>'
)


@dataclasses.dataclass(frozen=True)
class ColumnSummary:
    """What a column's sparkline draws: ``"bins"`` (counts between ``edges``) or ``"top"``
    (counts of ``values``, shown as ``labels``, most frequent first, ``other`` the rows
    outside them)."""

    kind: str
    counts: tuple[int, ...]
    labels: tuple[str, ...]
    other: int = 0
    edges: tuple[float, ...] = ()
    values: tuple[Any, ...] = ()


def _summary(view: View, name: str, column_type: Any) -> ColumnSummary | None:
    t = strip_optional(column_type)
    if isinstance(t, NumberType):
        hist = view.histogram(name, bins=SUMMARY_BINS)
        edges = [f"{x:.4g}" for x in hist.edges]
        labels = tuple(f"{a} to {b}" for a, b in itertools.pairwise(edges))
        counts = tuple(int(c) for c in hist.counts)
        return ColumnSummary("bins", counts, labels, edges=tuple(float(x) for x in hist.edges))
    if isinstance(t, CategoryType | BooleanType):
        top = view.value_counts(name, top=SUMMARY_TOP)
        values = tuple(v.item() if hasattr(v, "item") else v for v in top.values)
        labels = tuple("null" if v is None else str(v) for v in values)
        counts = tuple(int(c) for c in top.counts)
        return ColumnSummary("top", counts, labels, int(top.other), values=values)
    return None


def summary_brush(column: str, summary: ColumnSummary, bar: int) -> Any:
    """The brush of a click on bar ``bar`` of ``column``'s summary: a bin's RangeBrush (the
    last bin closed, as the histogram counts it) or a top value's ValuesBrush; None for
    the "other values" bar or a bar the summary does not have."""
    if not 0 <= bar < len(summary.counts):
        return None
    if summary.kind == "bins":
        if bar + 1 >= len(summary.edges):
            return None
        low, high = summary.edges[bar], summary.edges[bar + 1]
        last = bar == len(summary.counts) - 1
        return RangeBrush(column=column, low=low, high=high, closed_high=last)
    if bar >= len(summary.values):
        return None
    return ValuesBrush(column=column, values=(summary.values[bar],))


def click_bar(linking: Any, table: str, column: str, summary: ColumnSummary, bar: int) -> None:
    """Publish the clicked bar's brush on ``table`` through the workspace's ``linking``
    (source ``sidebar:<column>``); clicking the bar that brush came from clears it."""
    brush = summary_brush(column, summary, bar)
    if brush is None:
        return
    source = f"sidebar:{column}"
    current = linking.selection(table)
    same = current is not None and current.brush_of(source) == brush
    linking.publish(table, source, None if same else brush)


def column_summaries(view: View, columns: Mapping[str, Any]) -> dict[str, ColumnSummary]:
    """The summary of every number, category and boolean column of ``columns`` that the
    engine can answer (a column it cannot is left out)."""
    found = {}
    for name, column_type in columns.items():
        try:
            summary = _summary(view, name, column_type)
        except Exception:  # one column the engine cannot summarise keeps its type only
            summary = None
        if summary is not None:
            found[name] = summary
    return found


def _bar(
    x: float, y: float, w: float, h: float, color: str, title: str, bar: int = -1, on: bool = False
) -> str:
    kind = "summary-bar active" if on else "summary-bar"
    clickable = f' class="{kind}" data-bar="{bar}"' if bar >= 0 else ""
    return (
        f'<rect{clickable} x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
        f'fill="{color}"><title>{html_text(title)}</title></rect>'
    )


def summary_svg(summary: ColumnSummary, active: int | None = None) -> str:
    """A small inline SVG: a sparkline histogram, or one bar split by the top values; bar
    ``active`` (the one whose brush is in the selection) is outlined."""
    total = sum(summary.counts) + summary.other
    bars = []
    if summary.kind == "bins":
        peak = max(summary.counts, default=0) or 1
        width = _W / max(1, len(summary.counts))
        for i, (count, label) in enumerate(zip(summary.counts, summary.labels, strict=False)):
            h = max(0.5, _H * count / peak) if count else 0
            title = f"{label}: {count:,}"
            # the bar's hit area is the full column, so a short bin is easy to click
            on = i == active
            bars.append(_bar(i * width, 0, width - 0.5, _H - h, "transparent", title, i, on))
            bars.append(_bar(i * width, _H - h, width - 0.5, h, "#3b6ea5", title, i, on))
    else:
        x, shades = 0.0, ("#3b6ea5", "#6b93c1", "#98b6d8", "#c2d4ea", "#dde7f3")
        for i, (count, label) in enumerate(zip(summary.counts, summary.labels, strict=False)):
            w = _W * count / (total or 1)
            shade, title = shades[i % len(shades)], f"{label}: {count:,}"
            bars.append(_bar(x, 0, w, _H, shade, title, i, i == active))
            x += w
        if summary.other:
            bars.append(_bar(x, 0, _W - x, _H, "#eee", f"other values: {summary.other:,}"))
    return (
        f'<svg class="column-summary" data-kind="{html_attr(summary.kind)}" width="{_W}" '
        f'height="{_H}" viewBox="0 0 {_W} {_H}">{"".join(bars)}</svg>'
    )


def active_bars(selection: Any, summaries: Mapping[str, ColumnSummary]) -> dict[str, int]:
    """The bar of each column whose sidebar brush (``sidebar:<column>``) is in ``selection``."""
    found = {}
    for name, summary in summaries.items():
        brush = selection.brush_of(f"sidebar:{name}") if selection is not None else None
        bar = next(
            (i for i in range(len(summary.counts)) if summary_brush(name, summary, i) == brush),
            None,
        )
        if brush is not None and bar is not None:
            found[name] = bar
    return found


def _columns_html(
    columns: Mapping[str, Any],
    summaries: Mapping[str, ColumnSummary],
    active: Mapping[str, int] | None = None,
) -> str:
    rows = []
    for name, column_type in list(columns.items())[:MAX_COLUMNS]:
        shown = summaries.get(name)
        svg = summary_svg(shown, (active or {}).get(name)) if shown is not None else ""
        rows.append(
            f'<tr data-column="{html_attr(name)}"><td><code>{html_text(name)}</code></td>'
            f'<td style="color:#555">{html_text(describe(column_type))}</td><td>{svg}</td></tr>'
        )
    if len(columns) > MAX_COLUMNS:
        rows.append(
            f"<tr><td colspan=3>... and {len(columns) - MAX_COLUMNS} more columns</td></tr>"
        )
    return f"{_COLUMNS_HEAD}{''.join(rows)}</table>"


def _columns_of(table_type: Any) -> tuple[list[str], dict[str, Any]]:
    """The lines over the column list (a join's key) and the columns, by name."""
    if not isinstance(table_type, JoinedTableType):
        return [], dict(table_type.columns)
    left = markdown_code(f"{table_type.left_name}.{table_type.left_key}")
    right = markdown_code(f"{table_type.right_name}.{table_type.right_key}")
    columns = {
        f"{side}.{c}": t
        for side, tt in (
            (table_type.left_name, table_type.left),
            (table_type.right_name, table_type.right),
        )
        for c, t in tt.columns.items()
    }
    return [f"joined on {left} = {right}"], columns


class SummaryBars(JSComponent):  # type: ignore[misc]
    """The column list (ready, escaped ``html``) whose summary bars say when clicked:
    ``on_click(column, bar)`` is called with the row's column and the bar's index."""

    html = param.String(default="")

    _esm = """
export function render({ model, el }) {
  const box = document.createElement("div");
  function draw() { box.innerHTML = model.html; }
  box.addEventListener("click", (event) => {
    const bar = event.target.closest("[data-bar]");
    const row = bar && bar.closest("[data-column]");
    if (row) model.send_msg({ column: row.dataset.column, bar: Number(bar.dataset.bar) });
  });
  draw();
  model.on("html", draw);
  el.appendChild(box);
}
"""
    _stylesheets = [
        ".summary-bar { cursor: pointer; } .summary-bar:hover { opacity: 0.7; }"
        " .summary-bar.active { stroke: #e8862a; stroke-width: 2; }"
    ]

    def __init__(self, columns: Mapping[str, Any], **params: Any) -> None:
        super().__init__(html=_columns_html(columns, {}), **params)
        self.columns = dict(columns)
        self.summaries: dict[str, ColumnSummary] = {}
        self.selection: Any = None
        self.on_click: Callable[[str, int], None] | None = None

    def redraw(self, summaries: Mapping[str, ColumnSummary] | None = None) -> None:
        """Draw the column list again: with new ``summaries``, the selection's bars outlined."""
        if summaries is not None:
            self.summaries = dict(summaries)
        active = active_bars(self.selection, self.summaries)
        self.html = _columns_html(self.columns, self.summaries, active)

    def follow_selection(self, selection: Any) -> None:
        """The table's selection changed: outline the bars whose brushes it holds."""
        self.selection = selection
        self.redraw()

    def _handle_msg(self, data: Any) -> None:
        """A click from the page: ``{"column": name, "bar": index}`` (anything else is
        ignored, as is a column without a summary)."""
        if not isinstance(data, dict) or self.on_click is None:
            return
        column, bar = data.get("column"), data.get("bar")
        if isinstance(column, str) and isinstance(bar, int | float) and column in self.summaries:
            self.on_click(column, int(bar))


def fill_summaries(view: View, columns: Mapping[str, Any], pane: SummaryBars) -> None:
    """Compute the column summaries in the background lane (after the page and its
    cards load) and draw them into ``pane``; a failure leaves the types alone."""
    shown = dict(list(columns.items())[:MAX_COLUMNS])

    def apply(result: dict[str, ColumnSummary] | Failed) -> None:
        if not isinstance(result, Failed):
            pane.redraw(result)

    run_off_loop(lambda: column_summaries(view, shown), apply, after_load=True)


def table_entry(
    engine: Engine, name: str, versions: list[str], linking: Any = None
) -> pn.viewable.Viewable:
    """One table in the sidebar: rows and columns in its title, versions, then each
    column with its type and (filled in the background) its summary, whose bars brush
    the table's selection through ``linking`` (the workspace's ``Linking``)."""
    try:
        view = View(engine, Query(table=name))
        table_type = view.type
        rows = view.count()
    except Exception as exc:
        return pn.pane.Alert(f"{markdown_code(name)}: {markdown_text(exc)}", alert_type="danger")
    lines, columns = _columns_of(table_type)
    if len(versions) > 1:
        lines.append("versions: " + ", ".join(markdown_code(v) for v in versions))
    pane = SummaryBars(
        columns,
        margin=(0, 8),
        sizing_mode="stretch_width",
        css_classes=["column-list"],
    )
    if linking is not None:
        pane.selection = linking.selection(name)
        pane.on_click = lambda column, bar: click_bar(
            linking, name, column, pane.summaries[column], bar
        )
        linking.watch(name, pane.follow_selection)
    if not isinstance(table_type, JoinedTableType):
        fill_summaries(view, columns, pane)
    head = [pn.pane.Markdown("\n\n".join(lines), margin=(0, 8))] if lines else []
    return pn.Card(
        *head,
        pane,
        title=html_text(f"{name} · {rows:,} rows · {len(columns)} columns"),
        collapsed=len(columns) > 12,
        sizing_mode="stretch_width",
        css_classes=["table-entry"],
    )
