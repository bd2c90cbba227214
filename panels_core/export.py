"""Reports: one panel as a pn object (``render``), and a workspace as a static report.

``render(table, "histogram", column="score")`` validates the kind and the
config (a ValueError names what is wrong) and returns a ``RenderedPanel``: a
``pn.Column`` that composes into any Panel layout, shows inline in a notebook
and saves as one offline HTML file. ``workspace_html(workspace, path)`` writes a
workspace as a report: title, tables summary, then every card (title + panel).
The HTML itself (``save_html``, ``html_text``, ``external_references``) is
``panels_core.static_html``'s, and importable from here too.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import panel as pn

from panels_core.escape import markdown_code, markdown_text
from panels_core.static_html import (
    RenderedPanel,
    external_references,
    html_text,
    report_layout,
    rows_note,
    save_html,
)
from panels_core.view import View

if TYPE_CHECKING:
    from panels_core.panel_registry import Registry

__all__ = [
    "RenderedPanel",
    "external_references",
    "html_text",
    "render",
    "report_layout",
    "save_html",
    "tables_summary",
    "workspace_html",
    "workspace_layout",
]

# ----------------------------------------------------------------------------- render


def _as_view(table_or_view: Any) -> View:
    if isinstance(table_or_view, View):
        return table_or_view
    try:
        return View.of(table_or_view)
    except Exception as exc:
        raise ValueError(
            f"render: cannot read {type(table_or_view).__name__} as a table ({exc}); pass a "
            "Table, JoinedTable, pandas DataFrame, Arrow table or a panels_core View"
        ) from exc


def _panel_class(kind: str, panels: Registry) -> Any:
    from panels_core.panel_registry import UnknownPanelError

    if not isinstance(kind, str):
        raise ValueError(f"render: the panel kind must be a string, got {kind!r}")
    try:
        return panels.get(kind)
    except UnknownPanelError as exc:
        kinds = panels.kinds()
        close = difflib.get_close_matches(kind, kinds, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else "."
        available = ", ".join(f"`{k}`" for k in kinds) or "none"
        why = f"{exc}." if kind in panels else f"unknown panel kind `{kind}`{hint}"
        raise ValueError(f"render: {why} Available panel kinds: {available}") from exc


def _checked_config(cls: Any, view: View, config: Mapping[str, Any]) -> Any:
    from pydantic import ValidationError

    from panels_core.panel import format_validation_error

    view_type = view.type
    try:
        if config:
            default: dict[str, Any] = {}
            try:
                default = cls.default_config(view_type).model_dump()
            except ValueError:
                default = {}
            return cls.validate_config({**default, **config}, view_type)
        return cls.default_config(view_type)
    except ValidationError as exc:
        fields = set(cls.config_model.model_fields)
        parts = []
        for field, message in format_validation_error(exc).items():
            if field and field not in fields:
                parts.append(f"`{field}` is not a field (fields: {', '.join(sorted(fields))})")
            else:
                parts.append(f"`{field or 'config'}`: {message}")
        message = f"render: invalid config for panel `{cls.kind}`: " + "; ".join(parts)
        raise ValueError(message) from None
    except ValueError as exc:
        raise ValueError(f"render: {exc}") from exc


def render(table_or_view: Any, kind: str, /, **config: Any) -> RenderedPanel:
    """The pn object of one panel over a table (Table, JoinedTable, pandas, Arrow) or a View.

    ``config`` fields not given take the panel's defaults for this table. An unknown
    kind or an invalid config raises ValueError naming the kind (and the available
    ones) or the field. A panel that fails while drawing shows as an error card.
    """
    from panels_core.panel_registry import registry

    cls = _panel_class(kind, registry)
    view = _as_view(table_or_view)
    checked = _checked_config(cls, view, config)
    return registry.render(kind, view, checked)


# ----------------------------------------------------------------------------- layouts


def tables_summary(engine: Any, max_columns: int = 12) -> Any:
    """A Markdown table of the engine's tables: rows, and columns with their types."""
    from panels_core.panel import columns_of
    from panels_core.query.model import Query
    from panels_core.types import describe

    lines = ["| table | rows | columns |", "|---|---:|---|"]
    for name in engine.table_names():
        try:
            query = Query(table=name)
            columns = columns_of(engine.result_type(query))
            rows = f"{engine.count(query):,}"
        except Exception as exc:
            lines.append(f"| {_cell(markdown_code(name))} | | cannot read: {markdown_text(exc)} |")
            continue
        shown = [
            f"{markdown_code(c)} {markdown_text(describe(t))}"
            for c, t in list(columns.items())[:max_columns]
        ]
        if len(columns) > max_columns:
            shown.append(f"... {len(columns) - max_columns} more ({len(columns)} in all)")
        lines.append(f"| {_cell(markdown_code(name))} | {rows} | {_cell(', '.join(shown))} |")
    return pn.pane.Markdown("\n".join(lines), sizing_mode="stretch_width", margin=(0, 10))


