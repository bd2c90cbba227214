"""The workspace app: a sidebar of tables and a grid of cards, each a swappable panel.

A card holds one panel over one query of one table; its header lists only the
panels whose input type fits that query, best first, and swapping keeps the
input and carries config fields of the same name over. An error in a card
stays in that card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import panel as pn

from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.registry import Registry, error_card, registry
from panels_core.types import JoinedTableType, describe
from panels_core.view import View
from panels_core.workspace.spec import CardSpec

__all__ = ["CardView", "Workspace", "default_cards"]


def _latest_only(names: Sequence[str]) -> list[str]:
    """Table names without the older versions of a Store entry (``preds:v0`` when ``preds:v1``)."""
    latest: dict[str, tuple[int, str]] = {}
    plain = []
    for name in names:
        base, _, version = name.rpartition(":")
        if base and version.startswith("v") and version[1:].isdigit():
            number = int(version[1:])
            if base not in latest or number > latest[base][0]:
                latest[base] = (number, name)
        else:
            plain.append(name)
    return [n for n in names if n in plain or n in {v for _, v in latest.values()}]


def default_cards(engine: Engine, panels: Registry = registry) -> list[CardSpec]:
    """A first card per table: its best panel, plus a table card when that is not a table."""
    cards: list[CardSpec] = []
    for name in _latest_only(engine.table_names()):
        query = Query(table=name)
        matches = panels.compatible(engine.result_type(query))
        kinds = [m.kind for m in matches]
        chosen = kinds[:1]
        if "table" in kinds and "table" not in chosen:
            chosen.append("table")
        for match in matches:
            if match.kind in chosen:
                cards.append(
                    CardSpec(
                        kind=match.kind, input=query, config=match.config.model_dump(mode="json")
                    )
                )
    return cards


class CardView(pn.viewable.Viewer):
    """One card: a header with the panel selector, and the panel's rendering below."""

    def __init__(self, engine: Engine, spec: CardSpec, panels: Registry = registry) -> None:
        super().__init__()
        self.engine = engine
        self.panels = panels
        self.spec = spec
        self.view = View(engine, spec.input)
        self.selector = pn.widgets.Select(name="Panel", width=220, css_classes=["panel-selector"])
        self.body = pn.Column(sizing_mode="stretch_width", min_height=200)
        self._refresh_options()
        self.selector.param.watch(self._on_select, "value")
        self._render()

    def _refresh_options(self) -> None:
        try:
            matches = self.panels.compatible(self.view.type)
        except Exception as exc:  # a bad query or unreadable table: shown in the card
            matches = []
            self.body.objects = [
                error_card(self.spec.kind, str(exc), title="This card cannot load")
            ]
        options = {m.panel.title or m.kind: m.kind for m in matches}
        if self.spec.kind not in options.values():
            options[self.spec.kind] = self.spec.kind
        self.selector.options = options
        self.selector.value = self.spec.kind

    def _on_select(self, event: Any) -> None:
        if event.new == self.spec.kind:
            return
        self.swap(event.new)

    def swap(self, kind: str) -> None:
        """Show another panel over the same input, keeping config fields of the same name."""
        config: dict[str, Any] = {}
        try:
            cls = self.panels.get(kind)
            default = cls.default_config(self.view.type).model_dump(mode="json")
            carried = {k: v for k, v in self.spec.config.items() if k in default}
            try:
                config = cls.validate_config({**default, **carried}, self.view.type).model_dump(
                    mode="json"
                )
            except Exception:
                config = default
        except Exception:
            config = {}
        self.spec = CardSpec(kind=kind, input=self.spec.input, config=config, title=self.spec.title)
        self._render()

    def _render(self) -> None:
        try:
            obj = self.panels.render(self.spec.kind, self.view, self.spec.config or None)
        except Exception as exc:  # registry.render isolates panels; this guards the rest
            obj = error_card(self.spec.kind, str(exc))
        self.body.objects = [obj]

    @property
    def title(self) -> str:
        """The card's title: its own, or the table it reads."""
        return self.spec.title or self.spec.input.table

    def __panel__(self) -> pn.viewable.Viewable:
        header = pn.Row(
            pn.pane.Markdown(f"### {self.title}", margin=(0, 10)),
            pn.layout.HSpacer(),
            self.selector,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            header,
            self.body,
            sizing_mode="stretch_width",
            css_classes=["workspace-card"],
            styles={"border": "1px solid #ddd", "border-radius": "6px", "padding": "8px"},
        )


class Workspace(pn.viewable.Viewer):
    """Tables and the cards over them, served with ``panels serve`` or shown inline.

    ``Workspace(tables={"digits": table})`` builds default cards; pass ``cards``
    (CardSpecs) to choose them. Tables may be Tables, JoinedTables, pandas or
    Arrow tables.
    """

    def __init__(
        self,
        tables: Mapping[str, Any] | None = None,
        cards: Sequence[CardSpec] | None = None,
        *,
        engine: Engine | None = None,
        title: str = "typed-panels",
        panels: Registry = registry,
    ) -> None:
        super().__init__()
        self.engine = engine if engine is not None else Engine(dict(tables or {}))
        self.title = title
        self.panels = panels
        specs = list(cards) if cards is not None else default_cards(self.engine, panels)
        self.cards = [CardView(self.engine, spec, panels) for spec in specs]

    def sidebar(self) -> pn.viewable.Viewable:
        """The tables: rows, columns and their types."""
        items = []
        for name in self.engine.table_names():
            try:
                query = Query(table=name)
                table_type = self.engine.result_type(query)
                rows = self.engine.count(query)
            except Exception as exc:
                items.append(pn.pane.Alert(f"`{name}`: {exc}", alert_type="danger"))
                continue
            if isinstance(table_type, JoinedTableType):
                lines = [
                    f"joined on `{table_type.left_name}.{table_type.left_key}` = "
                    f"`{table_type.right_name}.{table_type.right_key}`"
                ]
            else:
                lines = [f"- `{col}`: {describe(t)}" for col, t in table_type.columns.items()]
            items.append(
                pn.Card(
                    pn.pane.Markdown("\n".join(lines)),
                    title=f"{name} · {rows:,} rows",
                    collapsed=len(lines) > 12,
                    sizing_mode="stretch_width",
                    css_classes=["table-entry"],
                )
            )
        return pn.Column(*items, sizing_mode="stretch_width")

    def main(self) -> pn.viewable.Viewable:
        """The cards, in a grid of two columns."""
        if not self.cards:
            return pn.pane.Alert("No panel fits these tables.", alert_type="info")
        return pn.GridBox(*self.cards, ncols=2, sizing_mode="stretch_width")

    def template(self) -> pn.template.BaseTemplate:
        """The served page: sidebar of tables, cards in the main area."""
        return pn.template.FastListTemplate(
            title=self.title, sidebar=[self.sidebar()], main=[self.main()], sidebar_width=330
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(
            pn.Column(self.sidebar(), width=320), self.main(), sizing_mode="stretch_width"
        )
