"""The sidebar's table entries: rows, columns, types, versions, and a tiny summary of each
column (a histogram of a number column, the top values of a category or boolean one).

The summaries are asked from the engine lazily: the entry shows at once with the
types, and ``fill_summaries`` computes the bars in the background lane after the
cards (``run_off_loop(after_load=True)``), so they never hold up the first screen.
Every name and value from data reaches the page through ``panels_core.escape``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

import panel as pn

from panels_core.escape import html_attr, html_text, markdown_code, markdown_text
from panels_core.query.engine import Engine
from panels_core.query.model import Query
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
    "column_summaries",
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
    (counts of ``labels``, most frequent first, ``other`` the rows outside them)."""

    kind: str
    counts: tuple[int, ...]
    labels: tuple[str, ...]
    other: int = 0


def _summary(view: View, name: str, column_type: Any) -> ColumnSummary | None:
    t = strip_optional(column_type)
    if isinstance(t, NumberType):
        hist = view.histogram(name, bins=SUMMARY_BINS)
        edges = [f"{x:.4g}" for x in hist.edges]
        labels = tuple(f"{a} to {b}" for a, b in itertools.pairwise(edges))
        return ColumnSummary("bins", tuple(int(c) for c in hist.counts), labels)
    if isinstance(t, CategoryType | BooleanType):
        top = view.value_counts(name, top=SUMMARY_TOP)
        labels = tuple("null" if v is None else str(v) for v in top.values)
        return ColumnSummary("top", tuple(int(c) for c in top.counts), labels, int(top.other))
    return None


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


def _bar(x: float, y: float, w: float, h: float, color: str, title: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{color}">'
        f"<title>{html_text(title)}</title></rect>"
    )


def summary_svg(summary: ColumnSummary) -> str:
    """A small inline SVG: a sparkline histogram, or one bar split by the top values."""
    total = sum(summary.counts) + summary.other
    bars = []
    if summary.kind == "bins":
        peak = max(summary.counts, default=0) or 1
        width = _W / max(1, len(summary.counts))
        for i, (count, label) in enumerate(zip(summary.counts, summary.labels, strict=False)):
            h = max(0.5, _H * count / peak) if count else 0
            bars.append(_bar(i * width, _H - h, width - 0.5, h, "#3b6ea5", f"{label}: {count:,}"))
    else:
        x, shades = 0.0, ("#3b6ea5", "#6b93c1", "#98b6d8", "#c2d4ea", "#dde7f3")
        for i, (count, label) in enumerate(zip(summary.counts, summary.labels, strict=False)):
            w = _W * count / (total or 1)
            bars.append(_bar(x, 0, w, _H, shades[i % len(shades)], f"{label}: {count:,}"))
            x += w
        if summary.other:
            bars.append(_bar(x, 0, _W - x, _H, "#eee", f"other values: {summary.other:,}"))
    return (
        f'<svg class="column-summary" data-kind="{html_attr(summary.kind)}" width="{_W}" '
        f'height="{_H}" viewBox="0 0 {_W} {_H}">{"".join(bars)}</svg>'
    )


def _columns_html(columns: Mapping[str, Any], summaries: Mapping[str, ColumnSummary]) -> str:
    rows = []
    for name, column_type in list(columns.items())[:MAX_COLUMNS]:
        shown = summaries.get(name)
        svg = summary_svg(shown) if shown is not None else ""
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


def fill_summaries(view: View, columns: Mapping[str, Any], pane: Any) -> None:
    """Compute the column summaries in the background lane (after the page and its
    cards load) and draw them into ``pane``; a failure leaves the types alone."""
    shown = dict(list(columns.items())[:MAX_COLUMNS])

    def apply(result: dict[str, ColumnSummary] | Failed) -> None:
        if not isinstance(result, Failed):
            pane.object = _columns_html(columns, result)

    run_off_loop(lambda: column_summaries(view, shown), apply, after_load=True)


def table_entry(engine: Engine, name: str, versions: list[str]) -> pn.viewable.Viewable:
    """One table in the sidebar: rows and columns in its title, versions, then each
    column with its type and (filled in the background) its summary."""
    try:
        view = View(engine, Query(table=name))
        table_type = view.type
        rows = view.count()
    except Exception as exc:
        return pn.pane.Alert(f"{markdown_code(name)}: {markdown_text(exc)}", alert_type="danger")
    lines, columns = _columns_of(table_type)
    if len(versions) > 1:
        lines.append("versions: " + ", ".join(markdown_code(v) for v in versions))
    pane = pn.pane.HTML(_columns_html(columns, {}), margin=(0, 8), css_classes=["column-list"])
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
