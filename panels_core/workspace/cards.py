"""One card: a panel over one query of one table, swappable, with its gear and query bar.

A card's header lists only the panels whose input type fits its query, best
first (swapping keeps the input and carries config fields of the same name
over), a gear opening the config form, duplicate and close. It renders off the
server's event loop, and an error in a card stays in that card.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import panel as pn

from panels_core.escape import html_text, markdown_text
from panels_core.panel_registry import Registry, error_card, registry
from panels_core.query.engine import Engine
from panels_core.query.errors import PointsNotRegistered
from panels_core.query.model import Query
from panels_core.query.selection import Selection
from panels_core.view import View
from panels_core.workspace.background import Failed, run_off_loop
from panels_core.workspace.linking import (
    Linking,
    linkable,
    selection_problem,
    selection_problem_text,
)
from panels_core.workspace.querybar import QueryBar, query_error_text
from panels_core.workspace.spec import (
    CardSpec,
    Placement,
)

log = logging.getLogger(__name__)

__all__ = ["CARD_HEIGHT", "CARD_STYLES", "CardView", "carry_config", "compatible", "count_text"]

CARD_HEIGHT = 600
"""Pixels of one row of the card grid: a card is this tall (or a multiple, when it
spans rows) and its body scrolls inside it."""

CARD_STYLES = {
    "border": "1px solid #d9dde3",
    "border-radius": "8px",
    "padding": "6px 10px 10px 10px",
    "background": "white",
    "box-shadow": "0 1px 3px rgba(0, 0, 0, 0.06)",
    "overflow": "hidden",
    "height": "100%",
}
"""The look of a card's box (the workspace grid shows cards in it)."""


_TITLE_STYLES = {
    "min-width": "0",
    "overflow": "hidden",
    "white-space": "nowrap",
    "text-overflow": "ellipsis",
}
"""A long title is cut with an ellipsis, so the header's buttons stay inside the card."""

_MATCHES: OrderedDict[tuple[int, tuple[str, ...], str], list[Any]] = OrderedDict()
_MATCHES_LOCK = threading.Lock()


def compatible(panels: Registry, view_type: Any) -> list[Any]:
    """``panels.compatible(view_type)``, remembered per type for every session of the server
    (the answer depends only on the type and the installed panels)."""
    key = (id(panels), tuple(panels.kinds()), view_type.model_dump_json())
    with _MATCHES_LOCK:
        if key in _MATCHES:
            _MATCHES.move_to_end(key)
            return list(_MATCHES[key])
    found = panels.compatible(view_type)
    with _MATCHES_LOCK:
        _MATCHES[key] = found
        while len(_MATCHES) > 256:
            _MATCHES.popitem(last=False)
    return list(found)


def carry_config(
    panels: Registry, kind: str, old: Mapping[str, Any], view_type: Any
) -> dict[str, Any]:
    """The default config of ``kind`` for ``view_type`` with every field of ``old`` of the
    same name that still validates carried over."""
    cls = panels.get(kind)
    config = cls.default_config(view_type).model_dump(mode="json")
    for key, value in old.items():
        if key not in config or config[key] == value:
            continue
        try:
            checked = cls.validate_config({**config, key: value}, view_type)
        except Exception:  # this field does not fit the new panel or type: not carried
            checked = None
        if checked is not None:
            config = checked.model_dump(mode="json")
    return config


def count_text(view: View) -> str:
    """The card's row count: ``"183 of 1,797 rows"`` (with groups and comparisons named).

    A comparison names its sources as filters and cells do: ``"400 rows comparing
    0 = runs (600 rows) and 1 = runs_b (400 rows)"``.
    """
    query = view.query
    total = view.of_table(query.table).count()
    rows = view.ungrouped().count()
    if query.compare_with is not None:
        other = view.of_table(query.compare_with.table).count()
        text = (
            f"{rows:,} rows comparing 0 = {query.table} ({total:,} rows) and "
            f"1 = {query.compare_with.table} ({other:,} rows)"
        )
    else:
        text = f"{rows:,} of {total:,} rows"
    if query.group_by:
        text = f"{view.count():,} groups · {text}"
    return text


