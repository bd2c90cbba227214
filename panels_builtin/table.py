"""The Table panel: any table, one page at a time, with typed cells.

Clicking a header sorts through the view's Query, not the browser. The pager
is ``panels_builtin.pager`` and the cells ``panels_builtin.cells``; their public
names are importable from here too, as before they had modules of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from panels_builtin.captions import message
from panels_builtin.cells import (
    CellColumn,
    CellRenderer,
    cell_columns,
    compared_histogram_cell,
    compared_number_cell,
    embedding_cell,
    histogram_cell,
    image_cell,
    list_cell,
    number_formatter,
    text_cell,
)
from panels_builtin.columns import has_media, image_item
from panels_builtin.pager import PagedTable
from panels_builtin.selecting import selection_answer
from panels_core.panel import Column, Panel, PanelConfig, columns_of
from panels_core.types import AnyType, JoinedTableType

__all__ = [
    "TABLE_LAST",
    "CellColumn",
    "CellRenderer",
    "PagedTable",
    "TableConfig",
    "TablePanel",
    "cell_columns",
    "compared_histogram_cell",
    "compared_number_cell",
    "embedding_cell",
    "histogram_cell",
    "image_cell",
    "list_cell",
    "number_formatter",
    "text_cell",
]

TABLE_LAST = 9
"""The table's place on a first screen after a table's media cards (gallery, projection,
histograms)."""

# --------------------------------------------------------------------------- config


def _layers_of(view_type: Any, attribute: str) -> set[str]:
    found: set[str] = set()
    for t in columns_of(view_type).values():
        image = image_item(t)
        if image is not None:
            found.update(getattr(image, attribute))
    return found


class TableConfig(PanelConfig):
    """What the table shows: which columns, how many rows a page, how cells look."""

    columns: Annotated[
        list[str],
        Column(accepts=AnyType(), multiple=True, required=False),
        Field(description="columns to show, in order; empty shows every column"),
    ] = []
    page_size: int = Field(50, ge=1, le=500, description="rows per page")
    precision: int = Field(4, ge=0, le=12, description="decimals shown for non-integer numbers")
    thumbnail_size: int = Field(
        64, ge=16, le=256, description="image thumbnails, in pixels on their longer side"
    )
    box_layers: list[str] | None = Field(
        None, description="box layers drawn over images; None draws every layer, [] none"
    )
    mask_layers: list[str] | None = Field(
        None, description="mask layers drawn into images; None draws every layer, [] none"
    )
    selected: Literal["first", "only"] = Field(
        "first", description="with a linked selection: its rows first, or only its rows"
    )

    @field_validator("box_layers", "mask_layers", mode="after")
    @classmethod
    def _known_layers(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        view_type = (info.context or {}).get("view_type")
        if value is None or view_type is None:
            return value
        attribute = info.field_name or "box_layers"
        known = _layers_of(view_type, attribute)
        unknown = [layer for layer in value if layer not in known]
        if unknown:
            listed = ", ".join(f"`{k}`" for k in sorted(known)) or "none"
            raise ValueError(
                f"unknown layer `{unknown[0]}`; the image columns' {attribute.replace('_', ' ')} "
                f"are {listed}"
            )
        return value


# --------------------------------------------------------------------------- the Panel


class TablePanel(Panel[TableConfig]):
    """Every row of any table, a page at a time, with typed cells and header sorting."""

    kind = "table"
    can_select = True
    title = "Table"
    description = "Rows of any table, paged by the engine; typed cells; sort by header click."

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """A table's rows lead its cards on a new workspace (a joined table's too, by
        the joined-table panel); a table with images or embeddings shows them first
        (gallery, projection, histograms) and its rows last."""
        if isinstance(table_type, JoinedTableType):
            return None
        return TABLE_LAST if has_media(table_type) else 0

    def cells(self) -> CellRenderer:
        """The cell renderer for this config."""
        c = self.config
        return CellRenderer(c.precision, c.thumbnail_size, c.box_layers, c.mask_layers)

    def build(self, view: Any, selected: str | None = None) -> PagedTable:
        """The pager over ``view`` (its widgets, current page and handlers): with a linked
        selection, its rows first or only (``selected``, default the config's), highlighted;
        rows of one plain table can be checked (published as the view's RowsBrush)."""
        plain = _plain(view)
        shown, selected_rows = _paged_rows(view, selected or self.config.selected, plain)
        paged = PagedTable(
            shown,
            self.config.columns,
            self.config.page_size,
            self.cells(),
            selectable=plain,
            selected_rows=selected_rows,
        )
        paged.add_layer_toggles()
        return paged

    def render(self, view: Any) -> Any:
        """A Column: with a linked selection a toggle between its rows first and only its
        rows (hidden without one), then the pager row, message line and the page's
        Tabulator. The Column's ``pager`` is the ``PagedTable``."""
        import panel as pn

        if not columns_of(view.type):
            return message("This table has no columns to show.")
        paged = self.build(view)
        toggle = pn.widgets.RadioButtonGroup(
            options={"selected first": "first", "selected only": "only"},
            value=self.config.selected,
            margin=(0, 4),
            css_classes=["selection-toggle"],
            visible=paged.view is not view,  # a linked selection applies to this view
        )
        holder = pn.Column(toggle, paged.layout, sizing_mode="stretch_width")
        holder.pager = paged
        holder.base = view

        def switch(event: Any) -> None:
            base = holder.base
            shown, selected_rows = _paged_rows(base, event.new, paged.selectable)
            paged.offset = 0
            paged.repaged(base, shown, selected_rows)()

        toggle.param.watch(switch, "value")
        return holder

    def follow_selection(self, shown: Any, view: Any) -> Callable[[], None] | None:
        """The table keeps its page: its selected rows marked again where they are when its
        own ticks changed the selection (unless it shows the selected rows only), else the
        same page of the new order; see ``PagedTable.follow``."""
        paged = getattr(shown, "pager", None)
        if not isinstance(paged, PagedTable) or not paged.selectable:
            return None
        toggle = shown[0]
        rows, selected_rows = _paged_rows(view, toggle.value, True)
        only = toggle.value == "only" and rows is not view
        show = paged.follow(view, rows, selected_rows, in_place=not only)

        def follow() -> None:
            shown.base = view
            toggle.visible = rows is not view
            show()

        return follow


def _plain(view: Any) -> bool:
    """Whether ``view`` is one plain table (its rows can be checked and put first)."""
    q = view.query
    return not (q.group_by or q.compare_with or q.join or view.joined_table())


def _paged_rows(view: Any, selected: str, plain: bool) -> tuple[Any, int]:
    """What the table pages for ``view``'s linked selection, and how many of those rows
    the selection selects: its rows first (``selected`` "first") or only, or ``view``
    itself (and 0) without a selection the engine can evaluate here."""
    counted = selection_answer(view, lambda chosen: chosen.count()) if plain else None
    if counted is None:
        return view, 0
    return (view.selected() if selected == "only" else view.selected_first()), counted
