"""The Gallery panel: a table's images as a grid of thumbnails with their boxes and masks,
a caption from chosen columns, paged by the engine; a click shows the row in full.

Only the current page is fetched (``view.page(offset, limit)``). Thumbnails are
drawn by ``panels_builtin.cells.image_cell`` (as in the table), captions and
fields are text (``panels_core.escape``). The grid is a small browser component
(``TileGrid``) that says which tile was clicked; the detail pane replaces the
grid until closed. Each tile of a plain table has a "select" box: the checked
tiles' row numbers are published as the view's ``RowsBrush``; tiles of rows the
linked selection selects get a highlight border, and "selected only" pages
``view.selected()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from panels_builtin.captions import format_count, format_number, message
from panels_builtin.cells import CellColumn, CellRenderer, cell_columns, image_cell, text_cell
from panels_builtin.columns import label_column
from panels_builtin.selecting import (
    brushed_rows,
    check_rows,
    has_selection,
    selected_on_page,
)
from panels_core.escape import html_text, markdown_text
from panels_core.panel import Column, Panel, PanelConfig, Prefer, columns_of
from panels_core.query.engine import ROW
from panels_core.query.errors import QueryError
from panels_core.types import AnyType, CategoryType, ImageType, TableType, strip_optional

__all__ = ["Gallery", "GalleryConfig", "GalleryPanel", "caption_text", "field_html"]

DETAIL_SIZE = 384
"""Pixels on the longer side of the image in a row's detail view."""


class GalleryConfig(PanelConfig):
    """Which image column, which columns make the caption, how many thumbnails a page."""

    image: Annotated[str, Column(accepts=ImageType()), Field(description="the image column shown")]
    caption: Annotated[
        list[str],
        Column(
            accepts=AnyType(), multiple=True, required=False, prefer=[Prefer(CategoryType(), max=1)]
        ),
        Field(description="columns under each thumbnail; default: a label (category) column"),
    ] = []
    page_size: int = Field(24, ge=1, le=200, description="thumbnails per page")
    thumbnail_size: int = Field(
        128, ge=32, le=512, description="thumbnails, in pixels on their longer side"
    )


def _value_text(value: Any) -> str:
    """A caption value as plain text: numbers shortened, the rest as the table shows it."""
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return format_number(float(value)) if isinstance(value, float) else f"{value:,}"
    return str(value)


def caption_text(row: dict[str, Any], columns: list[str]) -> str:
    """The caption of one row (plain text, escape it to show): ``"label: cat · score: 0.93"``,
    just the value when there is one column."""
    if len(columns) == 1:
        return _value_text(row.get(columns[0]))
    return " · ".join(f"{c}: {_value_text(row.get(c))}" for c in columns)


def field_html(renderer: CellRenderer, column: CellColumn, value: Any) -> str:
    """One field of a row's detail as HTML: typed cells as the table draws them, numbers
    in full, everything from data escaped."""
    if column.style == "html":
        return str(renderer.column(column, [value])[0])
    if column.style == "number" and value is not None:
        return html_text(f"{value:,}" if isinstance(value, int) else repr(float(value)))
    return text_cell(value if column.style != "boolean" or value is None else str(value), 2000)


class TileGrid:
    """Builds the browser component lazily (importing Panel only when rendering)."""

    cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.cls is None:
            import param
            from panel.custom import JSComponent

            class Tiles(JSComponent):  # type: ignore[misc]
                """Thumbnails (ready, escaped HTML) in a wrapping grid; a click sets
                ``selected``; a tile's "select" box sets ``checked`` (page positions);
                tiles at ``marked`` positions are highlighted."""

                tiles = param.List(default=[])
                selected = param.Integer(default=-1)
                tile_width = param.Integer(default=140)
                selectable = param.Boolean(default=False)
                checked = param.List(default=[])
                marked = param.List(default=[])

                _esm = _TILES_ESM
                _stylesheets = [_TILES_CSS]

            cls.cls = Tiles
        return cls.cls


