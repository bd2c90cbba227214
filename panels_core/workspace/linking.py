"""Linked selection in a workspace: one selection per table, and the cards that follow it.

A card's view sends its panel's brush (``view.select``) here under the card's id;
the table's ``Selection`` changes and every card over that table follows it
(``CardView.follow_selection``: in place through its panel's hook, or rendered
again, off the event loop either way). The selection bar above the
grid says how many rows are selected ("1,204 of 60,000 rows selected", by
category when the table has a category column) and holds AND/OR, Clear and
"Filter every card"; each card has "Clear mine" and "Filter to selection".
A selection is saved with the workspace, its brushes named by card position.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import panel as pn

from panels_core.escape import html_text
from panels_core.query.engine import Engine
from panels_core.query.errors import PointsNotRegistered, QueryError
from panels_core.query.expr import Binary
from panels_core.query.model import Query
from panels_core.query.selection import RegionBrush, Selection
from panels_core.types import CategoryType, TableType, strip_optional
from panels_core.view import View
from panels_core.workspace.background import Failed, run_off_loop

__all__ = [
    "Linking",
    "filtered_to",
    "linkable",
    "selection_problem",
    "selection_problem_text",
    "selection_summary",
]

_BREAKDOWN = 5
"""Categories the summary line names (the most selected first)."""


def linkable(query: Query) -> bool:
    """Whether a card over ``query`` follows its table's selection (one plain table)."""
    return query.compare_with is None and query.join is None


def filtered_to(query: Query, selection: Selection | None) -> Query:
    """``query`` with the selection's predicate added to its filter (AND)."""
    chosen = None if selection is None else selection.as_filter()
    if chosen is None:
        return query
    own = query.filter
    narrowed = chosen if own is None else Binary(op="and", left=own, right=chosen)
    return Query.model_validate({**query.model_dump(), "filter": narrowed.to_text()})


def selection_problem(view: View) -> QueryError | None:
    """Why the engine cannot evaluate ``view``'s selection (a region over points no
    projection has registered yet, a column the view does not have); None when it can
    or there is no selection."""
    if view.selection is None or view.selection.is_empty:
        return None
    try:
        view.selected().count()
    except QueryError as exc:
        return exc
    return None


def selection_problem_text(error: QueryError) -> str:
    """What a card or the selection bar says about ``selection_problem`` (plain text)."""
    if isinstance(error, PointsNotRegistered):
        return (
            "the selection waits for the projection that draws its points (it shows them "
            "once drawn); until then every row is shown"
        )
    return f"the selection is left out: {error}"


def selection_summary(engine: Engine, table: str, selection: Selection) -> str:
    """``"1,204 of 60,000 rows selected"``, then the selected rows of the first category
    column by value (``" · label: cat 700, dog 504"``)."""
    view = View(engine, Query(table=table)).with_selection(selection)
    selected = view.selected()
    text = f"{selected.count():,} of {view.count():,} rows selected"
    table_type = view.type
    columns = table_type.columns if isinstance(table_type, TableType) else {}
    category = next(
        (c for c, t in columns.items() if isinstance(strip_optional(t), CategoryType)), None
    )
    if category is None:
        return text
    counts = selected.value_counts(category, top=_BREAKDOWN)
    parts = [f"{value} {count:,}" for value, count in zip(counts.values, counts.counts.tolist())]
    if counts.other:
        parts.append(f"other {counts.other:,}")
    if counts.nulls:
        parts.append(f"null {counts.nulls:,}")
    return f"{text} · {category}: {', '.join(parts)}" if parts else text


