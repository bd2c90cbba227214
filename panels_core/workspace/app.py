"""The workspace app: a sidebar of tables and a grid of cards, each a swappable panel.

A card holds one panel over one query of one table (``workspace.cards``); the
workspace places cards in a grid, builds the first screen the panels ask for
(``default_cards``), adds, duplicates and closes cards, and saves itself as a
spec or a report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import panel as pn

from panels_core.escape import html_text, markdown_code, markdown_lines
from panels_core.panel import is_kind_name
from panels_core.panel_registry import Registry, error_card, registry
from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.query.selection import Selection
from panels_core.view import View
from panels_core.workspace.cards import (
    CARD_HEIGHT,
    CARD_STYLES,
    CardView,
    carry_config,
    compatible,
    count_text,
)
from panels_core.workspace.defaults import default_cards, latest_only, split_version
from panels_core.workspace.linking import Linking
from panels_core.workspace.querybar import query_error_text
from panels_core.workspace.saving import write_spec
from panels_core.workspace.sidebar import table_entry
from panels_core.workspace.spec import (
    CardSpec,
    LayoutSpec,
    Placement,
    TableSource,
    WorkspaceSpec,
)

__all__ = [
    "CardView",
    "Workspace",
    "carry_config",
    "compatible",
    "count_text",
    "default_cards",
]

_MIN_CARD_WIDTH = 440
"""Narrowest card cell; below ``columns`` such cells (plus the sidebar) cards stack."""

_SIDEBAR_WIDTH = 340


def _table_sources(
    tables: Mapping[str, Any], sources: Mapping[str, TableSource]
) -> dict[str, TableSource]:
    """``sources``, plus the file of every Parquet-backed table it does not name."""
    found = dict(sources)
    for name, table in tables.items():
        path = getattr(table, "parquet_path", None)
        if name not in found and path is not None:
            found[name] = TableSource(path=str(Path(path).resolve()))
    return found


class Workspace(pn.viewable.Viewer):
    """Tables and the cards over them, served with ``panels serve`` or shown inline.

    ``Workspace(tables={"digits": table})`` builds the default cards; pass
    ``cards`` (CardSpecs) to choose them, or use ``Workspace.from_spec``.
    Tables may be Tables, JoinedTables, pandas or Arrow tables. ``sources``
    says where each table comes from (what ``save`` writes).

    The page's Save writes only a ``*.json`` file inside ``save_root`` (default:
    the folder of ``save_path``, else the current folder); ``read_only`` leaves the
    Save controls out altogether.
    ``save`` itself, called from Python, writes wherever it is told.
    """

    def __init__(
        self,
        tables: Mapping[str, Any] | None = None,
        cards: Sequence[CardSpec] | None = None,
        *,
        engine: Engine | None = None,
        title: str = "typed-panels",
        panels: Registry = registry,
        sources: Mapping[str, TableSource] | None = None,
        layout: LayoutSpec | None = None,
        plugins: Mapping[str, str] | None = None,
        save_path: str | os.PathLike[str] | None = None,
        unavailable: Mapping[str, str] | None = None,
        save_root: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        selections: Mapping[str, Selection] | None = None,
    ) -> None:
        super().__init__()
        self.unavailable = dict(unavailable or {})
        self.engine = engine if engine is not None else Engine(dict(tables or {}))
        self.linking = Linking(self.engine, lambda: self.cards)  # linked selection per table
        self.linking.load(selections or {})
        self.title = title
        self.panels = panels
        self.sources = _table_sources(tables or {}, sources or {})
        self.layout = layout or LayoutSpec()
        self.plugins = dict(plugins or {})
        self.save_path = Path(save_path) if save_path is not None else None
        if save_root is None:  # as `panels serve`: the workspace file's folder, else this one
            save_root = self.save_path.parent if self.save_path is not None else os.getcwd()
        self.save_root = Path(save_root).resolve()
        self.read_only = read_only
        self._build_grid(list(cards) if cards is not None else default_cards(self.engine, panels))
        self._build_controls()
        self._sync_grid()
        self.linking.refresh_bar()

    def _build_grid(self, specs: Sequence[CardSpec]) -> None:
        """The grid and a card for each spec, placed as the layout says."""
        self.cards: list[CardView] = []
        self.grid = pn.Column(
            sizing_mode="stretch_width",
            css_classes=["card-grid"],
            stylesheets=[_grid_css(self.layout.columns)],
        )
        placements = {p.card: p for p in self.layout.placements}
        for i, spec in enumerate(specs):
            self.cards.append(self._card(spec, placements.get(i)))

    # -- building from and to specs ------------------------------------------------------

    @classmethod
    def from_spec(
        cls,
        spec: WorkspaceSpec | Mapping[str, Any] | str | os.PathLike[str],
        base_dir: str | os.PathLike[str] | None = None,
        *,
        stores: Sequence[str | os.PathLike[str]] = (),
        tables: Mapping[str, Any] | None = None,
        strict: bool = False,
        **options: Any,
    ) -> Workspace:
        """A workspace from a saved spec (a WorkspaceSpec, its dict, or a JSON file path).

        Paths in the spec are read relative to ``base_dir`` (default: the spec file's
        folder, else the current folder); Store references are looked up in ``stores``.
        ``tables`` adds (or overrides) tables by name. ``strict`` refuses a table with
        a cell it could read only in part (``open_table``).
        """
        from panels_core.workspace.loading import TableLoadError, absolute_source, open_source
        from panels_core.workspace.saving import read_spec

        if isinstance(spec, str | os.PathLike):
            path = Path(spec)
            base_dir = base_dir if base_dir is not None else path.parent
            options.setdefault("save_path", path)
            spec = read_spec(path)
        elif not isinstance(spec, WorkspaceSpec):
            spec = WorkspaceSpec.model_validate(dict(spec))
        given = dict(tables or {})
        opened: dict[str, Any] = {}
        sources: dict[str, TableSource] = {}
        unavailable: dict[str, str] = {}
        for name, source in spec.tables.items():
            if name in given:
                continue
            try:
                loaded = open_source(name, source, base_dir, stores, strict)
            except TableLoadError as exc:  # shown in the cards over it; saved back unchanged
                unavailable[name] = str(exc)
                sources[name] = absolute_source(source, base_dir)
                continue
            opened[name] = loaded.table
            sources[name] = loaded.source
        return cls(
            {**opened, **given},
            spec.cards,
            sources=sources,
            unavailable=unavailable,
            layout=spec.layout,
            plugins=spec.plugins,
            selections=spec.selections,
            **options,
        )

    def to_spec(self) -> WorkspaceSpec:
        """The workspace as data: tables by source, cards, layout, the plugins cards use."""
        cards = tuple(card.spec for card in self.cards)
        used: list[str] = []
        for card in cards:
            q = card.input
            for name in (q.table, *(t.table for t in (q.compare_with, q.join) if t is not None)):
                if name not in used:
                    used.append(name)
        missing = [n for n in used if n not in self.sources]
        if missing:
            shown = ", ".join(f"`{n}`" for n in missing)
            raise ValueError(
                f"cannot save: tables {shown} were given in memory and have no file; "
                "write them to Parquet or a Store and open them from there"
            )
        names = [n for n in self.sources if n in self.engine.table_names() or n in self.unavailable]
        plugins = dict(self.plugins)
        for card in cards:
            dist = self.panels.distribution_of(card.kind) if card.kind in self.panels else None
            if dist and dist != "typed-panels":
                plugins[card.kind] = dist
        placements = tuple(
            card.placement.model_copy(update={"card": i})
            for i, card in enumerate(self.cards)
            if card.placement is not None
        )
        return WorkspaceSpec(
            tables={n: self.sources[n] for n in names},
            cards=cards,
            layout=LayoutSpec(columns=self.layout.columns, placements=placements),
            plugins=plugins,
            selections=self.linking.saved(self.cards),
        )

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the spec as JSON, atomically; paths are written relative to its folder."""
        target = Path(path) if path is not None else self.save_path
        if target is None:
            raise ValueError("give a path to save the workspace to")
        write_spec(self.to_spec(), target)
        self.save_path = target
        return target

    def save_html(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write the workspace as one self-contained, offline HTML report (panels_core.export)."""
        from panels_core.export import workspace_html

        return workspace_html(self, path, title=title)

    # -- cards -----------------------------------------------------------------------------

    def _card(self, spec: CardSpec, placement: Placement | None = None) -> CardView:
        card = self._build_card(spec)
        card.placement = placement
        if isinstance(getattr(card, "wide_button", None), pn.widgets.Toggle):
            card.wide_button.value = placement is not None and placement.width > 1
            card.on_resize = self._toggle_wide
        self._place(card)
        return card

    def _build_card(self, spec: CardSpec) -> CardView:
        card_id = self.linking.new_id()  # taken even by a card that fails: ids follow order
        try:
            if not is_kind_name(spec.kind):
                raise ValueError(
                    f"the card's kind {spec.kind!r} cannot name a panel (a kind is a lower-case "
                    "name like `histogram`); fix `kind` in the workspace file, or remove the card"
                )
            q = spec.input
            for name in (q.table, *(t.table for t in (q.compare_with, q.join) if t is not None)):
                if name in self.unavailable:
                    raise ValueError(self.unavailable[name])
            return CardView(
                self.engine,
                spec,
                self.panels,
                on_duplicate=self.duplicate,
                on_close=self.close,
                linking=self.linking,
                card_id=card_id,
            )
        except Exception as exc:  # a card that cannot even be built still shows, with why
            card = CardView.__new__(CardView)
            pn.viewable.Viewer.__init__(card)
            card.spec = spec
            card._layout = pn.Column(
                error_card(
                    spec.kind,
                    query_error_text(exc),
                    title=f"Card over {markdown_code(spec.input.table)} cannot load",
                ),
                sizing_mode="stretch_width",
                css_classes=["workspace-card"],
                styles=CARD_STYLES,
                margin=8,
            )
            card.placement = None
            return card

    def _place(self, card: CardView) -> None:
        """Put the card's grid cell (its placement, else the next free cell) in its styles."""
        styles = {**CARD_STYLES, "min-width": "0"}
        p = card.placement
        if p is not None:
            styles["grid-column"] = _grid_span(p.col, min(p.width, self.layout.columns))
            styles["grid-row"] = _grid_span(p.row, p.height)
        card._layout.styles = styles
        card._layout.stylesheets = [_NARROW_CARD_CSS % _narrow_width(self.layout.columns)]

    def _toggle_wide(self, card: CardView) -> None:
        """The card's ⇔ button: span the whole row, or go back to one cell."""
        wide = card.wide_button.value
        p = card.placement
        if wide:
            card.placement = (p or Placement(card=0)).model_copy(
                update={"width": self.layout.columns, "col": 0 if p and p.col is not None else None}
            )
        elif p is not None:
            card.placement = (
                None if p.row is None and p.height == 1 else p.model_copy(update={"width": 1})
            )
        self._place(card)

    def _sync_grid(self) -> None:
        self.grid[:] = list(self.cards)
        if not self.cards:
            self.grid[:] = [pn.pane.Alert("No cards: add one from the sidebar.", alert_type="info")]

    def add_card(self, table: str, kind: str | None = None) -> CardView:
        """A new card over ``table`` with its default (or the given) panel."""
        query = Query(table=table)
        view_type = View(self.engine, query).type
        matches = compatible(self.panels, view_type)
        match = next((m for m in matches if m.kind == kind), None) if kind else None
        match = match or (matches[0] if matches else None)
        if match is None:
            lead = kind or self.panels.lead_kind()
            if lead is None:
                raise ValueError("no panel is installed: see `panels plugins`")
            spec = CardSpec(kind=lead, input=query)
        else:
            spec = CardSpec(
                kind=match.kind, input=query, config=match.config.model_dump(mode="json")
            )
        card = self._card(spec)
        self.cards.append(card)
        self._sync_grid()
        return card

    def duplicate(self, card: CardView) -> CardView:
        """A copy of ``card`` (same span) placed right after it."""
        p = card.placement
        span = None if p is None else Placement(card=0, width=p.width, height=p.height)
        copy = self._card(card.spec, span)
        self.cards.insert(self.cards.index(card) + 1, copy)
        self._sync_grid()
        return copy

    def close(self, card: CardView) -> None:
        """Remove ``card``."""
        if card in self.cards:
            self.cards.remove(card)
            self._sync_grid()
            self.linking.card_closed(card)

    # -- page ----------------------------------------------------------------------------

    def _build_controls(self) -> None:
        names = self.engine.table_names()
        self.add_table = pn.widgets.Select(
            label="Table",
            options=names,
            value=names[0] if names else None,
            sizing_mode="stretch_width",
            css_classes=["add-table"],
        )
        self.add_button = pn.widgets.Button(
            label="Add card",
            color="primary",
            sizing_mode="stretch_width",
            css_classes=["add-card"],
        )
        self.save_input = pn.widgets.TextInput(
            label="Save to",
            value=self._shown_save_path(),
            sizing_mode="stretch_width",
            css_classes=["save-path"],
        )
        self.save_button = pn.widgets.Button(
            label="Save",
            color="success",
            sizing_mode="stretch_width",
            css_classes=["save-workspace"],
        )
        self.save_status = pn.pane.HTML("", css_classes=["save-status"], margin=(0, 10))
        self.add_button.on_click(self._add_clicked)
        self.save_button.on_click(self._save_clicked)

    def _add_clicked(self, _event: Any) -> None:
        if self.add_table.value:
            try:
                self.add_card(self.add_table.value)
            except Exception as exc:
                self._status("Cannot add a card:", str(exc))

    def _status(self, lead: str, text: str) -> None:
        """Show ``lead`` (bold) and ``text`` (plain text, never markup) under the Save button."""
        self.save_status.object = f"<b>{html_text(lead)}</b> {html_text(text)}"

    def _shown_save_path(self) -> str:
        """The Save box's first value: the workspace file, relative to the save folder."""
        if self.save_path is None:
            return "workspace.json"
        path = Path(os.path.abspath(self.save_path))
        return str(path.relative_to(self.save_root)) if path.is_relative_to(self.save_root) else ""

    def _save_clicked(self, _event: Any) -> None:
        """The page's Save: only a .json file inside ``save_root``, never when read-only."""
        if self.read_only:
            self._status("Not saved:", "this workspace is served read-only")
            return
        try:
            path = write_spec(self.to_spec(), self.save_input.value, root=self.save_root)
        except Exception as exc:  # refused (SaveRefused), or the disk said no
            self._status("Not saved:", str(exc))
            return
        self.save_path = path
        self._status("Saved", f"{len(self.cards)} cards to {path}")

    def sidebar(self) -> pn.viewable.Viewable:
        """Add card, save, and the tables: rows, columns and their types, versions."""
        names = self.engine.table_names()
        versions: dict[str, list[str]] = {}
        for name in names:
            split = split_version(name)
            if split is not None:
                versions.setdefault(split[0], []).append(name)
        entries = []
        for name in latest_only(names):
            split = split_version(name)
            entries.append(
                table_entry(
                    self.engine,
                    name,
                    versions.get(split[0], []) if split else [],
                    self.linking,
                )
            )
        entries += [
            pn.pane.Alert(
                f"{markdown_code(name)} cannot be opened: {markdown_lines(why)}",
                alert_type="danger",
            )
            for name, why in self.unavailable.items()
        ]
        return pn.Column(
            pn.pane.Markdown("### Add a card", margin=(0, 10)),
            self.add_table,
            self.add_button,
            *self._save_controls(),
            pn.pane.Markdown("### Tables", margin=(10, 10, 0, 10)),
            *entries,
            sizing_mode="stretch_width",
            css_classes=["workspace-sidebar"],
        )

    def _save_controls(self) -> list[pn.viewable.Viewable]:
        """The sidebar's Save area; only its status line (add-card errors) when read-only."""
        if self.read_only:
            return [self.save_status]
        return [
            pn.pane.Markdown("### Save", margin=(10, 10, 0, 10)),
            self.save_input,
            self.save_button,
            self.save_status,
        ]

    def main(self) -> pn.viewable.Viewable:
        """The selection bar over the cards, in a grid."""
        return pn.Column(self.linking.bar, self.grid, sizing_mode="stretch_width")

    def template(self) -> pn.template.BaseTemplate:
        """The served page: sidebar of tables, cards in the main area."""
        pn.extension("tabulator")
        return pn.template.BootstrapTemplate(
            title=self.title,
            sidebar=[self.sidebar()],
            main=[self.main()],
            sidebar_width=_SIDEBAR_WIDTH,
            header_background="#3b6ea5",
        )

    def servable(self, title: str | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Serve this workspace's page with ``panel serve app.py``."""
        return self.template().servable(title=title or self.title, **kwargs)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(
            pn.Column(self.sidebar(), width=330), self.main(), sizing_mode="stretch_width"
        )


_NARROW_CARD_CSS = """
@media (max-width: %dpx) {
  :host { grid-column: auto !important; grid-row: auto !important; }
}
"""


def _narrow_width(columns: int) -> int:
    """Widest screen (px) on which ``columns`` cards do not fit side by side."""
    return _SIDEBAR_WIDTH + columns * (_MIN_CARD_WIDTH + 16)


def _grid_span(start: int | None, span: int) -> str:
    """A CSS grid-column/grid-row value: from cell ``start`` (0-based; None: flow) over ``span``."""
    return f"span {span}" if start is None else f"{start + 1} / span {span}"


def _grid_css(columns: int) -> str:
    """The card grid: ``columns`` equal cells per row, one per row on narrow screens."""
    narrow = _narrow_width(columns)
    return f"""
:host {{
  display: grid !important;
  grid-template-columns: repeat({columns}, minmax(0, 1fr));
  grid-auto-flow: row dense;
  grid-auto-rows: {CARD_HEIGHT}px;
  column-gap: 4px;
}}
@media (max-width: {narrow}px) {{
  :host {{ grid-template-columns: minmax(0, 1fr); }}
}}
"""
