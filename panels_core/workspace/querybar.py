"""The query bar of a card: filter (validated live), sort, group by, compare with.

``build_query`` turns the bar's fields into a Query and checks it against the
engine (parse errors, unknown columns, type errors), so an invalid filter never
reaches a panel; ``QueryBar`` is the widget row that calls it on every change.
The bar is one line: the filter box, a summary of what else is in effect
(``summary_text``) and a "⋯" button that opens sort, group and compare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import panel as pn
from pydantic import ValidationError

from panels_core.escape import choice_options, html_text, markdown_block
from panels_core.panel import columns_of
from panels_core.query.errors import QueryError
from panels_core.query.model import CompareWith, Query, SortKey
from panels_core.query.parse import parse_filter
from panels_core.view import View

__all__ = [
    "BOTH_FILTER",
    "NO_COMPARE",
    "NO_SORT",
    "ROW_POSITION",
    "QueryBar",
    "QueryFields",
    "build_query",
    "fields_of",
    "query_error_text",
    "summary_text",
]

NO_SORT = "(no sort)"
NO_COMPARE = "(none)"
ROW_POSITION = "(row position)"
BOTH_FILTER = "0.present and 1.present"
"""The filter that keeps only the rows present in both compared tables."""


_CHIP_STYLES = {
    "background": "#eef2f7",
    "border-radius": "10px",
    "padding": "1px 8px",
    "font-size": "12px",
    "color": "#334",
    "white-space": "nowrap",
}


def query_error_text(exc: BaseException) -> str:
    """The user-facing message of a query error (unwrapping pydantic's ValidationError)."""
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, BaseException):
                return str(cause)
        return "; ".join(str(e.get("msg", "")) for e in exc.errors()) or str(exc)
    return str(exc)


class QueryFields:
    """The values of the query bar, as plain data (what the widgets show)."""

    def __init__(
        self,
        filter: str = "",
        sort: str | None = None,
        descending: bool = False,
        group_by: Sequence[str] = (),
        compare_with: str | None = None,
        compare_on: str | None = None,
        only_both: bool = False,
    ) -> None:
        self.filter = filter
        self.sort = sort
        self.descending = descending
        self.group_by = tuple(group_by)
        self.compare_with = compare_with
        self.compare_on = compare_on
        self.only_both = only_both

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QueryFields) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"QueryFields({vars(self)!r})"


def _filter_text(user_text: str, only_both: bool) -> str:
    text = user_text.strip()
    if not only_both:
        return text
    return f"{BOTH_FILTER} and ({text})" if text else BOTH_FILTER


def build_query(table: str, fields: QueryFields, engine: Any = None) -> Query:
    """The Query the bar's fields describe; checked against ``engine`` when given.

    Raises QueryError (FilterSyntaxError, UnknownColumnError, FilterTypeError)
    with the message to show under the filter box.
    """
    compare = None
    if fields.compare_with:
        compare = CompareWith(table=fields.compare_with, on=fields.compare_on or None)
    text = _filter_text(fields.filter, fields.only_both and compare is not None)
    try:
        query = Query(
            table=table,
            filter=text or None,
            sort=(SortKey(column=fields.sort, descending=fields.descending),)
            if fields.sort
            else (),
            group_by=fields.group_by,
            compare_with=compare,
        )
    except ValidationError as exc:
        raise QueryError(query_error_text(exc)) from None
    if engine is not None:
        try:
            View(engine, query).type  # noqa: B018 (derived for its errors)
        except QueryError:
            raise
        except Exception as exc:  # anything else the engine says about this query
            raise QueryError(str(exc)) from exc
    return query