_TILES_ESM = """
export function render({ model, el }) {
  const grid = document.createElement("div");
  grid.className = "gallery-grid";
  function draw() {
    grid.replaceChildren();
    model.tiles.forEach((html, i) => {
      const tile = document.createElement("div");
      tile.className = "gallery-tile";
      tile.style.width = model.tile_width + "px";
      if (model.marked.includes(i)) tile.classList.add("gallery-marked");
      tile.innerHTML = html;
      tile.addEventListener("click", () => { model.selected = i; });
      if (model.selectable) {
        const label = document.createElement("label");
        label.className = "gallery-check";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = model.checked.includes(i);
        label.append(box, " select");
        label.addEventListener("click", (e) => e.stopPropagation());
        box.addEventListener("change", () => {
          const others = model.checked.filter((j) => j !== i);
          model.checked = box.checked ? [...others, i] : others;
        });
        tile.appendChild(label);
      }
      grid.appendChild(tile);
    });
  }
  draw();
  model.on(["tiles", "checked", "marked"], draw);
  el.appendChild(grid);
}
"""

_TILES_CSS = """
.gallery-grid { display: flex; flex-wrap: wrap; gap: 8px; }
.gallery-tile { cursor: pointer; border: 1px solid #e3e6ea; border-radius: 6px; padding: 4px;
  display: flex; flex-direction: column; align-items: center; }
.gallery-tile:hover { border-color: #3b6ea5; }
.gallery-tile.gallery-marked { border: 3px solid #e8862a; padding: 2px; }
.gallery-check { font-size: 11px; color: #555; cursor: pointer; }
.gallery-caption { font-size: 12px; color: #333; text-align: center; overflow-wrap: anywhere;
  max-height: 3.6em; overflow: hidden; }
"""