def _header_button(
    label: str,
    css_class: str,
    description: str | None = None,
    width: int = 40,
    toggle: bool = False,
) -> Any:
    """A small light button of a card's header (a Toggle when ``toggle``)."""
    options = {"label": label, "width": width, "color": "light", "margin": (4, 2)}
    if toggle:  # Panel's Toggle has no tooltip
        return pn.widgets.Toggle(css_classes=[css_class], **options)
    return pn.widgets.Button(css_classes=[css_class], description=description, **options)


def _note_line(css_class: str) -> pn.pane.HTML:
    """A hidden line of card notes (warning colour), shown when it has text."""
    return pn.pane.HTML(
        "",
        visible=False,
        css_classes=[css_class],
        margin=(0, 10),
        styles={"color": "#8a5300", "font-size": "12px"},
    )


class CardView(pn.viewable.Viewer):
    """One card: header (panel selector, gear, duplicate, close), query bar, row count, panel."""

    def __init__(
        self,
        engine: Engine,
        spec: CardSpec,
        panels: Registry = registry,
        *,
        on_duplicate: Callable[[CardView], None] | None = None,
        on_close: Callable[[CardView], None] | None = None,
        linking: Linking | None = None,
        card_id: str = "",
    ) -> None:
        super().__init__()
        self.engine = engine
        self.panels = panels
        self.spec = spec
        self.linking = linking
        self.card_id = card_id or (linking.new_id() if linking is not None else "")
        """The card's name in its table's selection (a brush's source)."""
        self.view = self._view_of(spec.input)
        self._on_duplicate = on_duplicate
        self._on_close = on_close
        self.placement: Placement | None = None
        """Where the card sits in the workspace grid (``card`` is its index when saved)."""
        self.on_resize: Callable[[CardView], None] | None = None
        self._generation = 0
        self._shown: Any = None
        """What the panel rendered, while it is shown."""
        self._build_widgets()
        self.querybar = QueryBar(engine, spec.input, on_change=self.set_query)
        self._refresh_options()
        self._show_notes()
        self.selector.param.watch(self._on_select, "value")
        self.gear.on_click(self._toggle_settings)
        self.duplicate_button.on_click(lambda _e: self._on_duplicate and self._on_duplicate(self))
        self.close_button.on_click(lambda _e: self._on_close and self._on_close(self))
        self.wide_button.param.watch(lambda e: self.on_resize and self.on_resize(self), "value")
        self._layout = self._build_layout()
        self._render(initial=True)

    def _build_widgets(self) -> None:
        """The header's buttons and selector, the row count, the settings and the body."""
        self.selector = pn.widgets.Select(
            label="", width=170, css_classes=["panel-selector"], margin=(4, 5)
        )
        self.gear = _header_button("⚙", "card-gear", "Settings")
        self.duplicate_button = _header_button("Copy", "card-duplicate", "Duplicate this card", 60)
        self.wide_button = _header_button("⇔", "card-wide", toggle=True)
        self.close_button = _header_button("✕", "card-close", "Close this card")
        self.count = pn.pane.HTML(
            "",
            css_classes=["row-count"],
            margin=(0, 10),
            styles={"color": "#555", "font-size": "13px"},
        )
        self.notes = _note_line("card-notes")
        self.selection_note = _note_line("card-selection-note")
        self.settings = pn.Column(
            visible=False,
            css_classes=["card-settings"],
            sizing_mode="stretch_width",
            styles={"background": "#f6f8fa", "border-radius": "6px"},
        )
        self.body = pn.Column(
            sizing_mode="stretch_width",
            css_classes=["card-body"],
            styles={"flex": "1 1 0", "min-height": "0", "overflow": "auto"},
        )
        linking = self.linking
        self.selection_row = linking.card_controls(self) if linking else pn.Row(visible=False)

    def _build_layout(self) -> Any:
        """The title and header buttons over the query bar, row count, settings and body."""
        self.title_pane = pn.pane.Markdown(
            f"#### {markdown_text(self.title)}",
            margin=(0, 8),
            css_classes=["card-title"],
            sizing_mode="stretch_width",
            styles=_TITLE_STYLES,
        )
        return pn.Column(
            pn.Row(
                self.title_pane,
                self.selector,
                self.gear,
                self.wide_button,
                self.duplicate_button,
                self.close_button,
                sizing_mode="stretch_width",
            ),
            self.querybar,
            self.count,
            self.notes,
            self.selection_row,
            self.selection_note,
            self.settings,
            self.body,
            sizing_mode="stretch_width",
            css_classes=self._classes(),
            styles=CARD_STYLES,
            margin=8,
        )

    def _classes(self) -> list[str]:
        return ["workspace-card", f"card-kind-{self.spec.kind}"]

    # -- state -----------------------------------------------------------------------

    @property
    def title(self) -> str:
        """The card's title: its own, or the table it reads."""
        return self.spec.title or self.spec.input.table

    @property
    def options(self) -> list[str]:
        """The panel kinds the selector offers, in order."""
        return list(self.selector.options.values())

    def _installed(self, kind: str) -> bool:
        try:
            self.panels.get(kind)
        except Exception:
            return False
        return True

    def _refresh_options(self) -> None:
        try:
            matches = compatible(self.panels, self.view.type)
        except Exception:  # the render shows the error
            matches = []
        options = {m.panel.title or m.kind: m.kind for m in matches}
        if self.spec.kind not in options.values():
            label = (
                self.spec.kind
                if self._installed(self.spec.kind)
                else (f"{self.spec.kind} (not installed)")
            )
            options[label] = self.spec.kind
        self._syncing = True
        try:
            self.selector.options = options
            self.selector.value = self.spec.kind
        finally:
            self._syncing = False
        self.gear.disabled = not self._installed(self.spec.kind)
        if hasattr(self, "_layout"):
            self._layout.css_classes = self._classes()

    def _show_notes(self) -> None:
        """The notes of the card's tables (cells read in part), over the panel."""
        try:
            notes = self.view.notes()
        except Exception:  # a table gone from the engine: the render says so
            notes = []
        self.notes.object = "<br>".join(f"⚠ {html_text(note)}" for note in notes)
        self.notes.visible = bool(notes)

    def _on_select(self, event: Any) -> None:
        if getattr(self, "_syncing", False) or event.new == self.spec.kind:
            return
        self.swap(event.new)

    def swap(self, kind: str) -> None:
        """Show another panel over the same input, keeping config fields of the same name."""
        try:
            config = carry_config(self.panels, kind, self.spec.config, self.view.type)
        except Exception:
            config = {}
        self.spec = CardSpec(kind=kind, input=self.spec.input, config=config, title=self.spec.title)
        self._refresh_options()
        self._rebuild_settings()
        self._render()

    def _view_of(self, query: Query) -> View:
        """The view of ``query``, following its table's selection in a workspace."""
        view = View(self.engine, query)
        if self.linking is None or not linkable(query):
            return view
        sink = self.linking.sink(query.table, self.card_id)
        return view.with_selection(self.linking.selection(query.table)).with_select_sink(sink)

    def follow_selection(self, selection: Selection | None) -> None:
        """Show the table's new selection: the panel's ``follow_selection(shown, view)``
        hook draws it into what is shown (asked off the event loop, applied on it: the
        table keeps its page and ticks, a histogram its dragged range, the projection its
        zoom), or, when the hook returns None or nothing is shown yet, the panel renders
        again."""
        self.view = self.view.with_selection(selection)
        self.selection_row.visible = selection is not None
        if self._shown is None or self.body.loading:
            self._render()
        else:
            self._follow(self._shown)

    def _follow(self, shown: Any) -> None:
        self._generation += 1
        generation, view = self._generation, self.view
        kind, config = self.spec.kind, self.spec.config

        def work() -> tuple[Callable[[], None] | None, Any]:
            if generation != self._generation:  # a newer selection came: it follows that
                return None, None
            cls = self.panels.get(kind)
            checked = cls.validate_config(config, view.type) if config else None
            panel = cls(checked if checked is not None else cls.default_config(view.type))
            return panel.follow_selection(shown, view), selection_problem(view)

        def apply(result: Any) -> None:
            if generation != self._generation or shown is not self._shown:
                return
            show, problem = (None, None) if isinstance(result, Failed) else result
            if show is None:  # the panel cannot follow (or failed to): it renders again
                self._render()
                return
            try:
                show()
            except Exception as exc:  # a plugin's models would not take it: render again
                log.warning("card %s could not follow the selection: %r", self.card_id, exc)
                self._render()
                return
            self._show_selection_problem(problem)

        run_off_loop(work, apply, plugin=self.panels.is_plugin(kind))

    def set_filter(self, text: str) -> None:
        """Put ``text`` in the query bar's filter box and apply it, as if typed there."""
        self.querybar.filter_input.value = text

    def set_query(self, query: Query) -> None:
        """Use a new query: re-derive the type, keep the panel if it still fits, else the best."""
        view = self._view_of(query)
        try:
            matches = compatible(self.panels, view.type)
        except Exception as exc:
            self._show_error(query_error_text(exc))
            return
        kinds = [m.kind for m in matches]
        kind = self.spec.kind
        if self._installed(kind) and kind not in kinds and kinds:
            kind = kinds[0]
        config = dict(self.spec.config)
        if self._installed(kind):
            try:
                config = carry_config(self.panels, kind, self.spec.config, view.type)
            except Exception:
                config = {}
        self.view = view
        self.spec = CardSpec(kind=kind, input=query, config=config, title=self.spec.title)
        self._show_notes()
        self._refresh_options()
        self._rebuild_settings()
        self._render()

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Use a new (already valid) config and re-render."""
        self.spec = self.spec.model_copy(update={"config": dict(config)})
        self._render()

    # -- settings (the gear) -------------------------------------------------------------

    def _toggle_settings(self, _event: Any = None) -> None:
        self.settings.visible = not self.settings.visible
        self._rebuild_settings()

    def _rebuild_settings(self) -> None:
        if not self.settings.visible:
            self.settings[:] = []
            return
        from panels_core.forms import config_form

        try:
            cls = self.panels.get(self.spec.kind)
            form = config_form(
                cls,
                self.view.type,
                self.spec.config or None,
                on_change=lambda c: self.set_config(c.model_dump(mode="json")),
            )
        except Exception as exc:
            text = f"No settings: {markdown_text(exc)}"
            self.settings[:] = [pn.pane.Alert(text, alert_type="warning")]
            return
        self.form = form
        self.settings[:] = [form]

    # -- rendering -----------------------------------------------------------------------

    def _show_error(self, message: str) -> None:
        self.body.loading = False
        self.body[:] = [error_card(self.spec.kind, message, title="This card cannot load")]

    def _render(self, *, initial: bool = False) -> None:
        self._generation += 1
        generation = self._generation
        kind, config, view = self.spec.kind, self.spec.config, self.view
        self._shown = None

        def work() -> tuple[Any, str, Any]:
            obj = self.panels.render_object(kind, view, config or None)
            return obj, count_text(view), selection_problem(view)

        def apply(result: tuple[Any, str] | Failed) -> None:
            if generation != self._generation:  # a newer render superseded this one
                return
            self.body.loading = False
            if isinstance(result, Failed):
                self.count.object = ""
                self._show_error(query_error_text(result.error))
                return
            obj, text, problem = result
            self.count.object = html_text(text)
            self._show_selection_problem(problem)
            try:
                self.body[:] = [obj]
                self._shown = obj
            except Exception as exc:  # Panel could not build what the panel returned
                self._show_error(f"the panel's output cannot be shown: {exc!r}")

        self.body.loading = True
        run_off_loop(work, apply, after_load=initial, plugin=self.panels.is_plugin(kind))

    def _show_selection_problem(self, problem: Any) -> None:
        """Say in the card why its table's selection is not shown (escaped text); wait for
        the points of a region brush that no projection has registered yet."""
        self.selection_note.object = (
            f"⚠ {html_text(selection_problem_text(problem))}" if problem else ""
        )
        self.selection_note.visible = problem is not None
        if isinstance(problem, PointsNotRegistered) and self.linking is not None:
            self.linking.wait_for_points(problem.key)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