def fields_of(query: Query) -> QueryFields:
    """The query bar's fields for a saved query (the inverse of ``build_query``)."""
    text = query.filter.to_text() if query.filter is not None else ""
    only_both = False
    compare = query.compare_with
    if compare is not None and text.startswith(BOTH_FILTER):
        rest = text[len(BOTH_FILTER) :]
        if rest == "":
            text, only_both = "", True
        elif rest.startswith(" and "):
            candidate = rest[len(" and ") :]
            if candidate.startswith("(") and candidate.endswith(")"):
                inner = candidate[1:-1]
                try:
                    same = parse_filter(_filter_text(inner, True)) == query.filter
                except QueryError:
                    same = False
                if same:
                    text, only_both = inner, True
            if not only_both:
                try:
                    same = parse_filter(_filter_text(candidate, True)) == query.filter
                except QueryError:
                    same = False
                if same:
                    text, only_both = candidate, True
    on = compare.on if compare is not None else None
    sort = query.sort[0] if query.sort else None
    return QueryFields(
        filter=text,
        sort=sort.column if sort else None,
        descending=sort.descending if sort else False,
        group_by=query.group_by,
        compare_with=compare.table if compare is not None else None,
        compare_on=on if isinstance(on, str) else (on[0] if on else None),
        only_both=only_both,
    )


def summary_text(fields: QueryFields) -> str:
    """What the bar's hidden fields do, in a few words: ``"sorted by price ↓ · grouped
    by label · compared with runs_b on id · only rows in both"``; empty when nothing."""
    parts = []
    if fields.sort:
        parts.append(f"sorted by {fields.sort} {'↓' if fields.descending else '↑'}")
    if fields.group_by:
        parts.append("grouped by " + ", ".join(fields.group_by))
    if fields.compare_with:
        on = f" on {fields.compare_on}" if fields.compare_on else ""
        parts.append(f"compared with {fields.compare_with}{on}")
        if fields.only_both:
            parts.append("only rows in both")
    return " · ".join(parts)


