"""The pager: a Tabulator holding one page of a View, first/previous/next/last buttons,
"rows a-b of N", header sorting turned into the Query's sort, and box/mask layer toggles.

Only the current page is ever fetched (``view.page(offset, limit, columns)``
plus ``view.count()``; a grouped view pages through ``view.grouped()`` with the
page as the query's offset/limit), so a 10M-row Parquet table opens as fast
as a small one. Shared by the table and joined-table panels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from panels_builtin.captions import format_count
from panels_builtin.cells import CellColumn, CellRenderer, cell_columns, number_formatter
from panels_builtin.columns import image_item
from panels_builtin.selecting import (
    brushed_rows,
    check_rows,
    rows_ticked_only,
    selected_on_page,
)
from panels_core.escape import html_text, markdown_text
from panels_core.query.engine import ROW
from panels_core.query.errors import QueryError
from panels_core.query.model import SortKey

__all__ = ["HIGHLIGHT", "TABLE_HEIGHT", "PagedTable"]

HIGHLIGHT = "background-color: #fde3c8; color: #222"
"""The style of a row the linked selection selects."""

TABLE_HEIGHT = 380
"""Pixels a page's Tabulator may take: taller pages scroll inside it (under its header),
so a page of thumbnails never makes its card taller."""


class _PageTabulator:
    """Builds the Tabulator subclass lazily (importing Panel only when rendering)."""

    cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.cls is None:
            import panel as pn

            class PageTabulator(pn.widgets.Tabulator):  # type: ignore[misc]
                """A Tabulator whose rows arrive already sorted by the engine."""

                def _sort_df(self, df: Any) -> Any:
                    return df

            cls.cls = PageTabulator
        return cls.cls


class PagedTable:
    """Pages through a View: a Tabulator holding only the current page, first/previous/
    next/last buttons, "rows a-b of N", and header sorting turned into the Query's sort.

    ``columns``: names the view resolves (all when None) or ready CellColumns.
    ``page_table`` (Arrow) and ``frame`` (the displayed DataFrame) hold the current
    page; ``total`` the view's row count; ``fetches`` counts engine page calls.
    ``on_sort``, when set, gets the new Query after a header sort (a workspace saves it).

    ``selectable``: rows have check boxes, and the checked rows (``checked``, table row
    numbers, kept across pages) are published as a ``RowsBrush`` through ``view.select``;
    ``page_rows`` holds the current page's row numbers. ``selected_rows``: how many rows
    at the top of the view the linked selection selects (``selected_first``/``selected``
    views); those rows are highlighted (``highlighted``: their positions on the page).
    """

    def __init__(
        self,
        view: Any,
        columns: Sequence[str] | Sequence[CellColumn] | None = None,
        page_size: int = 50,
        cells: CellRenderer | None = None,
        *,
        selectable: bool = False,
        selected_rows: int = 0,
    ) -> None:
        self.view = view
        self.selectable = selectable
        self.selected_rows = int(selected_rows)
        self.checked: set[int] = brushed_rows(view) if selectable else set()
        self.page_rows = np.empty(0, dtype=np.int64)
        self.highlighted: list[int] = []
        self._syncing = False
        self.page_size = int(page_size)
        self.cells = cells or CellRenderer()
        if columns and all(isinstance(c, CellColumn) for c in columns):
            self.columns: list[CellColumn] = list(columns)  # type: ignore[arg-type]
        else:
            self.columns = cell_columns(view.type, columns)  # type: ignore[arg-type]
        self.counts: Any = None  # a join's matched/unmatched counts (joined-table panel)
        self.on_sort: Callable[[Any], None] | None = None  # called with the sorted Query
        self.offset = 0
        self.fetches = 0
        self.error: str | None = None
        self.total = view.count()
        self.page_table: pa.Table = pa.table({})
        self.frame: Any = None
        self._build_widgets()
        self.refresh()

    # -- data ---------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The engine names of the shown columns."""
        return [c.name for c in self.columns]

    @property
    def last_offset(self) -> int:
        """The offset of the last page."""
        return self.last_offset_of(self.total)

    def last_offset_of(self, total: int) -> int:
        """The offset of the last page of ``total`` rows."""
        return max(0, (total - 1) // self.page_size * self.page_size)

    def _fetch(self) -> pa.Table:
        table, rows = self._page(self.view, self.offset)
        if rows is not None:
            self.page_rows = rows
        return table

    def _page(self, view: Any, offset: int) -> tuple[pa.Table, np.ndarray | None]:
        """The page of ``view`` at ``offset`` (shown columns) and, when rows can be checked,
        its table row numbers."""
        self.fetches += 1
        query = view.query
        if query.group_by:
            start = query.offset + offset
            limit = self.page_size
            if query.limit is not None:
                limit = max(0, min(limit, query.limit - offset))
            grouped = view.with_query(offset=start, limit=limit).grouped()
            return grouped.select(self.names), None
        if not self.selectable:
            return view.page(offset, self.page_size, self.names), None
        table = view.page(offset, self.page_size, [*self.names, ROW])
        return table.select(self.names), table.column(ROW).to_numpy().astype(np.int64)

    def _frame(self, table: pa.Table) -> Any:
        import pandas as pd

        data = {}
        for column in self.columns:
            values = table.column(column.name).to_pylist() if table.num_rows else []
            shown = self.cells.column(column, values)
            # object columns keep None as None (pandas would make text nulls NaN)
            dtype = np.float64 if column.style == "number" else object
            data[column.name] = pd.Series(shown, dtype=dtype)
        return pd.DataFrame(data, columns=self.names)

    def refresh(self) -> None:
        """Fetch the page at ``offset`` and show it (an engine error is shown, not raised)."""
        try:
            table = self._fetch()
        except QueryError as exc:
            self.error = str(exc)
            self._show()
            return
        self.error = None
        self.page_table = table
        self.frame = self._frame(table)
        self._mark_first()
        self._show()

    def redraw(self) -> None:
        """Re-draw the current page's cells (after a layer toggle) without fetching."""
        self.frame = self._frame(self.page_table)
        self._show()

    # -- navigation ---------------------------------------------------------------------

    def go_to(self, offset: int) -> None:
        """Show the page starting at ``offset`` (clamped to the rows there are)."""
        self.offset = min(max(0, int(offset)), self.last_offset)
        self.refresh()

    def first(self, *_: Any) -> None:
        """Show the first page."""
        self.go_to(0)

    def previous(self, *_: Any) -> None:
        """Show the page before this one."""
        self.go_to(self.offset - self.page_size)

    def next(self, *_: Any) -> None:
        """Show the page after this one."""
        self.go_to(self.offset + self.page_size)

    def last(self, *_: Any) -> None:
        """Show the last page."""
        self.go_to(self.last_offset)

    # -- sorting ------------------------------------------------------------------------

    def sort_keys(self, sorters: Sequence[Mapping[str, Any]]) -> tuple[SortKey, ...]:
        """Tabulator sorters (``[{"field": name, "dir": "asc"|"desc"}]``, first = primary)
        as the Query's SortKeys; fields that cannot sort are refused with a QueryError."""
        by_name = {c.name: c for c in self.columns}
        keys = []
        for sorter in sorters:
            field = str(sorter.get("field", ""))
            column = by_name.get(field)
            if column is None or not column.sortable:
                raise QueryError(f"cannot sort by `{field}`: sort by a number, text or time column")
            keys.append(SortKey(column=field, descending=sorter.get("dir") == "desc"))
        return tuple(keys)

    def apply_sorters(self, sorters: Sequence[Mapping[str, Any]]) -> None:
        """Sort the view by the clicked headers and go back to the first page."""
        try:
            keys = self.sort_keys(sorters)
            view = self.view.with_query(sort=[k.model_dump() for k in keys])
            total = view.count()
        except QueryError as exc:
            self.error = str(exc)
            self._show()
            return
        self.view, self.total, self.offset = view, total, 0
        self.refresh()
        if self.on_sort is not None:
            self.on_sort(view.query)

    def _on_sorters(self, event: Any) -> None:
        self.apply_sorters(event.new or [])

    # -- selection ----------------------------------------------------------------------

    def check(self, positions: Sequence[int]) -> None:
        """Check the rows at ``positions`` of the current page (unchecking its others) and
        publish every checked row as the view's RowsBrush (None when none is checked)."""
        check_rows(self.view, self, self.page_rows.tolist(), positions)

    def follow(
        self, base: Any, shown: Any, selected_rows: int, *, in_place: bool = True
    ) -> Callable[[], None]:
        """What shows ``base``'s new linked selection, asked of the engine now (off the
        event loop) and shown when the returned function is called (on it).

        ``shown`` is what the table pages (``base``, or its selected rows first or only)
        and ``selected_rows`` how many of them the selection selects. The page stays
        where the user is: when only this table's own ticks changed the selection and
        ``in_place`` (the rows shown stay the same rows: not "selected only"), its rows
        stay in place and the selected ones are marked again, so a tick made meanwhile
        lands on the row the user sees; otherwise the page at the same offset of
        ``shown`` is fetched, its ticks from the selection."""
        if not (in_place and rows_ticked_only(self.view, base, self.checked)):
            return self.repaged(base, shown, selected_rows)
        total = shown.count()
        marked = selected_on_page(base, self.page_rows)

        def mark() -> None:
            self.view, self.total, self.selected_rows = shown, total, int(selected_rows)
            self.highlighted = marked
            self._show()

        return mark

    def repaged(self, base: Any, shown: Any, selected_rows: int) -> Callable[[], None]:
        """What shows the page at the same offset of ``shown`` (see ``follow``), its ticks
        the rows ``base``'s selection names; asked of the engine now, shown when called."""
        total = shown.count()
        offset = min(self.offset, self.last_offset_of(total))
        table, rows = self._page(shown, offset)
        frame, checked = self._frame(table), brushed_rows(base)

        def repage() -> None:
            self.view, self.total, self.offset = shown, total, offset
            self.selected_rows, self.checked, self.error = int(selected_rows), checked, None
            self.page_table, self.frame = table, frame
            if rows is not None:
                self.page_rows = rows
            self._mark_first()
            self._show()

        return repage

    def _mark_first(self) -> None:
        """Highlight the page's rows among the first ``selected_rows`` of the view (the
        selected rows come first)."""
        shown = 0 if self.frame is None else len(self.frame)
        self.highlighted = list(range(max(0, min(shown, self.selected_rows - self.offset))))

    def _on_checked(self, event: Any) -> None:
        if not self._syncing:
            self.check(list(event.new or []))

    def _row_style(self, row: Any) -> list[str]:
        """The highlight of a row the linked selection selects (a Tabulator style)."""
        return [HIGHLIGHT if row.name in self.highlighted else ""] * len(row)

    # -- widgets ------------------------------------------------------------------------

    def _formatters(self) -> dict[str, Any]:
        """The Tabulator formatter of each column that is not plain text."""
        formatters: dict[str, Any] = {}
        for column in self.columns:
            if column.style == "number":
                integer = bool(getattr(column.type, "integer", False))
                formatters[column.name] = number_formatter(integer, self.cells.precision)
            elif column.style == "boolean":
                formatters[column.name] = {"type": "tickCross", "allowEmpty": True}
            elif column.style == "html":
                formatters[column.name] = {"type": "html"}
        return formatters

    def _build_widgets(self) -> None:
        import pandas as pd
        import panel as pn

        groups: dict[str, list[str]] = {}
        for column in self.columns:
            if column.group is not None:
                groups.setdefault(column.group, []).append(column.name)
        self.tabulator = _PageTabulator.get()(
            pd.DataFrame({c.name: [] for c in self.columns}),
            formatters=self._formatters(),
            # Tabulator shows titles and group names as HTML
            titles={c.name: html_text(c.title) for c in self.columns},
            groups={html_text(name): names for name, names in groups.items()},
            sortable={c.name: c.sortable for c in self.columns},
            show_index=False,
            disabled=True,
            pagination=None,
            layout="fit_data_table",
            sizing_mode="stretch_width",
            max_height=TABLE_HEIGHT,
            configuration={"columnDefaults": {"sorterParams": {"alignEmptyValues": "bottom"}}},
            # the view's own sort shows as header arrows
            sorters=[
                {"field": k.column, "dir": "desc" if k.descending else "asc"}
                for k in self.view.query.sort
                if k.column in self.names
            ],
        )
        self.tabulator.param.watch(self._on_sorters, "sorters")
        if self.selectable:
            self.tabulator.selectable = "checkbox"
            self.tabulator.param.watch(self._on_checked, "selection")
        if self.selectable or self.selected_rows:  # a selection may come later
            self.tabulator.style.apply(self._row_style, axis=1)
        glyphs = {"first": "«", "previous": "◀", "next": "▶", "last": "»"}
        self.buttons = {
            name: pn.widgets.Button(
                label=glyph, description=f"{name} page", width=40, margin=(0, 2)
            )
            for name, glyph in glyphs.items()
        }
        for name, button in self.buttons.items():
            button.on_click(getattr(self, name))
        self.info = pn.pane.Markdown("", margin=(0, 8))
        self.alert = pn.pane.Alert(
            "", alert_type="warning", visible=False, sizing_mode="stretch_width"
        )
        self.extra = pn.Row(margin=0)
        self.layout = pn.Column(
            pn.Row(*self.buttons.values(), self.info, self.extra, align="center"),
            self.alert,
            self.tabulator,
            sizing_mode="stretch_width",
        )

    @property
    def status(self) -> str:
        """``rows a-b of N`` for the current page (``no rows`` when empty)."""
        if self.total == 0:
            return "no rows"
        shown = self.page_table.num_rows
        unit = "groups" if self.view.query.group_by else "rows"
        if shown == 0:
            return f"{unit} 0 of {format_count(self.total)}"
        return (
            f"{unit} {format_count(self.offset + 1)}-{format_count(self.offset + shown)} "
            f"of {format_count(self.total)}"
        )

    def _show(self) -> None:
        # a new page is no tick: Panel carries the old page's selection over by position
        self._syncing = True
        try:
            if self.frame is not None:
                self.tabulator.value = self.frame
            if self.selectable:
                page = self.page_rows.tolist()
                self.tabulator.selection = [i for i, r in enumerate(page) if r in self.checked]
                # sent even when unchanged here: the browser may show a page it replaced
                self.tabulator.param.trigger("selection")
        finally:
            self._syncing = False
        self.info.object = self.status
        at_start, at_end = self.offset <= 0, self.offset >= self.last_offset
        self.buttons["first"].disabled = self.buttons["previous"].disabled = at_start
        self.buttons["next"].disabled = self.buttons["last"].disabled = at_end
        if self.error:
            self.alert.object, self.alert.alert_type, self.alert.visible = (
                markdown_text(self.error),
                "danger",
                True,
            )
        elif self.total == 0:
            self.alert.object = "No rows in this view: the filter keeps none."
            self.alert.alert_type, self.alert.visible = "info", True
        else:
            self.alert.visible = False

    def add_layer_toggles(self) -> None:
        """Check buttons that switch box and mask layers on and off (when images have any)."""
        import panel as pn

        for attribute in ("box_layers", "mask_layers"):
            known = sorted(
                {
                    layer
                    for c in self.columns
                    for layer in getattr(image_item(c.type), attribute, ())
                }
            )
            if not known:
                continue
            current = getattr(self.cells, attribute)
            toggle = pn.widgets.CheckButtonGroup(
                label=attribute.replace("_", " "),
                options=known,
                value=[k for k in known if current is None or k in current],
                color="light",
                margin=(0, 4),
            )

            def changed(event: Any, attribute: str = attribute) -> None:
                setattr(self.cells, attribute, list(event.new))
                self.redraw()

            toggle.param.watch(changed, "value")
            self.extra.append(toggle)