def _cell(markdown: str) -> str:
    """Markdown (escaped already) as one GFM table cell: its pipes (in code spans too) escaped."""
    return markdown.replace("|", "\\|").replace("\n", " ")


def _card_parts(workspace: Any, spec: Any) -> pn.Column:
    """One card for the report: its title, the panel's title, and a fresh rendering."""
    from panels_core.panel_registry import PLUGIN_FAULTS, error_card, registry
    from panels_core.workspace.background import run_with_deadline

    panels = getattr(workspace, "panels", registry)
    view = View(workspace.engine, spec.input)
    try:
        shown_kind = panels.get(spec.kind).title or spec.kind
    except Exception:
        shown_kind = spec.kind
    try:  # a hung panel gets the render deadline, then an error card
        obj = run_with_deadline(lambda: panels.render_object(spec.kind, view, spec.config or None))
    except PLUGIN_FAULTS as exc:  # render_object isolates panels; this guards the rest
        obj = error_card(spec.kind, str(exc))
    if panels.is_plugin(spec.kind):
        obj = _buildable(obj, spec.kind, panels.status(spec.kind))
    title = spec.title or spec.input.table
    query = spec.input
    details = []
    if query.filter is not None:
        details.append(f"filter {markdown_code(_filter_text(query))}")
    if query.group_by:
        details.append("grouped by " + ", ".join(markdown_code(g) for g in query.group_by))
    if query.compare_with is not None:
        details.append(f"compared with {markdown_code(query.compare_with.table)}")
    head = f"### {markdown_text(title)} · {markdown_text(shown_kind)}"
    if details:
        head += "\n" + "; ".join(details)
    parts: list[Any] = [pn.pane.Markdown(head, margin=(0, 10))]
    notes = view.notes()
    if notes:
        parts.append(
            pn.pane.Markdown(
                "\n\n".join(f"⚠ {markdown_text(note)}" for note in notes),
                margin=(0, 10),
                css_classes=["card-notes"],
            )
        )
    row_note = rows_note(obj, view)
    if row_note is not None:
        parts.append(row_note)
    parts.append(obj)
    return pn.Column(
        *parts,
        sizing_mode="stretch_width",
        css_classes=["report-card"],
        styles={"border": "1px solid #ddd", "border-radius": "6px", "padding": "8px"},
        margin=(8, 10),
    )


def _buildable(obj: Any, kind: str, status: Any) -> Any:
    """``obj``, or an error card when Panel cannot build it into a page (a plugin's
    output that fails only there would otherwise fail the whole report)."""
    from bokeh.document import Document
    from pyviz_comms import Comm

    from panels_core.panel_registry import error_card

    try:
        pn.panel(obj).get_root(Document(), Comm())
    except Exception as exc:
        source = " ".join(x for x in (status.distribution, status.version) if x) if status else None
        return error_card(kind, f"the panel's output cannot be shown: {exc!r}", source)
    return obj


def _filter_text(query: Any) -> str:
    dumped = query.model_dump(mode="json").get("filter")
    return dumped if isinstance(dumped, str) else json.dumps(dumped)


def _cards_of(workspace: Any) -> list[Any]:
    return [card.spec for card in getattr(workspace, "cards", [])]


def workspace_layout(workspace: Any, title: str | None = None) -> pn.Column:
    """A workspace as a plain report page: title, tables summary, then each card."""
    specs = _cards_of(workspace)
    cards = [_card_parts(workspace, spec) for spec in specs]
    body: list[Any] = [
        pn.pane.Markdown("## Tables", margin=(0, 10)),
        tables_summary(workspace.engine),
        pn.pane.Markdown("## Cards", margin=(10, 10, 0, 10)),
    ]
    body += cards or [pn.pane.Alert("This workspace has no cards.", alert_type="info")]
    name = title or getattr(workspace, "title", None) or "typed-panels report"
    return report_layout(*body, title=name)


def workspace_html(workspace: Any, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write a workspace as a static report: title, tables summary, every card."""
    name = title or getattr(workspace, "title", None) or "typed-panels report"
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"workspace export: write to a .html file, got {target}")
    return save_html(workspace_layout(workspace, title=name), target, title=name)