class QueryBar(pn.viewable.Viewer):
    """Filter, sort, group by, compare: calls ``on_change(query)`` with every valid query.

    One line: the filter box, the summary of the hidden fields and the "⋯" toggle
    (``more``) that shows sort, group and compare; open from the start when the
    saved query sorts, groups or compares. The filter is checked as it is typed; its message shows under the box and
    an invalid filter is never passed on. The query is applied when the box is
    committed (Enter or leaving it) and when any other field changes.
    """

    def __init__(
        self,
        engine: Any,
        query: Query,
        on_change: Callable[[Query], None] | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.table = query.table
        self.query = query
        self._callbacks = [on_change] if on_change else []
        self._syncing = False
        self._error: str | None = None
        fields = fields_of(query)
        columns = self._columns()
        others = [n for n in engine.table_names() if n != self.table]
        self._build_widgets(fields, columns, others)
        self._sync_compare_widgets()
        self.filter_input.param.watch(self._typed, "value_input")
        self.filter_input.param.watch(self._changed, "value")
        for widget in self._menu_widgets():
            widget.param.watch(self._changed, "value")
        self.more.value = bool(summary_text(fields))
        self.more.param.watch(lambda _e: self._sync_summary(), "value")
        self._layout = self._build_layout()
        self._sync_summary()

    @property
    def expanded(self) -> bool:
        """True while sort, group and compare are shown."""
        return bool(self.more.value)

    def _sync_summary(self) -> None:
        """Show the extra fields when expanded, else their summary on the line."""
        text = summary_text(self.fields())
        self.extra.visible = self.expanded
        self.summary.object = html_text(text)
        self.summary.visible = bool(text) and not self.expanded

    def _build_widgets(self, fields: QueryFields, columns: list[str], others: list[str]) -> None:
        """The bar's widgets, set to ``fields``; ``others`` are the tables to compare with."""
        self.filter_input = pn.widgets.TextInput(
            value=fields.filter,
            placeholder='Filter, e.g. score > 0.5 and label in ("cat", "dog")',
            sizing_mode="stretch_width",
            css_classes=["query-filter"],
            margin=(2, 4),
        )
        self.summary = pn.pane.HTML(
            "",
            visible=False,
            css_classes=["query-summary"],
            margin=(6, 4),
            styles=_CHIP_STYLES,
        )
        self.more = pn.widgets.Toggle(
            label="⋯", width=36, margin=(2, 2), color="light", css_classes=["query-more"]
        )
        self.message = pn.pane.Alert(
            "",
            alert_type="danger",
            visible=False,
            css_classes=["query-error"],
            margin=(0, 5),
            sizing_mode="stretch_width",
        )
        self._build_menu(fields, columns, others)

    def _build_menu(self, fields: QueryFields, columns: list[str], others: list[str]) -> None:
        """The widgets behind "⋯": sort, order, group, compare."""
        self.sort = pn.widgets.Select(
            label="Sort",
            options=[NO_SORT, *columns],
            value=fields.sort or NO_SORT,
            width=140,
            css_classes=["query-sort"],
        )
        self.direction = pn.widgets.Select(
            label="Order",
            options=["ascending", "descending"],
            value="descending" if fields.descending else "ascending",
            width=110,
            css_classes=["query-order"],
        )
        self.group_by = pn.widgets.MultiChoice(
            label="Group by",
            options=choice_options(columns),
            value=list(fields.group_by),
            width=180,
            css_classes=["query-group"],
        )
        self.compare_with = pn.widgets.Select(
            label="Compare with",
            options=[NO_COMPARE, *others],
            value=fields.compare_with or NO_COMPARE,
            width=150,
            css_classes=["query-compare"],
        )
        self.compare_on = pn.widgets.Select(
            label="Join key",
            options=[ROW_POSITION, *columns],
            value=fields.compare_on or ROW_POSITION,
            width=150,
            css_classes=["query-compare-on"],
        )
        self.only_both = pn.widgets.Checkbox(
            label="only rows in both",
            value=fields.only_both,
            css_classes=["query-both"],
            margin=(28, 10, 0, 10),
        )

    def _menu_widgets(self) -> tuple[Any, ...]:
        """The fields behind "⋯" (sort, group, compare), in the order they are shown."""
        return (
            self.sort,
            self.direction,
            self.group_by,
            self.compare_with,
            self.compare_on,
            self.only_both,
        )

    def _build_layout(self) -> Any:
        """The one line (filter, summary, ⋯) over the filter's message, then the other
        fields in a wrapping row, shown when expanded."""
        self.extra = pn.FlexBox(
            *self._menu_widgets(),
            flex_wrap="wrap",
            sizing_mode="stretch_width",
            css_classes=["query-more-fields"],
        )
        return pn.Column(
            pn.Row(self.filter_input, self.summary, self.more, sizing_mode="stretch_width"),
            self.message,
            self.extra,
            sizing_mode="stretch_width",
            css_classes=["query-bar"],
            margin=0,
        )

    def _columns(self) -> list[str]:
        try:
            return list(columns_of(View(self.engine, Query(table=self.table)).type))
        except Exception:
            return []

    def on_change(self, callback: Callable[[Query], None]) -> None:
        """Call ``callback(query)`` with every new valid query."""
        self._callbacks.append(callback)

    @property
    def error(self) -> str | None:
        """The message under the filter box, or None."""
        return self._error

    def fields(self, filter_text: str | None = None) -> QueryFields:
        """The bar's current values."""
        compare = self.compare_with.value
        on = self.compare_on.value
        return QueryFields(
            filter=self.filter_input.value if filter_text is None else filter_text,
            sort=None if self.sort.value == NO_SORT else self.sort.value,
            descending=self.direction.value == "descending",
            group_by=self.group_by.value,
            compare_with=None if compare == NO_COMPARE else compare,
            compare_on=None if on == ROW_POSITION else on,
            only_both=bool(self.only_both.value),
        )

    def _sync_compare_widgets(self) -> None:
        comparing = self.compare_with.value != NO_COMPARE
        self.compare_on.visible = comparing
        self.only_both.visible = comparing

    def _show(self, message: str | None) -> None:
        self._error = message or None
        # a fenced block keeps the caret under the spot the message points at
        self.message.object = markdown_block(message) if message else ""
        self.message.visible = bool(message)

    def check(self, fields: QueryFields) -> Query | None:
        """The query for ``fields``, or None after showing why it is invalid."""
        try:
            query = build_query(self.table, fields, self.engine)
        except QueryError as exc:
            self._show(str(exc))
            return None
        self._show(None)
        return query

    def _typed(self, event: Any) -> None:
        self.check(self.fields(filter_text=event.new or ""))

    def _changed(self, event: Any) -> None:
        if self._syncing:
            return
        self._sync_compare_widgets()
        self._sync_summary()
        query = self.check(self.fields())
        if query is None or query == self.query:
            return
        self.query = query
        for callback in self._callbacks:
            callback(query)

    def __panel__(self) -> Any:
        return self._layout