class Gallery:
    """One page of a view's images: ``rows`` (the page's rows as dicts), ``tiles`` (their
    HTML), ``show(i)`` opens row ``i`` of the page in the detail pane, ``close()`` shuts it.
    ``layout`` is the Panel object; ``detail_html`` what the detail pane shows.

    On one plain table (``selectable``): ``page_rows`` are the page's table row numbers,
    ``check(positions)`` checks tiles (``checked``: row numbers, kept across pages) and
    publishes them as a ``RowsBrush``; ``marked`` are the page positions the linked
    selection selects; ``only_selected(True)`` pages ``view.selected()``."""

    def __init__(self, view: Any, config: GalleryConfig) -> None:
        q = view.query
        self.base = view
        self.view = view
        self.config = config
        self.selectable = not (q.group_by or q.compare_with or q.join or view.joined_table())
        self.checked: set[int] = brushed_rows(view) if self.selectable else set()
        self.page_rows = np.empty(0, dtype=np.int64)
        self.marked: list[int] = []
        self._syncing = False
        self.columns = cell_columns(view.type)
        self.image_type = strip_optional(columns_of(view.type)[config.image])
        self.thumbs = CellRenderer(thumbnail_size=config.thumbnail_size)
        self.large = CellRenderer(thumbnail_size=DETAIL_SIZE)
        self.total = view.count()
        self.offset = 0
        self.rows: list[dict[str, Any]] = []
        self.error: str | None = None
        self.selected: int | None = None
        self.detail_html = ""
        self._build_widgets()
        self.refresh()

    # -- data ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Fetch the page at ``offset`` and draw its tiles (an engine error is shown)."""
        try:
            self.rows, self.error = self._fetch(), None
        except QueryError as exc:
            self.rows, self.error = [], str(exc)
            self.page_rows = np.empty(0, dtype=np.int64)
        self.marked = self._marked()
        self.close()
        self._show()

    def _fetch(self) -> list[dict[str, Any]]:
        rows, self.page_rows = self._page(self.view, self.offset)
        return rows

    def _page(self, view: Any, offset: int) -> tuple[list[dict[str, Any]], np.ndarray]:
        """The rows of ``view``'s page at ``offset`` and their table row numbers (none
        when tiles cannot be checked)."""
        size = self.config.page_size
        if not self.selectable:
            return view.page(offset, size).to_pylist(), np.empty(0, dtype=np.int64)
        names = list(columns_of(view.type))
        page = view.page(offset, size, [*names, ROW])
        return page.select(names).to_pylist(), page.column(ROW).to_numpy().astype(np.int64)

    def _marked(self) -> list[int]:
        """The page positions of rows the linked selection selects."""
        return selected_on_page(self.base, self.page_rows) if self.selectable else []

    def follow(self, view: Any) -> Callable[[], None]:
        """What shows ``view``'s new linked selection, asked of the engine now (off the event
        loop) and shown when the returned function is called (on it): the page stays, its
        tiles' borders and ticks from the new selection (the thumbnails are not sent
        again); with *selected only* on, the same page of the new selected rows."""
        only = self.only.value and has_selection(view)
        shown = view.selected() if only else view
        total = shown.count()
        offset, rows, page_rows = self.offset, None, self.page_rows
        if only or self.view is not self.base:  # selected only, now or until now
            size = self.config.page_size
            offset = min(self.offset, max(0, (total - 1) // size * size))
            rows, page_rows = self._page(shown, offset)
        marked, checked = selected_on_page(view, page_rows), brushed_rows(view)

        def show() -> None:
            self.base, self.view, self.total, self.offset = view, shown, total, offset
            self.marked, self.checked = marked, checked
            self.only.visible = has_selection(view)
            if rows is not None:
                self.rows, self.page_rows, self.error = rows, page_rows, None
                self.close()
            self._show(tiles=rows is not None)

        return show

    def check(self, positions: Any) -> None:
        """Check the tiles at ``positions`` of the page (unchecking its others) and publish
        every checked row as the view's RowsBrush (None when none is checked)."""
        check_rows(self.view, self, self.page_rows.tolist(), positions)

    def only_selected(self, only: bool) -> None:
        """Page only the linked selection's rows (``view.selected()``), or every row; a
        selection the engine cannot evaluate here is shown as the error, the page kept."""
        view = self.base.selected() if only else self.base
        try:
            total = view.count()
        except QueryError as exc:
            self.error = str(exc)
            self._show()
            return
        self.view, self.total = view, total
        self.go_to(0)

    def tile(self, row: dict[str, Any]) -> str:
        """One thumbnail with its boxes and masks over its caption (escaped)."""
        c = self.config
        image = image_cell(row.get(c.image), self.image_type, size=c.thumbnail_size)
        caption = caption_text(row, c.caption) if c.caption else ""
        return f'{image}<div class="gallery-caption">{html_text(caption)}</div>'

    @property
    def tiles(self) -> list[str]:
        """The HTML of the page's tiles, in the page's order."""
        return [self.tile(row) for row in self.rows]

    @property
    def status(self) -> str:
        """``images a-b of N`` for the current page."""
        if not self.rows:
            return "no rows" if self.total == 0 else f"images 0 of {format_count(self.total)}"
        end = self.offset + len(self.rows)
        return f"images {format_count(self.offset + 1)}-{format_count(end)} of {format_count(self.total)}"

    # -- navigation and detail ------------------------------------------------------------

    def go_to(self, offset: int) -> None:
        """Show the page starting at ``offset`` (clamped to the rows there are)."""
        size = self.config.page_size
        last = max(0, (self.total - 1) // size * size)
        self.offset = min(max(0, int(offset)), last)
        self.refresh()

    def show(self, index: int) -> None:
        """Open row ``index`` of the page: its image large and every field of the row."""
        if not 0 <= index < len(self.rows):
            return
        row = self.rows[index]
        self.selected = index
        fields = "".join(
            f'<tr><th style="text-align:left;padding:2px 8px;vertical-align:top">'
            f"{html_text(c.name)}</th><td>{field_html(self.large, c, row.get(c.name))}</td></tr>"
            for c in self.columns
        )
        title = html_text(f"row {self.offset + index + 1:,} of {self.total:,}")
        self.detail_html = f"<h5>{title}</h5><table class='gallery-fields'>{fields}</table>"
        self.detail_pane.object = self.detail_html
        self.detail.visible, self.grid.visible = True, False

    def close(self, *_: Any) -> None:
        """Back to the grid."""
        self.selected, self.detail_html = None, ""
        if hasattr(self, "detail"):
            self.detail.visible, self.grid.visible = False, True
            self.grid.selected = -1

    # -- widgets ------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import panel as pn

        size = self.config.page_size
        self.previous = pn.widgets.Button(label="◀", description="previous page", width=40)
        self.next = pn.widgets.Button(label="▶", description="next page", width=40)
        self.previous.on_click(lambda _e: self.go_to(self.offset - size))
        self.next.on_click(lambda _e: self.go_to(self.offset + size))
        self.info = pn.pane.Markdown("", margin=(0, 8))
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.grid = TileGrid.get()(
            tile_width=self.config.thumbnail_size + 12,
            sizing_mode="stretch_width",
            css_classes=["gallery-tiles"],
        )
        self.grid.param.watch(lambda e: e.new >= 0 and self.show(e.new), "selected")
        self.grid.param.watch(
            lambda e: None if self._syncing else self.check(list(e.new)), "checked"
        )
        self.only = pn.widgets.Toggle(
            label="selected only",
            visible=self.selectable and has_selection(self.view),
            css_classes=["gallery-selected-only"],
            width=110,
        )
        self.only.param.watch(lambda e: self.only_selected(e.new), "value")
        back = pn.widgets.Button(label="← back to the gallery", css_classes=["gallery-back"])
        back.on_click(self.close)
        self.detail_pane = pn.pane.HTML("", sizing_mode="stretch_width")
        self.detail = pn.Column(
            back,
            self.detail_pane,
            visible=False,
            css_classes=["gallery-detail"],
            sizing_mode="stretch_width",
        )
        self.layout = pn.Column(
            pn.Row(self.previous, self.next, self.info, self.only, align="center"),
            self.alert,
            self.detail,
            self.grid,
            sizing_mode="stretch_width",
        )

    def _show(self, tiles: bool = True) -> None:
        """Show the page: its tiles (unless ``tiles`` is False: they are the same), ticks
        and marks, the pager and any error."""
        self._syncing = True
        try:
            page = self.page_rows.tolist()
            drawn = {"tiles": self.tiles} if tiles else {}
            self.grid.param.update(
                selectable=self.selectable,
                checked=[i for i, r in enumerate(page) if r in self.checked],
                marked=self.marked,
                **drawn,
            )
        finally:
            self._syncing = False
        self.info.object = self.status
        self.previous.disabled = self.offset <= 0
        self.next.disabled = self.offset + len(self.rows) >= self.total
        self.alert.object = markdown_text(self.error or "")
        self.alert.visible = bool(self.error)


class GalleryPanel(Panel[GalleryConfig]):
    """A table's images as thumbnails with boxes and masks, captions, paged; click for the row."""

    kind = "gallery"
    can_select = True
    title = "Gallery"
    description = "Thumbnails of an image column with boxes, masks and captions; click for the row."

    @classmethod
    def default_config(cls, view_type: Any) -> GalleryConfig:
        """The best image column, captioned by the column named like a label."""
        config = super().default_config(view_type)
        label = label_column(columns_of(view_type))
        return config.model_copy(update={"caption": [label] if label else []})

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """Right after the projection on a new workspace for a table with an image column."""
        return 2 if isinstance(table_type, TableType) else None

    def render(self, view: Any) -> Any:
        """Pager row over the thumbnails (or a row's detail); the Column's ``gallery`` is
        the ``Gallery``."""
        if view.count() == 0:
            return message("No rows in this view: the filter keeps none.")
        gallery = Gallery(view, self.config)
        gallery.layout.gallery = gallery
        return gallery.layout

    def follow_selection(self, shown: Any, view: Any) -> Callable[[], None] | None:
        """The gallery keeps its page and marks the new selection's tiles; see
        ``Gallery.follow``."""
        gallery = getattr(shown, "gallery", None)
        if not isinstance(gallery, Gallery) or not gallery.selectable:
            return None
        return gallery.follow(view)