class Linking:
    """The per-table selections of one workspace and the cards that follow them.

    ``cards()`` gives the workspace's cards (objects with ``card_id``, ``spec``,
    ``follow_selection`` and ``set_filter``).
    """

    def __init__(self, engine: Engine, cards: Callable[[], list[Any]]) -> None:
        self.engine = engine
        self.cards = cards
        self.selections: dict[str, Selection] = {}
        self.bar = pn.Column(sizing_mode="stretch_width", css_classes=["selection-bar"])
        self._ids = itertools.count(0)
        self._generation = 0
        self.waiting: set[str] = set()
        """Keys of points a selection needs and no projection has registered yet."""
        self.watchers: list[tuple[str, Callable[[Selection | None], None]]] = []

    # -- state ---------------------------------------------------------------------------

    def new_id(self) -> str:
        """A card id never used before in this workspace (``card-0``, ``card-1``, ...)."""
        return f"card-{next(self._ids)}"

    def selection(self, table: str) -> Selection | None:
        """The table's selection (None when nothing is selected)."""
        return self.selections.get(table)

    def watch(self, table: str, follow: Callable[[Selection | None], None]) -> None:
        """Call ``follow(selection)`` whenever ``table``'s selection changes (what is not a
        card follows it with: the sidebar's summary bars)."""
        self.watchers.append((table, follow))

    def sink(self, table: str, card_id: str) -> Callable[[Any], None]:
        """What a card's view sends its brushes to."""
        return lambda brush: self.publish(table, card_id, brush)

    def publish(self, table: str, source: str, brush: Any) -> None:
        """``source``'s brush on ``table`` (None clears it); the cards follow."""
        current = self.selections.get(table) or Selection()
        self.set(table, current.with_brush(source, brush) if brush else current.without(source))

    def set_mode(self, table: str, mode: str) -> None:
        """Combine the table's brushes with ``"and"`` or ``"or"``."""
        current = self.selections.get(table) or Selection()
        self.set(table, current.model_copy(update={"mode": mode}))

    def clear(self, table: str, source: str | None = None) -> None:
        """Clear one card's brush, or (no ``source``) the table's whole selection."""
        if source is not None:
            self.publish(table, source, None)
        else:
            self.set(table, None)

    def set(self, table: str, selection: Selection | None) -> None:
        """Make ``selection`` the table's; when it changed, its cards follow it."""
        if selection is not None and selection.is_empty:
            selection = None
        if self.selections.get(table) == selection:
            return  # the same brush again: nothing to redraw
        if selection is None:
            self.selections.pop(table, None)
        else:
            self.selections[table] = selection
        for card in self.cards():
            if _table_of(card) == table:
                card.follow_selection(selection)
        self._tell_watchers(table, selection)
        self.refresh_bar()

    def _tell_watchers(self, table: str, selection: Selection | None) -> None:
        for watched, follow in self.watchers:
            if watched == table:
                follow(selection)

    def card_closed(self, card: Any) -> None:
        """A closed card's brush goes with it."""
        table = _table_of(card)
        if table is not None:
            self.clear(table, card.card_id)

    def filter_to_selection(self, table: str, card: Any = None) -> None:
        """Turn the selection into filter text: of ``card``, or (None) of every card on the
        table, whose selection is then cleared (the filters now say it)."""
        selection = self.selections.get(table)
        if selection is None or selection.is_empty:
            return
        if card is not None:
            card.set_filter(filtered_to(card.spec.input, selection).filter.to_text())
            return
        del self.selections[table]  # the cards re-render once, with their new filters
        for target in [c for c in self.cards() if _table_of(c) == table]:
            target.set_filter(filtered_to(target.spec.input, selection).filter.to_text())
        self._tell_watchers(table, None)
        self.refresh_bar()

    def wait_for_points(self, key: str) -> None:
        """Follow the selection again once points are registered under ``key`` (a
        projection still computing, or not drawn since the server started): checked
        every second while the page is open."""
        if key in self.waiting:
            return
        self.waiting.add(key)
        doc = pn.state.curdoc
        if doc is None or getattr(doc, "session_context", None) is None:
            return  # no server: ``points_arrived`` is called by whoever registers them

        def check() -> None:
            if not self.waiting:
                callback.stop()
            elif any(self.engine.has_points(k) for k in self.waiting):
                self.points_arrived()

        callback = pn.state.add_periodic_callback(check, period=1000)

    def points_arrived(self) -> None:
        """The cards and bar lines of every selection over awaited points that are now
        registered show it."""
        arrived = {k for k in self.waiting if self.engine.has_points(k)}
        if not arrived:
            return
        self.waiting -= arrived
        for table, selection in self.selections.items():
            keys = {b.points for _, b in selection.brushes if isinstance(b, RegionBrush)}
            if keys & arrived:
                for card in [c for c in self.cards() if _table_of(c) == table]:
                    card.follow_selection(selection)
        self.refresh_bar()

    # -- saving ----------------------------------------------------------------------------

    def saved(self, cards: list[Any]) -> dict[str, Selection]:
        """The selections to save: each brush named by its card's position."""
        positions = {getattr(c, "card_id", None): str(i) for i, c in enumerate(cards)}
        out = {}
        for table, selection in self.selections.items():
            brushes = tuple((positions.get(s, s), b) for s, b in selection.brushes)
            out[table] = selection.model_copy(update={"brushes": brushes})
        return out

    def load(self, saved: Mapping[str, Selection]) -> None:
        """Saved selections, before the cards are built (card ``i`` gets id ``card-i``)."""
        for table, selection in saved.items():
            brushes = tuple((f"card-{s}" if s.isdigit() else s, b) for s, b in selection.brushes)
            self.selections[table] = selection.model_copy(update={"brushes": brushes})

    # -- the bar ---------------------------------------------------------------------------

    def refresh_bar(self) -> None:
        """One line per table with a selection: summary, AND/OR, Clear, Filter every card."""
        self._generation += 1
        self.bar[:] = [self._table_line(t, s) for t, s in self.selections.items()]

    def _table_line(self, table: str, selection: Selection) -> Any:
        summary = pn.pane.HTML(
            html_text(f"{table}: counting the selected rows…"),
            css_classes=["selection-summary"],
            margin=(6, 10),
        )
        mode = pn.widgets.RadioButtonGroup(
            options={"AND": "and", "OR": "or"},
            value=selection.mode,
            css_classes=["selection-mode"],
            color="light",
            margin=(4, 4),
        )
        clear = pn.widgets.Button(label="Clear", css_classes=["selection-clear"], margin=(4, 4))
        everywhere = pn.widgets.Button(
            label="Filter every card", css_classes=["selection-filter-all"], margin=(4, 4)
        )
        mode.param.watch(lambda e: self.set_mode(table, e.new), "value")
        clear.on_click(lambda _e: self.clear(table))
        everywhere.on_click(lambda _e: self.filter_to_selection(table))
        generation = self._generation

        def apply(result: str | Failed) -> None:
            if generation != self._generation:
                return
            if isinstance(result, str):
                text = result
            elif isinstance(result.error, QueryError):
                text = selection_problem_text(result.error)
                if isinstance(result.error, PointsNotRegistered):
                    self.wait_for_points(result.error.key)
            else:
                text = f"cannot count: {result.error}"
            summary.object = html_text(f"{table}: {text}")

        run_off_loop(lambda: selection_summary(self.engine, table, selection), apply)
        return pn.Row(summary, mode, clear, everywhere, sizing_mode="stretch_width")

    def card_controls(self, card: Any) -> Any:
        """A card's "Clear mine" and "Filter to selection" (shown while its table has a
        selection)."""
        clear = pn.widgets.Button(
            label="Clear mine", css_classes=["card-selection-clear"], margin=(2, 4)
        )
        narrow = pn.widgets.Button(
            label="Filter to selection", css_classes=["card-filter-selection"], margin=(2, 4)
        )
        clear.on_click(lambda _e: self.clear(card.spec.input.table, card.card_id))
        narrow.on_click(lambda _e: self.filter_to_selection(card.spec.input.table, card))
        table = _table_of(card)
        row = pn.Row(clear, narrow, css_classes=["card-selection"], margin=(0, 6))
        row.visible = table is not None and table in self.selections
        return row


def _table_of(card: Any) -> str | None:
    """The table a card follows the selection of (None: it follows none)."""
    spec = getattr(card, "spec", None)
    if spec is None or not hasattr(card, "follow_selection") or not linkable(spec.input):
        return None
    return spec.input.table
